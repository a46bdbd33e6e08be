//! Relay configuration, from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ACKBOX_RELAY_BATCH` | [`DEFAULT_BATCH`] | outbox rows claimed and produced per round |
//! | `ACKBOX_RELAY_CONCURRENCY` | [`DEFAULT_CONCURRENCY`] | round loops per process (1–64): one claims while another awaits its delivery reports |
//! | `ACKBOX_RELAY_IDEMPOTENCE` | `true` | librdkafka `enable.idempotence`: fewer duplicates and per-partition order on retries. Ackbox does not depend on it (duplicates and reordering are harmless by design) |
//! | `ACKBOX_RELAY_MAX_IN_FLIGHT` | [`DEFAULT_MAX_IN_FLIGHT`] | librdkafka `max.in.flight.requests.per.connection` (1–5, librdkafka's bound with idempotence; outside is refused) |
//! | `ACKBOX_RELAY_POLL_MS` | [`DEFAULT_POLL_MS`] | longest idle wait between rounds when no NOTIFY arrives |
//! | `ACKBOX_RELAY_LINGER_MS` | [`DEFAULT_LINGER_MS`] | librdkafka `linger.ms`: how long the producer waits to fill a batch |
//! | `ACKBOX_RELAY_DELIVERY_TIMEOUT_MS` | [`DEFAULT_DELIVERY_TIMEOUT_MS`] | librdkafka `message.timeout.ms`: after it a row counts as failed and is retried later |
//! | `ACKBOX_TOPIC_PARTITIONS` | [`DEFAULT_PARTITIONS`] | partitions when the relay creates the topic (the ceiling on worker parallelism) |
//! | `ACKBOX_TOPIC_REPLICATION` | [`DEFAULT_REPLICATION`] | replication factor when the relay creates the topic (3 in production) |
//! | `ACKBOX_RESCUE_INTERVAL_MS` | [`DEFAULT_RESCUE_INTERVAL_MS`] | how often the rescuer and retention run |
//! | `ACKBOX_DISPATCH_TIMEOUT_MS` | [`DEFAULT_DISPATCH_TIMEOUT_MS`] | a queued job whose dispatch was published this long ago without starting is dispatched again |
//! | `ACKBOX_RESCUE_BATCH` | [`DEFAULT_RESCUE_BATCH`] | jobs per rescuer pass and part |
//! | `ACKBOX_OUTBOX_RETENTION_SECS` | [`DEFAULT_RETENTION_SECS`] | published rows are kept this long for inspection, then deleted |
//! | `ACKBOX_RETENTION_BATCH` | [`DEFAULT_RETENTION_BATCH`] | rows deleted per retention statement |
//! | `ACKBOX_RELAY_VACUUM` | `true` | where autovacuum is off (server-wide, or for the table), the relay vacuums `outbox`, `jobs` and `idempotency_keys` itself once their dead versions pass `ACKBOX_VACUUM_DEAD_TUPLES` plus 1 % of their live rows, if its role may (superuser or owner; otherwise it warns once per table). Where autovacuum is on, it leaves them to it |
//! | `ACKBOX_VACUUM_DEAD_TUPLES` | [`DEFAULT_VACUUM_DEAD_TUPLES`] | dead versions that make the relay vacuum a table (same as migration 8's autovacuum threshold) |
//! | `ACKBOX_STATS_INTERVAL_MS` | [`DEFAULT_STATS_INTERVAL_MS`] | how often backlog and jobs-by-status gauges are refreshed |
//! | `ACKBOX_KIND_TOPICS` | unset | `kind=topic,kind=topic`: jobs of these kinds are produced to their own topic instead of the row's (`ACKBOX_TOPIC`), so a worker fleet that runs them consumes that topic (its own `ACKBOX_TOPIC` and `ACKBOX_WORKER_GROUP`) and other fleets never see them. The relay creates these topics too |
//! | `ACKBOX_RELAY_OPS_BIND` | [`DEFAULT_OPS_BIND`] | address of `/metrics`, `/healthz`, `/readyz` |
//!
//! The delivery timeout must stay below the relay role's `idle_in_transaction_session_timeout` (60 s, migration 5):
//! the claiming transaction is idle while it awaits the broker's reports, and Postgres would cut it off. A setting at
//! or above it is refused at start-up, naming both.
//!
//! Plus `DATABASE_URL` & co. ([`DbConfig`]) and `KAFKA_BROKERS`, `ACKBOX_TOPIC`, `ACKBOX_KAFKA_OPTS` ([`KafkaConfig`]).

