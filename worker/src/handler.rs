//! The handler API: what a job kind implements, the context it runs with, and the registry that maps kinds to
//! handlers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use uuid::Uuid;

/// What a handler gets besides its payload.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The job.
    pub job_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// This attempt's number (1-based); also the fencing token of its status write.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When the handler will be cut off (the job timeout).
    pub deadline: Instant,
}

/// A failed attempt, as a handler reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct HandlerError {
    /// Stable machine-readable code, stored in `jobs.error.code`.
    pub code: String,
    /// Human-readable message, stored in `jobs.error.message`. Never put payload contents or secrets here.
    pub message: String,
    /// Whether another attempt may help. A permanent error ends the job `failed` at once.
    pub retryable: bool,
}

impl HandlerError {
    /// A failure worth retrying (up to `max_attempts`).
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), retryable: true }
    }

    /// A failure no retry can fix (bad payload, unknown kind).
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), retryable: false }
    }
}

/// One job kind. Implement it, register it under a kind name, and the worker runs it.
///
/// ```
/// use ackbox_worker::{async_trait, Handler, HandlerError, JobContext};
///
/// struct Greet;
///
/// #[async_trait]
/// impl Handler for Greet {
///     async fn run(&self, _ctx: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
///         let name = payload["name"].as_str().ok_or_else(|| HandlerError::permanent("bad_payload", "name is required"))?;
///         Ok(serde_json::json!({ "greeting": format!("hello, {name}") }))
///     }
/// }
///
/// let mut registry = ackbox_worker::Registry::builtin();
/// registry.register("greet", Greet);
/// assert!(registry.get("greet").is_some());
/// ```
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt. The returned value becomes the job's result.
    async fn run(&self, ctx: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, HandlerError>;
}

/// Kinds → handlers.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the built-in kinds: `noop`, `echo`, `sleep`, `fail`.
    pub fn builtin() -> Self {
        let mut r = Self::new();
        crate::handlers::register_builtin(&mut r);
        r
    }

    /// Registers (or replaces) the handler for `kind`.
    pub fn register(&mut self, kind: impl Into<String>, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }

    /// The handler for `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(kind).cloned()
    }

    /// Registered kinds, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.handlers.keys().cloned().collect();
        k.sort();
        k
    }
}
