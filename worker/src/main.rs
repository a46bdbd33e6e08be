//! `ackbox-worker`: runs the built-in job kinds. `ackbox-worker migrate` applies pending migrations and exits.

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ackbox-worker", version, about = "Ackbox worker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume and run jobs (the default).
    Run,
    /// Apply pending database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ackbox_runtime::process::init_logging().context("invalid configuration")?;
    match Cli::parse().command {
        Some(Command::Migrate) => {
            let db = ackbox_db::config::DbConfig::from_env().context("invalid configuration")?;
            ackbox_db::migrate::run_pending_in_background(&db.url).await.context("failed to run migrations")?;
            Ok(())
        }
        _ => ackbox_worker::main_with(ackbox_worker::handlers::builtin()).await,
    }
}