use std::time::Duration;

use ackbox_db::config::{self, ConfigError, DbConfig};
use ackbox_runtime::kafka::KafkaConfig;

/// Default rows per round.
pub const DEFAULT_BATCH: i64 = 500;
/// Default round loops per process.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// Default produce requests in flight per connection (librdkafka's maximum with idempotence).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 5;
/// Default idle poll.
pub const DEFAULT_POLL_MS: u64 = 1_000;
/// Default producer linger: short, because the relay already hands over whole batches.
pub const DEFAULT_LINGER_MS: u64 = 1;
/// Default delivery timeout.
pub const DEFAULT_DELIVERY_TIMEOUT_MS: u64 = 10_000;
/// Default partition count for a topic the relay creates.
pub const DEFAULT_PARTITIONS: i32 = 6;
/// Default replication factor for a topic the relay creates.
pub const DEFAULT_REPLICATION: i32 = 1;

/// Default rescuer interval.
pub const DEFAULT_RESCUE_INTERVAL_MS: u64 = 5_000;
/// Default dispatch timeout: 5 min, generous so a long Kafka backlog is not mistaken for a lost message.
pub const DEFAULT_DISPATCH_TIMEOUT_MS: u64 = 300_000;
/// Default rescuer batch.
pub const DEFAULT_RESCUE_BATCH: i64 = 1_000;
/// Default retention of published rows: 1 h.
pub const DEFAULT_RETENTION_SECS: u64 = 3_600;
/// Default retention batch.
pub const DEFAULT_RETENTION_BATCH: i64 = 5_000;
/// Default dead versions that make the relay vacuum a table autovacuum does not look after.
pub const DEFAULT_VACUUM_DEAD_TUPLES: i64 = 10_000;
/// Default stats refresh.
pub const DEFAULT_STATS_INTERVAL_MS: u64 = 10_000;
/// The relay role's `idle_in_transaction_session_timeout` (migration 5): the delivery timeout must stay below it.
pub const RELAY_ROLE_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(60);
/// Default ops address.
pub const DEFAULT_OPS_BIND: &str = "127.0.0.1:9101";

/// Everything the relay needs.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Database settings.
    pub db: DbConfig,
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// Rows per round.
    pub batch: i64,
    /// Round loops per process.
    pub concurrency: usize,
    /// librdkafka `enable.idempotence`.
    pub idempotence: bool,
    /// Produce requests in flight per connection.
    pub max_in_flight: u32,
    /// Idle poll.
    pub poll_interval: Duration,
    /// Producer linger.
    pub linger: Duration,
    /// Delivery timeout.
    pub delivery_timeout: Duration,
    /// Partitions for topic creation.
    pub partitions: i32,
    /// Replication for topic creation.
    pub replication: i32,
    /// Rescuer and retention interval.
    pub rescue_interval: Duration,
    /// Dispatch timeout.
    pub dispatch_timeout: Duration,
    /// Jobs per rescuer pass.
    pub rescue_batch: i64,
    /// Retention of published rows.
    pub retention: Duration,
    /// Rows per retention statement.
    pub retention_batch: i64,
    /// Gauge refresh interval.
    pub stats_interval: Duration,
    /// Vacuum the churned tables where autovacuum does not.
    pub vacuum: bool,
    /// Dead versions that trigger that vacuum.
    pub vacuum_dead_tuples: i64,
    /// Ops endpoint address.
    pub ops_bind: String,
    /// `kind → topic` routes applied at produce time.
    pub kind_topics: std::collections::BTreeMap<String, String>,
}

