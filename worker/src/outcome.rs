//! Checks on what a handler returns, before anything is written: Postgres refuses some JSON that serde accepts, and a
//! refused row must fail its own job (`result_unstorable`), never the batch it was written with.
//!
//! - A NUL character (`"\u0000"`) in any string or key: `jsonb` cannot hold it.
//! - A result or error larger than `ACKBOX_MAX_RESULT_BYTES` (1 MiB by default) once encoded.
//! - A number that is not finite. `serde_json::Value` cannot hold one today (it turns NaN and infinities into
//!   `null`), and `jsonb`'s `numeric` holds every finite `f64`, `i64` and `u64`; the check keeps that true if the
//!   value type ever changes (for example with serde_json's `arbitrary_precision`).

use serde_json::Value;

use crate::handler::HandlerError;

/// The error code of an outcome that cannot be stored.
pub(crate) const UNSTORABLE: &str = "result_unstorable";

/// Why `value` cannot be stored, if it cannot.
pub(crate) fn check_value(value: &Value, max_bytes: usize) -> Result<(), String> {
    if let Some(problem) = unstorable_part(value) {
        return Err(problem);
    }
    let size = encoded_size(value);
    if size > max_bytes {
        return Err(format!("it is {size} bytes of JSON, over the limit of {max_bytes} (ACKBOX_MAX_RESULT_BYTES)"));
    }
    Ok(())
}

/// The result as it may be written, or the permanent failure that replaces it.
pub(crate) fn check_result(result: &Value, max_bytes: usize) -> Result<(), HandlerError> {
    check_value(result, max_bytes)
        .map_err(|why| HandlerError::permanent(UNSTORABLE, format!("the handler's result cannot be stored: {why}")))
}

/// The error as it may be written, or the permanent failure that replaces it.
pub(crate) fn check_error(err: &HandlerError, max_bytes: usize) -> Result<(), HandlerError> {
    let as_json = serde_json::json!({"code": err.code, "message": err.message});
    check_value(&as_json, max_bytes).map_err(|why| {
        HandlerError::permanent(UNSTORABLE, format!("the handler's error (code and message) cannot be stored: {why}"))
    })
}

fn unstorable_part(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some("a string contains a NUL character (\\u0000)".into()),
        Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => Some(format!("the number {n} is not finite")),
        Value::Array(items) => items.iter().find_map(unstorable_part),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some("a key contains a NUL character (\\u0000)".into())
            } else {
                unstorable_part(v)
            }
        }),
        _ => None,
    }
}

/// Bytes of compact JSON, counted without building the string.
fn encoded_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to an infallible sink cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_anywhere_oversized_values_and_nothing_else_are_refused() {
        let limit = 64;
        assert!(check_value(&serde_json::json!({"a": [1, 2.5, "fine", null, {"b": true}]}), limit).is_ok());
        assert!(check_value(&serde_json::json!({"a": ["x\u{0000}y"]}), limit).is_err());
        assert!(check_value(&serde_json::json!({"k\u{0000}": 1}), limit).is_err());
        let big = serde_json::json!("x".repeat(limit));
        let err = check_value(&big, limit).expect_err("over the limit");
        assert!(err.contains("66 bytes") && err.contains("64"), "{err}");
        assert!(check_value(&serde_json::json!(u64::MAX), limit).is_ok());
        assert!(check_value(&serde_json::json!(f64::MIN_POSITIVE), limit).is_ok());
        let e = check_error(&HandlerError::retryable("c", "m\u{0000}"), limit).expect_err("nul");
        assert_eq!((e.code.as_str(), e.retryable), (UNSTORABLE, false));
    }
}
