//! The message that travels through Kafka. It carries ids only: the job row in Postgres is the truth, the message
//! just says "look at job X now". Payloads never leave the database this way.
//!
//! ## Two record shapes
//!
//! - **One dispatch** (version 1, [`Envelope`]): the record's value is the envelope, its key the job id, and its only
//!   headers the job's W3C trace context (`traceparent`, `tracestate`) when it has one.
//! - **Several dispatches** (version 2, [`Packed`]): `{"v": 2, "jobs": [envelope, …]}`, each entry a version-1
//!   envelope plus that job's own `traceparent`/`tracestate` fields (a record has one set of headers, its jobs have
//!   one trace each). The key is the first job's id; there are no headers. The relay packs the rows of one round that
//!   go to the same topic (`ACKBOX_RELAY_RECORD_JOBS`): a broker's cost is per record, so this divides it. A consumer
//!   runs the entries as independent dispatches and stores the record's offset once all of them are done.
//!
//! [`decode_record`] reads either shape.
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
//! - Version 2 (packed records) is such a version: workers from the release that introduced it read both; the relay
//!   writes version 1 alone when `ACKBOX_RELAY_RECORD_JOBS` is 1 (for the upgrade window).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::trace::{TraceContext, TRACEPARENT, TRACESTATE};

/// Current envelope version. A consumer rejects versions it does not know instead of guessing; fields added within a
/// version are ignored by older consumers (see the module documentation).
pub const ENVELOPE_VERSION: u32 = 1;

/// Largest envelope a consumer will try to parse; anything bigger is not ours.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024;

/// Version of a record that carries several dispatches ([`Packed`]).
pub const PACKED_VERSION: u32 = 2;

/// Most dispatches one record may carry; a consumer refuses a record with more.
pub const MAX_PACKED_JOBS: usize = 256;

/// Largest packed record a consumer will try to parse (a writer keeps well under it; Kafka's default
/// `message.max.bytes` is 1 MB).
pub const MAX_PACKED_BYTES: usize = 512 * 1024;

/// A record of several dispatches: `{"v": 2, "jobs": [...]}`. Each entry is a version-1 envelope, optionally with the
/// job's `traceparent` and `tracestate` as fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Packed {
    /// [`PACKED_VERSION`].
    pub v: u32,
    /// The dispatches, in the order they were claimed.
    pub jobs: Vec<serde_json::Value>,
}

/// One dispatch read from a record, of either shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// The envelope.
    pub envelope: Envelope,
    /// The job's trace context: a packed entry's own fields (`None` for a version-1 record, whose context travels
    /// in the record's headers).
    pub trace: Option<TraceContext>,
}

/// The version field alone: which shape to parse (unknown fields are skipped).
#[derive(Deserialize)]
struct Version {
    v: u32,
}

/// A packed entry: an envelope plus the job's trace context fields.
#[derive(Deserialize)]
struct Entry {
    #[serde(flatten)]
    envelope: Envelope,
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    tracestate: Option<String>,
}

/// Decodes a Kafka record value of either shape into its dispatches (one for a version-1 record). Never panics,
/// whatever the bytes; a packed record with one bad entry is refused whole (it is not ours, or not from a release
/// this build understands).
pub fn decode_record(bytes: Option<&[u8]>) -> Result<Vec<Dispatch>, DecodeError> {
    let raw = bytes.ok_or(DecodeError::Empty)?;
    if raw.len() > MAX_PACKED_BYTES {
        return Err(DecodeError::TooLarge(raw.len()));
    }
    match serde_json::from_slice::<Version>(raw)?.v {
        PACKED_VERSION => {
            let packed: Packed = serde_json::from_slice(raw)?;
            if packed.jobs.is_empty() {
                return Err(DecodeError::Empty);
            }
            if packed.jobs.len() > MAX_PACKED_JOBS {
                return Err(DecodeError::TooMany(packed.jobs.len()));
            }
            packed
                .jobs
                .into_iter()
                .map(|job| {
                    let entry: Entry = serde_json::from_value(job)?;
                    if entry.envelope.v != ENVELOPE_VERSION {
                        return Err(DecodeError::UnsupportedVersion(entry.envelope.v));
                    }
                    let trace = entry
                        .traceparent
                        .as_deref()
                        .and_then(|tp| TraceContext::parse(tp, entry.tracestate.as_deref()));
                    Ok(Dispatch { envelope: entry.envelope, trace })
                })
                .collect()
        }
        ENVELOPE_VERSION => Ok(vec![Dispatch { envelope: Envelope::decode(bytes)?, trace: None }]),
        other => Err(DecodeError::UnsupportedVersion(other)),
    }
}

/// Encodes the value of a packed record from the outbox rows' envelopes (`outbox.payload`), each with its job's trace
/// context. Every payload must be a version-1 envelope object (the caller checks; see [`is_packable`]).
pub fn encode_packed<'a>(entries: impl IntoIterator<Item = (&'a serde_json::Value, Option<TraceContext>)>) -> Vec<u8> {
    let entries: Vec<Vec<u8>> = entries.into_iter().map(|(payload, trace)| packed_entry(payload, trace)).collect();
    join_packed(&entries)
}

