//! Worker configuration, from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ACKBOX_WORKER_GROUP` | [`DEFAULT_GROUP`] | Kafka consumer group; every worker of one deployment shares it |
//! | `ACKBOX_WORKER_CONCURRENCY` | [`DEFAULT_CONCURRENCY`] | jobs running at once in this process (the in-flight bound) |
//! | `ACKBOX_WORKER_BATCH` | [`DEFAULT_BATCH`] | messages claimed with one UPDATE; at most `ACKBOX_WORKER_CONCURRENCY` (more is refused: a batch can never be larger than the jobs that may run at once) |
//! | `ACKBOX_LEASE_MS` | [`DEFAULT_LEASE_MS`] | lease of a running attempt |
//! | `ACKBOX_HEARTBEAT_MS` | [`DEFAULT_HEARTBEAT_MS`] | lease extension interval: at most a third of the lease (more is refused at start-up, since one late heartbeat would then let the lease lapse under a running job); also re-reads cancel requests, which normally arrive by `LISTEN` at once |
//! | `ACKBOX_JOB_TIMEOUT_MS` | [`DEFAULT_JOB_TIMEOUT_MS`] | a handler running longer fails the attempt with `timeout` |
//! | `ACKBOX_RETRY_BASE_MS` | [`DEFAULT_RETRY_BASE_MS`] | first retry backoff; doubles per attempt, ±25 % jitter |
//! | `ACKBOX_RETRY_MAX_MS` | [`DEFAULT_RETRY_MAX_MS`] | longest retry backoff |
//! | `ACKBOX_KAFKA_FETCH_WAIT_MS` | [`DEFAULT_FETCH_WAIT_MS`] | librdkafka `fetch.wait.max.ms` |
//! | `ACKBOX_WORKER_SESSION_TIMEOUT_MS` | [`DEFAULT_SESSION_TIMEOUT_MS`] | librdkafka `session.timeout.ms`: how soon the group notices a dead worker and hands its partitions on |
//! | `ACKBOX_SHUTDOWN_GRACE_MS` | [`DEFAULT_SHUTDOWN_GRACE_MS`] | on SIGTERM, how long in-flight jobs may run before they are cancelled |
//! | `ACKBOX_WORKER_INSTANCE_ID` | unset (dynamic membership) | librdkafka `group.instance.id` (Kafka static membership, KIP-345): a name unique to this replica and stable across its restarts (the pod name, say). A worker restarted under the same name takes its partitions back at once instead of after the session timeout. Letters, digits, `.`, `_`, `-`; at most 249 |
//! | `ACKBOX_STATS_INTERVAL_MS` | [`DEFAULT_STATS_INTERVAL_MS`] | librdkafka statistics (consumer lag) interval |
//! | `ACKBOX_MAX_RESULT_BYTES` | [`DEFAULT_MAX_RESULT_BYTES`] | largest result (or error) a handler may return, as JSON; a larger one fails its job with `result_unstorable` |
//! | `ACKBOX_OUTCOME_WRITE_TRIES` | [`DEFAULT_OUTCOME_WRITE_TRIES`] | times Postgres may refuse a batch of outcomes (a query error, not an outage) before its jobs are released: their leases lapse and the rescuer takes over |
//! | `ACKBOX_WORKER_OPS_BIND` | [`DEFAULT_OPS_BIND`] | address of `/metrics`, `/healthz`, `/readyz` |
//! | `ACKBOX_KIND_QUEUES` | unset (every kind in `default`) | `kind=queue,…`: the queue this worker's kinds put their jobs in when a submit names none. Registered in `job_kinds` at start-up, with the queues themselves (`queues`) |
//! | `ACKBOX_QUEUE_CONCURRENCY` | unset (no cap) | `queue=n,…`: at most n jobs of that queue run at once in this process (within `ACKBOX_WORKER_CONCURRENCY`). A message of a queue at its cap waits in the worker, holding its slot, until one of the queue's jobs ends |
//! | `ACKBOX_WORKER_MAX_CONSUMERS` | unset (not checked) | the most workers of this group the fleet runs (the autoscaler's maximum); a topic with fewer partitions gets a warning at start-up |
//!
//! The worker never creates the topic: the relay owns it (`ACKBOX_TOPIC_PARTITIONS`, `ACKBOX_TOPIC_REPLICATION` are
//! the relay's), and a worker that starts first waits for it.
//!
//! Plus `DATABASE_URL` & co. ([`DbConfig`]) and `KAFKA_BROKERS`, `ACKBOX_TOPIC`, `ACKBOX_KAFKA_OPTS` ([`KafkaConfig`]).

