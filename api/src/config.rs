//! API configuration, from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ACKBOX_BIND` | [`DEFAULT_BIND`] | address to listen on (`127.0.0.1:0` picks a free port and prints it) |
//! | `ACKBOX_API_OPS_BIND` | [`DEFAULT_OPS_BIND`] | address of the ops endpoint: `/metrics`, `/healthz`, `/readyz`, on its own port as the relay's and worker's, so the public port does not expose metrics |
//! | `ACKBOX_HTTP_WORKERS` | number of cores | actix worker threads |
//! | `ACKBOX_MAX_BODY_BYTES` | [`DEFAULT_MAX_BODY_BYTES`] | largest accepted request body; larger gets 413 |
//! | `ACKBOX_MAX_BATCH_BODY_BYTES` | [`DEFAULT_MAX_BATCH_BODY_BYTES`] | largest body of `POST /v1/jobs/batch`; larger gets 413 |
//! | `ACKBOX_TOPIC` | `ackbox.jobs` | topic written into each job's outbox row |
//! | `ACKBOX_IDEMPOTENCY_TTL_SECS` | [`DEFAULT_IDEMPOTENCY_TTL_SECS`] | how long an Idempotency-Key is remembered |
//! | `ACKBOX_OVERDUE_AFTER` | [`DEFAULT_OVERDUE_AFTER_SECS`] | seconds in `queued` after which a job is reported `overdue` |
//! | `ACKBOX_RATE_LIMIT_PER_SEC` | [`DEFAULT_RATE_LIMIT_PER_SEC`] | requests per second per tenant (at least 1) |
//! | `ACKBOX_RATE_LIMIT_BURST` | [`DEFAULT_RATE_LIMIT_BURST`] | burst per tenant (at least 1) |
//! | `ACKBOX_MAX_WAIT_SECS` | [`DEFAULT_MAX_WAIT_SECS`] | longest `Prefer: wait` honoured |
//! | `ACKBOX_MAX_WAITERS` | [`DEFAULT_MAX_WAITERS`] | long-polls waiting at once; beyond it a long-poll is answered at once |
//! | `ACKBOX_MAX_IN_FLIGHT` | [`DEFAULT_MAX_IN_FLIGHT`] | requests being worked on at once (long-polls waiting and the ops paths not counted); beyond it 503 at once |
//! | `ACKBOX_MAX_CONNECTIONS` | [`DEFAULT_MAX_CONNECTIONS`] | open client connections; beyond it new ones wait in the listen backlog, unaccepted |
//! | `ACKBOX_REQUEST_TIMEOUT_SECS` | [`DEFAULT_REQUEST_TIMEOUT_SECS`] | deadline of a whole request, body included (408); at least `ACKBOX_MAX_WAIT_SECS` + 5 (less is refused at start-up) |
//! | `ACKBOX_KEY_CACHE_TTL_SECS` | [`DEFAULT_KEY_CACHE_TTL_SECS`] | backstop lifetime of a cached key (revocation is immediate regardless) |
//! | `ACKBOX_SUBMIT_COMMITTERS` | [`DEFAULT_SUBMIT_COMMITTERS`] | group-commit transactions in flight at once (each holds a pool connection) |
//! | `ACKBOX_SUBMIT_BATCH` | [`DEFAULT_SUBMIT_BATCH`] | most submissions in one group-commit transaction |
//! | `ACKBOX_SUBMIT_QUEUE` | [`DEFAULT_SUBMIT_QUEUE`] | most submissions waiting for a transaction; beyond it a submit gets 503 at once |
//! | `ACKBOX_MAX_BATCHES` | [`DEFAULT_MAX_BATCHES`] | `POST /v1/jobs/batch` requests worked on at once (each holds up to 1,000 jobs in memory, several MiB); the others wait for one of these slots before their body is read |
//! | `ACKBOX_BATCH_QUEUE` | [`DEFAULT_BATCH_QUEUE`] | most batch requests waiting for a slot; beyond it a batch gets 503 at once |
//! | `ACKBOX_PUBLIC_URL` | unset: each request's own scheme and `Host` | external base URL of every link (`Location`, `Operation-Location`, `links`, `resourceLocation`), e.g. `https://jobs.example.com` or `https://example.com/ackbox` behind a proxy |
//! | `ACKBOX_CALLBACK_ALLOW_LOOPBACK` | `false` | let `callback_url` reach loopback addresses (local development and tests; `make up` sets it) |
//! | `ACKBOX_CALLBACK_ALLOW_PRIVATE` | `false` | let `callback_url` reach private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7); link-local (169.254/16, fe80::/10) is refused regardless |
//! | `ACKBOX_CALLBACK_TIMEOUT_MS` | [`DEFAULT_CALLBACK_TIMEOUT_MS`] | deadline of one callback delivery, connect to last byte |
//! | `ACKBOX_CALLBACK_CONNECT_TIMEOUT_MS` | [`DEFAULT_CALLBACK_CONNECT_TIMEOUT_MS`] | deadline of its connect |
//! | `ACKBOX_CALLBACK_MAX_ATTEMPTS` | [`DEFAULT_CALLBACK_MAX_ATTEMPTS`] | delivery attempts before a callback is given up (backoff 1 s doubling to 1 h: 20 attempts span about 9 h) |
//! | `ACKBOX_CALLBACK_POLL_MS` | [`DEFAULT_CALLBACK_POLL_MS`] | how often the api looks for callbacks due |
//! | `ACKBOX_LOG_FORMAT` | `text` | `json`: one JSON object per log line (see `ackbox_runtime::logging`) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | unset: no export | export spans over OTLP/HTTP (see `ackbox_runtime::telemetry`) |
//!
//! Plus the database variables of [`ackbox_db::config::DbConfig`].

