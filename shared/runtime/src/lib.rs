#![doc = include_str!("../README.md")]

pub mod kafka;
pub mod listen;
pub mod ops;
pub mod retry;

/// Process-wide helpers for the binaries.
pub mod process {
    /// Initialises env_logger with `info` as the default level (`RUST_LOG` overrides).
    pub fn init_logging() {
        let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).try_init();
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