use std::time::Duration;

use ackbox_db::config::{non_empty, or_default, ConfigError, DbArgs, DbConfig};
use ackbox_runtime::kafka::{KafkaArgs, KafkaConfig};
use ackbox_runtime::logging::ObservabilityArgs;

/// Default consumer group.
pub const DEFAULT_GROUP: &str = "ackbox-workers";
/// Default in-flight bound.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default claim batch.
pub const DEFAULT_BATCH: usize = 64;
/// Default lease: 30 s.
pub const DEFAULT_LEASE_MS: u64 = 30_000;
/// Default heartbeat: 1 s, so a cancel request reaches a running job within about a second.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1_000;
/// Default handler timeout: 5 min.
pub const DEFAULT_JOB_TIMEOUT_MS: u64 = 300_000;
/// Default first retry backoff: 1 s.
pub const DEFAULT_RETRY_BASE_MS: u64 = 1_000;
/// Default longest retry backoff: 5 min.
pub const DEFAULT_RETRY_MAX_MS: u64 = 300_000;
/// Default fetch wait: short, because the local broker (nisshi) finds new records by polling its storage within
/// this wait, so a longer one delays the first record; Apache Kafka parks the fetch until data arrives, and
/// `deploy/` sets 100 ms there (README, "Locally, Kafka is nisshi", has the measurements).
pub const DEFAULT_FETCH_WAIT_MS: u64 = 10;

/// Default session timeout (librdkafka's own default).
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 45_000;
/// Default shutdown grace: 25 s, inside Kubernetes' default 30 s termination grace period.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 25_000;
/// Default statistics interval.
pub const DEFAULT_STATS_INTERVAL_MS: u64 = 5_000;
/// Default result size limit: 1 MiB.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 1024 * 1024;
/// Default tries of a batch write that Postgres refuses.
pub const DEFAULT_OUTCOME_WRITE_TRIES: u32 = 5;
/// Default ops address.
pub const DEFAULT_OPS_BIND: &str = "127.0.0.1:9102";

/// Everything the worker needs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Database settings.
    pub db: DbConfig,
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// Consumer group.
    pub group: String,
    /// In-flight bound.
    pub concurrency: usize,
    /// Claim batch.
    pub batch: usize,
    /// Lease.
    pub lease: Duration,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Handler timeout.
    pub job_timeout: Duration,
    /// First retry backoff.
    pub retry_base: Duration,
    /// Longest retry backoff.
    pub retry_max: Duration,
    /// `fetch.wait.max.ms`.
    pub fetch_wait: Duration,
    /// The most consumers of this group the fleet runs (an autoscaler's maximum): fewer partitions than this gets a
    /// warning at start-up. `None`: not checked.
    pub max_consumers: Option<u32>,
    /// Consumer group session timeout.
    pub session_timeout: Duration,
    /// `group.instance.id` (static membership), if set.
    pub instance_id: Option<String>,
    /// Grace period for in-flight jobs on shutdown.
    pub shutdown_grace: Duration,
    /// librdkafka statistics interval.
    pub stats_interval: Duration,
    /// Ops endpoint address.
    pub ops_bind: String,
    /// Largest result or error, in bytes of JSON.
    pub max_result_bytes: usize,
    /// Refusals of a batch write before its jobs are released.
    pub outcome_write_tries: u32,
    /// The queue of each listed kind (`ACKBOX_KIND_QUEUES`); others: `default`.
    pub kind_queues: std::collections::BTreeMap<String, String>,
    /// Per-queue caps on jobs running at once in this process (`ACKBOX_QUEUE_CONCURRENCY`).
    pub queue_concurrency: std::collections::BTreeMap<String, usize>,
}

