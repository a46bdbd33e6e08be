//! Where autovacuum is off, the relay keeps its claim cheap by vacuuming the tables it churns (#14). Each test turns
//! autovacuum off for its own database's tables (`autovacuum_enabled = false`), so it does not depend on the server.

use std::time::Duration;

use ackbox_testing::plan::{buffers, explain};
use ackbox_testing::{kafka_config, unique_topic, wait_for, TestDb};
use diesel::prelude::*;

use crate::helpers::{claim_sql, relay, relay_config, submit};

const ROWS: i64 = 50_000;

/// Dead `outbox` versions as the relay sees them.
fn dead_outbox_versions(conn: &mut PgConnection) -> i64 {
    dead_versions(conn, ackbox_db::vacuum::Table::Outbox)
}

/// Dead versions of `table` as the relay sees them (`ackbox_db::vacuum::health`).
fn dead_versions(conn: &mut PgConnection, table: ackbox_db::vacuum::Table) -> i64 {
    let health = ackbox_db::vacuum::health(conn).expect("health");
    health.iter().find(|h| h.table == table).map_or(0, |h| h.dead)
}

/// `ROWS` rows delivered the way the relay delivers them (inserted unpublished, then marked), so each leaves a dead
/// version and a dead entry in the index of unpublished rows; then 5 rows waiting. Waits until Postgres's
/// statistics count the dead versions (backends report them within about a second).
fn churned_outbox(db: &TestDb) -> PgConnection {
    let mut conn = db.conn();
    diesel::sql_query("ALTER TABLE outbox SET (autovacuum_enabled = false)").execute(&mut conn).expect("no autovacuum");
    diesel::sql_query(format!(
        "INSERT INTO outbox (aggregate_id, topic, key, payload)
         SELECT gen_random_uuid(), 't', 'k', '{{}}'::jsonb FROM generate_series(1, {ROWS})"
    ))
    .execute(&mut conn)
    .expect("insert");
    diesel::sql_query("UPDATE outbox SET published_at = now(), attempts = 1").execute(&mut conn).expect("mark");
    diesel::sql_query("ANALYZE outbox").execute(&mut conn).expect("analyze");
    submit(db, "t", 5);
    wait_for("the dead versions to be counted", Duration::from_secs(30), || {
        (dead_outbox_versions(&mut conn) >= ROWS).then_some(())
    });
    conn
}

fn claim_blocks(conn: &mut PgConnection) -> i64 {
    buffers(&explain(conn, &claim_sql()))
}

#[test]
fn with_autovacuum_off_the_relay_vacuums_the_outbox_so_its_claim_stays_cheap() {
    let db = TestDb::new();
    let mut conn = churned_outbox(&db);
    let relay = relay(&db, relay_config(&db, &kafka_config(&unique_topic("vacuum"))));

    let pass = ackbox_relay::maintenance::pass(&relay).expect("pass");

    assert!(pass.vacuumed >= 1, "the outbox was vacuumed: {pass:?}");
    assert_eq!(relay.metrics().vacuums.with_label_values(&["outbox"]).get(), 1);
    assert_eq!(relay.metrics().autovacuum.with_label_values(&["outbox"]).get(), 0);
    assert!(dead_outbox_versions(&mut conn) < ROWS / 10, "vacuum removed the dead versions");
    let blocks = claim_blocks(&mut conn);
    assert!(blocks < 100, "the claim of 5 waiting rows touched {blocks} blocks after the vacuum");
}

#[test]
fn without_the_vacuum_the_claim_walks_every_dead_entry() {
    // The cost the test above removes: same churn, the relay's vacuum turned off.
    let db = TestDb::new();
    let mut conn = churned_outbox(&db);
    let mut cfg = relay_config(&db, &kafka_config(&unique_topic("novacuum")));
    cfg.vacuum = false;
    let relay = relay(&db, cfg);

    let pass = ackbox_relay::maintenance::pass(&relay).expect("pass");

    assert_eq!(pass.vacuumed, 0);
    assert!(
        relay.metrics().dead_tuples.with_label_values(&["outbox"]).get() >= ROWS,
        "the gauge shows the dead versions"
    );
    let blocks = claim_blocks(&mut conn);
    assert!(blocks >= 100, "the claim of 5 waiting rows touched only {blocks} blocks with {ROWS} dead entries");
}

#[test]
fn a_role_that_may_not_vacuum_gets_a_warning_and_the_gauges_not_an_error() {
    let db = TestDb::new();
    let _conn = churned_outbox(&db);
    let mut cfg = relay_config(&db, &kafka_config(&unique_topic("novacuumrole")));
    cfg.db.url = db.url_as("ackbox_relay");
    let relay =
        ackbox_relay::Relay::new(ackbox_db::db::build_pool(&cfg.db), cfg, ackbox_relay::metrics::RelayMetrics::new())
            .expect("relay");

    let pass = ackbox_relay::maintenance::pass(&relay).expect("a pass as ackbox_relay succeeds");

    assert_eq!(pass.vacuumed, 0, "ackbox_relay owns no table");
    assert!(relay.metrics().dead_tuples.with_label_values(&["outbox"]).get() >= ROWS);
    assert_eq!(relay.metrics().autovacuum.with_label_values(&["outbox"]).get(), 0);
}

#[test]
fn with_autovacuum_off_the_relay_also_vacuums_the_tombstones_and_callbacks_that_retention_and_delivery_delete() {
    use ackbox_db::vacuum::Table;
    let db = TestDb::new();
    let mut conn = db.conn();
    // Job retention's tombstones, deleted after their own retention, and delivered callbacks: rows every job may
    // leave behind, which without vacuum would never give their space back.
    for sql in [
        "ALTER TABLE job_tombstones SET (autovacuum_enabled = false)".to_string(),
        "ALTER TABLE callbacks SET (autovacuum_enabled = false)".to_string(),
        format!(
            "INSERT INTO job_tombstones (id, tenant_id) SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000000'
               FROM generate_series(1, {ROWS})"
        ),
        "DELETE FROM job_tombstones".to_string(),
        format!(
            "INSERT INTO callbacks (job_id, url) SELECT gen_random_uuid(), 'https://x' FROM generate_series(1, {ROWS})"
        ),
        "DELETE FROM callbacks".to_string(),
    ] {
        diesel::sql_query(&sql).execute(&mut conn).expect(&sql);
    }
    for table in [Table::JobTombstones, Table::Callbacks] {
        wait_for("the dead versions to be counted", Duration::from_secs(30), || {
            (dead_versions(&mut conn, table) >= ROWS).then_some(())
        });
    }
    let relay = relay(&db, relay_config(&db, &kafka_config(&unique_topic("vacuum-tombstones"))));

    let pass = ackbox_relay::maintenance::pass(&relay).expect("pass");

    for table in [Table::JobTombstones, Table::Callbacks] {
        assert_eq!(relay.metrics().vacuums.with_label_values(&[table.as_str()]).get(), 1, "{table:?}: {pass:?}");
        assert!(dead_versions(&mut conn, table) < ROWS / 10, "vacuum removed {table:?}'s dead versions");
    }
}
