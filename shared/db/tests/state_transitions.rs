//! The job state machine against a real database: every transition applies exactly when its fence matches.

use std::time::Duration;

use ackbox_db::models::{Job, JobError, JobStatus, NewJob};
use ackbox_db::state::{self, FailOutcome, Success};
use ackbox_testing::TestDb;
use diesel::PgConnection;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);
const TOPIC: &str = "ackbox.test";

fn submit(conn: &mut PgConnection, max_attempts: i32) -> Uuid {
    state::submit(conn, &NewJob::new("noop", serde_json::json!({}), max_attempts), TOPIC).expect("submit").id
}

fn job(conn: &mut PgConnection, id: Uuid) -> Job {
    Job::find(conn, id).expect("query").expect("exists")
}

fn err() -> JobError {
    JobError { code: "boom".into(), message: "it broke".into() }
}

#[test]
fn a_job_is_claimed_once_however_many_times_it_is_asked_for() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = submit(&mut conn, 3);

    let first = state::claim(&mut conn, &[id, id], LEASE).expect("claim");
    let second = state::claim(&mut conn, &[id], LEASE).expect("claim");

    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    assert!(second.is_empty(), "a running job cannot be claimed again");
    let j = job(&mut conn, id);
    assert_eq!((j.status, j.attempts), (JobStatus::Running, 1));
    assert!(j.lease_expires_at.is_some() && j.started_at.is_some());
}

#[test]
fn writes_apply_only_for_the_current_attempt_of_a_running_job() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = submit(&mut conn, 3);
    let attempt = state::claim(&mut conn, &[id], LEASE).expect("claim")[0].attempt;

    // (what, attempt used, expected to apply)
    let cases =
        [("stale attempt", attempt - 1, false), ("future attempt", attempt + 1, false), ("current", attempt, true)];
    for (what, a, applies) in cases {
        let applied =
            state::complete(&mut conn, &[Success { id, attempt: a, result: serde_json::json!(a) }]).expect("complete");
        assert_eq!(applied.len() == 1, applies, "{what}");
    }
    // Terminal now: neither a late success nor a late failure of the same attempt changes it.
    assert!(state::complete(&mut conn, &[Success { id, attempt, result: serde_json::json!("late") }])
        .expect("complete")
        .is_empty());
    let late_fail = state::fail(&mut conn, id, attempt, &err(), true, Duration::ZERO, TOPIC).expect("fail");
    assert_eq!(late_fail, FailOutcome::Stale);
    let j = job(&mut conn, id);
    assert_eq!(j.status, JobStatus::Succeeded);
    assert_eq!(j.result, Some(serde_json::json!(attempt)));
}

#[test]
fn failures_retry_with_a_new_due_outbox_row_until_max_attempts_then_fail() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = submit(&mut conn, 2);

    let a1 = state::claim(&mut conn, &[id], LEASE).expect("claim")[0].attempt;
    let retried = state::fail(&mut conn, id, a1, &err(), true, Duration::from_millis(200), TOPIC).expect("fail");
    let FailOutcome::Retried { not_before } = retried else { panic!("expected a retry, got {retried:?}") };
    let j = job(&mut conn, id);
    assert_eq!((j.status, j.not_before), (JobStatus::Queued, Some(not_before)));
    let rows = ackbox_db::outbox::for_job(&mut conn, id).expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].available_at, not_before);
    assert_eq!(rows[1].payload["attempt"], 2);

    // Not claimable before not_before: an early duplicate message cannot start the retry.
    assert!(state::claim(&mut conn, &[id], LEASE).expect("claim").is_empty());
    let a2 = ackbox_testing::wait_for("the retry to become due", Duration::from_secs(10), || {
        state::claim(&mut conn, &[id], LEASE).expect("claim").pop().map(|c| c.attempt)
    });
    assert_eq!(a2, 2);

    let last = state::fail(&mut conn, id, a2, &err(), true, Duration::ZERO, TOPIC).expect("fail");
    assert_eq!(last, FailOutcome::Failed, "attempts exhausted");
    let j = job(&mut conn, id);
    assert_eq!(j.status, JobStatus::Failed);
    assert_eq!(j.error, Some(serde_json::json!({"code": "boom", "message": "it broke"})));
    assert!(j.finished_at.is_some());
    assert_eq!(ackbox_db::outbox::for_job(&mut conn, id).expect("rows").len(), 2, "no dispatch after the end");
}

#[test]
fn a_permanent_failure_ends_the_job_at_once() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = submit(&mut conn, 5);
    let a = state::claim(&mut conn, &[id], LEASE).expect("claim")[0].attempt;
    assert_eq!(state::fail(&mut conn, id, a, &err(), false, Duration::ZERO, TOPIC).expect("fail"), FailOutcome::Failed);
    assert_eq!(job(&mut conn, id).status, JobStatus::Failed);
}

#[test]
fn preloaded_jobs_carry_envelopes_the_worker_can_decode() {
    let db = TestDb::new();
    let mut conn = db.conn();
    state::preload(&mut conn, 3, "noop", TOPIC).expect("preload");
    let rows = ackbox_db::outbox::claim_batch(&mut conn, 10).expect("rows");
    assert_eq!(rows.len(), 3);
    // Ids as the API issues them: UUIDv7 (RFC 9562 variant), ascending in the order the outbox rows were written.
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.aggregate_id).collect();
    assert!(ids.iter().all(|id| id.get_version_num() == 7 && id.get_variant() == uuid::Variant::RFC4122), "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of submission order: {ids:?}");
    let ms = ids[0].get_timestamp().expect("a v7 timestamp").to_unix();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    assert!(now.as_secs().abs_diff(ms.0) <= 60, "id time {ms:?} is not now ({now:?})");
    for row in rows {
        let bytes = serde_json::to_vec(&row.payload).expect("json");
        let env = ackbox_types::envelope::Envelope::decode(Some(&bytes)).expect("an envelope the worker decodes");
        assert_eq!((env.job_id, env.kind.as_str(), env.attempt), (row.aggregate_id, "noop", 1));
        // The headers an untraced submit writes, so the bench's records cost the broker what the API's would.
        let written = ackbox_db::outbox::message(TOPIC, &env, None, None, Default::default());
        assert_eq!(row.headers, written.headers);
        let job = Job::find(&mut conn, row.aggregate_id).expect("find").expect("its job");
        assert_eq!(job.status, JobStatus::Queued);
    }
}