use ackbox_db::config::{boolish, non_empty, or_default, ConfigError, DbArgs, DbConfig, DEFAULT_TOPIC};
use ackbox_runtime::logging::ObservabilityArgs;

/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default ops address.
pub const DEFAULT_OPS_BIND: &str = "127.0.0.1:9100";
/// Default body limit: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Default body limit of `POST /v1/jobs/batch`: 4 MiB (1000 jobs of about 4 KiB).
pub const DEFAULT_MAX_BATCH_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Default Idempotency-Key lifetime: 24 h.
pub const DEFAULT_IDEMPOTENCY_TTL_SECS: u64 = 86_400;
/// Default overdue bound: 5 min.
pub const DEFAULT_OVERDUE_AFTER_SECS: u64 = 300;
/// Default per-tenant rate.
pub const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 2_000;
/// Default per-tenant burst.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 4_000;
/// Default longest long-poll.
pub const DEFAULT_MAX_WAIT_SECS: u64 = 60;
/// Default key cache lifetime.
pub const DEFAULT_KEY_CACHE_TTL_SECS: u64 = 60;
/// Default deadline of a whole request: the longest long-poll plus time to answer it.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 75;

/// Default bound on waiting long-polls.
pub const DEFAULT_MAX_WAITERS: usize = 10_000;
/// Default bound on requests being worked on.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default bound on open connections (well below the usual 65,536 descriptors a process may hold, waiters included).
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// Default group-commit transactions in flight.
pub const DEFAULT_SUBMIT_COMMITTERS: usize = 4;
/// Default largest group commit.
pub const DEFAULT_SUBMIT_BATCH: usize = 256;
/// Default bound on submissions waiting for a transaction.
pub const DEFAULT_SUBMIT_QUEUE: usize = 2048;
/// Default bound on batch requests worked on at once: the batch rate stops rising at about 4 concurrent batches
/// (Postgres is then the limit), and each one holds several MiB while it is parsed, written and answered.
pub const DEFAULT_MAX_BATCHES: usize = 4;
/// Default bound on batch requests waiting for a slot (a waiting batch holds its connection, not its body).
pub const DEFAULT_BATCH_QUEUE: usize = 64;

/// Default deadline of one callback delivery: 10 s.
pub const DEFAULT_CALLBACK_TIMEOUT_MS: u64 = 10_000;
/// Default deadline of a callback's connect: 3 s.
pub const DEFAULT_CALLBACK_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Default delivery attempts of a callback.
pub const DEFAULT_CALLBACK_MAX_ATTEMPTS: u32 = 20;
/// Default interval between looks for due callbacks.
pub const DEFAULT_CALLBACK_POLL_MS: u64 = 250;

/// How completion callbacks are delivered (`crate::callbacks`).
#[derive(Clone, Debug)]
pub struct CallbackConfig {
    /// Which internal addresses a callback may reach.
    pub policy: crate::callbacks::target::Policy,
    /// Deadline of one delivery.
    pub timeout: std::time::Duration,
    /// Deadline of its connect.
    pub connect_timeout: std::time::Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Interval between looks for due callbacks.
    pub poll: std::time::Duration,
}

