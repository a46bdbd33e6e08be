//! Long jobs that fill every slot must not cost the worker its place in the group: while it waits for a free slot
//! it pauses its partitions and keeps polling Kafka, so the group never sees it as stuck.

use std::time::Duration;

use ackbox_db::models::JobStatus;
use ackbox_testing::{dispatch, wait_for};

use crate::helpers::start_with_config;

#[test]
fn a_worker_whose_slots_are_full_for_longer_than_the_poll_interval_stays_in_its_group() {
    let w = start_with_config(ackbox_worker::handlers::builtin(), |c| {
        c.concurrency = 2;
        c.batch = 2;
        c.session_timeout = Duration::from_secs(6);
        // Kafka's limit on the time between two polls, far shorter here than the jobs that hold the slots.
        c.kafka.extra.push(("max.poll.interval.ms".into(), "6000".into()));
        // The jobs sleep 10 s: with the helpers' 10 s timeout, sleep and timeout raced, and under load the timeout
        // sometimes won (the job failed with `timeout`).
        c.job_timeout = Duration::from_secs(60);
    });
    let ids: Vec<_> = (0..4).map(|_| w.submit("sleep", serde_json::json!({"ms": 10_000}), 1)).collect();
    for id in &ids {
        dispatch(&w.kafka, *id, "sleep", 1);
    }
    for id in &ids {
        let job = wait_for("the job to finish", Duration::from_secs(90), || {
            let j = w.job(*id);
            j.status.is_terminal().then_some(j)
        });
        assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1), "{:?} {:?}", job.error, job.history);
    }
    let m = &w.metrics;
    assert_eq!(m.rebalances.with_label_values(&["revoke"]).get(), 0, "the worker never lost its partitions");
    assert_eq!(m.rebalances.with_label_values(&["assign"]).get(), 3, "one assignment per priority lane, at start");
}
