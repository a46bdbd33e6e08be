//! Relay configuration, from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ACKBOX_RELAY_BATCH` | [`DEFAULT_BATCH`] | outbox rows claimed and produced per round |
//! | `ACKBOX_RELAY_RECORD_JOBS` | [`DEFAULT_RECORD_JOBS`] | most dispatches in one Kafka record (1–256): a round's rows bound for the same topic travel together (`ackbox_types::envelope`, version 2), because a broker's cost is per record. 1 produces one record per row, as releases before it did: use it on the relays until every worker reads version 2 |
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
//! | `ACKBOX_JOB_RETENTION_SECS` | [`DEFAULT_JOB_RETENTION_SECS`] (7 days) | finished jobs are deleted this long after they finished, with their outbox rows and Idempotency-Keys, leaving a tombstone (GET answers 404 `/problems/expired`); 0 keeps them forever; otherwise at least 60. A job a live Idempotency-Key or an undelivered callback still names is kept until neither does |
//! | `ACKBOX_TOMBSTONE_RETENTION_SECS` | [`DEFAULT_TOMBSTONE_RETENTION_SECS`] (30 days) | a deleted job's tombstone is kept this long; then its id is a plain 404 |
//! | `ACKBOX_RELAY_VACUUM` | `true` | where autovacuum is off (server-wide, or for the table), the relay vacuums `outbox`, `jobs`, `idempotency_keys`, `job_tombstones` and `callbacks` itself once their dead versions pass `ACKBOX_VACUUM_DEAD_TUPLES` plus 1 % of their live rows, if its role may (superuser or owner; otherwise it warns once per table). Where autovacuum is on, it leaves them to it |
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

use ackbox_db::config::{boolish, or_default, ConfigError, DbArgs, DbConfig};
use ackbox_runtime::kafka::{KafkaArgs, KafkaConfig};
use ackbox_runtime::logging::ObservabilityArgs;

/// Default rows per round.
pub const DEFAULT_BATCH: i64 = 500;
/// Default most dispatches per Kafka record: most of the broker's per-record cost is gone at 16 (1/16 of it), while a
/// record stays a small share of a worker's slots (`ACKBOX_WORKER_CONCURRENCY`, 64 by default), so records still
/// spread over several workers.
pub const DEFAULT_RECORD_JOBS: usize = 16;
/// Default round loops per process.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// Default produce requests in flight per connection (librdkafka's maximum with idempotence).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 5;
/// Default idle poll.
pub const DEFAULT_POLL_MS: u64 = 1_000;
/// Default producer linger: none. The relay hands over a whole round's rows at once, so waiting gathers nothing more;
/// at 200 jobs/s a 1 ms linger added 1.5 ms to commit→ack p50 (6.0–6.6 against 4.5–5.0 ms), and 0 left the drain
/// (8,099 against 8,127 jobs/s) and CPU per job at 1,000 jobs/s unchanged (`bench/findings.md`, session 17).
pub const DEFAULT_LINGER_MS: u64 = 0;
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
/// Default retention of finished jobs: 7 days.
pub const DEFAULT_JOB_RETENTION_SECS: u64 = 7 * 86_400;
/// Shortest retention of finished jobs (other than 0, off): a minute, so a client polling a job that just ended still
/// reads its result. Retention never deletes a job a live Idempotency-Key or an undelivered callback still names
/// (`ackbox_db::retention`), so this need not cover the api's key lifetime.
pub const MIN_JOB_RETENTION_SECS: u64 = 60;
/// Default retention of tombstones: 30 days.
pub const DEFAULT_TOMBSTONE_RETENTION_SECS: u64 = 30 * 86_400;
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
    /// Most dispatches per Kafka record (1: one record per row).
    pub record_jobs: usize,
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
    /// Finished jobs are deleted this long after they finished (`None`: kept forever).
    pub job_retention: Option<Duration>,
    /// Tombstones of deleted jobs are kept this long.
    pub tombstone_retention: Duration,
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

