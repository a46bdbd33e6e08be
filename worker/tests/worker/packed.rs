//! Packed records (`ackbox_types::envelope`, version 2): one record dispatching several jobs, as the relay writes
//! them. Each entry is its own dispatch (slots, claims, traces), and the record's offset is stored only once every
//! one of its jobs is done.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ackbox_db::models::JobStatus;
use ackbox_testing::{dispatch, dispatch_packed};
use ackbox_worker::{async_trait, Handler, HandlerError, JobContext, TraceContext};

use crate::helpers::{start, start_with_config};

#[test]
fn every_job_of_a_packed_record_larger_than_the_worker_runs_once_and_then_its_offset_is_stored() {
    // 20 jobs in one record, 8 slots: the worker holds what does not fit and runs it as slots free up.
    let w = start(ackbox_worker::handlers::builtin());
    let ids: Vec<uuid::Uuid> = (0..20).map(|n| w.submit("echo", serde_json::json!({ "n": n }), 3)).collect();
    let jobs: Vec<_> = ids.iter().map(|id| (*id, "echo", None)).collect();
    dispatch_packed(&w.kafka, &jobs);
    for (n, id) in ids.iter().enumerate() {
        let job = w.wait_terminal(*id);
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.result, Some(serde_json::json!({ "n": n })), "each entry ran its own job");
    }
    assert_eq!(w.stop_and_committed_offset(), 1, "the one record, stored once all of it was done");
}

/// Runs until the test opens the gate; ignores cancellation, so a worker stopping meanwhile records no outcome.
#[derive(Clone, Default)]
struct Gated(Arc<tokio::sync::Notify>);

#[async_trait]
impl Handler for Gated {
    async fn run(&self, _ctx: &JobContext, _payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        self.0.notified().await;
        Ok(serde_json::Value::Null)
    }
}

#[test]
fn a_packed_records_offset_waits_for_its_last_job_even_when_later_records_are_done() {
    let gate = Gated::default();
    let mut registry = ackbox_worker::handlers::builtin();
    registry.register("gated", gate.clone());
    let w = start_with_config(registry, |c| {
        c.shutdown_grace = Duration::from_millis(300);
        c.job_timeout = Duration::from_secs(600);
    });
    let (a, held, b) = (
        w.submit("noop", serde_json::json!({}), 3),
        w.submit("gated", serde_json::json!({}), 3),
        w.submit("noop", serde_json::json!({}), 3),
    );
    dispatch_packed(&w.kafka, &[(a, "noop", None), (held, "gated", None), (b, "noop", None)]);
    let later = w.submit("noop", serde_json::json!({}), 3);
    dispatch(&w.kafka, later, "noop", 1);
    for id in [a, b, later] {
        assert_eq!(w.wait_terminal(id).status, JobStatus::Succeeded);
    }
    w.wait_status(held, JobStatus::Running);
    // Stopping gives up on the held job after the grace period; whatever was stored is committed.
    let committed = w.stop_and_committed();
    assert!(
        matches!(committed, None | Some(0)),
        "offset {committed:?} committed past the packed record while one of its jobs had no status written"
    );
    gate.0.notify_waiters();
}

/// A job and the trace context its attempt ran with.
type Seen = (uuid::Uuid, Option<TraceContext>);

/// Records the trace context each attempt ran with, by job.
#[derive(Clone, Default)]
struct Traced(Arc<Mutex<Vec<Seen>>>);

#[async_trait]
impl Handler for Traced {
    async fn run(&self, ctx: &JobContext, _payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        self.0.lock().expect("lock").push((ctx.job_id, ctx.trace_context().cloned()));
        Ok(serde_json::json!(null))
    }
}

#[test]
fn each_packed_job_runs_in_a_child_of_its_own_trace() {
    let seen = Traced::default();
    let mut registry = ackbox_worker::handlers::builtin();
    registry.register("traced", seen.clone());
    let w = start(registry);
    let (first, second) = ("4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c");
    let ids: Vec<uuid::Uuid> = (0..3).map(|_| w.submit("traced", serde_json::json!({}), 3)).collect();
    dispatch_packed(
        &w.kafka,
        &[
            (ids[0], "traced", TraceContext::from_parts(first, "00f067aa0ba902b7", true)),
            (ids[1], "traced", TraceContext::from_parts(second, "b7ad6b7169203331", true)),
            (ids[2], "traced", None),
        ],
    );
    for id in &ids {
        w.wait_terminal(*id);
    }
    let seen = seen.0.lock().expect("lock").clone();
    let trace_of = |id: uuid::Uuid| {
        seen.iter().find(|(j, _)| *j == id).and_then(|(_, t)| t.clone()).expect("a context for every job")
    };
    assert_eq!(trace_of(ids[0]).trace_id(), first);
    assert_eq!(trace_of(ids[1]).trace_id(), second);
    assert!(![first, second].contains(&trace_of(ids[2]).trace_id()), "an untraced entry starts its own trace");
}
