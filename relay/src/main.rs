//! `ackbox-relay`: moves outbox rows into Kafka. `ackbox-relay migrate` applies pending migrations and exits.

use std::sync::Arc;

use ackbox_relay::config::RelayConfig;
use ackbox_relay::Relay;
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ackbox-relay",
    version,
    about = "Ackbox outbox relay",
    after_help = ackbox_runtime::process::SETTINGS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ackbox_relay::config::RelayArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Relay outbox rows to Kafka (the default).
    Run,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the configuration (every variable, and DATABASE_URL's TLS settings) and exit: 0 when it is valid.
    CheckConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ackbox_runtime::process::init_logging().context("invalid configuration")?;
    let cli = Cli::parse();
    let config = RelayConfig::try_from(cli.config).context("invalid configuration")?;
    if matches!(cli.command, Some(Command::CheckConfig)) {
        return ackbox_runtime::process::report_valid("ackbox-relay", &config.db.url);
    }
    // Flushes buffered spans when main returns.
    let _telemetry = ackbox_runtime::telemetry::init("ackbox-relay").context("invalid OTEL_* configuration")?;
    // A CA or host name that refuses the server's certificate will not fix itself: stop here, saying so.
    ackbox_runtime::listen::preflight(&config.db.url).await.context("DATABASE_URL's TLS settings")?;
    if matches!(cli.command, Some(Command::Migrate)) || config.db.auto_migrate {
        ackbox_db::migrate::run_pending_in_background(&config.db.url)
            .await
            .context("failed to run migrations (set ACKBOX_AUTO_MIGRATE=false to skip at start-up)")?;
        if matches!(cli.command, Some(Command::Migrate)) {
            return Ok(());
        }
    }
    // First, so that it has its producer id by the first round (see `start_producer`).
    let producer = ackbox_relay::start_producer(&config).context("failed to create the Kafka producer")?;
    // A broker's auto-created topic would get its default partition count, not ours.
    // Each with its priority lanes (`.high`, `.low`), which the relay produces high and low priority jobs to.
    ackbox_runtime::kafka::ensure_lanes_retrying(&config.kafka, config.partitions, config.replication).await;
    // Kinds routed to their own topics (ACKBOX_KIND_TOPICS): those topics are the relay's to create as well.
    for topic in config.kind_topics.values().collect::<std::collections::BTreeSet<_>>() {
        let routed = ackbox_runtime::kafka::KafkaConfig { topic: topic.clone(), ..config.kafka.clone() };
        ackbox_runtime::kafka::ensure_lanes_retrying(&routed, config.partitions, config.replication).await;
    }
    let pool = ackbox_db::db::build_pool(&config.db);
    let metrics = ackbox_relay::metrics::RelayMetrics::new();
    ackbox_runtime::ops::spawn(&config.ops_bind, metrics.registry.clone(), pool.clone())
        .with_context(|| format!("failed to bind the ops endpoint {} (ACKBOX_RELAY_OPS_BIND)", config.ops_bind))?;
    let relay = Arc::new(Relay::with_producer(pool, config, metrics, producer));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        ackbox_runtime::process::shutdown_signal().await;
        log::info!("shutdown requested: finishing the current round");
        let _ = stop_tx.send(true);
    });
    log::info!("ackbox-relay started");
    ackbox_relay::run(relay, stop_rx).await;
    Ok(())
}
