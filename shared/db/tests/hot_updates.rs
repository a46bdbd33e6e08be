//! Claims and heartbeats are HOT updates (#14): they write no index entry, and the version they replace is removed by
//! the next visit to its page, without vacuum. That holds while no index of `jobs` covers a column they change,
//! predicates included (`status`, `lease_expires_at`, `attempts`, `started_at`, `updated_at`), and while the page
//! has room for the new version (the fillfactor of migration 25 keeps some; `make bench` reports the share of HOT
//! updates in a drain, where whole pages are claimed at once). Here a handful of jobs share a page with room to
//! spare, so any index that covers such a column fails the test. The counts are the transaction's own
//! (`pg_stat_get_xact_tuples_*`), so no other test's writes or the statistics collector's timing enter them.

use std::time::Duration;

use ackbox_db::models::NewJob;
use ackbox_db::state;
use ackbox_testing::TestDb;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use uuid::Uuid;

const JOBS: usize = 8;

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    updated: i64,
    #[diesel(sql_type = BigInt)]
    hot: i64,
}

/// This backend's counts of `jobs` updates not yet sent to the statistics (they include earlier transactions').
fn counts(conn: &mut PgConnection) -> Counts {
    diesel::sql_query(
        "SELECT pg_stat_get_xact_tuples_updated('jobs'::regclass) AS updated,
                pg_stat_get_xact_tuples_hot_updated('jobs'::regclass) AS hot",
    )
    .get_result(conn)
    .expect("counts")
}

/// Runs `write` in a transaction and returns its result, how many `jobs` rows it updated, and how many of those were
/// HOT.
fn updates_of(conn: &mut PgConnection, write: impl FnOnce(&mut PgConnection) -> usize) -> (usize, i64, i64) {
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        let before = counts(conn);
        let n = write(conn);
        let after = counts(conn);
        Ok((n, after.updated - before.updated, after.hot - before.hot))
    })
    .expect("transaction")
}

#[test]
fn claims_and_heartbeats_write_no_index_entry_and_completions_do() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ids: Vec<Uuid> = (0..JOBS)
        .map(|_| state::submit(&mut conn, &NewJob::new("noop", serde_json::json!({}), 3), "t").expect("submit").id)
        .collect();

    let (claimed, updated, hot) =
        updates_of(&mut conn, |c| state::claim(c, &ids, Duration::from_secs(30)).expect("claim").len());
    assert_eq!(claimed, JOBS);
    assert_eq!((updated, hot), (JOBS as i64, JOBS as i64), "every claim is a HOT update");

    let beats: Vec<(Uuid, i32)> = ids.iter().map(|&id| (id, 1)).collect();
    let (renewed, updated, hot) =
        updates_of(&mut conn, |c| state::heartbeat(c, &beats, Duration::from_secs(60)).expect("heartbeat").len());
    assert_eq!(renewed, JOBS);
    assert_eq!((updated, hot), (JOBS as i64, JOBS as i64), "every lease renewal is a HOT update");

    // The completion sets finished_at, which jobs_open_idx and jobs_finished_idx cover: it writes index entries, as
    // it must for the live jobs to be found through them.
    let done: Vec<state::Success> =
        ids.iter().map(|&id| state::Success { id, attempt: 1, result: serde_json::json!(null) }).collect();
    let (completed, updated, hot) = updates_of(&mut conn, |c| state::complete(c, &done).expect("complete").len());
    assert_eq!(completed, JOBS);
    assert_eq!((updated, hot), (JOBS as i64, 0));
}

#[test]
fn a_write_that_would_leave_status_and_finished_at_disagreeing_is_refused() {
    // jobs_open_idx finds the live jobs by `finished_at IS NULL`; a running job with finished_at set would be hidden
    // from the rescuer, so the table refuses it (migration 25).
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = state::submit(&mut conn, &NewJob::new("noop", serde_json::json!({}), 3), "t").expect("submit").id;
    for bad in
        ["UPDATE jobs SET finished_at = now() WHERE id = $1", "UPDATE jobs SET status = 'succeeded' WHERE id = $1"]
    {
        let refused = diesel::sql_query(bad).bind::<diesel::sql_types::Uuid, _>(id).execute(&mut conn);
        let message = format!("{refused:?}");
        assert!(message.contains("jobs_finished_at_matches_status"), "{bad}: {message}");
    }
    let fine = "UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = $1";
    assert_eq!(diesel::sql_query(fine).bind::<diesel::sql_types::Uuid, _>(id).execute(&mut conn).expect(fine), 1);
}
