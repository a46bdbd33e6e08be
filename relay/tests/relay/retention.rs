use std::time::Duration;

use ackbox_testing::plan::{buffers, explain, has_seq_scan, index_scan};
use ackbox_testing::{kafka_config, unique_topic, TestDb};
use diesel::prelude::*;

use crate::helpers::{claim_sql, relay, relay_config, submit, UNPUBLISHED_INDEXES};

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

    // Assert: no sequential scan; a partial index of unpublished rows serves it (with 5 rows waiting the planner may
    // take any of them and sort 5 rows); only the waiting rows are touched.
    assert!(!has_seq_scan(&plan), "no Seq Scan: {plan:#}");
    let scan = index_scan(&plan, &UNPUBLISHED_INDEXES)
        .unwrap_or_else(|| panic!("claim uses a partial index of unpublished rows: {plan:#}"));
    assert_eq!(scan["Actual Rows"], 5, "the scan produced only the unpublished rows");
    let touched = buffers(&plan);
    assert!(touched < 100, "touched {touched} blocks (the table has ~10k): {plan:#}");
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

/// Seeds `n` jobs with `status`, finished (or, for live ones, created) `age` ago, each with an outbox row and an
/// Idempotency-Key; returns their ids. A finished job's key expired a day after the job was made (the api's default
/// lifetime), a live job's key an hour from now.
fn seed_jobs(conn: &mut PgConnection, n: i32, status: &str, age: &str) -> Vec<uuid::Uuid> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: uuid::Uuid,
    }
    let finished = if matches!(status, "succeeded" | "failed" | "cancelled") { "now() - $2::interval" } else { "NULL" };
    let ids: Vec<Id> = diesel::sql_query(format!(
        "INSERT INTO jobs (id, tenant_id, kind, payload, status, attempts, max_attempts, created_at, updated_at,
                           finished_at)
         SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000000', 'noop', '{{}}', $1, 1, 3,
                now() - $2::interval, now() - $2::interval, {finished}
           FROM generate_series(1, $3) RETURNING id"
    ))
    .bind::<diesel::sql_types::Text, _>(status)
    .bind::<diesel::sql_types::Text, _>(age)
    .bind::<diesel::sql_types::Int4, _>(n)
    .load(conn)
    .expect("seed jobs");
    for Id { id } in &ids {
        diesel::sql_query(
            "INSERT INTO outbox (aggregate_id, topic, key, payload) VALUES ($1, 't', $1::text, '{}'::jsonb);
             ",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(conn)
        .expect("outbox row");
        diesel::sql_query(
            "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, job_id, expires_at)
             SELECT '00000000-0000-0000-0000-000000000000', $1::text, '\\x00', $1,
                    CASE WHEN finished_at IS NULL THEN now() + interval '1 hour' ELSE created_at + interval '1 day' END
               FROM jobs WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(conn)
        .expect("key");
    }
    ids.into_iter().map(|Id { id }| id).collect()
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql).get_result::<N>(conn).expect(sql).n
}

#[test]
fn finished_jobs_past_retention_go_with_their_rows_in_bounded_batches_leaving_tombstones() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let old = seed_jobs(&mut conn, 25, "succeeded", "10 days");
    seed_jobs(&mut conn, 2, "failed", "8 days");
    seed_jobs(&mut conn, 4, "cancelled", "1 hour"); // finished recently: kept
    seed_jobs(&mut conn, 3, "running", "20 days"); // not finished, however old: kept
    seed_jobs(&mut conn, 2, "queued", "20 days");
    diesel::sql_query(
        "INSERT INTO job_tombstones (id, tenant_id, expired_at)
         SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000000',
                now() - CASE WHEN i <= 3 THEN interval '40 days' ELSE interval '1 day' END
           FROM generate_series(1, 5) i",
    )
    .execute(&mut conn)
    .expect("tombstones");

    // As the relay's own role, in batches of 10: the grants of migration 13 are what it needs.
    let mut cfg = relay_config(&db, &kafka_config(&unique_topic("job-retention")));
    cfg.db.url = db.url_as("ackbox_relay");
    cfg.retention_batch = 10;
    let pool = ackbox_db::db::build_pool(&cfg.db);
    let relay = ackbox_relay::Relay::new(pool, cfg, ackbox_relay::metrics::RelayMetrics::new()).expect("relay");
    let pass = ackbox_relay::maintenance::pass(&relay).expect("pass");

    assert_eq!(pass.deleted_jobs, 27, "25 + 2 finished more than 7 days ago, in batches of 10, 10, 7");
    assert_eq!(pass.deleted_tombstones, 3, "tombstones older than 30 days");
    assert_eq!(relay.metrics().jobs_deleted.get(), 27);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 9, "recent, running and queued jobs stay");
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM outbox"), 9, "their outbox rows stay, the others went");
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM idempotency_keys"), 9, "keys went with their jobs");
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM job_tombstones"), 27 + 2);
    let nil = uuid::Uuid::nil();
    assert!(ackbox_db::retention::expired(&mut conn, nil, old[0]).expect("query"), "the id is known as expired");
    assert!(
        !ackbox_db::retention::expired(&mut conn, uuid::Uuid::now_v7(), old[0]).expect("query"),
        "to its tenant only"
    );

    // Retention off (ACKBOX_JOB_RETENTION_SECS=0): nothing is deleted, however old.
    seed_jobs(&mut conn, 3, "succeeded", "400 days");
    let mut off = relay_config(&db, &kafka_config(&unique_topic("job-retention-off")));
    off.job_retention = None;
    let pass = ackbox_relay::maintenance::pass(&relay_for(&db, off)).expect("pass");
    assert_eq!(pass.deleted_jobs, 0);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 12);
}

