//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and `tracestate` a job carries from
//! its submit, through every outbox row and Kafka record of it, to the handler.

use serde::{Deserialize, Serialize};

/// Kafka record header (and HTTP header) names, as W3C Trace Context spells them.
pub const TRACEPARENT: &str = "traceparent";
/// See [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";
/// Longest `tracestate` kept (the W3C limit for what a vendor must propagate); a longer one is dropped, never cut.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// A valid W3C trace context: a `traceparent` and, optionally, its `tracestate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// `version-traceid-parentid-flags`, e.g. `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
    pub traceparent: String,
    /// Vendor-specific state, passed along untouched.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Parses incoming headers. An invalid `traceparent` yields `None` (the W3C rule: start a new trace rather than
    /// fail the request); an invalid or oversized `tracestate` is dropped and the `traceparent` kept.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = traceparent.trim();
        if !valid_traceparent(traceparent) {
            return None;
        }
        let tracestate = tracestate.map(str::trim).filter(|s| valid_tracestate(s)).map(str::to_string);
        // Only version 00 is understood; a higher version is read as 00 from its first four fields (the W3C rule).
        Some(Self { traceparent: traceparent[..55].to_string(), tracestate })
    }

    /// The context stored in a row's nullable `traceparent` and `tracestate` columns (`None` without a traceparent).
    pub fn from_columns(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        Self::parse(traceparent?, tracestate)
    }

    /// Builds a context from its parts: a 32-hex trace id, a 16-hex span id and whether it is sampled.
    pub fn from_parts(trace_id: &str, span_id: &str, sampled: bool) -> Option<Self> {
        let flags = if sampled { "01" } else { "00" };
        Self::parse(&format!("00-{trace_id}-{span_id}-{flags}"), None)
    }

    /// The 32-hex trace id.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    /// The 16-hex id of the span this context names as parent.
    pub fn span_id(&self) -> &str {
        &self.traceparent[36..52]
    }

    /// Whether the caller sampled the trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.traceparent[53..55], 16).is_ok_and(|f| f & 1 == 1)
    }

    /// The Kafka record headers (and outbox `headers` entries) that carry this context.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![(TRACEPARENT, self.traceparent.as_str())];
        if let Some(state) = &self.tracestate {
            out.push((TRACESTATE, state.as_str()));
        }
        out
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `version-traceid-parentid-flags` with version ≠ `ff`, lowercase hex, non-zero ids; version 00 is exactly 55
/// characters, a later version may carry more after a `-`.
fn valid_traceparent(s: &str) -> bool {
    if s.len() < 55 || !s.is_ascii() {
        return false;
    }
    let (version, trace_id, span_id, flags) = (&s[0..2], &s[3..35], &s[36..52], &s[53..55]);
    let dashes = s.as_bytes()[2] == b'-' && s.as_bytes()[35] == b'-' && s.as_bytes()[52] == b'-';
    let fields = [version, trace_id, span_id, flags].iter().all(|f| is_lower_hex(f));
    let length_ok = if version == "00" { s.len() == 55 } else { s.len() == 55 || s.as_bytes()[55] == b'-' };
    dashes
        && fields
        && length_ok
        && version != "ff"
        && trace_id.bytes().any(|b| b != b'0')
        && span_id.bytes().any(|b| b != b'0')
}

/// Printable ASCII list members (`key=value`, comma-separated), at most [`MAX_TRACESTATE_LEN`] characters.
fn valid_tracestate(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TRACESTATE_LEN
        && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && s.split(',').map(str::trim).filter(|m| !m.is_empty()).all(|m| m.contains('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_kept_and_read() {
        let t = TraceContext::parse(VALID, Some("congo=t61rcWkgMzE")).expect("valid");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id(), "00f067aa0ba902b7");
        assert!(t.sampled());
        assert_eq!(t.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(t.headers(), vec![("traceparent", VALID), ("tracestate", "congo=t61rcWkgMzE")]);
    }

    #[test]
    fn invalid_traceparents_are_refused_and_a_bad_tracestate_is_dropped_alone() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-0",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad:?}");
        }
        let later = TraceContext::parse(&format!("01{}-future", &VALID[2..]), None).expect("a later version is read");
        assert_eq!(later.traceparent, format!("01{}", &VALID[2..]));
        let long = "a=".to_string() + &"b".repeat(MAX_TRACESTATE_LEN);
        for bad_state in ["no-equals-sign", "a=\u{7f}", long.as_str()] {
            let t = TraceContext::parse(VALID, Some(bad_state)).expect("traceparent kept");
            assert_eq!(t.tracestate, None, "{bad_state:?}");
        }
        assert_eq!(
            TraceContext::from_parts("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false)
                .map(|t| t.sampled()),
            Some(false)
        );
    }
}