impl Default for CallbackConfig {
    /// The documented defaults: no internal address reachable.
    fn default() -> Self {
        Self {
            policy: Default::default(),
            timeout: std::time::Duration::from_millis(DEFAULT_CALLBACK_TIMEOUT_MS),
            connect_timeout: std::time::Duration::from_millis(DEFAULT_CALLBACK_CONNECT_TIMEOUT_MS),
            max_attempts: DEFAULT_CALLBACK_MAX_ATTEMPTS,
            poll: std::time::Duration::from_millis(DEFAULT_CALLBACK_POLL_MS),
        }
    }
}

/// Everything the API process needs.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Listen address.
    pub bind: String,
    /// Ops endpoint address.
    pub ops_bind: String,
    /// Actix worker threads.
    pub http_workers: usize,
    /// Body limit in bytes.
    pub max_body_bytes: usize,
    /// Body limit of `POST /v1/jobs/batch`.
    pub max_batch_body_bytes: usize,
    /// Dispatch topic for new jobs.
    pub topic: String,
    /// Idempotency-Key lifetime.
    pub idempotency_ttl: std::time::Duration,
    /// Overdue bound.
    pub overdue_after: std::time::Duration,
    /// Per-tenant rate.
    pub rate_limit_per_sec: u32,
    /// Per-tenant burst.
    pub rate_limit_burst: u32,
    /// Longest long-poll.
    pub max_wait: std::time::Duration,
    /// Deadline of a whole request, body included (408 after it); always longer than `max_wait`.
    pub request_timeout: std::time::Duration,
    /// Key cache lifetime.
    pub key_cache_ttl: std::time::Duration,
    /// Long-polls waiting at once.
    pub max_waiters: usize,
    /// Requests being worked on at once.
    pub max_in_flight: usize,
    /// Open client connections.
    pub max_connections: usize,
    /// Group-commit transactions in flight at once.
    pub submit_committers: usize,
    /// Most submissions in one transaction.
    pub submit_batch: usize,
    /// Most submissions waiting for a transaction.
    pub submit_queue: usize,
    /// Batch requests worked on at once.
    pub max_batches: usize,
    /// Most batch requests waiting for a slot.
    pub batch_queue: usize,
    /// External base URL of links, without a trailing `/` (`None`: each request's scheme and host).
    pub public_url: Option<String>,
    /// Completion callbacks.
    pub callbacks: CallbackConfig,
    /// Database settings.
    pub db: DbConfig,
}

