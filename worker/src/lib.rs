#![doc = include_str!("../README.md")]

mod cancels;
mod completer;
pub mod config;
pub mod consumer;
mod context;
mod dispatch;
mod ends;
pub mod handler;
pub mod handlers;
mod heartbeat;
mod instance;
mod kinds;
mod lag;
mod membership;
pub mod metrics;
pub mod offsets;
mod outcome;
mod queues;
mod shared;

pub use ackbox_types::trace::TraceContext;
pub use async_trait::async_trait;
pub use handler::{Handler, HandlerError, JobContext, Registry};

/// A worker binary's command line: every setting (`--help` lists each variable with its default) and the
/// subcommands. [`main_with`] parses it, so a binary with its own job kinds gets the same one.
#[derive(clap::Parser)]
#[command(
    version,
    about = "Ackbox worker",
    after_help = ackbox_runtime::process::SETTINGS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: config::WorkerArgs,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Consume and run jobs (the default).
    Run,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the configuration (every variable, and DATABASE_URL's TLS settings) and exit: 0 when it is valid.
    CheckConfig,
}

/// Runs a worker process with `registry` until SIGTERM/SIGINT: parses the command line and the environment
/// (`--help` lists every variable), migrates if asked to, waits for the topic, and consumes. This is what
/// `ackbox-worker` runs; a binary with its own job kinds calls it with its own registry. `migrate` and
/// `check-config` do that and exit.
pub async fn main_with(registry: Registry) -> anyhow::Result<()> {
    use anyhow::Context;
    ackbox_runtime::process::init_logging().context("invalid configuration")?;
    let binary = std::env::args()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()));
    let cli = <Cli as clap::Parser>::parse();
    let config = config::WorkerConfig::try_from(cli.config).context("invalid configuration")?;
    match cli.command {
        Some(Command::CheckConfig) => {
            return ackbox_runtime::process::report_valid(binary.as_deref().unwrap_or("ackbox-worker"), &config.db.url)
        }
        Some(Command::Migrate) => {
            ackbox_db::migrate::run_pending_in_background(&config.db.url).await.context("failed to run migrations")?;
            return Ok(());
        }
        Some(Command::Run) | None => {}
    }
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
