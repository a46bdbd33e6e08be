//! The one retry schedule of the services: a doubling backoff with a cap, and a loop that retries an operation
//! until it succeeds (for work that must not be dropped: a claim, a status write, registering kinds, the topic).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// A doubling backoff: `first`, `2 × first`, … up to `max`, and back to `first` after [`Backoff::reset`].
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `first` and never waits longer than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first.min(max) }
    }

    /// The wait before the next try; the one after is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    /// Back to the first wait (after a success).
    pub fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }
}

/// Runs `attempt` until it succeeds, waiting per `backoff` after each failure and logging each one (as a warning,
/// with `what` and the wait). Returns the first success.
pub async fn retry_forever<T, E, F, Fut>(what: &str, mut backoff: Backoff, mut attempt: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => {
                let wait = backoff.next_delay();
                log::warn!("{what} failed, retrying in {wait:?}: {e}");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Runs blocking `work` on tokio's blocking pool, turning a panic there into an error like any other.
pub async fn blocking<T, E, F>(work: F) -> Result<T, String>
where
    T: Send + 'static,
    E: Display + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the task failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let waits: Vec<u64> = (0..5).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(waits, vec![50, 100, 200, 300, 300]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn retry_forever_returns_the_first_success_after_the_failures() {
        let calls = AtomicUsize::new(0);
        let got = retry_forever("test op", Backoff::new(Duration::from_millis(1), Duration::from_millis(2)), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(format!("failure {n}"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!((got, calls.load(Ordering::SeqCst)), (2, 3));
    }

    #[tokio::test]
    async fn a_panic_on_the_blocking_pool_is_an_error() {
        let r: Result<(), String> = blocking(|| -> Result<(), String> { panic!("boom") }).await;
        assert!(r.is_err());
        assert_eq!(blocking(|| Ok::<_, String>(7)).await, Ok(7));
    }
}
