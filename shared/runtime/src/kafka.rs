//! Kafka helpers shared by the relay, the worker and tests.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use ackbox_db::config::{or_default, ConfigError, DEFAULT_TOPIC};

/// Creating a topic failed for a reason other than "it already exists".
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The admin client could not be built or the request failed.
    #[error("kafka admin request failed: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The request failed, and librdkafka said why it could not talk to the brokers (a TLS or SASL failure, say).
    #[error("kafka admin request failed: {error}; the brokers could not be used: {reason}")]
    Unreachable {
        /// The admin request's error (a time-out, usually).
        error: rdkafka::error::KafkaError,
        /// What librdkafka reported on the connection.
        reason: String,
    },
    /// The topic does not exist (yet).
    #[error("topic {0} does not exist yet (the relay creates it, with ACKBOX_TOPIC_PARTITIONS partitions)")]
    Missing(String),
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
/// broker-wide default partition count (nisshi's get 4), which caps worker parallelism; so the relay (the one
/// component that creates topics) creates it explicitly at start-up, and no Ackbox client asks the broker to
/// auto-create it (`allow.auto.create.topics=false`).
pub async fn ensure_topic(cfg: &KafkaConfig, topic: &str, partitions: i32, replication: i32) -> Result<(), TopicError> {
    ensure_topics(cfg, &[topic.to_string()], partitions, replication).await
}

/// [`ensure_topic`] for several topics, in one request of one admin client.
async fn ensure_topics(
    cfg: &KafkaConfig,
    topics: &[String],
    partitions: i32,
    replication: i32,
) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> = cfg.client_config().create()?;
    let new: Vec<NewTopic> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication))).collect();
    // A broker that is down answers nothing: give up on this try after 5 s, so the caller says so promptly.
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(5)));
    let results = admin.create_topics(&new, &opts).await;
    // Dropping an admin client joins its polling thread, which wakes every 100 ms: not on the start-up path.
    tokio::task::spawn_blocking(move || drop(admin));
    let results = match results {
        Ok(results) => results,
        Err(e) => {
            return Err(match why_unreachable(cfg).await {
                Some(reason) => TopicError::Unreachable { error: e, reason },
                None => TopicError::Kafka(e),
            })
        }
    };
    for result in results {
        match result {
            Ok(topic) => log::info!("created topic {topic} with {partitions} partitions"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(TopicError::Refused { topic: name, code }),
        }
    }
    Ok(())
}

/// [`ensure_lanes`], retried with backoff until it succeeds: a service that starts before the broker waits for it
/// instead of exiting. Each failure names the brokers it tried and the variable that sets them, since a wrong or
/// unreachable `KAFKA_BROKERS` is the usual cause. The relay creates every lane, so a worker finds every lane it
/// reads.
pub async fn ensure_lanes_retrying(cfg: &KafkaConfig, partitions: i32, replication: i32) {
    let topics: Vec<String> = lanes(cfg).into_iter().map(|l| l.topic).collect();
    let what = format!(
        "creating topics {} at KAFKA_BROKERS={} (Kafka unreachable or refusing)",
        topics.join(", "),
        cfg.brokers
    );
    let backoff = crate::retry::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    crate::retry::retry_forever(&what, backoff, || ensure_lanes(cfg, partitions, replication)).await
}

/// [`ensure_topic`] for every priority lane of `cfg.topic`, in one request.
pub async fn ensure_lanes(cfg: &KafkaConfig, partitions: i32, replication: i32) -> Result<(), TopicError> {
    let topics: Vec<String> = lanes(cfg).into_iter().map(|l| l.topic).collect();
    ensure_topics(cfg, &topics, partitions, replication).await
}

/// `cfg` once per priority lane, highest first, each naming the lane's topic.
pub fn lanes(cfg: &KafkaConfig) -> Vec<KafkaConfig> {
    ackbox_types::priority::Priority::HIGHEST_FIRST
        .iter()
        .map(|p| KafkaConfig { topic: p.lane_topic(&cfg.topic), ..cfg.clone() })
        .collect()
}

/// How many partitions `topic` has, or `None` when the broker does not know it. A failure to reach the brokers
/// carries librdkafka's reason when it gave one.
pub async fn partition_count(cfg: &KafkaConfig, topic: &str) -> Result<Option<usize>, TopicError> {
    match probe(cfg, Some(topic)).await {
        Ok(found) => Ok(found),
        Err((error, reason)) if !reason.is_empty() => Err(TopicError::Unreachable { error, reason }),
        Err((error, _)) => Err(TopicError::Kafka(error)),
    }
}

