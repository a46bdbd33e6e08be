//! W3C trace context: the `traceparent` a dispatch record carries reaches the handler as `ctx.trace_context()`, a
//! child of the submit span in the same trace; a record without one still gives the handler a context to pass on.

use std::sync::{Arc, Mutex};

use ackbox_testing::{dispatch, dispatch_with_headers};
use ackbox_worker::{async_trait, Handler, HandlerError, JobContext, TraceContext};

use crate::helpers::start;

/// Records the trace context each attempt ran with.
#[derive(Clone, Default)]
struct Traced(Arc<Mutex<Vec<Option<TraceContext>>>>);

#[async_trait]
impl Handler for Traced {
    async fn run(&self, ctx: &JobContext, _payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        self.0.lock().expect("lock").push(ctx.trace_context().cloned());
        Ok(serde_json::json!(null))
    }
}

#[test]
fn the_handler_runs_in_a_child_of_the_trace_its_record_carries() {
    let seen = Traced::default();
    let mut registry = ackbox_worker::handlers::builtin();
    registry.register("traced", seen.clone());
    let w = start(registry);
    let submit_span = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = w.submit("traced", serde_json::json!({}), 3);
    dispatch_with_headers(&w.kafka, traced, "traced", 1, &[("traceparent", submit_span), ("tracestate", "congo=t61")]);
    w.wait_terminal(traced);
    let plain = w.submit("traced", serde_json::json!({}), 3);
    dispatch(&w.kafka, plain, "traced", 1);
    w.wait_terminal(plain);

    let seen = seen.0.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2);
    let child = seen[0].clone().expect("a context for the traced job");
    assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "the submit's trace");
    assert_ne!(child.span_id(), "00f067aa0ba902b7", "the attempt's own span");
    assert_eq!(child.tracestate.as_deref(), Some("congo=t61"));
    let fresh = seen[1].clone().expect("a context even without a traceparent");
    assert_ne!(fresh.trace_id(), child.trace_id(), "a new trace");
}
