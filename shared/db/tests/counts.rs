//! The job counts behind the relay's `ackbox_jobs{status}` gauges and the dashboard cost what is in flight plus the
//! last hour, never the table's history: 200,000 finished jobs of two days ago are neither counted nor read.

use ackbox_testing::plan::{buffers, explain, has_seq_scan};
use ackbox_testing::TestDb;
use diesel::prelude::*;

fn seed(conn: &mut PgConnection, n: i32, status: &str, finished_ago: Option<&str>) {
    let finished = finished_ago.map_or("NULL".to_string(), |ago| format!("now() - interval '{ago}'"));
    let lease = if status == "running" { "now() + interval '1 minute'" } else { "NULL" };
    diesel::sql_query(format!(
        "INSERT INTO jobs (id, tenant_id, kind, payload, status, attempts, max_attempts, finished_at, started_at,
                           lease_expires_at)
         SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000000', 'noop', '{{}}', '{status}', 1, 3,
                {finished}, {finished}, {lease}
           FROM generate_series(1, {n})"
    ))
    .execute(conn)
    .expect("seed");
}

#[test]
fn counts_cover_live_jobs_and_the_last_hour_and_never_scan_the_history() {
    let db = TestDb::new();
    let mut conn = db.conn();
    seed(&mut conn, 200_000, "succeeded", Some("2 days"));
    seed(&mut conn, 3, "queued", None);
    seed(&mut conn, 2, "running", None);
    seed(&mut conn, 4, "succeeded", Some("10 minutes"));
    seed(&mut conn, 1, "failed", Some("5 minutes"));
    diesel::sql_query("VACUUM ANALYZE jobs").execute(&mut conn).expect("analyze");

    let counts = ackbox_db::models::job::count_by_status(&mut conn).expect("counts");
    let of = |s: &str| counts.iter().find(|(st, _)| st.as_str() == s).map(|(_, n)| *n);
    assert_eq!((of("queued"), of("running"), of("succeeded"), of("failed")), (Some(3), Some(2), Some(4), Some(1)));
    let by_kind = ackbox_db::models::job::counts_by_status_and_kind(&mut conn).expect("counts");
    assert_eq!(by_kind.iter().map(|(_, _, n)| n).sum::<i64>(), 10, "{by_kind:?}");

    let plan = explain(&mut conn, &ackbox_db::models::job::bounded_counts_sql());
    assert!(!has_seq_scan(&plan), "a Seq Scan over jobs: {plan:#}");
    let buffers = buffers(&plan);
    assert!(buffers < 200, "read {buffers} blocks; the table has thousands: {plan:#}");

    // The api's Retry-After sample (live.rs): the same, through the index of finished jobs.
    let plan = explain(&mut conn, ackbox_db::models::job::RECENT_MEDIANS_SQL);
    assert!(!has_seq_scan(&plan), "a Seq Scan over jobs: {plan:#}");
    let medians = ackbox_db::models::job::recent_medians(&mut conn).expect("medians");
    assert!(medians.contains_key("noop"), "the recent finished jobs are the sample: {medians:?}");
}
