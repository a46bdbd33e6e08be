//! Priority lanes: under a backlog, a worker takes high-priority dispatches before normal ones, and normal ones
//! before low ones, whatever order they were submitted in.

use ackbox_db::models::{JobStatus, NewJob, Priority};
use ackbox_runtime::kafka::KafkaConfig;
use ackbox_testing::dispatch;
use uuid::Uuid;

use crate::helpers::{prepare, start_prepared, TestWorker};

/// `n` jobs of `kind` at `priority`, each submitted and dispatched on its level's topic, as the relay does: a
/// backlog already in Kafka before the worker starts.
fn backlog(
    db: &ackbox_testing::TestDb,
    kafka: &KafkaConfig,
    priority: Priority,
    n: usize,
    kind: &str,
    payload: &serde_json::Value,
) -> Vec<Uuid> {
    (0..n)
        .map(|_| {
            let job = NewJob::new(kind, payload.clone(), 1).with_priority(priority);
            let id = ackbox_db::state::submit(&mut db.conn(), &job, &kafka.topic).expect("submit").id;
            let lane = KafkaConfig { topic: priority.lane_topic(&kafka.topic), ..kafka.clone() };
            dispatch(&lane, id, kind, 1);
            id
        })
        .collect()
}

/// When each job started, once it has succeeded.
fn started_times(w: &TestWorker, ids: &[Uuid]) -> Vec<chrono::DateTime<chrono::Utc>> {
    ids.iter()
        .map(|id| {
            let job = w.wait_terminal(*id);
            assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
            job.started_at.expect("started")
        })
        .collect()
}

#[test]
fn under_a_backlog_high_priority_jobs_start_before_normal_and_low_ones_submitted_earlier() {
    // Arrange: one slot, and a backlog already in Kafka before the worker starts: low jobs submitted first, then
    // normal, then high, each dispatched on its level's topic as the relay does.
    let (config, db, kafka) = prepare(|c| {
        c.concurrency = 1;
        c.batch = 1;
    });
    let sleep = serde_json::json!({"ms": 20});
    let low = backlog(&db, &kafka, Priority::Low, 4, "sleep", &sleep);
    let normal = backlog(&db, &kafka, Priority::Normal, 6, "sleep", &sleep);
    let high = backlog(&db, &kafka, Priority::High, 3, "sleep", &sleep);

    // Act: the worker drains the backlog one job at a time.
    let w = start_prepared(ackbox_worker::handlers::builtin(), (config, db, kafka));
    let started = |ids: &[Uuid]| started_times(&w, ids);
    let (high, normal, low) = (started(&high), started(&normal), started(&low));

    // Assert: every high job started before any normal one, and every normal one before any low one.
    let (last_high, first_normal) = (high.iter().max().expect("high"), normal.iter().min().expect("normal"));
    assert!(last_high < first_normal, "high {high:?} vs normal {normal:?}");
    let (last_normal, first_low) = (normal.iter().max().expect("normal"), low.iter().min().expect("low"));
    assert!(last_normal < first_low, "normal {normal:?} vs low {low:?}");
}

#[test]
fn a_high_lane_handed_over_a_few_messages_per_fetch_is_still_taken_before_the_normal_backlog() {
    // Arrange: fetches of at most 1000 bytes (librdkafka's least: fetch.max.bytes may not be below message.max.bytes),
    // a few dispatches each, so the high lane's buffer runs dry after every few messages while its partitions still
    // hold more, and the normal lane's messages sit ready meanwhile. Only the check on where the high lane's log ends
    // keeps normal jobs from overtaking.
    let (config, db, kafka) = prepare(|c| {
        c.concurrency = 1;
        c.batch = 1;
        c.kafka.extra.push(("max.partition.fetch.bytes".into(), "1".into()));
        c.kafka.extra.push(("message.max.bytes".into(), "1000".into()));
        c.kafka.extra.push(("fetch.max.bytes".into(), "1000".into()));
    });
    let normal = backlog(&db, &kafka, Priority::Normal, 10, "noop", &serde_json::json!({}));
    let high = backlog(&db, &kafka, Priority::High, 20, "noop", &serde_json::json!({}));

    // Act
    let w = start_prepared(ackbox_worker::handlers::builtin(), (config, db, kafka));
    let started = |ids: &[Uuid]| started_times(&w, ids);
    let (high, normal) = (started(&high), started(&normal));

    // Assert
    let (last_high, first_normal) = (high.iter().max().expect("high"), normal.iter().min().expect("normal"));
    assert!(last_high < first_normal, "high {high:?} vs normal {normal:?}");
}
