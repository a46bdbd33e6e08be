//! Row types, one file per table.

pub mod consumer_lag;
pub mod idempotency;
pub mod job;
pub mod job_kind;
pub mod outbox;
pub mod queue;
pub mod tenant;

pub use job::{Job, JobError, JobStatus, NewJob, Priority, TraceContext, DEFAULT_TENANT};
pub use outbox::{NewOutboxMessage, OutboxMessage};
