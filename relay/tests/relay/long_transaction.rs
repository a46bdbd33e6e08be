//! A transaction left open (a stuck migration, a forgotten psql session) keeps vacuum from removing dead rows. The
//! relay reports its age as `ackbox_db_oldest_transaction_age_seconds` (alert above 60 s, deploy/README.md), and its
//! claim stays an index scan over unpublished rows while it lasts.

use std::time::Duration;

use ackbox_db::config::DbConfig;
use ackbox_testing::plan::{explain, has_seq_scan, index_scan};
use ackbox_testing::{fresh_topic, wait_for, TestDb};
use diesel::prelude::*;

use crate::helpers::{claim_sql, relay_config, submit, DEADLINE, UNPUBLISHED_INDEXES};

#[test]
fn a_long_transaction_during_load_shows_in_the_age_gauge_and_claims_stay_on_the_index() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-longtx", 2);
    // The relay as in production: its own role, which needs pg_read_all_stats to see other sessions.
    let mut config = relay_config(&db, &kafka);
    config.db = DbConfig { url: db.url_as("ackbox_relay"), ..config.db };
    let pool = ackbox_db::db::build_pool(&config.db);
    let relay = ackbox_relay::Relay::new(pool, config, ackbox_relay::metrics::RelayMetrics::new()).expect("relay");

    // A session opens a transaction (with a snapshot) and sits on it.
    let mut idle = db.conn();
    diesel::sql_query("BEGIN ISOLATION LEVEL REPEATABLE READ").execute(&mut idle).expect("begin");
    diesel::sql_query("SELECT count(*) FROM jobs").execute(&mut idle).expect("take a snapshot");

    // Load meanwhile: 600 jobs published, which leaves 600 dead outbox versions vacuum may not remove.
    submit(&db, &kafka.topic, 600);
    let mut published = 0;
    wait_for("600 rows published", DEADLINE, || {
        published += relay.round().expect("round").published;
        (published >= 600).then_some(())
    });

    // The alert metric sees the transaction's age grow.
    let age = wait_for("the gauge to show the open transaction", DEADLINE, || {
        ackbox_relay::maintenance::refresh_gauges(&relay).expect("gauges");
        let age = relay.metrics().oldest_transaction_age.get();
        (age >= 1.0).then_some(age)
    });
    assert!(age < 600.0, "the age is this test's transaction's, not something else's: {age}");

    // The claim still runs on the partial index of unpublished rows (no sequential scan of the history).
    submit(&db, &kafka.topic, 5);
    // The relay's exact claim (in autocommit, so ANALYZE's row locks end with the statement).
    let plan = explain(&mut db.conn(), &claim_sql());
    assert!(index_scan(&plan, &UNPUBLISHED_INDEXES).is_some(), "{plan:#}");
    assert!(!has_seq_scan(&plan), "{plan:#}");

    // Once it ends, the gauge falls back.
    diesel::sql_query("COMMIT").execute(&mut idle).expect("commit");
    wait_for("the gauge to drop", Duration::from_secs(10), || {
        ackbox_relay::maintenance::refresh_gauges(&relay).expect("gauges");
        (relay.metrics().oldest_transaction_age.get() < 1.0).then_some(())
    });
}
