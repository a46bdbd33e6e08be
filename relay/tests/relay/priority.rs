//! Priority: the relay publishes due rows highest priority first, each onto its level's topic (`.high`, the topic
//! itself for normal, `.low`).

use std::collections::BTreeSet;

use ackbox_db::models::{NewJob, Priority};
use ackbox_testing::{consume_dispatches, fresh_topic, TestDb};
use uuid::Uuid;

use crate::helpers::{relay, relay_config, DEADLINE};

fn submit_at(db: &TestDb, topic: &str, priority: Priority, n: usize) -> Vec<Uuid> {
    let mut conn = db.conn();
    (0..n)
        .map(|_| {
            let job = NewJob::new("noop", serde_json::json!({}), 3).with_priority(priority);
            ackbox_db::state::submit(&mut conn, &job, topic).expect("submit").id
        })
        .collect()
}

fn keys(ids: &[Uuid]) -> BTreeSet<String> {
    ids.iter().map(ToString::to_string).collect()
}

#[test]
fn due_rows_are_published_highest_priority_first_each_onto_its_lane() {
    // Arrange: low, then normal, then high jobs, in that submission order; a relay that takes 3 rows a round.
    let db = TestDb::new();
    let kafka = fresh_topic("relay-priority", 2);
    let low = submit_at(&db, &kafka.topic, Priority::Low, 3);
    let normal = submit_at(&db, &kafka.topic, Priority::Normal, 3);
    let high = submit_at(&db, &kafka.topic, Priority::High, 3);
    let mut cfg = relay_config(&db, &kafka);
    cfg.batch = 3;
    let relay = relay(&db, cfg);

    // Act: one round at a time.
    let published_in = |round: usize| -> BTreeSet<String> {
        let r = relay.round().expect("round");
        assert_eq!(r.published, 3, "round {round}: {r:?}");
        use ackbox_db::schema::outbox::dsl as o;
        use diesel::prelude::*;
        let published: Vec<Uuid> =
            o::outbox.filter(o::published_at.is_not_null()).select(o::aggregate_id).load(&mut db.conn()).expect("rows");
        keys(&published)
    };
    let after_first = published_in(1);
    let after_second = published_in(2);
    let after_third = published_in(3);

    // Assert: the last submitted (high) went first, then normal, then low.
    assert_eq!(after_first, keys(&high), "the first round takes the high rows");
    assert_eq!(after_second, &keys(&high) | &keys(&normal), "then the normal ones");
    assert_eq!(after_third.len(), 9, "then the low ones");
    // Each level on its own topic.
    let on = |topic: String| -> BTreeSet<String> {
        consume_dispatches(&kafka, &topic, 3, DEADLINE).into_iter().map(|d| d.envelope.job_id.to_string()).collect()
    };
    assert_eq!(on(format!("{}.high", kafka.topic)), keys(&high));
    assert_eq!(on(kafka.topic.clone()), keys(&normal));
    assert_eq!(on(format!("{}.low", kafka.topic)), keys(&low));
}
