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
    /// Initialises logging in the format `ACKBOX_LOG_FORMAT` names (text by default, or json), with `info` as the
    /// default level (`RUST_LOG` overrides). See [`crate::logging`].
    pub fn init_logging() -> Result<(), crate::logging::LogFormatError> {
        crate::logging::init(crate::logging::LogFormat::from_env()?);
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