/// Every setting of the api, as clap arguments: `ackbox-api --help` lists each variable with its default. Each is
/// read from its environment variable (or the flag of the same name).
#[derive(Clone, Debug, clap::Parser)]
pub struct ApiArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub observability: ObservabilityArgs,
    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(long, env = "ACKBOX_BIND", default_value = DEFAULT_BIND, value_name = "ACKBOX_BIND")]
    pub bind: String,
    /// Address of the ops endpoint: /metrics, /healthz, /readyz (metrics are not on the public port).
    #[arg(long, env = "ACKBOX_API_OPS_BIND", default_value = DEFAULT_OPS_BIND, value_name = "ACKBOX_API_OPS_BIND")]
    pub api_ops_bind: String,
    /// actix worker threads (default: the number of cores; at least 1).
    #[arg(long, env = "ACKBOX_HTTP_WORKERS", value_name = "ACKBOX_HTTP_WORKERS")]
    pub http_workers: Option<usize>,
    /// Largest accepted request body in bytes; larger gets 413.
    #[arg(long, env = "ACKBOX_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES, value_name = "ACKBOX_MAX_BODY_BYTES")]
    pub max_body_bytes: usize,
    /// Largest body of POST /v1/jobs/batch in bytes; larger gets 413.
    #[arg(long, env = "ACKBOX_MAX_BATCH_BODY_BYTES", default_value_t = DEFAULT_MAX_BATCH_BODY_BYTES, value_name = "ACKBOX_MAX_BATCH_BODY_BYTES")]
    pub max_batch_body_bytes: usize,
    /// Topic written into each job's outbox row.
    #[arg(long, env = "ACKBOX_TOPIC", default_value = DEFAULT_TOPIC, value_name = "ACKBOX_TOPIC")]
    pub topic: String,
    /// How long an Idempotency-Key is remembered, in seconds.
    #[arg(long, env = "ACKBOX_IDEMPOTENCY_TTL_SECS", default_value_t = DEFAULT_IDEMPOTENCY_TTL_SECS, value_name = "ACKBOX_IDEMPOTENCY_TTL_SECS")]
    pub idempotency_ttl_secs: u64,
    /// Seconds in `queued` after which a job is reported overdue.
    #[arg(long, env = "ACKBOX_OVERDUE_AFTER", default_value_t = DEFAULT_OVERDUE_AFTER_SECS, value_name = "ACKBOX_OVERDUE_AFTER")]
    pub overdue_after: u64,
    /// Requests per second per tenant (at least 1).
    #[arg(long, env = "ACKBOX_RATE_LIMIT_PER_SEC", default_value_t = DEFAULT_RATE_LIMIT_PER_SEC, value_name = "ACKBOX_RATE_LIMIT_PER_SEC")]
    pub rate_limit_per_sec: u32,
    /// Burst per tenant (at least 1).
    #[arg(long, env = "ACKBOX_RATE_LIMIT_BURST", default_value_t = DEFAULT_RATE_LIMIT_BURST, value_name = "ACKBOX_RATE_LIMIT_BURST")]
    pub rate_limit_burst: u32,
    /// Longest `Prefer: wait` honoured, in seconds.
    #[arg(long, env = "ACKBOX_MAX_WAIT_SECS", default_value_t = DEFAULT_MAX_WAIT_SECS, value_name = "ACKBOX_MAX_WAIT_SECS")]
    pub max_wait_secs: u64,
    /// Deadline of a whole request (408), in seconds: at least ACKBOX_MAX_WAIT_SECS + 5.
    #[arg(long, env = "ACKBOX_REQUEST_TIMEOUT_SECS", default_value_t = DEFAULT_REQUEST_TIMEOUT_SECS, value_name = "ACKBOX_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: u64,
    /// Backstop lifetime of a cached key, in seconds (revocation is immediate regardless).
    #[arg(long, env = "ACKBOX_KEY_CACHE_TTL_SECS", default_value_t = DEFAULT_KEY_CACHE_TTL_SECS, value_name = "ACKBOX_KEY_CACHE_TTL_SECS")]
    pub key_cache_ttl_secs: u64,
    /// Long-polls waiting at once; beyond it a long-poll is answered at once (at least 1).
    #[arg(long, env = "ACKBOX_MAX_WAITERS", default_value_t = DEFAULT_MAX_WAITERS, value_name = "ACKBOX_MAX_WAITERS")]
    pub max_waiters: usize,
    /// Requests worked on at once; beyond it 503 at once (at least 1).
    #[arg(long, env = "ACKBOX_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT, value_name = "ACKBOX_MAX_IN_FLIGHT")]
    pub max_in_flight: usize,
    /// Open client connections; beyond it new ones wait unaccepted (at least 1).
    #[arg(long, env = "ACKBOX_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "ACKBOX_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Group-commit transactions in flight at once (at least 1).
    #[arg(long, env = "ACKBOX_SUBMIT_COMMITTERS", default_value_t = DEFAULT_SUBMIT_COMMITTERS, value_name = "ACKBOX_SUBMIT_COMMITTERS")]
    pub submit_committers: usize,
    /// Most submissions in one group-commit transaction (at least 1).
    #[arg(long, env = "ACKBOX_SUBMIT_BATCH", default_value_t = DEFAULT_SUBMIT_BATCH, value_name = "ACKBOX_SUBMIT_BATCH")]
    pub submit_batch: usize,
    /// Most submissions waiting for a transaction; beyond it 503 at once (at least 1).
    #[arg(long, env = "ACKBOX_SUBMIT_QUEUE", default_value_t = DEFAULT_SUBMIT_QUEUE, value_name = "ACKBOX_SUBMIT_QUEUE")]
    pub submit_queue: usize,
    /// Batch requests worked on at once; the others wait for a slot before their body is read (at least 1).
    #[arg(long, env = "ACKBOX_MAX_BATCHES", default_value_t = DEFAULT_MAX_BATCHES, value_name = "ACKBOX_MAX_BATCHES")]
    pub max_batches: usize,
    /// Most batch requests waiting for a slot; beyond it 503 at once (at least 1).
    #[arg(long, env = "ACKBOX_BATCH_QUEUE", default_value_t = DEFAULT_BATCH_QUEUE, value_name = "ACKBOX_BATCH_QUEUE")]
    pub batch_queue: usize,
    /// External base URL of every link, e.g. `https://jobs.example.com` (unset: each request's scheme and Host).
    #[arg(long, env = "ACKBOX_PUBLIC_URL", value_name = "ACKBOX_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Let callback_url reach loopback addresses (local development and tests).
    #[arg(long, env = "ACKBOX_CALLBACK_ALLOW_LOOPBACK", default_value_t = false, value_parser = boolish(), action = clap::ArgAction::Set, value_name = "ACKBOX_CALLBACK_ALLOW_LOOPBACK")]
    pub callback_allow_loopback: bool,
    /// Let callback_url reach private addresses (link-local stays refused).
    #[arg(long, env = "ACKBOX_CALLBACK_ALLOW_PRIVATE", default_value_t = false, value_parser = boolish(), action = clap::ArgAction::Set, value_name = "ACKBOX_CALLBACK_ALLOW_PRIVATE")]
    pub callback_allow_private: bool,
    /// Deadline of one callback delivery, in ms (at least 1).
    #[arg(long, env = "ACKBOX_CALLBACK_TIMEOUT_MS", default_value_t = DEFAULT_CALLBACK_TIMEOUT_MS, value_name = "ACKBOX_CALLBACK_TIMEOUT_MS")]
    pub callback_timeout_ms: u64,
    /// Deadline of a callback's connect, in ms (at least 1).
    #[arg(long, env = "ACKBOX_CALLBACK_CONNECT_TIMEOUT_MS", default_value_t = DEFAULT_CALLBACK_CONNECT_TIMEOUT_MS, value_name = "ACKBOX_CALLBACK_CONNECT_TIMEOUT_MS")]
    pub callback_connect_timeout_ms: u64,
    /// Delivery attempts before a callback is given up (at least 1).
    #[arg(long, env = "ACKBOX_CALLBACK_MAX_ATTEMPTS", default_value_t = DEFAULT_CALLBACK_MAX_ATTEMPTS, value_name = "ACKBOX_CALLBACK_MAX_ATTEMPTS")]
    pub callback_max_attempts: u32,
    /// How often the api looks for callbacks due, in ms (at least 1).
    #[arg(long, env = "ACKBOX_CALLBACK_POLL_MS", default_value_t = DEFAULT_CALLBACK_POLL_MS, value_name = "ACKBOX_CALLBACK_POLL_MS")]
    pub callback_poll_ms: u64,
}

