//! Queues in the worker: a queue's cap (`ACKBOX_QUEUE_CONCURRENCY`) bounds its jobs running at once without holding
//! back other queues' jobs while slots remain; a paused queue's jobs stay queued (running ones finish) and run once
//! it is resumed and the rescuer dispatches them again.

use std::time::Duration;

use ackbox_db::models::{queue, JobStatus, NewJob};
use ackbox_runtime::kafka::KafkaConfig;
use ackbox_testing::{produce, wait_for};
use ackbox_types::envelope::Envelope;
use uuid::Uuid;

use crate::helpers::{start_with_config, TestWorker, DEADLINE};

/// Submits a job in `queue` and dispatches it as the relay would (its envelope names the queue).
fn submit_in(w: &TestWorker, kind: &str, payload: serde_json::Value, queue: &str) -> Uuid {
    let mut job = NewJob::new(kind, payload, 1);
    job.queue = queue.to_string();
    let id = ackbox_db::state::submit(&mut w.db.conn(), &job, &w.kafka.topic).expect("submit").id;
    send(&w.kafka, &Envelope::new(id, kind, 1).in_queue(queue));
    id
}

fn send(kafka: &KafkaConfig, env: &Envelope) {
    produce(kafka, &env.job_id.to_string(), &serde_json::to_vec(&env.to_json()).expect("json"));
}

#[test]
fn a_queue_at_its_cap_runs_one_job_at_a_time_while_other_queues_keep_running() {
    let w = start_with_config(ackbox_worker::handlers::builtin(), |c| {
        c.concurrency = 4;
        c.batch = 4;
        c.queue_concurrency = [("slow".to_string(), 1)].into();
    });
    let slow: Vec<Uuid> = (0..3).map(|_| submit_in(&w, "sleep", serde_json::json!({"ms": 400}), "slow")).collect();
    let other = submit_in(&w, "noop", serde_json::json!({}), "default");

    let jobs: Vec<_> = slow.iter().map(|id| w.wait_terminal(*id)).collect();
    let mut spans: Vec<_> = jobs
        .iter()
        .map(|j| {
            assert_eq!(j.status, JobStatus::Succeeded, "{j:?}");
            (j.started_at.expect("started"), j.finished_at.expect("finished"))
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "the cap of 1 let two run at once: {spans:?}");
    }
    let other = w.wait_terminal(other);
    assert_eq!(other.status, JobStatus::Succeeded);
    assert!(other.finished_at.expect("finished") < spans[2].0, "the other queue did not wait for the capped one");
    assert!(w.metrics.parked.get() >= 2, "the capped queue's messages waited: {}", w.metrics.parked.get());
}

#[test]
fn a_paused_queues_jobs_wait_running_ones_finish_and_a_resume_runs_them() {
    let w = start_with_config(ackbox_worker::handlers::builtin(), |_| {});
    queue::ensure(&mut w.db.conn(), &["mail".to_string()]).expect("queue");
    let running = submit_in(&w, "sleep", serde_json::json!({"ms": 1500}), "mail");
    w.wait_status(running, JobStatus::Running);

    // Pause while it runs; a new job of the queue arrives.
    queue::pause(&mut w.db.conn(), "mail").expect("pause");
    let waiting = submit_in(&w, "echo", serde_json::json!({"x": 1}), "mail");
    let skipped = wait_for("the worker to receive and skip it", DEADLINE, || w.job(waiting).dispatch_skipped_at);
    assert_eq!(w.job(waiting).status, JobStatus::Queued, "skipped at {skipped}");
    assert_eq!(w.wait_terminal(running).status, JobStatus::Succeeded, "a running job finishes");
    assert_eq!(w.job(waiting).status, JobStatus::Queued, "still waiting while paused");

    // Resume: the rescuer dispatches it again (as the relay would publish), and it runs.
    queue::resume(&mut w.db.conn(), "mail").expect("resume");
    // The relay published the first dispatch (this test sent it by hand).
    diesel::RunQueryDsl::execute(diesel::sql_query("UPDATE outbox SET published_at = now()"), &mut w.db.conn())
        .expect("published");
    let sent = ackbox_db::state::rescue_dispatches(&mut w.db.conn(), Duration::from_secs(3600), 10, &w.kafka.topic)
        .expect("rescue")
        .expect("lock");
    assert_eq!(sent, 1);
    let envelope: serde_json::Value = {
        use ackbox_db::schema::outbox::dsl as o;
        use diesel::prelude::*;
        o::outbox
            .filter(o::aggregate_id.eq(waiting))
            .order(o::id.desc())
            .select(o::payload)
            .first(&mut w.db.conn())
            .expect("new dispatch")
    };
    send(&w.kafka, &serde_json::from_value(envelope).expect("envelope"));
    assert_eq!(w.wait_terminal(waiting).status, JobStatus::Succeeded);
}
