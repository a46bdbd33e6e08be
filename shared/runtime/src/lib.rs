#![doc = include_str!("../README.md")]

pub mod kafka;
pub mod listen;
pub mod logging;
pub mod ops;
pub mod pg_tls;
pub mod retry;
pub mod telemetry;

/// Process-wide helpers for the binaries.
pub mod process {
    /// The closing line of every service binary's `--help`.
    pub const SETTINGS_HELP: &str =
        "Every setting is an environment variable (or the flag of the same name); each is listed above with its default.";

    /// Initialises logging in the format `ACKBOX_LOG_FORMAT` names (text by default, or json), with `info` as the
    /// default level (`RUST_LOG` overrides). See [`crate::logging`].
    pub fn init_logging() -> Result<(), crate::logging::LogFormatError> {
        crate::logging::init(crate::logging::LogFormat::from_env()?);
        Ok(())
    }

    /// The end of a binary's `check-config`: the settings parsed and passed their checks; this adds the static checks
    /// of `DATABASE_URL`'s TLS settings (sslmode, a readable CA file), then says so on stdout. No connection is made.
    pub fn report_valid(binary: &str, database_url: &str) -> anyhow::Result<()> {
        use anyhow::Context;
        crate::pg_tls::PgTls::from_url(database_url).context("invalid configuration")?;
        println!("{binary}: configuration is valid");
        Ok(())
    }

    /// Resolves on SIGTERM or SIGINT: the cue for a graceful stop.
    pub async fn shutdown_signal() {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot install the SIGTERM handler: {e}");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
}