impl TryFrom<ApiArgs> for ApiConfig {
    type Error = ConfigError;

    fn try_from(a: ApiArgs) -> Result<Self, ConfigError> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let secs = std::time::Duration::from_secs;
        let max_wait = secs(a.max_wait_secs);
        // A long-poll must always end (and be answered) before the request deadline cuts it.
        let request_timeout = secs(a.request_timeout_secs);
        check_request_timeout(request_timeout, max_wait)?;
        Ok(Self {
            bind: or_default(a.bind, DEFAULT_BIND),
            ops_bind: or_default(a.api_ops_bind, DEFAULT_OPS_BIND),
            http_workers: positive("ACKBOX_HTTP_WORKERS", a.http_workers.unwrap_or(cores))?,
            max_body_bytes: a.max_body_bytes,
            max_batch_body_bytes: a.max_batch_body_bytes,
            topic: or_default(a.topic, DEFAULT_TOPIC),
            idempotency_ttl: secs(a.idempotency_ttl_secs),
            overdue_after: secs(a.overdue_after),
            // 0 would have been raised to 1 request per second: refused instead.
            rate_limit_per_sec: positive("ACKBOX_RATE_LIMIT_PER_SEC", a.rate_limit_per_sec as usize)? as u32,
            rate_limit_burst: positive("ACKBOX_RATE_LIMIT_BURST", a.rate_limit_burst as usize)? as u32,
            max_wait,
            request_timeout,
            key_cache_ttl: secs(a.key_cache_ttl_secs),
            max_waiters: positive("ACKBOX_MAX_WAITERS", a.max_waiters)?,
            max_in_flight: positive("ACKBOX_MAX_IN_FLIGHT", a.max_in_flight)?,
            max_connections: positive("ACKBOX_MAX_CONNECTIONS", a.max_connections)?,
            submit_committers: positive("ACKBOX_SUBMIT_COMMITTERS", a.submit_committers)?,
            submit_batch: positive("ACKBOX_SUBMIT_BATCH", a.submit_batch)?,
            submit_queue: positive("ACKBOX_SUBMIT_QUEUE", a.submit_queue)?,
            max_batches: positive("ACKBOX_MAX_BATCHES", a.max_batches)?,
            batch_queue: positive("ACKBOX_BATCH_QUEUE", a.batch_queue)?,
            public_url: non_empty(a.public_url).map(|u| public_url(&u)).transpose()?,
            callbacks: CallbackConfig {
                policy: crate::callbacks::target::Policy {
                    allow_loopback: a.callback_allow_loopback,
                    allow_private: a.callback_allow_private,
                },
                timeout: std::time::Duration::from_millis(positive(
                    "ACKBOX_CALLBACK_TIMEOUT_MS",
                    a.callback_timeout_ms as usize,
                )? as u64),
                connect_timeout: std::time::Duration::from_millis(positive(
                    "ACKBOX_CALLBACK_CONNECT_TIMEOUT_MS",
                    a.callback_connect_timeout_ms as usize,
                )? as u64),
                max_attempts: positive("ACKBOX_CALLBACK_MAX_ATTEMPTS", a.callback_max_attempts as usize)? as u32,
                poll: std::time::Duration::from_millis(
                    positive("ACKBOX_CALLBACK_POLL_MS", a.callback_poll_ms as usize)? as u64,
                ),
            },
            db: a.db.try_into()?,
        })
    }
}

