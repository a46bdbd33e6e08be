//! Kafka helpers shared by the relay, the worker and tests.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;

/// Creating a topic failed for a reason other than "it already exists".
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The admin client could not be built or the request failed.
    #[error("kafka admin request failed: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The broker refused to create the topic.
    #[error("cannot create topic {topic}: {code}")]
    Refused {
        /// Topic name.
        topic: String,
        /// Broker error code.
        code: RDKafkaErrorCode,
    },
}

/// Creates `topic` with `partitions` partitions unless it exists. Apache Kafka's auto-created topics get the
/// broker-wide default partition count (nisshi's get 4), which caps worker parallelism; so the relay and the worker
/// create the topic explicitly at start-up, and their clients never ask the broker to auto-create it
/// (`allow.auto.create.topics=false`).
pub async fn ensure_topic(cfg: &KafkaConfig, topic: &str, partitions: i32, replication: i32) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> = cfg.client_config().create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    // A broker that is down answers nothing: give up on this try after 5 s, so the caller says so promptly.
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(5)));
    let results = admin.create_topics([&new], &opts).await?;
    for result in results {
        match result {
            Ok(_) => log::info!("created topic {topic} with {partitions} partitions"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(TopicError::Refused { topic: name, code }),
        }
    }
    Ok(())
}

/// [`ensure_topic`], retried with backoff until it succeeds: a service that starts before the broker waits for it
/// instead of exiting. Each failure names the brokers it tried and the variable that sets them, since a wrong or
/// unreachable `KAFKA_BROKERS` is the usual cause.
pub async fn ensure_topic_retrying(cfg: &KafkaConfig, partitions: i32, replication: i32) {
    let what = format!("creating topic {} at KAFKA_BROKERS={} (Kafka unreachable or refusing)", cfg.topic, cfg.brokers);
    let backoff = crate::retry::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    crate::retry::retry_forever(&what, backoff, || ensure_topic(cfg, &cfg.topic, partitions, replication)).await
}