/// One entry of a packed record, serialised: the row's envelope with the job's trace context as fields. Its length
/// is what the entry adds to the record, so a writer can bound a record's size without serialising anything twice.
pub fn packed_entry(payload: &serde_json::Value, trace: Option<TraceContext>) -> Vec<u8> {
    let mut entry = payload.clone();
    if let (Some(trace), Some(map)) = (trace, entry.as_object_mut()) {
        map.insert(TRACEPARENT.to_string(), trace.traceparent.into());
        if let Some(state) = trace.tracestate {
            map.insert(TRACESTATE.to_string(), state.into());
        }
    }
    // A JSON value always serialises.
    serde_json::to_vec(&entry).unwrap_or_default()
}

/// The value of a packed record (the shape of [`Packed`]) from its entries serialised by [`packed_entry`], in order.
pub fn join_packed(entries: &[Vec<u8>]) -> Vec<u8> {
    let head = format!("{{\"v\":{PACKED_VERSION},\"jobs\":[");
    let mut out = Vec::with_capacity(head.len() + entries.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    out.extend_from_slice(head.as_bytes());
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(entry);
    }
    out.extend_from_slice(b"]}");
    out
}

/// Whether an outbox payload can travel inside a packed record: a version-1 envelope object. Anything else (a row
/// written by a newer release, say) is produced as it is, alone.
pub fn is_packable(payload: &serde_json::Value) -> bool {
    payload.get("v").and_then(serde_json::Value::as_u64) == Some(u64::from(ENVELOPE_VERSION))
        && payload.get(TRACEPARENT).is_none()
        && payload.get(TRACESTATE).is_none()
}

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
    /// A message without a value (or a packed record without entries).
    #[error("empty message")]
    Empty,
    /// A packed record with more entries than [`MAX_PACKED_JOBS`].
    #[error("packed record of {0} dispatches, over the limit")]
    TooMany(usize),
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

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_packed_record_decodes_into_its_dispatches_in_order_each_with_its_own_trace() {
        let (a, b) =
            (Envelope::new(Uuid::now_v7(), "echo", 1).in_queue("mail"), Envelope::new(Uuid::now_v7(), "noop", 2));
        let trace = TraceContext::parse(TP, Some("k=v")).expect("valid");
        let bytes = encode_packed([(&a.to_json(), Some(trace.clone())), (&b.to_json(), None)]);
        let got = decode_record(Some(&bytes)).expect("decodes");
        assert_eq!(got, vec![Dispatch { envelope: a, trace: Some(trace) }, Dispatch { envelope: b, trace: None }]);
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(value["v"], 2);
        assert_eq!(value["jobs"][0]["traceparent"], TP);
        assert!(value["jobs"][1].get("traceparent").is_none());
    }

    #[test]
    fn joined_entries_are_exactly_what_serde_writes_for_packed() {
        let (a, b) =
            (Envelope::new(Uuid::now_v7(), "echo", 1).to_json(), Envelope::new(Uuid::now_v7(), "noop", 2).to_json());
        let joined: serde_json::Value = serde_json::from_slice(&encode_packed([(&a, None), (&b, None)])).expect("json");
        let packed = Packed { v: PACKED_VERSION, jobs: vec![a, b] };
        assert_eq!(joined, serde_json::to_value(&packed).expect("serialise"));
    }

    #[test]
    fn a_single_envelope_is_a_record_of_one_dispatch() {
        let env = Envelope::new(Uuid::now_v7(), "echo", 1);
        let bytes = serde_json::to_vec(&env.to_json()).expect("serialise");
        assert_eq!(decode_record(Some(&bytes)).expect("decodes"), vec![Dispatch { envelope: env, trace: None }]);
    }

    #[test]
    fn a_packed_record_that_is_not_ours_is_refused_whole() {
        let good = Envelope::new(Uuid::now_v7(), "echo", 1).to_json();
        let mut foreign = good.clone();
        foreign["v"] = 7.into();
        let bytes = encode_packed([(&good, None), (&foreign, None)]);
        assert!(matches!(decode_record(Some(&bytes)), Err(DecodeError::UnsupportedVersion(7))));
        assert!(matches!(decode_record(Some(br#"{"v":2,"jobs":[]}"#)), Err(DecodeError::Empty)));
        assert!(matches!(decode_record(Some(br#"{"v":2,"jobs":[{"v":1}]}"#)), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_record(Some(br#"{"v":2}"#)), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_record(Some(br#"{"v":3,"jobs":[]}"#)), Err(DecodeError::UnsupportedVersion(3))));
        assert!(matches!(decode_record(Some(b"[1]")), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_record(None), Err(DecodeError::Empty)));
        let many: Vec<serde_json::Value> = (0..=MAX_PACKED_JOBS).map(|_| good.clone()).collect();
        let bytes = encode_packed(many.iter().map(|v| (v, None)));
        assert!(matches!(decode_record(Some(&bytes)), Err(DecodeError::TooMany(n)) if n == MAX_PACKED_JOBS + 1));
        let huge = vec![b' '; MAX_PACKED_BYTES + 1];
        assert!(matches!(decode_record(Some(&huge)), Err(DecodeError::TooLarge(_))));
    }

    #[test]
    fn only_version_one_envelopes_without_trace_fields_are_packable() {
        let env = Envelope::new(Uuid::now_v7(), "echo", 1).to_json();
        assert!(is_packable(&env));
        let mut newer = env.clone();
        newer["v"] = 3.into();
        assert!(!is_packable(&newer));
        let mut traced = env.clone();
        traced["traceparent"] = TP.into();
        assert!(!is_packable(&traced));
        assert!(!is_packable(&serde_json::json!("text")));
    }
}