/// Every setting of a worker, as clap arguments: `ackbox-worker --help` lists each variable with its default. Each is
/// read from its environment variable (or the flag of the same name).
#[derive(Clone, Debug, clap::Parser)]
pub struct WorkerArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub observability: ObservabilityArgs,
    /// Kafka consumer group; every worker of one deployment shares it.
    #[arg(long, env = "ACKBOX_WORKER_GROUP", default_value = DEFAULT_GROUP, value_name = "ACKBOX_WORKER_GROUP")]
    pub worker_group: String,
    /// Jobs running at once in this process (the in-flight bound; at least 1).
    #[arg(long, env = "ACKBOX_WORKER_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_name = "ACKBOX_WORKER_CONCURRENCY")]
    pub worker_concurrency: usize,
    /// Messages claimed with one UPDATE (1 to ACKBOX_WORKER_CONCURRENCY).
    #[arg(long, env = "ACKBOX_WORKER_BATCH", default_value_t = DEFAULT_BATCH, value_name = "ACKBOX_WORKER_BATCH")]
    pub worker_batch: usize,
    /// Lease of a running attempt, in ms.
    #[arg(long, env = "ACKBOX_LEASE_MS", default_value_t = DEFAULT_LEASE_MS, value_name = "ACKBOX_LEASE_MS")]
    pub lease_ms: u64,
    /// Lease extension interval, in ms: at most a third of the lease. Also re-reads cancel requests.
    #[arg(long, env = "ACKBOX_HEARTBEAT_MS", default_value_t = DEFAULT_HEARTBEAT_MS, value_name = "ACKBOX_HEARTBEAT_MS")]
    pub heartbeat_ms: u64,
    /// A handler running longer (ms) fails the attempt with `timeout`.
    #[arg(long, env = "ACKBOX_JOB_TIMEOUT_MS", default_value_t = DEFAULT_JOB_TIMEOUT_MS, value_name = "ACKBOX_JOB_TIMEOUT_MS")]
    pub job_timeout_ms: u64,
    /// First retry backoff (ms); doubles per attempt, with jitter.
    #[arg(long, env = "ACKBOX_RETRY_BASE_MS", default_value_t = DEFAULT_RETRY_BASE_MS, value_name = "ACKBOX_RETRY_BASE_MS")]
    pub retry_base_ms: u64,
    /// Longest retry backoff (ms).
    #[arg(long, env = "ACKBOX_RETRY_MAX_MS", default_value_t = DEFAULT_RETRY_MAX_MS, value_name = "ACKBOX_RETRY_MAX_MS")]
    pub retry_max_ms: u64,
    /// librdkafka fetch.wait.max.ms.
    #[arg(long, env = "ACKBOX_KAFKA_FETCH_WAIT_MS", default_value_t = DEFAULT_FETCH_WAIT_MS, value_name = "ACKBOX_KAFKA_FETCH_WAIT_MS")]
    pub kafka_fetch_wait_ms: u64,
    /// The most workers of this group the fleet runs (an autoscaler's maximum): a topic with fewer partitions gets a
    /// warning at start-up. Unset: not checked.
    #[arg(long, env = "ACKBOX_WORKER_MAX_CONSUMERS", value_name = "ACKBOX_WORKER_MAX_CONSUMERS")]
    pub worker_max_consumers: Option<String>,
    /// librdkafka session.timeout.ms: how soon the group notices a dead worker.
    #[arg(long, env = "ACKBOX_WORKER_SESSION_TIMEOUT_MS", default_value_t = DEFAULT_SESSION_TIMEOUT_MS, value_name = "ACKBOX_WORKER_SESSION_TIMEOUT_MS")]
    pub worker_session_timeout_ms: u64,
    /// librdkafka group.instance.id (static membership): a name unique to this replica and stable across restarts.
    /// Unset: dynamic membership.
    #[arg(long, env = "ACKBOX_WORKER_INSTANCE_ID", value_name = "ACKBOX_WORKER_INSTANCE_ID")]
    pub worker_instance_id: Option<String>,
    /// On SIGTERM, how long (ms) in-flight jobs may run before they are cancelled.
    #[arg(long, env = "ACKBOX_SHUTDOWN_GRACE_MS", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS, value_name = "ACKBOX_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: u64,
    /// librdkafka statistics (consumer lag) interval, in ms.
    #[arg(long, env = "ACKBOX_STATS_INTERVAL_MS", default_value_t = DEFAULT_STATS_INTERVAL_MS, value_name = "ACKBOX_STATS_INTERVAL_MS")]
    pub stats_interval_ms: u64,
    /// Address of /metrics, /healthz, /readyz.
    #[arg(long, env = "ACKBOX_WORKER_OPS_BIND", default_value = DEFAULT_OPS_BIND, value_name = "ACKBOX_WORKER_OPS_BIND")]
    pub worker_ops_bind: String,
    /// Largest result or error a handler may return, in bytes of JSON (at least 1).
    #[arg(long, env = "ACKBOX_MAX_RESULT_BYTES", default_value_t = DEFAULT_MAX_RESULT_BYTES, value_name = "ACKBOX_MAX_RESULT_BYTES")]
    pub max_result_bytes: usize,
    /// Times Postgres may refuse a batch of outcomes before its jobs are released to the rescuer (at least 1).
    #[arg(long, env = "ACKBOX_OUTCOME_WRITE_TRIES", default_value_t = DEFAULT_OUTCOME_WRITE_TRIES, value_name = "ACKBOX_OUTCOME_WRITE_TRIES")]
    pub outcome_write_tries: u32,
    /// kind=queue,...: the queue these kinds' jobs go to when a submit names none (others: default).
    #[arg(long, env = "ACKBOX_KIND_QUEUES", default_value = "", value_name = "ACKBOX_KIND_QUEUES")]
    pub kind_queues: String,
    /// queue=n,...: at most n jobs of that queue run at once in this process. Unset: no cap but the concurrency.
    #[arg(long, env = "ACKBOX_QUEUE_CONCURRENCY", default_value = "", value_name = "ACKBOX_QUEUE_CONCURRENCY")]
    pub queue_concurrency: String,
}