/// Waits until the topic and its priority lanes (see [`lanes`]) exist, and returns the smallest partition count among
/// them. The relay is the one component that creates
/// topics, so a worker that starts first waits for it here, saying so (and naming `KAFKA_BROKERS` when the brokers
/// cannot be reached). A topic with fewer partitions than `max_consumers` gets a warning: Kafka gives each
/// partition to one consumer of the group, so the consumers beyond the partition count would sit idle.
pub async fn wait_for_topic(cfg: &KafkaConfig, max_consumers: Option<u32>) -> usize {
    // All lanes at once: a worker waits for the slowest lane, not for the sum of them.
    let lanes = lanes(cfg);
    let counts = futures::future::join_all(lanes.iter().map(|lane| wait_for_one(lane, max_consumers))).await;
    counts.into_iter().min().unwrap_or(usize::MAX)
}

/// [`wait_for_topic`] for one topic.
async fn wait_for_one(cfg: &KafkaConfig, max_consumers: Option<u32>) -> usize {
    let what = format!("looking up topic {} at KAFKA_BROKERS={}", cfg.topic, cfg.brokers);
    let backoff = crate::retry::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let partitions = crate::retry::retry_forever(&what, backoff, || async {
        partition_count(cfg, &cfg.topic).await?.ok_or_else(|| TopicError::Missing(cfg.topic.clone()))
    })
    .await;
    match max_consumers {
        Some(max) if partitions < max as usize => log::warn!(
            "topic {} has {partitions} partitions but ACKBOX_WORKER_MAX_CONSUMERS is {max}: consumers beyond \
             {partitions} will sit idle (add partitions with kafka-topics.sh --alter --partitions {max})",
            cfg.topic
        ),
        _ => log::info!("topic {} has {partitions} partitions", cfg.topic),
    }
    partitions
}

/// Keeps the first few distinct errors librdkafka reported on a client's connections: the cause (a refused
/// certificate, say) comes first, and its consequence ("all brokers are down") after it.
#[derive(Default)]
struct LastError(std::sync::Mutex<Vec<String>>);

impl LastError {
    fn keep(&self, message: String) {
        let mut seen = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() < 3 && !seen.contains(&message) {
            seen.push(message);
        }
    }
}

impl rdkafka::client::ClientContext for LastError {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        if matches!(level, L::Emerg | L::Alert | L::Critical | L::Error | L::Warning) {
            self.keep(format!("{fac}: {message}"));
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.keep(format!("{error}: {reason}"));
    }
}

impl rdkafka::consumer::ConsumerContext for LastError {}

/// Why the brokers cannot be used, in librdkafka's words, or `None` when they can (or it said nothing).
async fn why_unreachable(cfg: &KafkaConfig) -> Option<String> {
    match probe(cfg, None).await {
        Err((_, reason)) if !reason.is_empty() => Some(reason),
        _ => None,
    }
}

/// Asks the brokers for metadata (of `topic`, or of every topic) with a short-lived consumer. Returns `topic`'s
/// partition count (`None`: the broker does not know it, or no topic was asked for), or the request's error with
/// what librdkafka reported on its connections (empty when it said nothing). The admin client never serves its main
/// queue, where librdkafka puts connection errors, so a TLS handshake refused for a wrong CA shows there only as a
/// time-out; this consumer serves that queue, so [`LastError`] sees them.
async fn probe(cfg: &KafkaConfig, topic: Option<&str>) -> Result<Option<usize>, (rdkafka::error::KafkaError, String)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let (client, name) = (cfg.client_config(), topic.map(str::to_string));
    tokio::task::spawn_blocking(move || {
        let probe: BaseConsumer<LastError> =
            client.create_with_context(LastError::default()).map_err(|e| (e, String::new()))?;
        let found = probe.fetch_metadata(name.as_deref(), Duration::from_secs(5)).map(|metadata| {
            let name = name.as_deref()?;
            metadata.topics().iter().find(|t| t.name() == name).and_then(|t| match t.error() {
                None if !t.partitions().is_empty() => Some(t.partitions().len()),
                _ => None,
            })
        });
        found.map_err(|error| {
            // Serves the queued log and error events, which call LastError: only a failure needs their reason, and
            // serving them takes 100 ms, which every start-up would otherwise wait per topic.
            for _ in 0..5 {
                let _ = probe.poll(Duration::from_millis(20));
            }
            (error, probe.context().0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("; "))
        })
    })
    .await
    .unwrap_or_else(|_| Err((rdkafka::error::KafkaError::Canceled, String::new())))
}

