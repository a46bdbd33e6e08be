//! The `outbox` table's row types. Every query on it lives in [`crate::outbox`].

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::outbox;

/// A row of `outbox`.
#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = outbox, check_for_backend(diesel::pg::Pg))]
pub struct OutboxMessage {
    /// Insertion order.
    pub id: i64,
    /// The job the message dispatches.
    pub aggregate_id: Uuid,
    /// Kafka topic.
    pub topic: String,
    /// Kafka key.
    pub key: String,
    /// The envelope, produced as the message value.
    pub payload: serde_json::Value,
    /// Kafka headers (flat object of strings).
    pub headers: serde_json::Value,
    /// Commit time.
    pub created_at: DateTime<Utc>,
    /// Not produced before.
    pub available_at: DateTime<Utc>,
    /// Broker acknowledgement time.
    pub published_at: Option<DateTime<Utc>>,
    /// Delivery attempts.
    pub attempts: i32,
    /// Last delivery error.
    pub last_error: Option<String>,
    /// Set when the broker refused the row for good; the relay no longer claims it.
    pub dead_at: Option<DateTime<Utc>>,
    /// The job's priority when the row was written (`ackbox_types::priority::Priority::as_i16`): due rows are
    /// published highest first, onto the level's topic.
    pub priority: i16,
}

/// An outbox row to insert.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewOutboxMessage {
    /// The job the message dispatches.
    pub aggregate_id: Uuid,
    /// Kafka topic.
    pub topic: String,
    /// Kafka key.
    pub key: String,
    /// The envelope.
    pub payload: serde_json::Value,
    /// Kafka headers.
    pub headers: serde_json::Value,
    /// Not produced before (retry backoff); `None` = now.
    pub available_at: Option<DateTime<Utc>>,
    /// The job's priority (`Priority::as_i16`).
    pub priority: i16,
}
