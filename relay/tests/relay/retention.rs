use std::time::Duration;

use ackbox_testing::{kafka_config, unique_topic, TestDb};
use diesel::prelude::*;

use crate::helpers::{claim_sql, explain, nodes, relay, relay_config, submit};

#[test]
fn the_claim_query_reads_only_unpublished_rows_while_a_million_published_rows_await_retention() {
    let db = TestDb::new();
    let mut conn = db.conn();
    // Arrange: 1M delivered rows (recent, so retention keeps them) and 5 waiting ones.
    diesel::sql_query(
        "INSERT INTO outbox (aggregate_id, topic, key, payload, published_at, attempts)
         SELECT gen_random_uuid(), 't', 'k', '{}'::jsonb, now(), 1 FROM generate_series(1, 1000000)",
    )
    .execute(&mut conn)
    .expect("bulk insert");
    submit(&db, "t", 5);
    diesel::sql_query("VACUUM ANALYZE outbox").execute(&mut conn).expect("analyze");

    // Act: the relay's exact claim statement, as diesel renders it.
    let sql = claim_sql();
    let plan = explain(&mut conn, &sql);
    let root = &plan[0]["Plan"];

    // Assert: no sequential scan; the partial index serves it; only the waiting rows are touched.
    let all = nodes(root);
    assert!(all.iter().all(|n| n["Node Type"] != "Seq Scan"), "no Seq Scan: {plan:#}");
    assert!(
        all.iter().any(|n| n["Index Name"] == "outbox_unpublished_idx"),
        "claim uses outbox_unpublished_idx: {plan:#}"
    );
    let scan = all.iter().find(|n| n["Index Name"] == "outbox_unpublished_idx").expect("index node");
    assert_eq!(scan["Actual Rows"], 5, "the scan produced only the unpublished rows");
    let buffers = root["Shared Hit Blocks"].as_i64().unwrap_or(0) + root["Shared Read Blocks"].as_i64().unwrap_or(0);
    assert!(buffers < 100, "touched {buffers} blocks (the table has ~10k): {plan:#}");
}

#[test]
fn retention_deletes_only_rows_published_before_the_horizon_in_bounded_batches() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query(
        "INSERT INTO outbox (aggregate_id, topic, key, payload, published_at, attempts)
         SELECT gen_random_uuid(), 't', 'k', '{}'::jsonb, now() - interval '2 hours', 1 FROM generate_series(1, 25)",
    )
    .execute(&mut conn)
    .expect("old rows");
    diesel::sql_query(
        "INSERT INTO outbox (aggregate_id, topic, key, payload, published_at, attempts)
         SELECT gen_random_uuid(), 't', 'k', '{}'::jsonb, now() - interval '10 minutes', 1 FROM generate_series(1, 7)",
    )
    .execute(&mut conn)
    .expect("recent rows");
    submit(&db, "t", 3); // unpublished: never deleted, however old

    let mut cfg = relay_config(&db, &kafka_config(&unique_topic("retention")));
    cfg.retention = Duration::from_secs(3600);
    cfg.retention_batch = 10;
    let relay = relay(&db, cfg);
    let pass = ackbox_relay::maintenance::pass(&relay).expect("pass");

    assert_eq!(pass.deleted, 25, "25 old rows, in batches of 10, 10, 5");
    let left: i64 = ackbox_db::schema::outbox::table.count().get_result(&mut conn).expect("count");
    assert_eq!(left, 10, "7 recent published rows stay for inspection, 3 unpublished stay to be sent");
    assert_eq!(relay.metrics().retention_deleted.get(), 25);
}

#[test]
fn expired_idempotency_keys_are_deleted_and_live_ones_kept() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, job_id, expires_at)
         SELECT '00000000-0000-0000-0000-000000000000', 'k' || i, '\\x00', gen_random_uuid(),
                now() + CASE WHEN i <= 12 THEN interval '-1 minute' ELSE interval '1 hour' END
           FROM generate_series(1, 15) i",
    )
    .execute(&mut conn)
    .expect("seed keys");
    let mut cfg = relay_config(&db, &kafka_config(&unique_topic("keys")));
    cfg.retention_batch = 5;
    let pass = ackbox_relay::maintenance::pass(&relay(&db, cfg)).expect("pass");
    assert_eq!(pass.expired_keys, 12);
    let left: i64 = ackbox_db::schema::idempotency_keys::table.count().get_result(&mut conn).expect("count");
    assert_eq!(left, 3);
}
