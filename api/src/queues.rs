//! Which queues exist and each kind's queue, cached for the submit path: a job names a queue (422 when it does not
//! exist) or gets its kind's (`job_kinds.queue`, registered by the workers), else `default`. The cache is re-read on
//! a miss and at most every [`REFRESH`] otherwise, so a kind's new queue applies within that time.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ackbox_db::models::queue::DEFAULT_QUEUE;
use ackbox_db::models::{job_kind, queue, NewJob};

use crate::error::ApiError;
use crate::state::AppState;

/// Longest a cached kind → queue mapping is used.
pub const REFRESH: Duration = Duration::from_secs(10);

/// The cached queues.
#[derive(Default)]
pub struct QueueCache {
    known: HashSet<String>,
    of_kind: HashMap<String, String>,
    loaded_at: Option<Instant>,
}

impl QueueCache {
    fn fresh(&self) -> bool {
        self.loaded_at.is_some_and(|at| at.elapsed() < REFRESH)
    }
}

/// The 422 for a queue that does not exist; `field` is where the request named it (`queue`, `jobs[3].queue`).
pub fn unknown_queue(field: &str, queue: &str) -> ApiError {
    ApiError::Unprocessable(format!(
        "{field}: unknown queue {queue:?}: a queue exists once a worker serves it (ACKBOX_KIND_QUEUES, \
         ACKBOX_QUEUE_CONCURRENCY) or an operator created it (ackbox queues create)"
    ))
}

impl AppState {
    fn cached_queues(&self) -> std::sync::RwLockReadGuard<'_, QueueCache> {
        self.queues.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the queues and the kinds' queues.
    async fn refresh_queues(&self) -> Result<(), ApiError> {
        let (names, map) = self.with_conn(|c| Ok((queue::names(c)?, job_kind::queue_map(c)?))).await?;
        let mut cache = self.queues.write().unwrap_or_else(|p| p.into_inner());
        *cache = QueueCache {
            known: names.into_iter().collect(),
            of_kind: map.into_iter().collect(),
            loaded_at: Some(Instant::now()),
        };
        Ok(())
    }

    /// Settles `job`'s queue: the one it names, which must exist (else the 422 names `field`), or its kind's.
    pub async fn resolve_queue(&self, field: &str, job: &mut NewJob) -> Result<(), ApiError> {
        if job.queue_requested {
            if self.cached_queues().known.contains(&job.queue) {
                return Ok(());
            }
            self.refresh_queues().await?;
            return match self.cached_queues().known.contains(&job.queue) {
                true => Ok(()),
                false => Err(unknown_queue(field, &job.queue)),
            };
        }
        if !self.cached_queues().fresh() {
            self.refresh_queues().await?;
        }
        job.queue = self.cached_queues().of_kind.get(&job.kind).cloned().unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        Ok(())
    }
}
