//! A session-level advisory lock per worker name (`ACKBOX_WORKER_INSTANCE_ID` in its group): a second process
//! started under a name that is already running finds the lock taken and stops before it joins any Kafka group.
//! Kafka's own fencing of a duplicate static member is per group, and a worker is a member of one group per priority
//! lane: two same-named workers starting together could each fence the other in a different lane, and both stop.
//! The lock is held by one connection for the life of the process and goes with it (a killed worker's name is free
//! again at once).

use diesel::prelude::*;

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Takes the lock of `name` on this session if it is free; `false` when another session holds it.
pub fn try_lock(conn: &mut PgConnection, name: &str) -> QueryResult<bool> {
    let row: Locked = diesel::sql_query("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked")
        .bind::<diesel::sql_types::Text, _>(format!("ackbox-worker-instance:{name}"))
        .get_result(conn)?;
    Ok(row.locked)
}

/// Whether the session still answers (the lock lives as long as it does).
pub fn alive(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ())
}