/// Parses `ACKBOX_KIND_QUEUES`.
pub fn parse_kind_queues(raw: &str) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    use ackbox_db::models::queue::valid_name;
    ackbox_db::config::parse_pairs("ACKBOX_KIND_QUEUES", raw, "kind", ackbox_db::models::job_kind::valid_kind, |q| {
        valid_name(q).then(|| q.to_string()).ok_or_else(|| format!("{q:?} is not a valid queue name"))
    })
}

/// Parses `ACKBOX_QUEUE_CONCURRENCY`; a cap above the process's concurrency is refused (it could never be reached).
pub fn parse_queue_concurrency(
    raw: &str,
    concurrency: usize,
) -> Result<std::collections::BTreeMap<String, usize>, ConfigError> {
    use ackbox_db::models::queue::valid_name;
    ackbox_db::config::parse_pairs("ACKBOX_QUEUE_CONCURRENCY", raw, "queue", valid_name, |n| match n.parse::<usize>() {
        Ok(n) if (1..=concurrency).contains(&n) => Ok(n),
        _ => Err(format!("{n:?} must be a whole number from 1 to ACKBOX_WORKER_CONCURRENCY ({concurrency})")),
    })
}

/// A count that must be at least 1: 0 is refused with a message, not clamped.
fn positive(name: &str, v: usize) -> Result<usize, ConfigError> {
    if v == 0 {
        return Err(ConfigError::Invalid { name: name.into(), value: "0".into(), reason: "must be at least 1".into() });
    }
    Ok(v)
}