impl RelayConfig {
    /// Reads the configuration; the error names the offending variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let batch: i64 = config::parse_or("ACKBOX_RELAY_BATCH", DEFAULT_BATCH)?;
        if !(1..=100_000).contains(&batch) {
            return Err(ConfigError::Invalid {
                name: "ACKBOX_RELAY_BATCH".into(),
                value: batch.to_string(),
                reason: "must be between 1 and 100000".into(),
            });
        }
        let delivery_timeout = config::millis_or("ACKBOX_RELAY_DELIVERY_TIMEOUT_MS", DEFAULT_DELIVERY_TIMEOUT_MS)?;
        check_delivery_timeout(delivery_timeout)?;
        Ok(Self {
            db: DbConfig::from_env()?,
            kafka: KafkaConfig::from_env()?,
            batch,
            concurrency: in_range("ACKBOX_RELAY_CONCURRENCY", DEFAULT_CONCURRENCY as i64, 1, 64)? as usize,
            idempotence: config::bool_or("ACKBOX_RELAY_IDEMPOTENCE", true)?,
            // librdkafka allows at most 5 with idempotence: more was clamped before, and is refused now.
            max_in_flight: in_range("ACKBOX_RELAY_MAX_IN_FLIGHT", i64::from(DEFAULT_MAX_IN_FLIGHT), 1, 5)? as u32,
            poll_interval: config::millis_or("ACKBOX_RELAY_POLL_MS", DEFAULT_POLL_MS)?,
            linger: config::millis_or("ACKBOX_RELAY_LINGER_MS", DEFAULT_LINGER_MS)?,
            delivery_timeout,
            partitions: config::parse_or("ACKBOX_TOPIC_PARTITIONS", DEFAULT_PARTITIONS)?,
            replication: config::parse_or("ACKBOX_TOPIC_REPLICATION", DEFAULT_REPLICATION)?,
            rescue_interval: config::millis_or("ACKBOX_RESCUE_INTERVAL_MS", DEFAULT_RESCUE_INTERVAL_MS)?,
            dispatch_timeout: config::millis_or("ACKBOX_DISPATCH_TIMEOUT_MS", DEFAULT_DISPATCH_TIMEOUT_MS)?,
            rescue_batch: in_range("ACKBOX_RESCUE_BATCH", DEFAULT_RESCUE_BATCH, 1, 1_000_000)?,
            retention: Duration::from_secs(config::parse_or("ACKBOX_OUTBOX_RETENTION_SECS", DEFAULT_RETENTION_SECS)?),
            retention_batch: in_range("ACKBOX_RETENTION_BATCH", DEFAULT_RETENTION_BATCH, 1, 1_000_000)?,
            stats_interval: config::millis_or("ACKBOX_STATS_INTERVAL_MS", DEFAULT_STATS_INTERVAL_MS)?,
            vacuum: config::bool_or("ACKBOX_RELAY_VACUUM", true)?,
            vacuum_dead_tuples: in_range("ACKBOX_VACUUM_DEAD_TUPLES", DEFAULT_VACUUM_DEAD_TUPLES, 1, i64::MAX)?,
            ops_bind: config::optional("ACKBOX_RELAY_OPS_BIND").unwrap_or_else(|| DEFAULT_OPS_BIND.to_string()),
            kind_topics: parse_kind_topics(config::optional("ACKBOX_KIND_TOPICS").as_deref().unwrap_or(""))?,
        })
    }

    /// The topic a row of `kind` is produced to: its route, if any, else the row's own topic.
    pub fn topic_for<'a>(&'a self, kind: Option<&str>, row_topic: &'a str) -> &'a str {
        kind.and_then(|k| self.kind_topics.get(k)).map_or(row_topic, String::as_str)
    }
}

