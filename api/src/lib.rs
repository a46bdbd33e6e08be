#![doc = include_str!("../README.md")]

pub mod auth;
pub mod config;
mod deadline;
pub mod document;
pub mod error;
pub mod live;
pub mod metrics;
pub mod routes;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Arc, RwLock};

use ackbox_shared::db::PgPool;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::auth::{KeyCache, TenantLimiter};
use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::live::{Estimates, Waiters};
use crate::metrics::ApiMetrics;

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
    /// Metrics.
    pub metrics: ApiMetrics,
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
            let mut conn = pool.get().map_err(ackbox_shared::db::DbError::from)?;
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

    /// Re-reads `job_kinds` into the cache and returns every known kind, sorted.
    pub async fn refresh_kinds(&self) -> Result<Vec<String>, ApiError> {
        let all = self.with_conn(|c| Ok(ackbox_shared::models::job_kind::all(c)?)).await?;
        let mut kinds = self.kinds.write().unwrap_or_else(|p| p.into_inner());
        kinds.extend(all);
        let mut sorted: Vec<String> = kinds.iter().cloned().collect();
        sorted.sort();
        Ok(sorted)
    }
}

/// Builds the HTTP server on an already bound listener (tests bind port 0) and starts the process's shared
/// listener thread. The server handles SIGTERM itself: it stops accepting and lets in-flight requests finish.
pub fn run(listener: TcpListener, pool: PgPool, config: ApiConfig) -> std::io::Result<Server> {
    let workers = config.http_workers;
    let max_body = config.max_body_bytes;
    let metrics = ApiMetrics::new();
    let keys = Arc::new(KeyCache::new(config.key_cache_ttl));
    let waiters = Arc::new(Waiters::with_gauge(metrics.waiters.clone()));
    let estimates = Arc::new(Estimates::default());
    live::start(config.db.url.clone(), pool.clone(), keys.clone(), waiters.clone(), estimates.clone());
    let state = web::Data::new(AppState {
        pool,
        limiter: TenantLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst),
        config,
        keys,
        waiters,
        estimates,
        kinds: RwLock::new(HashSet::new()),
        metrics,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default().limit(max_body).content_type_required(true).error_handler(error::json_error),
            )
            .app_data(
                web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(format!("bad path: {e}")).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::BadRequest(format!("bad query string: {e}")).into()),
            )
            .wrap(from_fn(deadline::enforce))
            .wrap(from_fn(deadline::limit_size))
            .wrap(from_fn(metrics::record))
            .configure(routes::configure)
    })
    .workers(workers)
    // Bound the time a client may take to send its headers (slow-loris) and keep idle connections short-lived.
    .client_request_timeout(std::time::Duration::from_secs(10))
    .keep_alive(std::time::Duration::from_secs(75))
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}
