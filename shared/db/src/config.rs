//! Configuration shared by every Ackbox binary, read from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | (required) | Postgres URL, e.g. `postgres://postgres@127.0.0.1:5432/ackbox` |
//! | `ACKBOX_DB_POOL_SIZE` | [`DEFAULT_DB_POOL_SIZE`] | connections in the process's r2d2 pool |
//! | `ACKBOX_DB_CONNECT_TIMEOUT_MS` | [`DEFAULT_DB_CONNECT_TIMEOUT_MS`] | how long to wait for a pool connection |
//! | `ACKBOX_AUTO_MIGRATE` | `true` | run pending migrations at start-up |
//! | `KAFKA_BROKERS` | `127.0.0.1:9092` | `bootstrap.servers` (read by `ackbox_runtime::kafka::KafkaConfig`) |
//! | `ACKBOX_TOPIC` | [`DEFAULT_TOPIC`] | topic that carries job dispatch messages |
//! | `ACKBOX_KAFKA_OPTS` | (empty) | (read by `ackbox_runtime::kafka::KafkaConfig`) extra librdkafka settings, `key=value` pairs separated by `,` (e.g. SASL/TLS) |
//!
//! Helpers here never fall back silently on a malformed value: the error names the variable.

use std::str::FromStr;
use std::time::Duration;

/// Default size of a process's database pool.
pub const DEFAULT_DB_POOL_SIZE: u32 = 10;
/// Default wait for a pooled connection before the request fails with 503.
pub const DEFAULT_DB_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default topic for job dispatch messages.
pub const DEFAULT_TOPIC: &str = "ackbox.jobs";

/// A configuration value is missing or cannot be parsed. The message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is required but not set")]
    Missing(String),
    /// A variable is set to something that does not parse.
    #[error("{name} has an invalid value {value:?}: {reason}")]
    Invalid {
        /// Variable name.
        name: String,
        /// The offending value (never a secret: secrets are not parsed through here).
        value: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// Reads a required variable.
pub fn required(name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name.to_string())),
    }
}

/// Reads an optional variable; unset or empty gives `None`.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Reads and parses a variable, or returns `default` when it is unset.
pub fn parse_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name: name.to_string(),
            value: raw,
            reason: e.to_string(),
        }),
    }
}

/// Reads a duration given in milliseconds.
pub fn millis_or(name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
    parse_or(name, default_ms).map(Duration::from_millis)
}

/// Reads a boolean (`true/false/1/0/yes/no`).
pub fn bool_or(name: &str, default: bool) -> Result<bool, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                name: name.to_string(),
                value: raw,
                reason: "expected true or false".into(),
            }),
        },
    }
}

/// Database settings common to all services.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// Postgres connection URL.
    pub url: String,
    /// Pool size.
    pub pool_size: u32,
    /// Wait for a free pooled connection.
    pub connect_timeout: Duration,
    /// Run pending migrations at start-up.
    pub auto_migrate: bool,
}

impl DbConfig {
    /// Reads `DATABASE_URL`, `ACKBOX_DB_POOL_SIZE`, `ACKBOX_DB_CONNECT_TIMEOUT_MS`, `ACKBOX_AUTO_MIGRATE`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let pool_size = parse_or("ACKBOX_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "ACKBOX_DB_POOL_SIZE".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            url: required("DATABASE_URL")?,
            pool_size,
            connect_timeout: millis_or("ACKBOX_DB_CONNECT_TIMEOUT_MS", DEFAULT_DB_CONNECT_TIMEOUT_MS)?,
            auto_migrate: bool_or("ACKBOX_AUTO_MIGRATE", true)?,
        })
    }
}
