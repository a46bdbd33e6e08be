#![doc = include_str!("../README.md")]

pub mod auth;
pub mod callbacks;
pub mod committer;
pub mod config;
mod deadline;
pub mod document;
pub mod error;
pub mod estimates;
pub mod live;
pub mod metrics;
pub mod observe;
pub mod operations;
pub mod queues;
pub mod routes;
pub mod shed;
pub mod state;
pub mod waiters;

pub use state::AppState;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, RwLock};

use ackbox_db::db::PgPool;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::auth::{KeyCache, TenantLimiter};
use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::estimates::Estimates;
use crate::metrics::ApiMetrics;
use crate::waiters::Waiters;

/// Builds the HTTP server on an already bound listener (tests bind port 0), starts the process's shared listener
/// thread, and serves the ops endpoint (`/metrics`, `/healthz`, `/readyz`) on `config.ops_bind`, whose bound address
/// it returns. The server handles SIGTERM itself: it stops accepting and lets in-flight requests finish.
pub fn run(listener: TcpListener, pool: PgPool, config: ApiConfig) -> std::io::Result<(Server, SocketAddr)> {
    let workers = config.http_workers;
    // actix bounds connections per worker thread: share the process's bound among them.
    let connections_per_worker = config.max_connections.div_ceil(workers.max(1)).max(1);
    let max_body = config.max_body_bytes;
    let max_batch_body = config.max_batch_body_bytes;
    let metrics = ApiMetrics::new();
    let ops = ackbox_runtime::ops::spawn(&config.ops_bind, metrics.registry.clone(), pool.clone())?;
    let keys = Arc::new(KeyCache::new(config.key_cache_ttl));
    let waiters = Arc::new(Waiters::with_gauge(metrics.waiters.clone()));
    let estimates = Arc::new(Estimates::default());
    let live = live::start(
        config.db.url.clone(),
        pool.clone(),
        keys.clone(),
        waiters.clone(),
        estimates.clone(),
        metrics.listener_connected.clone(),
    );
    let committer = committer::Committer::start(
        pool.clone(),
        committer::CommitterConfig {
            committers: config.submit_committers,
            batch: config.submit_batch,
            queue: config.submit_queue,
            topic: config.topic.clone(),
        },
        metrics.clone(),
    );
    let callbacks = callbacks::start(callbacks::deliver::Deliverer {
        pool: pool.clone(),
        config: config.callbacks.clone(),
        // Without a public URL the links in a callback are relative to the api's root (a callback has no request
        // to take a host from).
        base: config.public_url.clone().unwrap_or_default(),
        overdue_after: config.overdue_after,
        estimates: estimates.clone(),
        metrics: metrics.clone(),
    });
    let state = web::Data::new(AppState {
        callbacks,
        committer,
        in_flight: Default::default(),
        batches: shed::BatchSlots::new(config.max_batches),
        pool,
        limiter: TenantLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst),
        config,
        keys,
        waiters,
        estimates,
        kinds: RwLock::new(HashSet::new()),
        queues: RwLock::default(),
        metrics,
        live,
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
            .wrap(from_fn(shed::limit_in_flight))
            // Outermost: metrics, request id, span and access log cover every answer, the other middleware's too.
            .wrap(from_fn(observe::observe))
            .configure(|cfg| routes::configure(cfg, max_batch_body))
    })
    .workers(workers)
    .max_connections(connections_per_worker)
    // Bound the time a client may take to send its headers (slow-loris) and keep idle connections short-lived.
    .client_request_timeout(std::time::Duration::from_secs(10))
    .keep_alive(std::time::Duration::from_secs(75))
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok((server, ops))
}