/// Every setting of the relay, as clap arguments: `ackbox-relay --help` lists each variable with its default. Each
/// is read from its environment variable (or the flag of the same name).
#[derive(Clone, Debug, clap::Parser)]
pub struct RelayArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub observability: ObservabilityArgs,
    /// Outbox rows claimed and produced per round (1-100000).
    #[arg(long, env = "ACKBOX_RELAY_BATCH", default_value_t = DEFAULT_BATCH, value_name = "ACKBOX_RELAY_BATCH")]
    pub relay_batch: i64,
    /// Most dispatches in one Kafka record (1-256); 1 produces one record per row, as releases before it did.
    #[arg(long, env = "ACKBOX_RELAY_RECORD_JOBS", default_value_t = DEFAULT_RECORD_JOBS as i64, value_name = "ACKBOX_RELAY_RECORD_JOBS")]
    pub relay_record_jobs: i64,
    /// Round loops per process (1-64): one claims while another awaits its delivery reports.
    #[arg(long, env = "ACKBOX_RELAY_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY as i64, value_name = "ACKBOX_RELAY_CONCURRENCY")]
    pub relay_concurrency: i64,
    /// librdkafka enable.idempotence: fewer duplicates and per-partition order on retries (Ackbox tolerates both).
    #[arg(long, env = "ACKBOX_RELAY_IDEMPOTENCE", default_value_t = true, value_parser = boolish(), action = clap::ArgAction::Set, value_name = "ACKBOX_RELAY_IDEMPOTENCE")]
    pub relay_idempotence: bool,
    /// librdkafka max.in.flight.requests.per.connection (1-5, librdkafka's bound with idempotence).
    #[arg(long, env = "ACKBOX_RELAY_MAX_IN_FLIGHT", default_value_t = i64::from(DEFAULT_MAX_IN_FLIGHT), value_name = "ACKBOX_RELAY_MAX_IN_FLIGHT")]
    pub relay_max_in_flight: i64,
    /// Longest idle wait between rounds when no NOTIFY arrives, in ms.
    #[arg(long, env = "ACKBOX_RELAY_POLL_MS", default_value_t = DEFAULT_POLL_MS, value_name = "ACKBOX_RELAY_POLL_MS")]
    pub relay_poll_ms: u64,
    /// librdkafka linger.ms: how long the producer waits to fill a batch.
    #[arg(long, env = "ACKBOX_RELAY_LINGER_MS", default_value_t = DEFAULT_LINGER_MS, value_name = "ACKBOX_RELAY_LINGER_MS")]
    pub relay_linger_ms: u64,
    /// librdkafka message.timeout.ms: after it a row counts as failed and is retried later (below 60000, the relay
    /// role's idle-in-transaction timeout).
    #[arg(long, env = "ACKBOX_RELAY_DELIVERY_TIMEOUT_MS", default_value_t = DEFAULT_DELIVERY_TIMEOUT_MS, value_name = "ACKBOX_RELAY_DELIVERY_TIMEOUT_MS")]
    pub relay_delivery_timeout_ms: u64,
    /// Partitions when the relay creates the topic (the relay is its one creator): the ceiling on worker parallelism.
    #[arg(long, env = "ACKBOX_TOPIC_PARTITIONS", default_value_t = DEFAULT_PARTITIONS, value_name = "ACKBOX_TOPIC_PARTITIONS")]
    pub topic_partitions: i32,
    /// Replication factor when the relay creates the topic (3 on a real cluster).
    #[arg(long, env = "ACKBOX_TOPIC_REPLICATION", default_value_t = DEFAULT_REPLICATION, value_name = "ACKBOX_TOPIC_REPLICATION")]
    pub topic_replication: i32,
    /// How often the rescuer and retention run, in ms.
    #[arg(long, env = "ACKBOX_RESCUE_INTERVAL_MS", default_value_t = DEFAULT_RESCUE_INTERVAL_MS, value_name = "ACKBOX_RESCUE_INTERVAL_MS")]
    pub rescue_interval_ms: u64,
    /// A queued job whose dispatch was published this long ago (ms) without starting is dispatched again.
    #[arg(long, env = "ACKBOX_DISPATCH_TIMEOUT_MS", default_value_t = DEFAULT_DISPATCH_TIMEOUT_MS, value_name = "ACKBOX_DISPATCH_TIMEOUT_MS")]
    pub dispatch_timeout_ms: u64,
    /// Jobs per rescuer pass and part (1-1000000).
    #[arg(long, env = "ACKBOX_RESCUE_BATCH", default_value_t = DEFAULT_RESCUE_BATCH, value_name = "ACKBOX_RESCUE_BATCH")]
    pub rescue_batch: i64,
    /// Published outbox rows are kept this long (s) for inspection, then deleted.
    #[arg(long, env = "ACKBOX_OUTBOX_RETENTION_SECS", default_value_t = DEFAULT_RETENTION_SECS, value_name = "ACKBOX_OUTBOX_RETENTION_SECS")]
    pub outbox_retention_secs: u64,
    /// Rows deleted per retention statement (1-1000000).
    #[arg(long, env = "ACKBOX_RETENTION_BATCH", default_value_t = DEFAULT_RETENTION_BATCH, value_name = "ACKBOX_RETENTION_BATCH")]
    pub retention_batch: i64,
    /// Finished jobs are deleted this long (s) after they finished, with their outbox rows and Idempotency-Keys,
    /// leaving a tombstone (404 /problems/expired). 0 keeps them forever; otherwise at least 60. Jobs a live
    /// Idempotency-Key or an undelivered callback names are kept.
    #[arg(long, env = "ACKBOX_JOB_RETENTION_SECS", default_value_t = DEFAULT_JOB_RETENTION_SECS, value_name = "ACKBOX_JOB_RETENTION_SECS")]
    pub job_retention_secs: u64,
    /// A deleted job's tombstone is kept this long (s); then its id is a plain 404.
    #[arg(long, env = "ACKBOX_TOMBSTONE_RETENTION_SECS", default_value_t = DEFAULT_TOMBSTONE_RETENTION_SECS, value_name = "ACKBOX_TOMBSTONE_RETENTION_SECS")]
    pub tombstone_retention_secs: u64,
    /// Where autovacuum is off, vacuum outbox, jobs and idempotency_keys once their dead versions pass
    /// ACKBOX_VACUUM_DEAD_TUPLES plus 1 % of live rows (if the role may).
    #[arg(long, env = "ACKBOX_RELAY_VACUUM", default_value_t = true, value_parser = boolish(), action = clap::ArgAction::Set, value_name = "ACKBOX_RELAY_VACUUM")]
    pub relay_vacuum: bool,
    /// Dead versions that make the relay vacuum a table (at least 1).
    #[arg(long, env = "ACKBOX_VACUUM_DEAD_TUPLES", default_value_t = DEFAULT_VACUUM_DEAD_TUPLES, value_name = "ACKBOX_VACUUM_DEAD_TUPLES")]
    pub vacuum_dead_tuples: i64,
    /// How often the backlog and jobs-by-status gauges are refreshed, in ms.
    #[arg(long, env = "ACKBOX_STATS_INTERVAL_MS", default_value_t = DEFAULT_STATS_INTERVAL_MS, value_name = "ACKBOX_STATS_INTERVAL_MS")]
    pub stats_interval_ms: u64,
    /// kind=topic,kind=topic: jobs of these kinds go to their own topic (for a worker fleet of their own).
    #[arg(long, env = "ACKBOX_KIND_TOPICS", default_value = "", value_name = "ACKBOX_KIND_TOPICS")]
    pub kind_topics: String,
    /// Address of /metrics, /healthz, /readyz.
    #[arg(long, env = "ACKBOX_RELAY_OPS_BIND", default_value = DEFAULT_OPS_BIND, value_name = "ACKBOX_RELAY_OPS_BIND")]
    pub relay_ops_bind: String,
}