impl ApiConfig {
    /// Reads the configuration from the environment alone ([`ApiArgs`]); the error names the offending variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        <ApiArgs as clap::Parser>::try_parse_from(["ackbox-api"]).map_err(ConfigError::from_clap)?.try_into()
    }
}

/// Refuses a request deadline that would cut a long-poll short (it was raised silently before).
pub fn check_request_timeout(
    request_timeout: std::time::Duration,
    max_wait: std::time::Duration,
) -> Result<(), ConfigError> {
    let least = max_wait + std::time::Duration::from_secs(5);
    if request_timeout < least {
        return Err(ConfigError::Invalid {
            name: "ACKBOX_REQUEST_TIMEOUT_SECS".into(),
            value: request_timeout.as_secs().to_string(),
            reason: format!(
                "must be at least ACKBOX_MAX_WAIT_SECS + 5 ({} s): a long-poll must be answered before the request \
                 deadline cuts it",
                least.as_secs()
            ),
        });
    }
    Ok(())
}

/// A count that must be at least 1: 0 is refused with a message, not clamped.
fn positive(name: &str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        return Err(ConfigError::Invalid { name: name.into(), value: "0".into(), reason: "must be at least 1".into() });
    }
    Ok(n)
}

/// Checks `ACKBOX_PUBLIC_URL`: an absolute `http` or `https` URL with a host, and no query or fragment (links are
/// built by appending paths). Returns it without a trailing `/`.
pub fn public_url(raw: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: "ACKBOX_PUBLIC_URL".into(),
        value: raw.to_string(),
        reason: reason.to_string(),
    };
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(invalid("must name a host (and no user info)"));
    }
    if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must have no query, fragment or whitespace"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::{check_request_timeout, public_url};

    #[test]
    fn a_request_deadline_that_would_cut_a_long_poll_short_is_refused() {
        let secs = std::time::Duration::from_secs;
        assert!(check_request_timeout(secs(65), secs(60)).is_ok());
        let err = check_request_timeout(secs(64), secs(60)).expect_err("too short").to_string();
        assert!(err.contains("ACKBOX_REQUEST_TIMEOUT_SECS") && err.contains("ACKBOX_MAX_WAIT_SECS"), "{err}");
    }

    #[test]
    fn a_public_url_is_absolute_http_with_a_host_and_loses_its_trailing_slash() {
        assert_eq!(public_url("https://jobs.example.com/").ok().as_deref(), Some("https://jobs.example.com"));
        assert_eq!(public_url("http://10.0.0.1:8080/ackbox").ok().as_deref(), Some("http://10.0.0.1:8080/ackbox"));
        for bad in
            ["jobs.example.com", "ftp://x", "https://", "https:///path", "https://a/b?c", "https://a/#f", "https://u@h"]
        {
            assert!(public_url(bad).is_err(), "{bad}");
        }
    }
}
