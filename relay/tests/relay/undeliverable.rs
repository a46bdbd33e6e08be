//! A row the broker (or the producer) refuses for good is not retried forever: it is marked dead, its job fails with
//! `undeliverable` and the broker's error, and the rows behind it are delivered as usual. And kinds routed to their
//! own topic go there.

use ackbox_db::models::{Job, JobStatus};
use ackbox_testing::{consume, consume_dispatches, fresh_topic, TestDb};
use diesel::prelude::*;

use crate::helpers::{relay, relay_config, submit, DEADLINE};

#[test]
fn a_message_too_large_for_kafka_is_dead_and_fails_its_job_while_the_others_go_out() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-dead", 1);
    let ids = submit(&db, &kafka.topic, 3);
    // Headers of 2 MB: over librdkafka's and Kafka's default message.max.bytes (1 MB), whatever retries do.
    diesel::sql_query(
        "UPDATE outbox SET headers = jsonb_build_object('padding', repeat('x', 2000000)) WHERE aggregate_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(ids[1])
    .execute(&mut db.conn())
    .expect("oversize one row");
    let relay = relay(&db, relay_config(&db, &kafka));

    let round = relay.round().expect("round");
    assert_eq!((round.claimed, round.published), (3, 2), "{round:?}");

    let mut conn = db.conn();
    let row = &ackbox_db::outbox::for_job(&mut conn, ids[1]).expect("rows")[0];
    assert!(row.dead_at.is_some() && row.published_at.is_none(), "{row:?}");
    let job = Job::find(&mut conn, ids[1]).expect("q").expect("job");
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_field("code"), Some("undeliverable"));
    assert!(job.error_field("message").is_some_and(|m| m.to_lowercase().contains("size")), "{:?}", job.error);

    // Never claimed again: the next round has nothing to do, and the dead row is not in the backlog.
    assert_eq!(relay.round().expect("round").claimed, 0);
    assert_eq!(ackbox_db::outbox::unpublished_count(&mut conn).expect("count"), 0);
    let dead = ackbox_db::outbox::list(
        &mut conn,
        &ackbox_db::outbox::ListFilter { dead: true, limit: 10, ..Default::default() },
    )
    .expect("list dead");
    assert_eq!(dead.iter().map(|r| r.aggregate_id).collect::<Vec<_>>(), vec![ids[1]]);
    assert_eq!(consume_dispatches(&kafka, &kafka.topic, 2, DEADLINE).len(), 2);
}

#[test]
fn a_kind_routed_to_its_own_topic_is_produced_there() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-main", 1);
    let own = fresh_topic("relay-video", 1);
    let mut conn = db.conn();
    let video = ackbox_db::state::submit(
        &mut conn,
        &ackbox_db::models::NewJob::new("video", serde_json::json!({}), 3),
        &kafka.topic,
    )
    .expect("submit")
    .id;
    let plain = submit(&db, &kafka.topic, 1)[0];
    let mut cfg = relay_config(&db, &kafka);
    cfg.kind_topics = [("video".to_string(), own.topic.clone())].into_iter().collect();
    let relay = relay(&db, cfg);
    assert_eq!(relay.round().expect("round").published, 2);

    let on_own = consume(&own, &own.topic, 1, DEADLINE);
    assert_eq!(on_own.iter().map(|m| m.key.clone()).collect::<Vec<_>>(), vec![video.to_string()]);
    let on_main = consume(&kafka, &kafka.topic, 1, DEADLINE);
    assert_eq!(on_main.iter().map(|m| m.key.clone()).collect::<Vec<_>>(), vec![plain.to_string()]);
}

#[test]
fn a_packed_record_refused_for_its_size_is_retried_row_by_row_and_no_row_dies() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-packed-refused", 1);
    let ids = submit(&db, &kafka.topic, 2);
    // Each alone fits librdkafka's default message.max.bytes (1,000,000); together they do not.
    for (id, pad) in [(ids[0], 30_000), (ids[1], 975_000)] {
        diesel::sql_query(
            "UPDATE outbox SET payload = payload || jsonb_build_object('pad', repeat('x', $2)) WHERE aggregate_id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<diesel::sql_types::Integer, _>(pad)
        .execute(&mut db.conn())
        .expect("pad a row");
    }
    let relay = relay(&db, relay_config(&db, &kafka));

    let first = relay.round().expect("round");
    assert_eq!((first.claimed, first.published, first.failed), (2, 0, 2), "packed together, refused: {first:?}");
    let mut conn = db.conn();
    for id in &ids {
        let row = &ackbox_db::outbox::for_job(&mut conn, *id).expect("rows")[0];
        assert!(row.dead_at.is_none(), "not dead for a refusal that may not be its own: {row:?}");
        assert!(row.last_error.as_deref().is_some_and(|e| e.contains("packed")), "{row:?}");
        assert_eq!(Job::find(&mut conn, *id).expect("q").expect("job").status, JobStatus::Queued);
    }
    // Their backoff over (the clock, not the relay, is what this skips), each goes alone and is accepted.
    diesel::sql_query("UPDATE outbox SET available_at = now()").execute(&mut conn).expect("due now");
    let second = relay.round().expect("round");
    assert_eq!((second.claimed, second.published), (2, 2), "{second:?}");
    let records = consume(&kafka, &kafka.topic, 2, DEADLINE);
    let mut keys: Vec<String> = records.iter().map(|m| m.key.clone()).collect();
    keys.sort();
    let mut expected: Vec<String> = ids.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(keys, expected, "two records of one job each");
}
