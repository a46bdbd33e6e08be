//! The delivery loop: claims due callbacks with a lease, POSTs each job's status document, and records the outcome.
//! At-least-once: a process killed mid-send leaves its claim to lapse, and the next look (here or in another api
//! process) sends it again, under the same `webhook-id`, so a receiver can drop the duplicate.

use std::sync::Arc;
use std::time::Duration;

use ackbox_db::callbacks::{self, Due};
use ackbox_db::db::PgPool;
use ackbox_db::models::Job;
use ackbox_runtime::retry::blocking;
use futures::StreamExt;
use tokio::sync::watch;

use crate::callbacks::sign::{new_secret, signature};
use crate::callbacks::target::{check, GuardedResolver};
use crate::config::CallbackConfig;
use crate::document::StatusDocument;
use crate::estimates::Estimates;
use crate::metrics::ApiMetrics;

/// Callbacks claimed per look, and sent at once.
const BATCH: i64 = 32;
/// Longest wait between two attempts of a callback.
const BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// Most bytes of a receiver's answer read (the rest is not read at all): enough for an error message.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most characters of a receiver's answer kept as `last_error`.
const MAX_ERROR_CHARS: usize = 500;

/// What the loop needs.
pub struct Deliverer {
    /// Database pool.
    pub pool: PgPool,
    /// Settings.
    pub config: CallbackConfig,
    /// Base of the document's links (`ACKBOX_PUBLIC_URL`; empty: links relative to the api's root).
    pub base: String,
    /// Overdue bound, for the document.
    pub overdue_after: Duration,
    /// Retry-After estimates, for the document.
    pub estimates: Arc<Estimates>,
    /// Metrics.
    pub metrics: ApiMetrics,
}

/// The wait before attempt `attempt + 1`: 1 s doubling, at most an hour (`BACKOFF_MAX`).
pub fn backoff(attempt: i32) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(12);
    Duration::from_secs(1u64 << exp).min(BACKOFF_MAX)
}

