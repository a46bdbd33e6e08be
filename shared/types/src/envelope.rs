//! The message that travels through Kafka. It carries ids only: the job row in Postgres is the truth, the message
//! just says "look at job X now". Payloads never leave the database this way. The record's value is the whole
//! message: its key is the job id, and its only headers are the job's W3C trace context (`traceparent`,
//! `tracestate`) when it has one.
//!
//! ## Versions: forward compatible within a version
//!
//! During a rolling deploy old and new workers read the same topic, so an envelope written by a newer release must
//! still work for an older worker:
//! - **Adding a field** is allowed within a version. Consumers ignore fields they do not know, and a new field must
//!   be optional for them (the job row holds the truth; an envelope field can only be a hint).
//! - **Removing a field, renaming it, or changing its meaning** requires a new version `v`. A consumer skips (and
//!   counts in `ackbox_worker_decode_failures_total`) a version it does not know, and the rescuer dispatches the job
//!   again later, so the upgrade order is: deploy workers that understand the new `v` first, then the writers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Current envelope version. A consumer rejects versions it does not know instead of guessing; fields added within a
/// version are ignored by older consumers (see the module documentation).
pub const ENVELOPE_VERSION: u32 = 1;

/// Largest envelope a consumer will try to parse; anything bigger is not ours.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024;

/// A dispatch message: "job `job_id` of `kind` is ready for attempt `attempt`".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope format version ([`ENVELOPE_VERSION`]).
    pub v: u32,
    /// The job to run.
    pub job_id: Uuid,
    /// Its kind, so a consumer can route or filter without a database read.
    pub kind: String,
    /// The attempt this dispatch is for (jobs.attempts + 1 at the time it was written).
    pub attempt: i32,
    /// When the outbox row was written.
    pub enqueued_at: DateTime<Utc>,
    /// The job's queue, so a worker can hold a message of a queue at its cap (`ACKBOX_QUEUE_CONCURRENCY`) before
    /// claiming it. A hint (added within version 1): absent, the queue is `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

/// A message value that is not a valid envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Too large to be an envelope.
    #[error("envelope is {0} bytes, over the limit")]
    TooLarge(usize),
    /// Not JSON of the right shape.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A version this build does not understand.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u32),
    /// A message without a value.
    #[error("empty message")]
    Empty,
}

impl Envelope {
    /// A dispatch for `attempt` of a job, stamped now.
    pub fn new(job_id: Uuid, kind: &str, attempt: i32) -> Self {
        Self { v: ENVELOPE_VERSION, job_id, kind: kind.to_string(), attempt, enqueued_at: Utc::now(), queue: None }
    }

    /// The same dispatch, naming the job's queue.
    pub fn in_queue(mut self, queue: &str) -> Self {
        self.queue = Some(queue.to_string());
        self
    }

    /// The job's queue (`default` when the envelope names none).
    pub fn queue(&self) -> &str {
        self.queue.as_deref().unwrap_or("default")
    }

    /// The JSON stored in `outbox.payload`.
    pub fn to_json(&self) -> serde_json::Value {
        // Serialising this struct cannot fail: every field is a plain string, number or uuid.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Decodes a Kafka message value. Never panics, whatever the bytes.
    pub fn decode(bytes: Option<&[u8]>) -> Result<Self, DecodeError> {
        let bytes = bytes.ok_or(DecodeError::Empty)?;
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let env: Envelope = serde_json::from_slice(bytes)?;
        if env.v != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(env.v));
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_through_json() {
        let env = Envelope::new(Uuid::now_v7(), "echo", 2);
        let bytes = serde_json::to_vec(&env.to_json()).expect("serialise");
        assert_eq!(Envelope::decode(Some(&bytes)).expect("decode"), env);
    }

    #[test]
    fn an_envelope_from_a_newer_release_with_an_added_field_still_decodes() {
        let env = Envelope::new(Uuid::now_v7(), "echo", 3);
        let mut newer = env.to_json();
        newer["priority"] = 7.into();
        newer["trace"] = serde_json::json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"});
        let bytes = serde_json::to_vec(&newer).expect("serialise");
        assert_eq!(Envelope::decode(Some(&bytes)).expect("an old worker reads it"), env);
    }

    #[test]
    fn garbage_and_foreign_versions_are_rejected_not_panicked_on() {
        assert!(matches!(Envelope::decode(None), Err(DecodeError::Empty)));
        assert!(matches!(Envelope::decode(Some(b"\xff\x00")), Err(DecodeError::Malformed(_))));
        assert!(matches!(Envelope::decode(Some(b"{}")), Err(DecodeError::Malformed(_))));
        let mut v = Envelope::new(Uuid::now_v7(), "noop", 1).to_json();
        v["v"] = 99.into();
        let bytes = serde_json::to_vec(&v).expect("serialise");
        assert!(matches!(Envelope::decode(Some(&bytes)), Err(DecodeError::UnsupportedVersion(99))));
        let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(Envelope::decode(Some(&huge)), Err(DecodeError::TooLarge(_))));
    }
}
