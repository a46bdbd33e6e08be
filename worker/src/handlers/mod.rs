//! Built-in job kinds, used by the demo, the tests and the benchmarks.
//!
//! | kind | payload | does |
//! |---|---|---|
//! | `noop` | anything | succeeds with `null` at once |
//! | `echo` | anything | succeeds with the payload as its result |
//! | `sleep` | `{"ms": n}` (n ≤ 3 600 000) | waits n ms, then succeeds with `{"slept_ms": n}` |
//! | `fail` | `{"times": n}` | fails attempts 1..=n (retryable), then succeeds with `{"attempt": a}` |
//! | `effect` | `{"ms": n}` (optional) | waits n ms, then records one row in `job_effects` in the same transaction as its success |

use async_trait::async_trait;

use crate::handler::{Handler, HandlerError, JobContext, Registry};

/// Longest `sleep` accepted: one hour.
pub const MAX_SLEEP_MS: u64 = 3_600_000;

/// A registry with the built-in kinds: `noop`, `echo`, `sleep`, `fail`, `effect`. (It lives here, not on
/// [`Registry`], so that `handler.rs` knows nothing of the handlers built on it.)
pub fn builtin() -> Registry {
    let mut r = Registry::new();
    register_builtin(&mut r);
    r
}

/// Adds the built-in kinds to `registry`.
pub fn register_builtin(registry: &mut Registry) {
    registry
        .register("noop", Noop)
        .register("echo", Echo)
        .register("sleep", Sleep)
        .register("fail", Fail)
        .register("effect", EffectKind);
}

/// `noop`: does nothing, successfully.
pub struct Noop;

#[async_trait]
impl Handler for Noop {
    async fn run(&self, _ctx: &JobContext, _payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        Ok(serde_json::Value::Null)
    }
}

/// `echo`: the result is the payload.
pub struct Echo;

#[async_trait]
impl Handler for Echo {
    async fn run(&self, _ctx: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        Ok(payload)
    }
}

/// `sleep`: waits `{"ms": n}` milliseconds, reporting progress about once a second, and stops early when cancelled.
pub struct Sleep;

#[async_trait]
impl Handler for Sleep {
    async fn run(&self, ctx: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        let ms = payload.get("ms").and_then(serde_json::Value::as_u64).filter(|ms| *ms <= MAX_SLEEP_MS).ok_or_else(
            || HandlerError::permanent("bad_payload", format!("sleep needs {{\"ms\": 0..={MAX_SLEEP_MS}}}")),
        )?;
        let start = std::time::Instant::now();
        let total = std::time::Duration::from_millis(ms);
        while start.elapsed() < total {
            let step = (total - start.elapsed()).min(std::time::Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = ctx.cancelled() => return Err(HandlerError::retryable("cancelled", "the attempt was cancelled")),
            }
            if start.elapsed() < total {
                let pct = u8::try_from(start.elapsed().as_millis() * 100 / u128::from(ms.max(1))).unwrap_or(99).min(99);
                ctx.progress(pct, "sleeping").await;
            }
        }
        Ok(serde_json::json!({ "slept_ms": ms }))
    }
}

/// `fail`: fails the first `{"times": n}` attempts with a retryable error.
pub struct Fail;

#[async_trait]
impl Handler for Fail {
    async fn run(&self, ctx: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        let times = payload
            .get("times")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| HandlerError::permanent("bad_payload", "fail needs {\"times\": n}"))?;
        if i64::from(ctx.attempt) <= times {
            return Err(HandlerError::retryable(
                "deliberate_failure",
                format!("attempt {} of a job told to fail {times} times", ctx.attempt),
            ));
        }
        Ok(serde_json::json!({ "attempt": ctx.attempt }))
    }
}

/// `effect`: records each execution in `job_effects`, in the same transaction as the success, so a test can count
/// executions: more than one row for a job would be a duplicate effect.
pub struct EffectKind;

#[async_trait]
impl Handler for EffectKind {
    async fn run(&self, ctx: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        if let Some(ms) = payload.get("ms").and_then(serde_json::Value::as_u64) {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(ms.min(MAX_SLEEP_MS))) => {}
                _ = ctx.cancelled() => return Err(HandlerError::retryable("cancelled", "the attempt was cancelled")),
            }
        }
        let (job_id, attempt) = (ctx.job_id, ctx.attempt);
        ctx.on_commit(move |conn| ackbox_db::models::job::record_effect(conn, job_id, attempt));
        Ok(serde_json::json!({ "attempt": attempt }))
    }
}
