#![doc = include_str!("../README.md")]

mod cancels;
mod completer;
pub mod config;
pub mod consumer;
mod context;
mod dispatch;
pub mod handler;
pub mod handlers;
mod heartbeat;
mod kinds;
mod lag;
mod membership;
pub mod metrics;
pub mod offsets;
mod outcome;
mod shared;

pub use ackbox_types::trace::TraceContext;
pub use async_trait::async_trait;
pub use handler::{Handler, HandlerError, JobContext, Registry};

/// Runs a worker process with `registry` until SIGTERM/SIGINT: reads the config from the environment, migrates if
/// asked to, ensures the topic, and consumes. This is what `ackbox-worker` runs; a binary with its own job kinds
/// calls it with its own registry.
pub async fn main_with(registry: Registry) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = config::WorkerConfig::from_env().context("invalid configuration")?;
    // Flushes buffered spans when main_with returns.
    let _telemetry = ackbox_runtime::telemetry::init("ackbox-worker").context("invalid OTEL_* configuration")?;
    // A CA or host name that refuses the server's certificate will not fix itself: stop here, saying so.
    ackbox_runtime::listen::preflight(&config.db.url).await.context("DATABASE_URL's TLS settings")?;
    if config.db.auto_migrate {
        ackbox_db::migrate::run_pending_in_background(&config.db.url)
            .await
            .context("failed to run migrations at start-up (set ACKBOX_AUTO_MIGRATE=false to skip)")?;
    }
    let pool = ackbox_db::db::build_pool(&config.db);
    // Kinds first: the API accepts them while Kafka is still unreachable, and the outbox holds the jobs until then.
    register_kinds(&pool, &registry).await;
    // The relay owns the topic (it creates it with its partitions and replication); the worker waits for it.
    ackbox_runtime::kafka::wait_for_topic(&config.kafka, config.max_consumers).await;
    let metrics = metrics::WorkerMetrics::new();
    ackbox_runtime::ops::spawn(&config.ops_bind, metrics.registry.clone(), pool.clone())
        .with_context(|| format!("failed to bind the ops endpoint {} (ACKBOX_WORKER_OPS_BIND)", config.ops_bind))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        ackbox_runtime::process::shutdown_signal().await;
        log::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    log::info!("ackbox-worker started with kinds: {}", registry.kinds().join(", "));
    consumer::run(config, pool, registry, metrics, stop_rx).await.context("worker failed")
}

/// Upserts this worker's kinds into `job_kinds`, so the API accepts them, retrying until Postgres answers.
pub async fn register_kinds(pool: &ackbox_db::db::PgPool, registry: &Registry) {
    use ackbox_runtime::retry::{blocking, retry_forever, Backoff};
    let backoff = Backoff::new(std::time::Duration::from_millis(200), std::time::Duration::from_secs(5));
    retry_forever("registering job kinds", backoff, || {
        let (p, kinds) = (pool.clone(), registry.kinds());
        blocking(move || -> Result<usize, ackbox_db::db::DbError> {
            let mut conn = p.get()?;
            Ok(ackbox_db::models::job_kind::register(&mut conn, &kinds)?)
        })
    })
    .await;
}