impl TryFrom<WorkerArgs> for WorkerConfig {
    type Error = ConfigError;

    fn try_from(a: WorkerArgs) -> Result<Self, ConfigError> {
        let concurrency = positive("ACKBOX_WORKER_CONCURRENCY", a.worker_concurrency)?;
        let batch = positive("ACKBOX_WORKER_BATCH", a.worker_batch)?;
        check_batch(batch, concurrency)?;
        let lease = Duration::from_millis(a.lease_ms);
        let heartbeat = Duration::from_millis(a.heartbeat_ms);
        check_heartbeat(heartbeat, lease)?;
        let max_consumers = non_empty(a.worker_max_consumers)
            .map(|raw| match raw.trim().parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(ConfigError::Invalid {
                    name: "ACKBOX_WORKER_MAX_CONSUMERS".into(),
                    value: raw,
                    reason: "must be a whole number of at least 1".into(),
                }),
            })
            .transpose()?;
        Ok(Self {
            db: a.db.try_into()?,
            kafka: a.kafka.try_into()?,
            group: or_default(a.worker_group, DEFAULT_GROUP),
            concurrency,
            batch,
            lease,
            heartbeat,
            job_timeout: Duration::from_millis(a.job_timeout_ms),
            retry_base: Duration::from_millis(a.retry_base_ms),
            retry_max: Duration::from_millis(a.retry_max_ms),
            fetch_wait: Duration::from_millis(a.kafka_fetch_wait_ms),
            max_consumers,
            session_timeout: Duration::from_millis(a.worker_session_timeout_ms),
            instance_id: non_empty(a.worker_instance_id).map(validate_instance_id).transpose()?,
            shutdown_grace: Duration::from_millis(a.shutdown_grace_ms),
            stats_interval: Duration::from_millis(a.stats_interval_ms),
            ops_bind: or_default(a.worker_ops_bind, DEFAULT_OPS_BIND),
            max_result_bytes: positive("ACKBOX_MAX_RESULT_BYTES", a.max_result_bytes)?,
            outcome_write_tries: positive("ACKBOX_OUTCOME_WRITE_TRIES", a.outcome_write_tries as usize)? as u32,
            kind_queues: parse_kind_queues(&a.kind_queues)?,
            queue_concurrency: parse_queue_concurrency(&a.queue_concurrency, concurrency)?,
        })
    }
}

impl WorkerConfig {
    /// Reads the configuration from the environment alone ([`WorkerArgs`]); the error names the offending variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        <WorkerArgs as clap::Parser>::try_parse_from(["ackbox-worker"]).map_err(ConfigError::from_clap)?.try_into()
    }

    /// Backoff before attempt `attempt + 1`: `retry_base * 2^(attempt-1)`, capped at `retry_max`, with ±25 % jitter so
    /// a burst of failures does not come back as a burst.
    pub fn retry_backoff(&self, attempt: i32) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let base = self.retry_base.saturating_mul(1u32 << exp).min(self.retry_max);
        let jitter: f64 = rand::Rng::gen_range(&mut rand::thread_rng(), 0.75..1.25);
        base.mul_f64(jitter)
    }
}

