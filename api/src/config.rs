//! API configuration, from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ACKBOX_BIND` | [`DEFAULT_BIND`] | address to listen on (`127.0.0.1:0` picks a free port and prints it) |
//! | `ACKBOX_HTTP_WORKERS` | number of cores | actix worker threads |
//! | `ACKBOX_MAX_BODY_BYTES` | [`DEFAULT_MAX_BODY_BYTES`] | largest accepted request body; larger gets 413 |
//! | `ACKBOX_RETRY_AFTER_SECS` | [`DEFAULT_RETRY_AFTER_SECS`] | `Retry-After` sent with 202 and non-terminal status |
//! | `ACKBOX_TOPIC` | `ackbox.jobs` | topic written into each job's outbox row |
//!
//! Plus the database variables of [`ackbox_shared::config::DbConfig`].

use ackbox_shared::config::{self, ConfigError, DbConfig, DEFAULT_TOPIC};

/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default body limit: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default polling hint in seconds.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 1;

/// Everything the API process needs.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Listen address.
    pub bind: String,
    /// Actix worker threads.
    pub http_workers: usize,
    /// Body limit in bytes.
    pub max_body_bytes: usize,
    /// Polling hint.
    pub retry_after_secs: u32,
    /// Dispatch topic for new jobs.
    pub topic: String,
    /// Database settings.
    pub db: DbConfig,
}

impl ApiConfig {
    /// Reads the configuration; the error names the offending variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Self {
            bind: config::optional("ACKBOX_BIND").unwrap_or_else(|| DEFAULT_BIND.to_string()),
            http_workers: config::parse_or("ACKBOX_HTTP_WORKERS", cores)?.max(1),
            max_body_bytes: config::parse_or("ACKBOX_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            retry_after_secs: config::parse_or("ACKBOX_RETRY_AFTER_SECS", DEFAULT_RETRY_AFTER_SECS)?,
            topic: config::optional("ACKBOX_TOPIC").unwrap_or_else(|| DEFAULT_TOPIC.to_string()),
            db: DbConfig::from_env()?,
        })
    }
}