/// Kafka's rule for a topic name, which it applies to a `group.instance.id` too: at most 249 of letters, digits,
/// `.`, `_` and `-` (emptiness is the caller's to judge).
pub fn follows_kafka_name_rule(name: &str) -> bool {
    name.len() <= 249 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Default Kafka bootstrap servers (the local nisshi broker started by `make up`).
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:9092";

/// Kafka settings common to the relay and the worker. Everything broker-specific lives here so the same binaries
/// run against nisshi locally and Apache Kafka in production.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topic carrying job dispatch messages.
    pub topic: String,
    /// Extra librdkafka properties applied to every client.
    pub extra: Vec<(String, String)>,
}

/// The Kafka settings of the relay and the worker, as clap arguments (`--help` lists them with their defaults).
#[derive(Clone, Debug, clap::Parser)]
pub struct KafkaArgs {
    /// bootstrap.servers: host:port,host:port.
    #[arg(long, env = "KAFKA_BROKERS", default_value = DEFAULT_KAFKA_BROKERS, value_name = "KAFKA_BROKERS")]
    pub kafka_brokers: String,
    /// The topic that carries job dispatch messages.
    #[arg(long, env = "ACKBOX_TOPIC", default_value = DEFAULT_TOPIC, value_name = "ACKBOX_TOPIC")]
    pub topic: String,
    /// Extra librdkafka settings, key=value,key=value: security.protocol=SSL|SASL_SSL, ssl.ca.location,
    /// sasl.mechanism=PLAIN|SCRAM-SHA-256|SCRAM-SHA-512, sasl.username, sasl.password, ... (never shown:
    /// it may hold a password).
    #[arg(
        long,
        env = "ACKBOX_KAFKA_OPTS",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true,
        value_name = "ACKBOX_KAFKA_OPTS"
    )]
    pub kafka_opts: String,
}

impl TryFrom<KafkaArgs> for KafkaConfig {
    type Error = ConfigError;

    fn try_from(args: KafkaArgs) -> Result<Self, ConfigError> {
        let extra = parse_kafka_opts(&args.kafka_opts).map_err(|reason| ConfigError::Invalid {
            name: "ACKBOX_KAFKA_OPTS".into(),
            // The value may hold SASL credentials: never echo it.
            value: "<redacted>".into(),
            reason,
        })?;
        Ok(Self {
            brokers: or_default(args.kafka_brokers, DEFAULT_KAFKA_BROKERS),
            topic: or_default(args.topic, DEFAULT_TOPIC),
            extra,
        })
    }
}

impl KafkaConfig {
    /// Reads `KAFKA_BROKERS`, `ACKBOX_TOPIC` and `ACKBOX_KAFKA_OPTS` ([`KafkaArgs`] from the environment alone).
    pub fn from_env() -> Result<Self, ConfigError> {
        <KafkaArgs as clap::Parser>::try_parse_from(["ackbox"]).map_err(ConfigError::from_clap)?.try_into()
    }

    /// A librdkafka client config with the brokers and extra settings applied.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        // Topics are created explicitly with the configured partition count (`kafka::ensure_topic`); a producer's
        // metadata request must not let the broker create one first with its own default count.
        cfg.set("allow.auto.create.topics", "false");
        for (k, v) in &self.extra {
            cfg.set(k, v);
        }
        cfg
    }
}

fn parse_kafka_opts(raw: &str) -> Result<Vec<(String, String)>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, pair)| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
            _ => Err(format!(
                "expected key=value, got an entry without a key (entry {}); entries are separated by commas, so a \
                 value cannot hold one",
                i + 1
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_opts_parse_pairs_and_reject_garbage() {
        let opts = parse_kafka_opts("security.protocol=SASL_SSL, sasl.mechanism=PLAIN,").expect("valid");
        assert_eq!(
            opts,
            vec![
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                ("sasl.mechanism".to_string(), "PLAIN".to_string())
            ]
        );
        assert!(parse_kafka_opts("novalue").is_err());
        assert!(parse_kafka_opts("=x").is_err());
    }

    #[test]
    fn a_bad_entry_is_named_by_its_place_in_the_list() {
        // The value itself is redacted in the configuration error (it may hold a password), so its place is the hint.
        let err = parse_kafka_opts("acks=all, debug=cgrp,fetch").expect_err("fetch is not key=value");
        assert!(err.contains("entry 3"), "{err}");
    }
}