impl TryFrom<RelayArgs> for RelayConfig {
    type Error = ConfigError;

    fn try_from(a: RelayArgs) -> Result<Self, ConfigError> {
        let delivery_timeout = Duration::from_millis(a.relay_delivery_timeout_ms);
        check_delivery_timeout(delivery_timeout)?;
        Ok(Self {
            db: a.db.try_into()?,
            kafka: a.kafka.try_into()?,
            batch: check_range("ACKBOX_RELAY_BATCH", a.relay_batch, 1, 100_000)?,
            record_jobs: check_range(
                "ACKBOX_RELAY_RECORD_JOBS",
                a.relay_record_jobs,
                1,
                ackbox_types::envelope::MAX_PACKED_JOBS as i64,
            )? as usize,
            concurrency: check_range("ACKBOX_RELAY_CONCURRENCY", a.relay_concurrency, 1, 64)? as usize,
            idempotence: a.relay_idempotence,
            // librdkafka allows at most 5 with idempotence: more was clamped before, and is refused now.
            max_in_flight: check_range("ACKBOX_RELAY_MAX_IN_FLIGHT", a.relay_max_in_flight, 1, 5)? as u32,
            poll_interval: Duration::from_millis(a.relay_poll_ms),
            linger: Duration::from_millis(a.relay_linger_ms),
            delivery_timeout,
            partitions: check_range("ACKBOX_TOPIC_PARTITIONS", i64::from(a.topic_partitions), 1, 100_000)? as i32,
            replication: check_range("ACKBOX_TOPIC_REPLICATION", i64::from(a.topic_replication), 1, 100)? as i32,
            rescue_interval: Duration::from_millis(a.rescue_interval_ms),
            dispatch_timeout: Duration::from_millis(a.dispatch_timeout_ms),
            rescue_batch: check_range("ACKBOX_RESCUE_BATCH", a.rescue_batch, 1, 1_000_000)?,
            retention: Duration::from_secs(a.outbox_retention_secs),
            retention_batch: check_range("ACKBOX_RETENTION_BATCH", a.retention_batch, 1, 1_000_000)?,
            job_retention: check_job_retention(a.job_retention_secs)?,
            tombstone_retention: Duration::from_secs(a.tombstone_retention_secs),
            stats_interval: Duration::from_millis(a.stats_interval_ms),
            vacuum: a.relay_vacuum,
            vacuum_dead_tuples: check_range("ACKBOX_VACUUM_DEAD_TUPLES", a.vacuum_dead_tuples, 1, i64::MAX)?,
            ops_bind: or_default(a.relay_ops_bind, DEFAULT_OPS_BIND),
            kind_topics: parse_kind_topics(&a.kind_topics)?,
        })
    }
}

