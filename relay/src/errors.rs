//! Which producer errors are worth retrying, which mean the producer itself is broken, and which mean this one row
//! can never be delivered. Modelled on Vector's Kafka sink: every code we expect is listed; anything unlisted is
//! treated as retriable, because a row that keeps failing only backs off (it never blocks others), while a needless
//! producer rebuild costs little either.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode as C;

/// What to do about a failed delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Keep the producer; back the row off and retry it later.
    Retriable,
    /// The producer is unusable (idempotence state lost, fenced, not authorised): back the row off and rebuild it.
    Fatal,
    /// This row can never be delivered as it is (too large, invalid): mark it dead and fail its job `undeliverable`.
    Undeliverable,
}

impl ErrorClass {
    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retriable => "retriable",
            ErrorClass::Fatal => "fatal",
            ErrorClass::Undeliverable => "undeliverable",
        }
    }
}

/// Codes after which the producer must be replaced.
pub const FATAL: &[C] = &[
    C::Fatal,
    C::InvalidProducerEpoch,
    C::ProducerFenced,
    C::InvalidProducerIdMapping,
    C::ClusterAuthorizationFailed,
    C::TopicAuthorizationFailed,
    C::SaslAuthenticationFailed,
    C::Authentication,
    C::UnsupportedVersion,
    C::UnsupportedForMessageFormat,
    C::InvalidConfig,
];

/// Codes that are transient: the broker is away, overloaded, electing a leader, or the topic is being created.
pub const RETRIABLE: &[C] = &[
    C::MessageTimedOut,
    C::QueueFull,
    C::BrokerTransportFailure,
    C::AllBrokersDown,
    C::RequestTimedOut,
    C::NetworkException,
    C::LeaderNotAvailable,
    C::NotLeaderForPartition,
    C::NotEnoughReplicas,
    C::NotEnoughReplicasAfterAppend,
    C::UnknownTopicOrPartition,
    C::UnknownTopic,
    C::UnknownPartition,
    C::OutOfOrderSequenceNumber,
    C::DuplicateSequenceNumber,
    C::CoordinatorLoadInProgress,
    C::KafkaStorageError,
    C::PurgeQueue,
    C::PurgeInflight,
    C::TimedOutQueue,
    C::BrokerDestroy,
];

/// Codes about the message itself: the same bytes will be refused again, by this broker or any other with the same
/// limits. (librdkafka reports a message over `message.max.bytes` locally with `MessageSizeTooLarge` too.)
pub const UNDELIVERABLE: &[C] = &[C::MessageSizeTooLarge, C::InvalidMessageSize, C::InvalidRecord, C::InvalidTopic];

/// Classifies a producer error.
pub fn classify(err: &KafkaError) -> ErrorClass {
    match err.rdkafka_error_code() {
        Some(code) if FATAL.contains(&code) => ErrorClass::Fatal,
        Some(code) if UNDELIVERABLE.contains(&code) => ErrorClass::Undeliverable,
        _ => ErrorClass::Retriable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_and_retriable_codes_are_classified_and_unlisted_ones_retry() {
        assert_eq!(classify(&KafkaError::MessageProduction(C::Fatal)), ErrorClass::Fatal);
        assert_eq!(classify(&KafkaError::MessageProduction(C::ProducerFenced)), ErrorClass::Fatal);
        assert_eq!(classify(&KafkaError::MessageProduction(C::MessageTimedOut)), ErrorClass::Retriable);
        assert_eq!(classify(&KafkaError::MessageProduction(C::MessageSizeTooLarge)), ErrorClass::Undeliverable);
        assert_eq!(classify(&KafkaError::MessageProduction(C::NotEnoughReplicas)), ErrorClass::Retriable);
        assert!(FATAL.iter().all(|c| !RETRIABLE.contains(c)), "a code is in both lists");
        assert!(UNDELIVERABLE.iter().all(|c| !RETRIABLE.contains(c) && !FATAL.contains(c)), "a code is in two lists");
    }
}
