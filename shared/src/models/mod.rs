//! Row types, one file per table.

pub mod job;
pub mod outbox;

pub use job::{Job, JobError, JobStatus, NewJob};
pub use outbox::{NewOutboxMessage, OutboxMessage};