impl RelayConfig {
    /// Reads the configuration from the environment alone ([`RelayArgs`]); the error names the offending variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        <RelayArgs as clap::Parser>::try_parse_from(["ackbox-relay"]).map_err(ConfigError::from_clap)?.try_into()
    }

    /// The topic a row of `kind` at `priority` is produced to: the priority's lane (see
    /// [`Priority::lane_topic`](ackbox_types::priority::Priority::lane_topic)) of the kind's route, if any, else of
    /// the row's own topic.
    pub fn topic_for(&self, kind: Option<&str>, row_topic: &str, priority: ackbox_types::priority::Priority) -> String {
        priority.lane_topic(kind.and_then(|k| self.kind_topics.get(k)).map_or(row_topic, String::as_str))
    }
}

/// A count that must lie in `min..=max`: a value outside is refused with the range, never clamped.
fn check_range(name: &str, n: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
    if !(min..=max).contains(&n) {
        return Err(ConfigError::Invalid {
            name: name.into(),
            value: n.to_string(),
            reason: format!("must be between {min} and {max}"),
        });
    }
    Ok(n)
}

/// `ACKBOX_JOB_RETENTION_SECS`: 0 is off; anything else at least [`MIN_JOB_RETENTION_SECS`].
pub fn check_job_retention(secs: u64) -> Result<Option<Duration>, ConfigError> {
    match secs {
        0 => Ok(None),
        s if s < MIN_JOB_RETENTION_SECS => Err(ConfigError::Invalid {
            name: "ACKBOX_JOB_RETENTION_SECS".into(),
            value: s.to_string(),
            reason: format!(
                "must be 0 (keep forever) or at least {MIN_JOB_RETENTION_SECS} (a minute): a client polling a job \
                 that just ended must still read its result"
            ),
        }),
        s => Ok(Some(Duration::from_secs(s))),
    }
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
    ackbox_db::config::parse_pairs(
        "ACKBOX_KIND_TOPICS",
        raw,
        "kind",
        ackbox_db::models::job_kind::valid_kind,
        |topic| {
            if topic.is_empty() || !ackbox_runtime::kafka::follows_kafka_name_rule(topic) {
                return Err(format!("{topic:?} is not a valid Kafka topic name"));
            }
            Ok(topic.to_string())
        },
    )
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
    fn job_retention_is_off_or_at_least_a_minute() {
        assert_eq!(check_job_retention(0).expect("off"), None);
        assert_eq!(check_job_retention(60).expect("a minute"), Some(Duration::from_secs(60)));
        assert_eq!(check_job_retention(86_400).expect("a day"), Some(Duration::from_secs(86_400)));
        let err = check_job_retention(59).expect_err("under a minute").to_string();
        assert!(err.contains("ACKBOX_JOB_RETENTION_SECS") && err.contains("at least 60"), "{err}");
    }

    #[test]
    fn a_count_out_of_range_is_refused_with_the_range() {
        assert_eq!(check_range("SOME_SETTING", 5, 1, 5).expect("in range"), 5);
        let err = check_range("SOME_SETTING", 6, 1, 5).expect_err("out of range").to_string();
        assert!(err.contains("SOME_SETTING") && err.contains("between 1 and 5"), "{err}");
    }

    #[test]
    fn a_delivery_timeout_the_role_would_cut_short_is_refused_naming_both() {
        assert!(check_delivery_timeout(Duration::from_secs(10)).is_ok());
        let err = check_delivery_timeout(Duration::from_secs(60)).expect_err("too long").to_string();
        assert!(err.contains("ACKBOX_RELAY_DELIVERY_TIMEOUT_MS") && err.contains("idle_in_transaction"), "{err}");
    }
}