fn relay_for(db: &TestDb, cfg: ackbox_relay::config::RelayConfig) -> ackbox_relay::Relay {
    relay(db, cfg)
}

#[test]
fn a_finished_job_outlives_its_retention_while_a_live_key_or_an_undelivered_callback_still_names_it() {
    let db = TestDb::new();
    let mut conn = db.conn();
    // Six jobs that finished 10 days ago, past the 7 days' retention.
    let ids = seed_jobs(&mut conn, 6, "succeeded", "10 days");
    let [keyed, batch_head, batch_a, batch_b, called_back, free] = ids[..] else { panic!("six ids") };
    let set = |conn: &mut PgConnection, sql: &str, id: uuid::Uuid| {
        diesel::sql_query(sql).bind::<diesel::sql_types::Uuid, _>(id).execute(conn).expect(sql);
    };
    // A single submit's key that is still live (the api's Idempotency-Key lifetime outlasts the job retention).
    set(&mut conn, "UPDATE idempotency_keys SET expires_at = now() + interval '1 hour' WHERE job_id = $1", keyed);
    // A live batch key: it names its first job, and the others only in batch_job_ids.
    for id in [batch_a, batch_b] {
        set(&mut conn, "DELETE FROM idempotency_keys WHERE job_id = $1", id);
    }
    diesel::sql_query(
        "UPDATE idempotency_keys SET expires_at = now() + interval '1 hour', batch_job_ids = ARRAY[$1, $2, $3]
          WHERE job_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(batch_head)
    .bind::<diesel::sql_types::Uuid, _>(batch_a)
    .bind::<diesel::sql_types::Uuid, _>(batch_b)
    .execute(&mut conn)
    .expect("batch key");
    // A completion callback still being delivered (retrying with backoff).
    set(&mut conn, "INSERT INTO callbacks (job_id, url) VALUES ($1, 'https://example.com/hook')", called_back);

    // As the relay's own role: the grants are part of what is tested.
    let mut cfg = relay_config(&db, &kafka_config(&unique_topic("job-retention-needed")));
    cfg.db.url = db.url_as("ackbox_relay");
    let pool = ackbox_db::db::build_pool(&cfg.db);
    let relay = ackbox_relay::Relay::new(pool, cfg, ackbox_relay::metrics::RelayMetrics::new()).expect("relay");
    let pass = ackbox_relay::maintenance::pass(&relay).expect("pass");
    assert_eq!(pass.deleted_jobs, 1, "only the job nothing names any more");
    assert!(ackbox_db::retention::expired(&mut conn, uuid::Uuid::nil(), free).expect("query"));
    for id in [keyed, batch_head, batch_a, batch_b, called_back] {
        let left = ackbox_db::models::Job::find(&mut conn, id).expect("query");
        assert!(left.is_some(), "job {id} is still needed, so still there");
    }

    // The keys expire and the callback is delivered: the next pass takes the rest.
    diesel::sql_query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        .execute(&mut conn)
        .expect("expire keys");
    diesel::sql_query("DELETE FROM callbacks").execute(&mut conn).expect("delivered");
    let pass = ackbox_relay::maintenance::pass(&relay).expect("pass");
    assert_eq!(pass.deleted_jobs, 5);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 0);
}
