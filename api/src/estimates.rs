//! Retry-After estimates: the observed medians per kind, refreshed by the background thread (`live.rs`) from
//! `ackbox_db::models::job::recent_medians`, and which kinds some live worker runs (`job_kind::live`), for the status
//! document's `waiting_reason`, with the paused queues. Both are at most one refresh (10 s) old.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use ackbox_db::db::PgPool;

/// Observed medians per kind, for an honest Retry-After.
#[derive(Default)]
pub struct Estimates {
    by_kind: RwLock<HashMap<String, (f64, f64)>>,
    /// `None` until first loaded: nothing is claimed about liveness before anything is known.
    live_kinds: RwLock<Option<HashSet<String>>>,
    /// Queues paused as of the last refresh.
    paused_queues: RwLock<HashSet<String>>,
}

impl Estimates {
    /// Median seconds from acceptance to start, and median run time, of recent jobs of `kind`.
    pub fn get(&self, kind: &str) -> Option<(f64, f64)> {
        self.by_kind.read().unwrap_or_else(|p| p.into_inner()).get(kind).copied()
    }

    /// Replaces the estimates.
    pub fn set(&self, values: HashMap<String, (f64, f64)>) {
        *self.by_kind.write().unwrap_or_else(|p| p.into_inner()) = values;
    }

    /// `Some(false)` when no live worker runs `kind` (as of the last refresh), `None` when not yet known.
    pub fn kind_is_live(&self, kind: &str) -> Option<bool> {
        self.live_kinds.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(|k| k.contains(kind))
    }

    /// Whether `queue` was paused at the last refresh.
    pub fn queue_is_paused(&self, queue: &str) -> bool {
        self.paused_queues.read().unwrap_or_else(|p| p.into_inner()).contains(queue)
    }

    /// Replaces the set of paused queues.
    pub fn set_paused_queues(&self, queues: HashSet<String>) {
        *self.paused_queues.write().unwrap_or_else(|p| p.into_inner()) = queues;
    }

    /// Replaces the set of kinds some live worker runs.
    pub fn set_live_kinds(&self, kinds: HashSet<String>) {
        *self.live_kinds.write().unwrap_or_else(|p| p.into_inner()) = Some(kinds);
    }
}

/// Reads the kinds some live worker runs, and the paused queues.
pub fn load_live_kinds(pool: &PgPool) -> Result<(HashSet<String>, HashSet<String>), ackbox_db::db::DbError> {
    let mut conn = pool.get()?;
    let kinds = ackbox_db::models::job_kind::live(&mut conn)?.into_iter().collect();
    Ok((kinds, ackbox_db::models::queue::paused(&mut conn)?.into_iter().collect()))
}

/// Reads the medians of jobs that finished in the last 10 minutes, by kind: `(to start, run)` in seconds.
pub fn load_estimates(pool: &PgPool) -> Result<HashMap<String, (f64, f64)>, ackbox_db::db::DbError> {
    let mut conn = pool.get()?;
    Ok(ackbox_db::models::job::recent_medians(&mut conn)?)
}
