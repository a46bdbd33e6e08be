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
//! A malformed value is never replaced by a default: the error names the variable.
//!
//! Each binary declares its settings as clap arguments with `env` ([`DbArgs`] here, flattened into each binary's
//! command line), so `--help` lists every variable it reads with its default, and a malformed value is refused
//! before anything starts. Variables that hold secrets (`DATABASE_URL`) never have their values shown.

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
    /// The command line or the environment did not parse (clap's message, which names the variable).
    #[error("{0}")]
    Parse(String),
}

impl ConfigError {
    /// clap's error as one of ours, without its usage footer.
    pub fn from_clap(e: clap::Error) -> Self {
        let text = e.to_string();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid configuration");
        Self::Parse(first.trim_start_matches("error: ").to_string())
    }
}

/// The accepted spellings of a boolean variable: true/false, 1/0, yes/no, on/off.
pub fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// The database settings every binary reads, as clap arguments (`--help` lists them with their defaults).
#[derive(Clone, Debug, clap::Parser)]
pub struct DbArgs {
    /// Postgres URL, e.g. postgres://ackbox_api@db:5432/ackbox?sslmode=verify-full&sslrootcert=/etc/ackbox/ca.pem.
    /// libpq's sslmode and sslrootcert apply to every connection, the LISTEN one included.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "DATABASE_URL")]
    pub database_url: String,
    /// Connections in the process's pool (at least 1).
    #[arg(long, env = "ACKBOX_DB_POOL_SIZE", default_value_t = DEFAULT_DB_POOL_SIZE, value_name = "ACKBOX_DB_POOL_SIZE")]
    pub db_pool_size: u32,
    /// How long to wait for a pooled connection, in milliseconds (then 503 / retry).
    #[arg(long, env = "ACKBOX_DB_CONNECT_TIMEOUT_MS", default_value_t = DEFAULT_DB_CONNECT_TIMEOUT_MS, value_name = "ACKBOX_DB_CONNECT_TIMEOUT_MS")]
    pub db_connect_timeout_ms: u64,
    /// Run pending migrations at start-up (false where a migration Job does it).
    #[arg(long, env = "ACKBOX_AUTO_MIGRATE", default_value_t = true, value_parser = boolish(), action = clap::ArgAction::Set, value_name = "ACKBOX_AUTO_MIGRATE")]
    pub auto_migrate: bool,
}

impl TryFrom<DbArgs> for DbConfig {
    type Error = ConfigError;

    fn try_from(args: DbArgs) -> Result<Self, ConfigError> {
        if args.db_pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "ACKBOX_DB_POOL_SIZE".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        if args.database_url.trim().is_empty() {
            return Err(ConfigError::Missing("DATABASE_URL".into()));
        }
        Ok(Self {
            url: args.database_url,
            pool_size: args.db_pool_size,
            connect_timeout: Duration::from_millis(args.db_connect_timeout_ms),
            auto_migrate: args.auto_migrate,
        })
    }
}

/// Reads an optional variable; unset or empty gives `None`.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Parses a `key=value,key=value` setting (spaces allowed around items; empty is none), checking each key with
/// `key_ok` (named `key_what` in the error) and reading each value with `value`; a key given twice is refused. The
/// error names the variable `name`.
pub fn parse_pairs<V>(
    name: &str,
    raw: &str,
    key_what: &str,
    key_ok: impl Fn(&str) -> bool,
    value: impl Fn(&str) -> Result<V, String>,
) -> Result<std::collections::BTreeMap<String, V>, ConfigError> {
    let invalid =
        |reason: String| ConfigError::Invalid { name: name.into(), value: raw.chars().take(200).collect(), reason };
    let mut out = std::collections::BTreeMap::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| invalid(format!("{item:?} is not {key_what}=...")))?;
        let (k, v) = (k.trim(), v.trim());
        if !key_ok(k) {
            return Err(invalid(format!("{k:?} is not a valid {key_what}")));
        }
        let v = value(v).map_err(invalid)?;
        if out.insert(k.to_string(), v).is_some() {
            return Err(invalid(format!("{key_what} {k:?} is given twice")));
        }
    }
    Ok(out)
}

/// An optional setting as clap read it: set-but-empty (`VAR=` in an env file or ConfigMap) is the same as unset.
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A setting with a default as clap read it: set-but-empty gives the default, as if unset.
pub fn or_default(value: String, default: &str) -> String {
    if value.trim().is_empty() {
        default.to_string()
    } else {
        value
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
    /// Reads `DATABASE_URL`, `ACKBOX_DB_POOL_SIZE`, `ACKBOX_DB_CONNECT_TIMEOUT_MS`, `ACKBOX_AUTO_MIGRATE` ([`DbArgs`]
    /// from the environment alone).
    pub fn from_env() -> Result<Self, ConfigError> {
        if optional("DATABASE_URL").is_none() {
            return Err(ConfigError::Missing("DATABASE_URL".into()));
        }
        <DbArgs as clap::Parser>::try_parse_from(["ackbox"]).map_err(ConfigError::from_clap)?.try_into()
    }
}
