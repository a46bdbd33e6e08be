//! From one round's outbox rows to Kafka records. The rows bound for the same topic travel together, up to
//! `ACKBOX_RELAY_RECORD_JOBS` in one packed record (`ackbox_types::envelope`, version 2): a broker's cost is per
//! record (on nisshi one row insert per record and per header, and a header query per fetched record), so packing
//! divides it by the record size. A row travels alone, exactly as written (its envelope as the value, its headers as
//! the record's headers), when:
//! - it is the only one of its topic in the round (a packed record of one would only be bigger);
//! - it failed before (`attempts > 0`): a packed record the broker refused for good says nothing about which row made
//!   it fail, so each is retried alone and only a row refused on its own is marked dead;
//! - its envelope is not a version-1 one, or its headers are not just a trace context (rows written by another
//!   release): the relay never rewrites what it does not understand.

use ackbox_db::models::OutboxMessage;
use ackbox_types::envelope::{is_packable, join_packed, packed_entry};
use ackbox_types::priority::Priority;
use ackbox_types::trace::{TraceContext, TRACEPARENT, TRACESTATE};
use rdkafka::message::{Header, OwnedHeaders};

use crate::config::RelayConfig;

/// Bytes of envelopes a packed record is closed at (well under Kafka's default 1 MB `message.max.bytes` and the
/// consumer's `MAX_PACKED_BYTES`, whatever the kinds' names and the trace states).
const PACKED_BUDGET: usize = 64 * 1024;

/// One record to produce.
pub(crate) struct Record {
    /// Destination topic (the kind's route and the priority's lane applied).
    pub(crate) topic: String,
    /// The record key: the job id of a lone row, the first job's id of a packed record.
    pub(crate) key: String,
    /// The record value.
    pub(crate) value: Vec<u8>,
    /// A lone row's headers; a packed record has none (its jobs' contexts are in their entries).
    pub(crate) headers: OwnedHeaders,
    /// Indexes of the rows it carries, into the round's rows.
    pub(crate) rows: Vec<usize>,
}

impl Record {
    /// Whether it carries more than one row.
    pub(crate) fn packed(&self) -> bool {
        self.rows.len() > 1
    }
}

/// The destination topic of a row.
pub(crate) fn topic(config: &RelayConfig, row: &OutboxMessage) -> String {
    let kind = row.payload.get("kind").and_then(|k| k.as_str());
    config.topic_for(kind, &row.topic, Priority::from_i16(row.priority))
}

/// A pack being filled: its rows, each with its serialised entry, and their bytes so far.
struct Open {
    topic: String,
    members: Vec<(usize, Vec<u8>)>,
    bytes: usize,
}

/// The round's records, at most `record_jobs` rows each, with `topic_of` naming each row's destination; every row
/// is in exactly one, and within a record the rows keep their claim order. (Records are sent together and the
/// worker claims what it receives in batches, so the order between records is not a promise anyway.)
pub(crate) fn records(
    rows: &[OutboxMessage],
    record_jobs: usize,
    topic_of: impl Fn(&OutboxMessage) -> String,
) -> Vec<Record> {
    let mut out = Vec::new();
    // A round has few topics: a linear search.
    let mut open: Vec<Open> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let topic = topic_of(row);
        let Some(trace) = packable(record_jobs, row) else {
            out.push(alone(rows, i, topic));
            continue;
        };
        let entry = packed_entry(&row.payload, trace);
        let at = open.iter().position(|o| o.topic == topic).unwrap_or_else(|| {
            open.push(Open { topic, members: Vec::new(), bytes: 0 });
            open.len() - 1
        });
        let pack = &mut open[at];
        pack.bytes += entry.len();
        pack.members.push((i, entry));
        if pack.members.len() >= record_jobs || pack.bytes >= PACKED_BUDGET {
            out.push(close(rows, open.remove(at)));
        }
    }
    out.extend(open.into_iter().map(|pack| close(rows, pack)));
    out
}

/// `Some(its trace context)` when the row may travel in a packed record (see the module documentation).
fn packable(record_jobs: usize, row: &OutboxMessage) -> Option<Option<TraceContext>> {
    if record_jobs < 2 || row.attempts > 0 || !is_packable(&row.payload) {
        return None;
    }
    let headers = row.headers.as_object()?;
    if headers.keys().any(|k| k != TRACEPARENT && k != TRACESTATE) {
        return None;
    }
    let state = match headers.get(TRACESTATE) {
        None => None,
        Some(s) => Some(s.as_str()?),
    };
    match headers.get(TRACEPARENT) {
        None => state.is_none().then_some(None),
        // Only a context that survives parsing unchanged moves into an entry; anything else is produced as written.
        Some(tp) => {
            let tp = tp.as_str()?;
            let trace = TraceContext::parse(tp, state)?;
            (trace.traceparent == tp && trace.tracestate.as_deref() == state).then_some(Some(trace))
        }
    }
}

/// A pack of one row is produced alone; otherwise one packed record.
fn close(rows: &[OutboxMessage], pack: Open) -> Record {
    if let [(only, _)] = pack.members[..] {
        return alone(rows, only, pack.topic);
    }
    let key = rows[pack.members[0].0].key.clone();
    let (indexes, entries): (Vec<usize>, Vec<Vec<u8>>) = pack.members.into_iter().unzip();
    Record { topic: pack.topic, key, value: join_packed(&entries), headers: OwnedHeaders::new(), rows: indexes }
}

