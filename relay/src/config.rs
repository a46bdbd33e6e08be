//! Relay configuration, from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ACKBOX_RELAY_BATCH` | [`DEFAULT_BATCH`] | outbox rows claimed and produced per round |
//! | `ACKBOX_RELAY_POLL_MS` | [`DEFAULT_POLL_MS`] | longest idle wait between rounds when no NOTIFY arrives |
//! | `ACKBOX_RELAY_LINGER_MS` | [`DEFAULT_LINGER_MS`] | librdkafka `linger.ms`: how long the producer waits to fill a batch |
//! | `ACKBOX_RELAY_DELIVERY_TIMEOUT_MS` | [`DEFAULT_DELIVERY_TIMEOUT_MS`] | librdkafka `message.timeout.ms`: after it a row counts as failed and is retried later |
//! | `ACKBOX_TOPIC_PARTITIONS` | [`DEFAULT_PARTITIONS`] | partitions when the relay creates the topic (the ceiling on worker parallelism) |
//! | `ACKBOX_TOPIC_REPLICATION` | [`DEFAULT_REPLICATION`] | replication factor when the relay creates the topic (3 in production) |
//!
//! Plus `DATABASE_URL` & co. ([`DbConfig`]) and `KAFKA_BROKERS`, `ACKBOX_TOPIC`, `ACKBOX_KAFKA_OPTS` ([`KafkaConfig`]).

use std::time::Duration;

use ackbox_shared::config::{self, ConfigError, DbConfig, KafkaConfig};

/// Default rows per round.
pub const DEFAULT_BATCH: i64 = 500;
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

/// Everything the relay needs.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Database settings.
    pub db: DbConfig,
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// Rows per round.
    pub batch: i64,
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
        Ok(Self {
            db: DbConfig::from_env()?,
            kafka: KafkaConfig::from_env()?,
            batch,
            poll_interval: config::millis_or("ACKBOX_RELAY_POLL_MS", DEFAULT_POLL_MS)?,
            linger: config::millis_or("ACKBOX_RELAY_LINGER_MS", DEFAULT_LINGER_MS)?,
            delivery_timeout: config::millis_or("ACKBOX_RELAY_DELIVERY_TIMEOUT_MS", DEFAULT_DELIVERY_TIMEOUT_MS)?,
            partitions: config::parse_or("ACKBOX_TOPIC_PARTITIONS", DEFAULT_PARTITIONS)?,
            replication: config::parse_or("ACKBOX_TOPIC_REPLICATION", DEFAULT_REPLICATION)?,
        })
    }
}
