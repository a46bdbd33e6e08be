//! One bad outcome never wedges a worker: a result or error Postgres would refuse fails only its own job
//! (`result_unstorable`), an `on_commit` that panics fails only its own attempt, and a batch that cannot be written
//! at all is released after a few tries (its leases lapse and the rescuer takes over).

use std::time::Duration;

use ackbox_db::models::JobStatus;
use ackbox_testing::{dispatch, wait_for};
use ackbox_worker::{async_trait, Handler, HandlerError, JobContext};
use diesel::prelude::*;

use crate::helpers::{start, start_with_config, TestWorker, DEADLINE};

/// Returns `payload["result"]`; with `{"nul": "result"}` a result holding a NUL character, with `{"nul": "error"}`
/// an error message holding one (a payload cannot carry NUL itself: Postgres refuses it at submit).
struct Returns;

#[async_trait]
impl Handler for Returns {
    async fn run(&self, _ctx: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        match payload.get("nul").and_then(|e| e.as_str()) {
            Some("result") => Ok(serde_json::json!({"text": "a\u{0000}b"})),
            Some(_) => Err(HandlerError::permanent("custom", "bad\u{0000}byte")),
            None => Ok(payload["result"].clone()),
        }
    }
}

/// Registers an `on_commit` effect that panics.
struct PanickyEffect;

#[async_trait]
impl Handler for PanickyEffect {
    async fn run(&self, ctx: &JobContext, _payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        ctx.on_commit(|_conn| panic!("bug in an effect"));
        Ok(serde_json::json!("ok"))
    }
}

fn registry() -> ackbox_worker::Registry {
    let mut r = ackbox_worker::handlers::builtin();
    r.register("returns", Returns).register("panicky-effect", PanickyEffect);
    r
}

fn run(w: &TestWorker, kind: &str, payload: serde_json::Value) -> uuid::Uuid {
    let id = w.submit(kind, payload, 3);
    dispatch(&w.kafka, id, kind, 1);
    id
}

/// A good job submitted after the bad one still finishes: the worker is not wedged.
fn assert_still_working(w: &TestWorker) {
    let good = run(w, "echo", serde_json::json!({"still": "working"}));
    assert_eq!(w.wait_terminal(good).status, JobStatus::Succeeded);
}

fn assert_unstorable(w: &TestWorker, id: uuid::Uuid) {
    let job = w.wait_terminal(id);
    assert_eq!(job.status, JobStatus::Failed, "{:?}", job.error);
    assert_eq!(job.error_field("code"), Some("result_unstorable"), "{:?}", job.error);
    assert_eq!(job.attempts, 1, "not retried: the same result would be refused again");
}

#[test]
fn a_result_with_a_nul_character_fails_only_its_own_job() {
    let w = start(registry());
    let bad = run(&w, "returns", serde_json::json!({"nul": "result"}));
    let neighbours: Vec<_> = (0..5).map(|i| run(&w, "echo", serde_json::json!({"n": i}))).collect();
    assert_unstorable(&w, bad);
    for id in neighbours {
        assert_eq!(w.wait_terminal(id).status, JobStatus::Succeeded, "a job in the same batch is unaffected");
    }
    assert_still_working(&w);
}

#[test]
fn an_error_message_with_a_nul_character_is_recorded_without_it() {
    let w = start(registry());
    let bad = run(&w, "returns", serde_json::json!({"nul": "error"}));
    let job = w.wait_terminal(bad);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_field("code"), Some("result_unstorable"), "{:?}", job.error);
    assert_still_working(&w);
}

#[test]
fn a_result_over_the_size_limit_fails_only_its_own_job() {
    // The default limit is 1 MiB.
    let w = start(registry());
    let big = "x".repeat(1_100_000);
    let bad = run(&w, "returns", serde_json::json!({"result": {"blob": big}}));
    assert_unstorable(&w, bad);
    assert!(w.job(bad).error_field("message").is_some_and(|m| m.contains("1048576")), "names the limit");
    assert_still_working(&w);
}

#[test]
fn an_on_commit_effect_that_panics_fails_only_its_own_attempt() {
    let w = start(registry());
    let id = w.submit("panicky-effect", serde_json::json!({}), 1);
    dispatch(&w.kafka, id, "panicky-effect", 1);
    let job = w.wait_terminal(id);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_field("code"), Some("effect_failed"), "{:?}", job.error);
    assert_still_working(&w);
}

#[test]
fn a_batch_postgres_always_refuses_is_released_to_the_rescuer_after_a_few_tries() {
    let w = start_with_config(registry(), |c| {
        c.lease = Duration::from_secs(3);
        c.outcome_write_tries = 3;
    });
    // Something no check can foresee: the database refuses every write of this job's outcome.
    diesel::connection::SimpleConnection::batch_execute(
        &mut w.db.conn(),
        "CREATE FUNCTION refuse_cursed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.kind = 'returns' AND NEW.status <> 'running' AND NEW.payload ? 'cursed' THEN
                 RAISE EXCEPTION 'refused by a test trigger';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_cursed BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_cursed();",
    )
    .expect("trigger");
    let cursed = run(&w, "returns", serde_json::json!({"cursed": true, "result": 1}));
    wait_for("the attempt to run", DEADLINE, || (w.job(cursed).attempts == 1).then_some(()));
    assert_still_working(&w);

    // Released: the heartbeat stops renewing the lease, so it lapses and the rescuer takes the job back.
    let job = wait_for("the lease to lapse", DEADLINE, || {
        let j = w.job(cursed);
        j.lease_expires_at.filter(|l| *l < chrono::Utc::now()).map(|_| j)
    });
    assert_eq!(job.status, JobStatus::Running);
    diesel::sql_query("DROP TRIGGER refuse_cursed ON jobs").execute(&mut w.db.conn()).expect("drop trigger");
    let report = ackbox_db::state::rescue(&mut w.db.conn(), Duration::from_secs(300), 10, &w.kafka.topic)
        .expect("rescue")
        .expect("lock");
    assert_eq!(report.requeued, 1);
    dispatch(&w.kafka, cursed, "returns", 2);
    assert_eq!(w.wait_terminal(cursed).status, JobStatus::Succeeded);
}
