//! Long-poll waiters: a request waiting for a job's change holds a `watch` receiver (never a pool connection),
//! which the shared listener (`live.rs`) bumps when the job's status changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use uuid::Uuid;

/// Long-poll waiters by job id. A waiter subscribes before it reads the job, so a change that lands between its read
/// and its wait is never missed.
#[derive(Default)]
pub struct Waiters {
    by_job: Mutex<HashMap<Uuid, (watch::Sender<u64>, usize)>>,
    gauge: Option<prometheus::IntGauge>,
    total: std::sync::atomic::AtomicUsize,
}

/// A registered waiter; unregisters on drop.
pub struct Waiter {
    waiters: Arc<Waiters>,
    id: Uuid,
    /// Changes whenever the job's status changes (or the listener reconnects).
    pub changed: watch::Receiver<u64>,
}

impl Waiters {
    /// A registry reporting its size to `gauge`.
    pub fn with_gauge(gauge: prometheus::IntGauge) -> Self {
        Self { by_job: Mutex::new(HashMap::new()), gauge: Some(gauge), total: Default::default() }
    }

    /// Registers a waiter for `id` unless `max` are waiting already (`None` then: answer without waiting).
    pub fn try_register(self: &Arc<Self>, id: Uuid, max: usize) -> Option<Waiter> {
        use std::sync::atomic::Ordering;
        if self.total.fetch_add(1, Ordering::SeqCst) >= max {
            self.total.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let mut map = self.by_job.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(id).or_insert_with(|| (watch::channel(0).0, 0));
        entry.1 += 1;
        let changed = entry.0.subscribe();
        if let Some(g) = &self.gauge {
            g.inc();
        }
        Some(Waiter { waiters: self.clone(), id, changed })
    }

    /// Wakes the waiters of `id`.
    pub fn wake(&self, id: Uuid) {
        if let Some((tx, _)) = self.by_job.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// Wakes everyone (the listener reconnected: notifications may have been missed).
    pub fn wake_all(&self) {
        for (tx, _) in self.by_job.lock().unwrap_or_else(|p| p.into_inner()).values() {
            tx.send_modify(|v| *v += 1);
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut map = self.waiters.by_job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&self.id) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.id);
            }
        }
        if let Some(g) = &self.waiters.gauge {
            g.dec();
        }
        self.waiters.total.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
