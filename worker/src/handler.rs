//! The handler API: what a job kind implements, the context it runs with, and the registry that maps kinds to
//! handlers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ackbox_db::db::PgPool;
use ackbox_types::trace::TraceContext;
use async_trait::async_trait;
use diesel::pg::PgConnection;
use diesel::QueryResult;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A database write a handler wants committed **in the same transaction** that records its success. It runs only
/// if this attempt's success is the one recorded (fencing), so a handler whose effects are all in Postgres takes
/// effect exactly once. It may run more than once if the transaction is retried after a connection error, but only
/// one run ever commits.
pub type Effect = Arc<dyn Fn(&mut PgConnection) -> QueryResult<()> + Send + Sync>;

/// What a handler gets besides its payload.
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
    cancel: CancellationToken,
    pool: Option<PgPool>,
    effects: Mutex<Vec<Effect>>,
    trace: Option<TraceContext>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job_id", &self.job_id)
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// A context for running a handler outside the worker (tests, tools): no database, never cancelled.
    pub fn new(job_id: Uuid, kind: impl Into<String>, attempt: i32, max_attempts: i32, deadline: Instant) -> Self {
        Self::with_runtime(job_id, kind, attempt, max_attempts, deadline, CancellationToken::new(), None)
    }

    pub(crate) fn with_runtime(
        job_id: Uuid,
        kind: impl Into<String>,
        attempt: i32,
        max_attempts: i32,
        deadline: Instant,
        cancel: CancellationToken,
        pool: Option<PgPool>,
    ) -> Self {
        Self {
            job_id,
            kind: kind.into(),
            attempt,
            max_attempts,
            deadline,
            cancel,
            pool,
            effects: Mutex::new(Vec::new()),
            trace: None,
        }
    }

    /// The same context, carrying `trace` as this attempt's W3C trace context.
    pub fn with_trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }

    /// This attempt's W3C trace context: its span's, a child of the span that submitted the job (the `traceparent`
    /// the client sent, or the one Ackbox started), so calls the handler makes join the job's trace. Send it on as
    /// the `traceparent` (and `tracestate`) header of those calls. `None` only for a context built outside the
    /// worker ([`JobContext::new`]).
    pub fn trace_context(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }

    /// True once this attempt should stop: its lease was lost (another attempt may be running) or the worker is
    /// shutting down past its grace period. A long handler checks it, or awaits [`JobContext::cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when this attempt should stop. Use it in `tokio::select!` beside the work.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Reports progress, shown in the status document as `progress: {"percent", "message"}`. Fenced like every
    /// status write; returns whether it was recorded (false once the attempt lost its lease, or without a database).
    pub async fn progress(&self, percent: u8, message: &str) -> bool {
        let Some(pool) = self.pool.clone() else { return false };
        let report = serde_json::json!({ "percent": percent.min(100), "message": message });
        let (id, attempt) = (self.job_id, self.attempt);
        let res = tokio::task::spawn_blocking(move || -> Result<bool, ackbox_db::db::DbError> {
            let mut conn = pool.get()?;
            Ok(ackbox_db::state::progress(&mut conn, id, attempt, &report)?)
        })
        .await;
        match res {
            Ok(Ok(applied)) => applied,
            Ok(Err(e)) => {
                log::debug!(job_id:% = id, attempt; "job {id} attempt {attempt}: progress not recorded: {e}");
                false
            }
            Err(_) => false,
        }
    }

    /// Registers a database write to commit atomically with this attempt's success (see [`Effect`]).
    pub fn on_commit(&self, effect: impl Fn(&mut PgConnection) -> QueryResult<()> + Send + Sync + 'static) {
        self.effects.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::new(effect));
    }

    pub(crate) fn take_effects(&self) -> Vec<Effect> {
        std::mem::take(&mut *self.effects.lock().unwrap_or_else(|p| p.into_inner()))
    }
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
/// let mut registry = ackbox_worker::handlers::builtin();
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
