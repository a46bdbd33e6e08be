//! The state every request handler shares.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use ackbox_db::db::PgPool;
use actix_web::web;

use crate::auth::{KeyCache, TenantLimiter};
use crate::committer::Committer;
use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::estimates::Estimates;
use crate::live::Live;
use crate::metrics::ApiMetrics;
use crate::waiters::Waiters;

/// Shared state of every request handler.
pub struct AppState {
    /// Database pool; used only from `web::block`, never on the executor threads.
    pub pool: PgPool,
    /// Process configuration.
    pub config: ApiConfig,
    /// Authenticated keys, invalidated by NOTIFY.
    pub keys: Arc<KeyCache>,
    /// Per-tenant rate limit.
    pub limiter: TenantLimiter,
    /// Long-poll waiters, woken by the shared listener.
    pub waiters: Arc<Waiters>,
    /// Retry-After estimates per kind.
    pub estimates: Arc<Estimates>,
    /// Kinds some worker registered (grows on demand; kinds are never unregistered while a process runs).
    pub kinds: RwLock<HashSet<String>>,
    /// Queues and each kind's queue, for the submit path.
    pub queues: RwLock<crate::queues::QueueCache>,
    /// Metrics.
    pub metrics: ApiMetrics,
    /// The listener thread; it stops when this state is dropped with the server.
    pub live: Live,
    /// Group commit of submissions.
    pub committer: Committer,
    /// The completion callback deliverer; it stops when this state is dropped with the server.
    pub callbacks: crate::callbacks::Delivery,
    /// Requests being worked on (load shedding).
    pub in_flight: crate::shed::InFlight,
    /// Batch requests worked on and waiting (`ACKBOX_MAX_BATCHES`, `ACKBOX_BATCH_QUEUE`).
    pub batches: crate::shed::BatchSlots,
}

impl AppState {
    /// Runs `f` with a pooled connection on the blocking pool (never on an executor thread). No connection within
    /// the pool timeout is a 503.
    pub async fn with_conn<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut diesel::PgConnection) -> Result<T, ApiError> + Send + 'static,
    {
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool.get().map_err(ackbox_db::db::DbError::from)?;
            f(&mut conn)
        })
        .await?
    }

    /// Whether some worker registered `kind`. A miss re-reads `job_kinds` (a worker may have just started), so a
    /// new kind is accepted as soon as its worker is up, without a restart.
    pub async fn kind_known(&self, kind: &str) -> Result<bool, ApiError> {
        if self.kinds.read().unwrap_or_else(|p| p.into_inner()).contains(kind) {
            return Ok(true);
        }
        Ok(self.refresh_kinds().await?.iter().any(|k| k == kind))
    }

    /// Refuses a callback URL this server may not reach (a 422 naming `field`; see `callbacks::target`).
    pub fn check_callback(&self, field: &str, job: &ackbox_db::models::NewJob) -> Result<(), ApiError> {
        match &job.callback_url {
            Some(url) => crate::callbacks::target::check(url, self.config.callbacks.policy)
                .map(|_| ())
                .map_err(|e| ApiError::Unprocessable(format!("{field}: {e}"))),
            None => Ok(()),
        }
    }

    /// Re-reads `job_kinds` into the cache and returns every known kind, sorted.
    pub async fn refresh_kinds(&self) -> Result<Vec<String>, ApiError> {
        let all = self.with_conn(|c| Ok(ackbox_db::models::job_kind::all(c)?)).await?;
        let mut kinds = self.kinds.write().unwrap_or_else(|p| p.into_inner());
        kinds.extend(all);
        let mut sorted: Vec<String> = kinds.iter().cloned().collect();
        sorted.sort();
        Ok(sorted)
    }
}
