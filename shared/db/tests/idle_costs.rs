//! What the relay pays when it has little or nothing to do must not grow with the history or the backlog: the
//! `next_due` asked by every idle round reads one index entry, not every waiting or published row, and no pooled
//! statement is JIT compiled (the rescuer's scan of a large backlog compiled for 1.5 s per pass).

use ackbox_testing::plan::{buffers, explain, has_seq_scan};
use ackbox_testing::TestDb;
use diesel::prelude::*;

#[test]
fn next_due_reads_one_entry_whatever_waits_or_was_published() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query(
        "INSERT INTO outbox (aggregate_id, topic, key, payload, published_at, attempts)
         SELECT gen_random_uuid(), 't', 'k', '{}'::jsonb, now(), 1 FROM generate_series(1, 100000)",
    )
    .execute(&mut conn)
    .expect("published history");
    // Scheduled jobs (run_at) wait in the outbox, unpublished, until due: an idle relay asks when the first is.
    diesel::sql_query(
        "INSERT INTO outbox (aggregate_id, topic, key, payload, available_at)
         SELECT gen_random_uuid(), 't', 'k', '{}'::jsonb, timestamptz '2100-01-01' + (100001 - i) * interval '1 hour'
           FROM generate_series(1, 100000) i",
    )
    .execute(&mut conn)
    .expect("rows due later");
    diesel::sql_query("VACUUM ANALYZE outbox").execute(&mut conn).expect("analyze");

    let due = ackbox_db::outbox::next_due(&mut conn).expect("next_due").expect("rows wait");
    assert_eq!(due.to_rfc3339(), "2100-01-01T01:00:00+00:00");

    let plan = explain(&mut conn, ackbox_db::outbox::NEXT_DUE_SQL);
    assert!(!has_seq_scan(&plan), "a Seq Scan over outbox: {plan:#}");
    let buffers = buffers(&plan);
    assert!(buffers < 20, "read {buffers} blocks; the waiting rows and the history fill thousands: {plan:#}");
}

#[test]
fn pooled_connections_never_jit_compile() {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        jit: String,
    }
    let db = TestDb::new();
    let pool = db.pool(2);
    // Both connections of the pool, not only the first.
    let (mut a, mut b) = (pool.get().expect("a connection"), pool.get().expect("another"));
    for conn in [&mut a, &mut b] {
        let s: Setting = diesel::sql_query("SHOW jit").get_result(&mut **conn).expect("show jit");
        assert_eq!(s.jit, "off");
    }
    // The direct connection keeps the server's default, so the check above could fail.
    let s: Setting = diesel::sql_query("SHOW jit").get_result(&mut db.conn()).expect("show jit");
    assert_eq!(s.jit, "on", "this cluster's default; the pool must be what turns it off");
}