/// Reads a count that must lie in `min..=max`: a value outside is refused with the range, never clamped.
fn in_range(name: &str, default: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
    let n: i64 = config::parse_or(name, default)?;
    if !(min..=max).contains(&n) {
        return Err(ConfigError::Invalid {
            name: name.into(),
            value: n.to_string(),
            reason: format!("must be between {min} and {max}"),
        });
    }
    Ok(n)
}

/// Refuses a delivery timeout the relay role's idle-in-transaction timeout would cut short.
pub fn check_delivery_timeout(timeout: Duration) -> Result<(), ConfigError> {
    if timeout >= RELAY_ROLE_IDLE_IN_TRANSACTION {
        return Err(ConfigError::Invalid {
            name: "ACKBOX_RELAY_DELIVERY_TIMEOUT_MS".into(),
            value: timeout.as_millis().to_string(),
            reason: format!(
                "must be below the ackbox_relay role's idle_in_transaction_session_timeout ({} s, migration 5): the \
                 relay's transaction waits idle for the broker that long, and Postgres would end it",
                RELAY_ROLE_IDLE_IN_TRANSACTION.as_secs()
            ),
        });
    }
    Ok(())
}

/// Parses `kind=topic,kind=topic` (spaces allowed around items).
pub fn parse_kind_topics(raw: &str) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "ACKBOX_KIND_TOPICS".into(),
        value: raw.chars().take(200).collect(),
        reason,
    };
    let mut routes = std::collections::BTreeMap::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (kind, topic) = item.split_once('=').ok_or_else(|| invalid(format!("{item:?} is not kind=topic")))?;
        let (kind, topic) = (kind.trim(), topic.trim());
        if !ackbox_db::models::job_kind::valid_kind(kind) {
            return Err(invalid(format!("{kind:?} is not a valid kind")));
        }
        if topic.is_empty() || !ackbox_runtime::kafka::follows_kafka_name_rule(topic) {
            return Err(invalid(format!("{topic:?} is not a valid Kafka topic name")));
        }
        if routes.insert(kind.to_string(), topic.to_string()).is_some() {
            return Err(invalid(format!("kind {kind:?} is routed twice")));
        }
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_routes_parse_and_bad_ones_are_named() {
        let routes = parse_kind_topics(" video=ackbox.video , report=ackbox.reports").expect("valid");
        assert_eq!(routes.get("video").map(String::as_str), Some("ackbox.video"));
        assert_eq!(routes.len(), 2);
        assert!(parse_kind_topics("").expect("empty").is_empty());
        for bad in ["video", "video=", "=t", "video=a b", "a=t,a=u", "bad kind=t"] {
            let err = parse_kind_topics(bad).expect_err(bad).to_string();
            assert!(err.contains("ACKBOX_KIND_TOPICS"), "{err}");
        }
    }

    #[test]
    fn a_count_out_of_range_is_refused_with_the_range() {
        assert_eq!(in_range("UNSET_SETTING_OF_A_TEST", 5, 1, 5).expect("default"), 5);
        let err = in_range("UNSET_SETTING_OF_A_TEST", 6, 1, 5).expect_err("out of range").to_string();
        assert!(err.contains("UNSET_SETTING_OF_A_TEST") && err.contains("between 1 and 5"), "{err}");
    }

    #[test]
    fn a_delivery_timeout_the_role_would_cut_short_is_refused_naming_both() {
        assert!(check_delivery_timeout(Duration::from_secs(10)).is_ok());
        let err = check_delivery_timeout(Duration::from_secs(60)).expect_err("too long").to_string();
        assert!(err.contains("ACKBOX_RELAY_DELIVERY_TIMEOUT_MS") && err.contains("idle_in_transaction"), "{err}");
    }
}
