use std::time::Duration;

use ackbox_testing::{kafka_config, unique_topic, TestDb};

use crate::helpers::{relay, relay_config, submit};

#[test]
fn undeliverable_rows_stay_unpublished_with_the_error_and_back_off() {
    let db = TestDb::new();
    // Nothing listens on port 1: every delivery fails after the (short) delivery timeout.
    let mut kafka = kafka_config(&unique_topic("relay-down"));
    kafka.brokers = "127.0.0.1:1".into();
    let mut cfg = relay_config(&db, &kafka);
    cfg.delivery_timeout = Duration::from_millis(1500);
    let relay = relay(&db, cfg);
    let ids = submit(&db, &kafka.topic, 3);

    let round = relay.round().expect("a failed delivery is not a failed round");
    assert_eq!((round.claimed, round.published, round.failed), (3, 0, 3));

    let mut conn = db.conn();
    for id in ids {
        let row = &ackbox_db::outbox::for_job(&mut conn, id).expect("rows")[0];
        assert!(row.published_at.is_none(), "not published");
        assert_eq!(row.attempts, 1);
        assert!(row.last_error.as_deref().is_some_and(|e| !e.is_empty()), "error kept");
        assert!(row.available_at > row.created_at, "backed off");
    }
    // Backed-off rows are not due, so the next round neither retries them at once nor blocks on them.
    let again = relay.round().expect("round");
    assert_eq!(again.claimed, 0);
    assert!(again.next_due.is_some(), "the relay knows when to look again");
}
