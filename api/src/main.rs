//! `ackbox-api`: the HTTP front door. `ackbox-api` (or `ackbox-api serve`) runs the server; `ackbox-api migrate`
//! applies pending migrations and exits; `ackbox-api check-config` checks the configuration; `--help` lists every
//! environment variable it reads, with its default.

use std::net::TcpListener;

use ackbox_api::config::ApiConfig;
use anyhow::Context;
use clap::{Parser, Subcommand};

/// jemalloc with one arena and no decay delay (`.cargo/config.toml` builds that in): a batch's megabytes go back to
/// the system when it is answered. glibc's malloc gave each of the api's threads an arena of its own and kept what
/// batches had freed in each: 80–86 MiB peak RSS in `make bench PART=batch`, against 47 MiB with this.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "ackbox-api",
    version,
    about = "Ackbox HTTP API",
    after_help = ackbox_runtime::process::SETTINGS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ackbox_api::config::ApiArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the configuration (every variable, and DATABASE_URL's TLS settings) and exit: 0 when it is valid.
    CheckConfig,
}

fn main() -> anyhow::Result<()> {
    ackbox_runtime::process::init_logging().context("invalid configuration")?;
    let cli = Cli::parse();
    let config = ApiConfig::try_from(cli.config).context("invalid configuration")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => ackbox_runtime::process::report_valid("ackbox-api", &config.db.url),
        Command::Migrate => {
            let db = config.db;
            let applied = ackbox_db::migrate::run_pending(&db.url).context("failed to run migrations")?;
            log::info!(
                "migrations applied: {}",
                if applied.is_empty() { "none pending".into() } else { applied.join(", ") }
            );
            Ok(())
        }
        Command::Serve => serve(config),
    }
}

#[actix_web::main]
async fn serve(config: ApiConfig) -> anyhow::Result<()> {
    // Flushes buffered spans when the server stops.
    let _telemetry = ackbox_runtime::telemetry::init("ackbox-api").context("invalid OTEL_* configuration")?;
    // A CA or host name that refuses the server's certificate will not fix itself: stop here, saying so.
    ackbox_runtime::listen::preflight(&config.db.url).await.context("DATABASE_URL's TLS settings")?;
    if config.db.auto_migrate {
        ackbox_db::migrate::run_pending_in_background(&config.db.url)
            .await
            .context("failed to run migrations at start-up (set ACKBOX_AUTO_MIGRATE=false to skip)")?;
    }
    let listener = TcpListener::bind(&config.bind).with_context(|| format!("failed to bind {}", config.bind))?;
    let addr = listener.local_addr().context("failed to read the bound address")?;
    let pool = ackbox_db::db::build_pool(&config.db);
    log::info!("ackbox-api listening on http://{addr}");
    // The one line on stdout: scripts and tests read the port from it when ACKBOX_BIND asks for port 0.
    println!("listening on http://{addr}");
    let ops_bind = config.ops_bind.clone();
    let (server, _ops) = ackbox_api::run(listener, pool, config).with_context(|| {
        format!("failed to start the HTTP server or the ops endpoint {ops_bind} (ACKBOX_API_OPS_BIND)")
    })?;
    server.await.context("server error")
}

#[cfg(test)]
mod tests {
    #[test]
    fn jemalloc_runs_with_the_one_arena_built_in() {
        // jemalloc's default is 4 per core: JEMALLOC_SYS_WITH_MALLOC_CONF did not reach its build.
        assert_eq!(tikv_jemalloc_ctl::opt::narenas::read().expect("opt.narenas"), 1);
    }
}
