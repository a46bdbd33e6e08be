//! `consumer_lag`: the lag each worker last saw per partition (from librdkafka's statistics), so the dashboard and
//! the CLI can show it without talking to Kafka.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int4, Text};

/// Reports older than this belong to consumers that are gone: what the dashboard and `ackbox outbox stats` show.
pub const FRESH: std::time::Duration = std::time::Duration::from_secs(120);

/// One partition's lag as last reported.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = crate::schema::consumer_lag, check_for_backend(diesel::pg::Pg))]
pub struct LagRow {
    /// Consumer group.
    pub group_id: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Messages behind the high watermark.
    pub lag: i64,
    /// When a worker last reported it.
    pub reported_at: DateTime<Utc>,
}

/// Upserts one worker's view of its partitions, in one statement.
pub fn report(conn: &mut PgConnection, group: &str, rows: &[(String, i32, i64)]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let topics: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let partitions: Vec<i32> = rows.iter().map(|r| r.1).collect();
    let lags: Vec<i64> = rows.iter().map(|r| r.2).collect();
    diesel::sql_query(
        "INSERT INTO consumer_lag (group_id, topic, partition, lag, reported_at)
         SELECT $1, t, p, l, now() FROM unnest($2::text[], $3::int[], $4::bigint[]) AS r(t, p, l)
         ON CONFLICT (group_id, topic, partition) DO UPDATE SET lag = EXCLUDED.lag, reported_at = EXCLUDED.reported_at",
    )
    .bind::<Text, _>(group)
    .bind::<Array<Text>, _>(topics)
    .bind::<Array<Int4>, _>(partitions)
    .bind::<Array<BigInt>, _>(lags)
    .execute(conn)
}

/// Rows reported within `fresh` (older ones belong to partitions nobody consumes any more), by group and partition.
pub fn current(conn: &mut PgConnection, fresh: std::time::Duration) -> QueryResult<Vec<LagRow>> {
    use crate::schema::consumer_lag::dsl as c;
    let since = Utc::now() - chrono::Duration::from_std(fresh).unwrap_or(chrono::Duration::hours(1));
    c::consumer_lag
        .filter(c::reported_at.gt(since))
        .order((c::group_id, c::topic, c::partition))
        .select(LagRow::as_select())
        .load(conn)
}