/// Kafka's rule for a `group.instance.id` (the same as for topic names): the broker refuses anything else with
/// `INVALID_GROUP_ID` at every join, so it is refused here, by name, before the worker starts.
fn validate_instance_id(raw: String) -> Result<String, ConfigError> {
    let id = raw.trim().to_string();
    let valid = ackbox_runtime::kafka::follows_kafka_name_rule(&id);
    if valid {
        Ok(id)
    } else {
        Err(ConfigError::Invalid {
            name: "ACKBOX_WORKER_INSTANCE_ID".into(),
            value: id.chars().take(64).collect(),
            reason: "use at most 249 letters, digits, '.', '_' or '-'".into(),
        })
    }
}

/// Refuses a claim batch larger than the in-flight bound (it was clamped silently before).
pub fn check_batch(batch: usize, concurrency: usize) -> Result<(), ConfigError> {
    if batch > concurrency {
        return Err(ConfigError::Invalid {
            name: "ACKBOX_WORKER_BATCH".into(),
            value: batch.to_string(),
            reason: format!(
                "must not exceed ACKBOX_WORKER_CONCURRENCY ({concurrency}): a batch larger than the jobs that may run \
                 at once could never be claimed whole"
            ),
        });
    }
    Ok(())
}

/// Refuses a heartbeat longer than a third of the lease: the lease must survive a late or failed heartbeat.
pub fn check_heartbeat(heartbeat: Duration, lease: Duration) -> Result<(), ConfigError> {
    if heartbeat.is_zero() || heartbeat > lease / 3 {
        return Err(ConfigError::Invalid {
            name: "ACKBOX_HEARTBEAT_MS".into(),
            value: heartbeat.as_millis().to_string(),
            reason: format!(
                "must be between 1 and a third of ACKBOX_LEASE_MS ({} ms), so that a lease outlives a late \
                 heartbeat",
                lease.as_millis()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_settings_parse_and_bad_ones_are_refused_naming_the_variable() {
        let kq = super::parse_kind_queues(" mail=emails , thumb=media").expect("valid");
        assert_eq!(kq.get("mail").map(String::as_str), Some("emails"));
        let caps = super::parse_queue_concurrency("emails=4", 8).expect("valid");
        assert_eq!(caps.get("emails"), Some(&4));
        for (raw, conc) in [("emails=0", 8), ("emails=9", 8), ("emails=x", 8), ("bad name=1", 8), ("a=1,a=2", 8)] {
            let err = super::parse_queue_concurrency(raw, conc).expect_err(raw).to_string();
            assert!(err.contains("ACKBOX_QUEUE_CONCURRENCY"), "{err}");
        }
        assert!(super::parse_kind_queues("mail=has space")
            .expect_err("bad")
            .to_string()
            .contains("ACKBOX_KIND_QUEUES"));
    }

    #[test]
    fn instance_ids_follow_kafkas_rule() {
        assert_eq!(validate_instance_id(" worker-0.a_b ".into()).expect("valid"), "worker-0.a_b");
        assert!(validate_instance_id("has space".into()).is_err());
        assert!(validate_instance_id("slash/no".into()).is_err());
        assert!(validate_instance_id("x".repeat(250)).is_err());
        assert!(validate_instance_id("x".repeat(249)).is_ok());
    }

    #[test]
    fn values_that_used_to_be_clamped_silently_are_refused_naming_the_variable() {
        let lease = Duration::from_secs(30);
        assert!(check_heartbeat(Duration::from_secs(10), lease).is_ok());
        for bad in [Duration::from_millis(10_001), Duration::ZERO] {
            let err = check_heartbeat(bad, lease).expect_err("refused").to_string();
            assert!(err.contains("ACKBOX_HEARTBEAT_MS") && err.contains("ACKBOX_LEASE_MS"), "{err}");
        }
        assert!(check_batch(64, 64).is_ok());
        let err = check_batch(65, 64).expect_err("refused").to_string();
        assert!(err.contains("ACKBOX_WORKER_BATCH") && err.contains("ACKBOX_WORKER_CONCURRENCY"), "{err}");
    }
}
