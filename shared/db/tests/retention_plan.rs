//! Job retention asks, for every job it would delete, whether a live Idempotency-Key or an undelivered callback still
//! names it. Those questions must be index probes: a pass that read the whole key table for each job (or hashed all
//! of it per statement) would cost what the api's keys hold, not what the pass deletes.

use ackbox_db::retention::DELETE_FINISHED_JOBS;
use ackbox_testing::plan::{explain, most_rows_of_a_node, nodes};
use ackbox_testing::TestDb;
use diesel::prelude::*;

#[test]
fn deciding_which_finished_jobs_no_live_key_or_callback_needs_probes_indexes_only() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let nil = "'00000000-0000-0000-0000-000000000000'";
    // 100,000 live single keys and 5,000 live batch keys of 20 jobs each, of jobs retention is not looking at.
    for sql in [
        format!(
            "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, job_id, expires_at)
             SELECT {nil}, 's' || i, '\\x00', gen_random_uuid(), now() + interval '1 day'
               FROM generate_series(1, 100000) i"
        ),
        format!(
            "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, job_id, expires_at, batch_job_ids)
             SELECT {nil}, 'b' || i, '\\x00', gen_random_uuid(), now() + interval '1 day',
                    ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 20) WHERE i > 0)
               FROM generate_series(1, 5000) i"
        ),
        // 2,000 jobs that finished ten days ago, which nothing names.
        format!(
            "INSERT INTO jobs (id, tenant_id, kind, payload, status, attempts, max_attempts, created_at, updated_at,
                               finished_at)
             SELECT gen_random_uuid(), {nil}, 'noop', '{{}}', 'succeeded', 1, 3, now() - interval '10 days',
                    now() - interval '10 days', now() - interval '10 days'
               FROM generate_series(1, 2000)"
        ),
        // 10,000 callbacks being delivered, of other jobs.
        "INSERT INTO callbacks (job_id, url) SELECT gen_random_uuid(), 'https://example.com/hook'
           FROM generate_series(1, 10000)"
            .to_string(),
        "ANALYZE jobs, idempotency_keys, callbacks".to_string(),
    ] {
        diesel::sql_query(&sql).execute(&mut conn).expect(&sql);
    }

    // One retention statement of 500 jobs, with a 7 days' retention, rolled back.
    let sql = DELETE_FINISHED_JOBS.replace("$1", "604800000::float8").replace("$2", "500");
    let mut plan = serde_json::Value::Null;
    let _ = conn.transaction::<(), diesel::result::Error, _>(|c| {
        plan = explain(c, &sql);
        Err(diesel::result::Error::RollbackTransaction)
    });

    for table in ["idempotency_keys", "callbacks"] {
        let scans: Vec<_> = nodes(&plan).into_iter().filter(|n| n["Relation Name"] == table).collect();
        assert!(!scans.is_empty(), "the plan reads {table}: {plan:#}");
        for scan in scans {
            assert_ne!(scan["Node Type"], "Seq Scan", "{table} is probed by index, never read whole: {plan:#}");
        }
    }
    // At most the 2,000 finished jobs are examined; 105,000 keys and 10,000 callbacks are not.
    let most = most_rows_of_a_node(&plan);
    assert!(most <= 2_000, "a node handled {most} rows: {plan:#}");
    let left: i64 = ackbox_db::schema::jobs::table.count().get_result(&mut conn).expect("count");
    assert_eq!(left, 2_000, "EXPLAIN ANALYZE ran in a transaction that was rolled back");
}
