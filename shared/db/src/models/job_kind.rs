//! The `job_kinds` table: the kinds some worker has said it can run.

use diesel::dsl::now;
use diesel::prelude::*;
use diesel::upsert::excluded;

use crate::schema::job_kinds;

/// Longest accepted kind.
pub const MAX_KIND_LEN: usize = 128;

/// True for a syntactically valid kind: 1 to [`MAX_KIND_LEN`] of `[A-Za-z0-9_.:-]`.
pub fn valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= MAX_KIND_LEN
        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// How often a running worker refreshes `last_seen_at` of its kinds.
pub const SEEN_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// A kind counts as run by a live worker if one refreshed it this recently (three refreshes).
pub const LIVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(90);

/// Upserts `kinds` with a fresh last-seen time and marks them registered now (a worker calls this when it starts;
/// the rescuer then dispatches again the jobs of these kinds that a worker without them had to skip).
pub fn register(conn: &mut PgConnection, kinds: &[String]) -> QueryResult<usize> {
    let rows: Vec<_> = kinds.iter().map(|k| job_kinds::kind.eq(k)).collect();
    diesel::insert_into(job_kinds::table)
        .values(&rows)
        .on_conflict(job_kinds::kind)
        .do_update()
        .set(job_kinds::last_seen_at.eq(excluded(job_kinds::last_seen_at)))
        .execute(conn)?;
    // The excluded value is the column default (now()); make it explicit for rows that already existed.
    diesel::update(job_kinds::table.filter(job_kinds::kind.eq_any(kinds)))
        .set((
            job_kinds::last_seen_at.eq(now),
            job_kinds::registered_at
                .eq(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>("now()")),
        ))
        .execute(conn)
}

/// Refreshes `last_seen_at` of `kinds` (a running worker, every [`SEEN_EVERY`]).
pub fn seen(conn: &mut PgConnection, kinds: &[String]) -> QueryResult<usize> {
    diesel::update(job_kinds::table.filter(job_kinds::kind.eq_any(kinds)))
        .set(job_kinds::last_seen_at.eq(now))
        .execute(conn)
}

/// Kinds some live worker runs (seen within [`LIVE_WITHIN`]).
pub fn live(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    let horizon = chrono::Utc::now() - chrono::Duration::from_std(LIVE_WITHIN).unwrap_or_default();
    job_kinds::table.filter(job_kinds::last_seen_at.gt(horizon)).select(job_kinds::kind).load(conn)
}

/// Every registered kind.
pub fn all(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    job_kinds::table.select(job_kinds::kind).order(job_kinds::kind).load(conn)
}

/// Records the queue each kind's jobs go to by default (`(kind, queue)`; a worker at start, from
/// `ACKBOX_KIND_QUEUES`, after [`register`]).
pub fn set_queues(conn: &mut PgConnection, queues: &[(String, String)]) -> QueryResult<usize> {
    let mut n = 0;
    for (kind, queue) in queues {
        n += diesel::update(job_kinds::table.find(kind)).set(job_kinds::queue.eq(queue)).execute(conn)?;
    }
    Ok(n)
}

/// The kinds that name a queue, with it.
pub fn queue_map(conn: &mut PgConnection) -> QueryResult<Vec<(String, String)>> {
    job_kinds::table
        .filter(job_kinds::queue.is_not_null())
        .select((job_kinds::kind, job_kinds::queue.assume_not_null()))
        .load(conn)
}