impl Deliverer {
    /// Runs until `stop` changes (or its sender is dropped).
    pub async fn run(self, mut stop: watch::Receiver<()>) {
        let client = match reqwest::Client::builder()
            .dns_resolver(GuardedResolver::shared(self.config.policy))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.config.connect_timeout)
            .timeout(self.config.timeout)
            .user_agent(concat!("Ackbox-Callbacks/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                log::error!("callbacks are not delivered: cannot build the HTTP client: {e}");
                return;
            }
        };
        // A claim outlives the longest delivery, so a live sender is never overtaken.
        let lease = self.config.timeout + Duration::from_secs(10);
        let this = Arc::new(self);
        loop {
            let pool = this.pool.clone();
            let claimed = match blocking(move || {
                let mut conn = pool.get()?;
                Ok::<_, ackbox_db::db::DbError>(callbacks::claim(&mut conn, BATCH, lease)?)
            })
            .await
            {
                Ok(due) => due,
                Err(e) => {
                    log::debug!("looking for due callbacks failed: {e}");
                    Vec::new()
                }
            };
            let full = claimed.len() as i64 == BATCH;
            futures::stream::iter(claimed)
                .for_each_concurrent(None, |due| {
                    let (this, client) = (this.clone(), client.clone());
                    async move { this.deliver(&client, due).await }
                })
                .await;
            if !full {
                tokio::select! {
                    _ = tokio::time::sleep(this.config.poll) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// One attempt of one callback, and its outcome recorded.
    async fn deliver(&self, client: &reqwest::Client, due: Due) {
        let pool = self.pool.clone();
        let job_id = due.job_id;
        let loaded = blocking(move || {
            let mut conn = pool.get()?;
            let Some(job) = Job::find(&mut conn, job_id)? else { return Ok(None) };
            let secret = callbacks::secret(&mut conn, job.tenant_id, &new_secret())?;
            Ok::<_, ackbox_db::db::DbError>(Some((job, secret)))
        })
        .await;
        let (job, secret) = match loaded {
            Ok(Some((job, Some(secret)))) => (job, secret),
            Ok(_) => {
                // The job (or its tenant) was deleted meanwhile: nobody is left to tell.
                let pool = self.pool.clone();
                let _ = blocking(move || {
                    let mut conn = pool.get()?;
                    Ok::<_, ackbox_db::db::DbError>(callbacks::discard(&mut conn, due.id)?)
                })
                .await;
                return;
            }
            Err(e) => {
                log::warn!(job_id:% = due.job_id, callback = due.id; "callback {} of job {}: reading the job failed: {e}", due.id, due.job_id);
                return self.record(due, Err(format!("reading the job failed: {e}"))).await;
            }
        };
        let doc = StatusDocument::new(job, &self.estimates, self.overdue_after, &self.base);
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let result = self.post(client, &due, &secret, body).await;
        if let Err(e) = &result {
            // The URL's query may hold the receiver's token: log its host only.
            let host = reqwest::Url::parse(&due.url).ok().and_then(|u| u.host_str().map(str::to_string));
            log::warn!(
                job_id:% = due.job_id, callback = due.id, attempt = due.attempt;
                "callback {} of job {} to {} failed (attempt {}): {e}",
                due.id, due.job_id, host.as_deref().unwrap_or("?"), due.attempt
            );
        }
        self.record(due, result).await;
    }

    /// Sends it: Ok when the receiver answered 2xx.
    async fn post(&self, client: &reqwest::Client, due: &Due, secret: &str, body: Vec<u8>) -> Result<(), String> {
        // Checked again now: the policy may have changed since the submit, and a literal address skips the resolver.
        let url = check(&due.url, self.config.policy)?;
        let id = format!("msg_{}_{}", due.job_id.simple(), due.id);
        let timestamp = chrono::Utc::now().timestamp();
        let mut answer = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature(secret, &id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        // Read a little of the answer for the error, never all of it.
        let mut text = Vec::new();
        while text.len() < MAX_ANSWER_BYTES {
            match answer.chunk().await {
                Ok(Some(chunk)) => text.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER_BYTES - text.len())]),
                _ => break,
            }
        }
        let text: String = String::from_utf8_lossy(&text).chars().take(MAX_ERROR_CHARS).collect();
        Err(format!(
            "the receiver answered {status}{}",
            if text.is_empty() { String::new() } else { format!(": {text}") }
        ))
    }

    /// Records the attempt's outcome: delivered, tried again after its backoff, or given up.
    async fn record(&self, due: Due, result: Result<(), String>) {
        let outcome = match &result {
            Ok(()) => "delivered",
            Err(_) if (due.attempt as u32) < self.config.max_attempts => "retrying",
            Err(_) => "gave_up",
        };
        let pool = self.pool.clone();
        let (id, attempt, job_id) = (due.id, due.attempt, due.job_id);
        let written = blocking(move || {
            let mut conn = pool.get()?;
            match result {
                Ok(()) => callbacks::delivered(&mut conn, id, attempt).map(|_| ())?,
                Err(e) => {
                    let retry_in = (outcome == "retrying").then(|| backoff(attempt));
                    callbacks::failed(&mut conn, id, attempt, &e, retry_in)?
                }
            }
            Ok::<_, ackbox_db::db::DbError>(())
        })
        .await;
        match written {
            Ok(()) => self.metrics.callbacks.with_label_values(&[outcome]).inc(),
            // The lease runs out and the callback is tried again: nothing is lost, a receiver may see it twice.
            Err(e) => {
                log::warn!(job_id:% = job_id, callback = id; "callback {id} of job {job_id}: recording {outcome} failed: {e}")
            }
        }
    }
}

/// A send error with its causes (reqwest's own message says only "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out".to_string() } else { e.to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn the_backoff_doubles_from_one_second_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(6), Duration::from_secs(32));
        assert_eq!(backoff(13), Duration::from_secs(3600));
        assert_eq!(backoff(50), Duration::from_secs(3600));
    }
}
