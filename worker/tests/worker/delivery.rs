use ackbox_db::models::JobStatus;
use ackbox_testing::{dispatch, produce};

use crate::helpers::start;

#[test]
fn an_echo_job_succeeds_once_with_its_payload_as_result_and_the_offset_is_committed() {
    let w = start(ackbox_worker::handlers::builtin());
    let id = w.submit("echo", serde_json::json!({"n": 42, "s": "x"}), 3);

    dispatch(&w.kafka, id, "echo", 1);

    let job = w.wait_terminal(id);
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.result, Some(serde_json::json!({"n": 42, "s": "x"})));
    assert_eq!(job.attempts, 1);
    assert!(job.error.is_none());
    assert!(job.started_at.is_some() && job.finished_at.is_some() && job.lease_expires_at.is_none());
    assert_eq!(w.stop_and_committed_offset(), 1, "offset stored after the status commit, and committed on shutdown");
}

#[test]
fn duplicate_messages_run_the_job_once() {
    let w = start(ackbox_worker::handlers::builtin());
    let id = w.submit("noop", serde_json::json!({}), 3);

    for _ in 0..3 {
        dispatch(&w.kafka, id, "noop", 1);
    }
    let job = w.wait_terminal(id);
    // The duplicates may arrive after the first ran; wait for every offset to be accounted for, then check.
    let marker = w.submit("noop", serde_json::json!({}), 1);
    dispatch(&w.kafka, marker, "noop", 1);
    w.wait_status(marker, JobStatus::Succeeded);

    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(w.job(id).attempts, 1, "claimed exactly once despite three deliveries");
    assert_eq!(w.stop_and_committed_offset(), 4);
}

#[test]
fn an_undecodable_message_is_skipped_without_blocking_the_partition() {
    let w = start(ackbox_worker::handlers::builtin());
    produce(&w.kafka, "garbage", b"\x00 definitely not an envelope");
    produce(&w.kafka, "future", br#"{"v":99,"job_id":"00000000-0000-0000-0000-000000000000"}"#);
    let id = w.submit("noop", serde_json::json!({}), 3);
    dispatch(&w.kafka, id, "noop", 1);

    assert_eq!(w.wait_terminal(id).status, JobStatus::Succeeded);
    assert_eq!(w.stop_and_committed_offset(), 3, "the bad messages' offsets were stored too");
}

#[test]
fn a_message_for_a_job_that_does_not_exist_changes_nothing() {
    let w = start(ackbox_worker::handlers::builtin());
    dispatch(&w.kafka, uuid::Uuid::now_v7(), "noop", 1);
    let id = w.submit("noop", serde_json::json!({}), 3);
    dispatch(&w.kafka, id, "noop", 1);
    assert_eq!(w.wait_terminal(id).status, JobStatus::Succeeded);
    let mut conn = w.db.conn();
    let count: i64 =
        diesel::RunQueryDsl::get_result(diesel::QueryDsl::count(ackbox_db::schema::jobs::table), &mut conn)
            .expect("count");
    assert_eq!(count, 1, "no row was invented for the unknown id");
    assert_eq!(w.stop_and_committed_offset(), 2);
}

#[test]
fn offsets_of_jobs_completed_together_are_all_committed() {
    // Sixty messages waiting before the worker starts: one claim takes them all, and their outcomes are written in
    // a few batches, each moving the partition's storable offset several times. Every move must reach the commit,
    // so that a worker restarted in the group receives none of them again.
    const JOBS: usize = 60;
    let prepared = crate::helpers::prepare(|c| {
        c.concurrency = 64;
        c.batch = 64;
    });
    let (_, db, kafka) = &prepared;
    let mut conn = db.conn();
    let ids: Vec<uuid::Uuid> = (0..JOBS)
        .map(|_| {
            let new = ackbox_db::models::NewJob::new("noop", serde_json::json!({}), 3);
            ackbox_db::state::submit(&mut conn, &new, &kafka.topic).expect("submit").id
        })
        .collect();
    for &id in &ids {
        dispatch(kafka, id, "noop", 1);
    }
    let w = crate::helpers::start_prepared(ackbox_worker::handlers::builtin(), prepared);
    for &id in &ids {
        assert_eq!(w.wait_terminal(id).status, JobStatus::Succeeded);
    }
    assert_eq!(w.stop_and_committed(), Some(JOBS as i64), "the group's offset is past every finished job's message");
}
