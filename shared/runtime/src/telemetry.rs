//! Traces: OpenTelemetry spans for the submit (api), the publish (relay) and the attempt (worker), joined into one
//! trace by the job's W3C trace context, and exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! Without an endpoint nothing is exported, but spans still get real ids: the api starts a trace for a submit that
//! came without a `traceparent`, and the worker hands its handler a context to pass on, either way. The exporter is
//! `opentelemetry-otlp` over HTTP (protobuf by default; `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_SERVICE_NAME` and the other standard variables apply) behind a batch processor
//! on a thread of its own, so a slow or absent collector never slows a request.

use std::sync::OnceLock;

use ackbox_types::trace::TraceContext;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// The span API our callers need: kinds, attributes, status, and the trait with `set_attribute`, `set_status`, `end`.
pub use opentelemetry::trace::{Span as SpanMethods, SpanKind, Status};
pub use opentelemetry::KeyValue;
/// A span of ours; it ends when dropped (or at [`opentelemetry::trace::Span::end`]).
pub type Span = opentelemetry_sdk::trace::Span;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The exporter could not be built from the `OTEL_EXPORTER_OTLP_*` settings.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry exporter: {0}")]
pub struct TelemetryError(String);

/// Flushes and stops the exporter when dropped (or at [`Telemetry::shutdown`]): hold it for the life of `main`.
#[derive(Debug)]
pub struct Telemetry {
    exporting: bool,
}

/// Whether an OTLP endpoint is configured.
pub fn endpoint_configured() -> bool {
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// Installs this process's tracer provider as `service` (unless `OTEL_SERVICE_NAME` names it), exporting over OTLP
/// when an endpoint is configured. Call once, early in `main`; later calls keep the first provider.
pub fn init(service: &'static str) -> Result<Telemetry, TelemetryError> {
    let exporting = endpoint_configured();
    // The blocking HTTP client of the exporter may not be built inside an async runtime: build it on a thread of
    // its own, whatever the caller runs on.
    let provider = std::thread::scope(|s| s.spawn(move || build(service, exporting)).join())
        .map_err(|_| TelemetryError("building the exporter panicked".into()))??;
    if PROVIDER.set(provider).is_err() {
        log::debug!("telemetry was already initialised; keeping the first provider");
    }
    if exporting {
        log::info!("exporting traces over OTLP");
    }
    Ok(Telemetry { exporting })
}

fn build(service: &'static str, exporting: bool) -> Result<SdkTracerProvider, TelemetryError> {
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service);
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
    if exporting {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter (bounded by the exporter's own timeout).
    pub fn shutdown(&self) {
        if !self.exporting {
            return;
        }
        if let Some(p) = PROVIDER.get() {
            // The export is blocking HTTP: off any async runtime, on a thread of its own.
            let p = p.clone();
            let _ = std::thread::spawn(move || {
                if let Err(e) = p.shutdown() {
                    log::warn!("flushing traces at shutdown failed: {e}");
                }
            })
            .join();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn tracer() -> SdkTracer {
    // A process that never called `init` (a test, a tool) still gets real span ids, and exports nothing.
    PROVIDER.get_or_init(|| SdkTracerProvider::builder().build()).tracer("ackbox")
}

/// The remote parent a W3C context names.
fn parent_context(parent: &TraceContext) -> Option<Context> {
    let trace_id = TraceId::from_hex(parent.trace_id()).ok()?;
    let span_id = SpanId::from_hex(parent.span_id()).ok()?;
    let flags = if parent.sampled() { TraceFlags::SAMPLED } else { TraceFlags::default() };
    let state = parent.tracestate.as_deref().and_then(|s| s.parse::<TraceState>().ok()).unwrap_or_default();
    Some(Context::new().with_remote_span_context(SpanContext::new(trace_id, span_id, flags, true, state)))
}

/// Starts a span named `name` as a child of `parent`, or as the root of a new trace without one, and returns it with
/// its own W3C context (the `tracestate` of the parent passed along): the context to store or send on, so the next
/// hop becomes its child.
pub fn start_span(
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    parent: Option<&TraceContext>,
    attributes: Vec<KeyValue>,
) -> (Span, TraceContext) {
    let cx = parent.and_then(parent_context).unwrap_or_default();
    let builder = tracer().span_builder(name).with_kind(kind).with_attributes(attributes);
    let span = tracer().build_with_context(builder, &cx);
    let sc = opentelemetry::trace::Span::span_context(&span).clone();
    let own = TraceContext::from_parts(&sc.trace_id().to_string(), &sc.span_id().to_string(), sc.is_sampled()).map(
        |mut t| {
            t.tracestate = parent.and_then(|p| p.tracestate.clone());
            t
        },
    );
    // The SDK always makes valid ids; should it not, the parent's context still carries the trace on.
    let own = own.or_else(|| parent.cloned()).unwrap_or_else(|| TraceContext {
        traceparent: format!("00-{}-{}-01", uuid_hex(32), uuid_hex(16)),
        tracestate: None,
    });
    (span, own)
}

fn uuid_hex(len: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..len].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_span_keeps_the_trace_and_the_state_and_gets_an_id_of_its_own() {
        let parent = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Some("congo=t61"))
            .expect("valid");
        let (_span, child) = start_span("child", SpanKind::Internal, Some(&parent), vec![]);
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert!(child.sampled());
        assert_eq!(child.tracestate.as_deref(), Some("congo=t61"));
    }

    #[test]
    fn without_a_parent_a_new_trace_starts() {
        let (_a, a) = start_span("a", SpanKind::Server, None, vec![]);
        let (_b, b) = start_span("b", SpanKind::Server, None, vec![]);
        assert_ne!(a.trace_id(), b.trace_id());
        assert!(TraceContext::parse(&a.traceparent, None).is_some(), "{a:?} is a valid traceparent");
    }
}