/// The row as written: its envelope, key and headers.
fn alone(rows: &[OutboxMessage], i: usize, topic: String) -> Record {
    let row = &rows[i];
    let value = serde_json::to_vec(&row.payload).unwrap_or_default();
    Record { topic, key: row.key.clone(), value, headers: headers(row), rows: vec![i] }
}

fn headers(row: &OutboxMessage) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(map) = row.headers.as_object() {
        for (k, v) in map {
            let value = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            headers = headers.insert(Header { key: k, value: Some(value.as_bytes()) });
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use ackbox_types::envelope::{decode_record, Envelope};
    use rdkafka::message::Headers;
    use uuid::Uuid;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn row(id: i64, topic: &str) -> OutboxMessage {
        let env = Envelope::new(Uuid::now_v7(), "noop", 1);
        OutboxMessage {
            id,
            aggregate_id: env.job_id,
            topic: topic.to_string(),
            key: env.job_id.to_string(),
            payload: env.to_json(),
            headers: serde_json::json!({}),
            created_at: chrono::Utc::now(),
            available_at: chrono::Utc::now(),
            published_at: None,
            attempts: 0,
            last_error: None,
            dead_at: None,
            priority: 1,
        }
    }

    fn by_row_topic(r: &OutboxMessage) -> String {
        r.topic.clone()
    }

    /// The job ids a record dispatches, in order.
    fn jobs(record: &Record) -> Vec<Uuid> {
        decode_record(Some(&record.value))
            .expect("a record the worker reads")
            .iter()
            .map(|d| d.envelope.job_id)
            .collect()
    }

    #[test]
    fn a_topics_rows_travel_together_up_to_the_record_size_in_claim_order() {
        let rows: Vec<_> = (0..40).map(|i| row(i, if i % 4 == 3 { "other" } else { "main" })).collect();
        let records = records(&rows, 16, by_row_topic);
        let mut sizes: Vec<(String, usize)> = records.iter().map(|r| (r.topic.clone(), r.rows.len())).collect();
        sizes.sort();
        assert_eq!(sizes, [("main".into(), 14), ("main".into(), 16), ("other".into(), 10)]);
        let mut seen: Vec<usize> = records.iter().flat_map(|r| r.rows.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<_>>(), "every row in exactly one record");
        for r in &records {
            assert!(r.packed() && r.headers.count() == 0, "a packed record has no headers");
            assert_eq!(jobs(r), r.rows.iter().map(|&i| rows[i].aggregate_id).collect::<Vec<_>>());
            assert_eq!(r.key, rows[r.rows[0]].key);
            assert!(r.rows.windows(2).all(|w| w[0] < w[1]), "claim order kept");
        }
    }

    #[test]
    fn a_lone_row_a_retried_row_and_a_foreign_row_are_produced_as_written() {
        let mut rows: Vec<_> = (0..6).map(|i| row(i, "main")).collect();
        rows[1].attempts = 1;
        rows[2].headers = serde_json::json!({"content-type": "application/json", "traceparent": TP});
        rows[3].payload["v"] = 3.into();
        rows[5].topic = "lone".into();
        let records = records(&rows, 16, by_row_topic);
        let alone: Vec<&Record> = records.iter().filter(|r| !r.packed()).collect();
        assert_eq!(alone.iter().map(|r| r.rows[0]).collect::<Vec<_>>(), [1, 2, 3, 5]);
        for r in &alone {
            let i = r.rows[0];
            assert_eq!(r.value, serde_json::to_vec(&rows[i].payload).expect("json"), "the envelope as written");
            assert_eq!(r.key, rows[i].key);
        }
        assert_eq!(alone[1].headers.count(), 2, "its headers as written");
        let packed: Vec<&Record> = records.iter().filter(|r| r.packed()).collect();
        assert_eq!(packed.len(), 1);
        assert_eq!(packed[0].rows, [0, 4]);
    }

    #[test]
    fn one_job_per_record_produces_every_row_alone() {
        let rows: Vec<_> = (0..5).map(|i| row(i, "main")).collect();
        let records = records(&rows, 1, by_row_topic);
        assert_eq!(records.len(), 5);
        assert!(records.iter().all(|r| !r.packed()));
    }

    #[test]
    fn each_packed_job_keeps_its_own_trace_context() {
        let mut rows: Vec<_> = (0..3).map(|i| row(i, "main")).collect();
        rows[0].headers = serde_json::json!({"traceparent": TP, "tracestate": "k=v"});
        rows[2].headers = serde_json::json!({"traceparent": "not a traceparent"});
        let records = records(&rows, 16, by_row_topic);
        let packed = records.iter().find(|r| r.packed()).expect("a packed record");
        assert_eq!(packed.rows, [0, 1], "an unparseable context is produced as written, alone");
        let dispatches = decode_record(Some(&packed.value)).expect("decodes");
        let trace = dispatches[0].trace.as_ref().expect("the first job's context");
        assert_eq!((trace.traceparent.as_str(), trace.tracestate.as_deref()), (TP, Some("k=v")));
        assert_eq!(dispatches[1].trace, None);
    }
}
