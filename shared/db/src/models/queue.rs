//! The `queues` table: the queues jobs may name, and whether each is paused. A queue exists once a worker that serves
//! it has started ([`ensure`]) or an operator created it (`ackbox queues create`). Pausing and resuming are one
//! small UPDATE each: the claim refuses a paused queue's jobs, and the rescuer dispatches them again after a resume
//! (`crate::state`).

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;

use crate::schema::queues;

pub use crate::models::job::DEFAULT_QUEUE;

/// A row of `queues`, with its jobs' counts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, QueryableByName)]
pub struct QueueRow {
    /// Name.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub name: String,
    /// Since when it is paused (`None`: running).
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub paused_at: Option<DateTime<Utc>>,
    /// Its jobs waiting in `queued`.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub queued: i64,
    /// Its jobs running.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub running: i64,
}

/// True for a syntactically valid queue name (the same rule as a kind's).
pub fn valid_name(name: &str) -> bool {
    crate::models::job_kind::valid_kind(name)
}

/// Creates the queues that do not exist yet (a worker, for the queues of its kinds; an operator). Returns how many
/// were new.
pub fn ensure(conn: &mut PgConnection, names: &[String]) -> QueryResult<usize> {
    let rows: Vec<_> = names.iter().map(|n| queues::name.eq(n)).collect();
    diesel::insert_into(queues::table).values(&rows).on_conflict_do_nothing().execute(conn)
}

/// Every queue's name, sorted.
pub fn names(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    queues::table.select(queues::name).order(queues::name).load(conn)
}

/// The names of the paused queues.
pub fn paused(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    queues::table.filter(queues::paused_at.is_not_null()).select(queues::name).order(queues::name).load(conn)
}

/// Every queue with its queued and running counts (read through `jobs_open_idx`, the live jobs).
pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<QueueRow>> {
    diesel::sql_query(
        "SELECT q.name, q.paused_at,
                (SELECT count(*) FROM jobs j WHERE j.finished_at IS NULL AND j.status = 'queued' AND j.queue = q.name)
                    AS queued,
                (SELECT count(*) FROM jobs j WHERE j.finished_at IS NULL AND j.status = 'running' AND j.queue = q.name)
                    AS running
           FROM queues q ORDER BY q.name",
    )
    .load(conn)
}

/// What [`pause`] or [`resume`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The queue changed state.
    Changed,
    /// It already was in that state; nothing changed.
    Already,
    /// No such queue.
    Unknown,
}

/// Pauses `name`: from now on no worker claims its queued jobs (those it receives stay `queued`, marked skipped);
/// running ones finish.
pub fn pause(conn: &mut PgConnection, name: &str) -> QueryResult<Change> {
    let changed = diesel::update(queues::table.find(name).filter(queues::paused_at.is_null()))
        .set(queues::paused_at.eq(now))
        .execute(conn)?;
    settle(conn, name, changed)
}

/// Resumes `name`: its jobs are claimable again, and the relay's rescuer dispatches the ones a worker skipped
/// while it was paused at its next pass (`resumed_at`), a batch per pass.
pub fn resume(conn: &mut PgConnection, name: &str) -> QueryResult<Change> {
    let changed = diesel::update(queues::table.find(name).filter(queues::paused_at.is_not_null()))
        .set((queues::paused_at.eq(None::<DateTime<Utc>>), queues::resumed_at.eq(now)))
        .execute(conn)?;
    settle(conn, name, changed)
}

fn settle(conn: &mut PgConnection, name: &str, changed: usize) -> QueryResult<Change> {
    if changed > 0 {
        return Ok(Change::Changed);
    }
    let exists: i64 = queues::table.find(name).count().get_result(conn)?;
    Ok(if exists > 0 { Change::Already } else { Change::Unknown })
}
