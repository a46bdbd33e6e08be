//! Kafka group membership of the real worker processes: static membership (`ACKBOX_WORKER_INSTANCE_ID`, KIP-345)
//! brings a crashed worker back at once, a worker stopped on purpose hands its partitions on at once, and two
//! processes under one name cannot both consume. Also: a broker that is down at start-up is named in the logs while
//! the api keeps accepting.
//!
//! Every worker here has a session timeout far longer than the tests' deadlines, so a test that passes did not wait
//! for a dead member's session to run out: the group had to act on the restart or the leave itself.

use std::time::Duration;

use ackbox_e2e::{Component, Stack};
use ackbox_testing::wait_for;
use diesel::prelude::*;

/// Longer than every deadline below (the broker caps sessions at 30 min).
const LONG_SESSION: &[(&str, &str)] = &[("ACKBOX_WORKER_SESSION_TIMEOUT_MS", "240000")];

/// How long a test waits for jobs that the group's own reaction should release (a fraction of the session).
const WELL_BEFORE_THE_SESSION_ENDS: Duration = Duration::from_secs(90);

fn count(conn: &mut PgConnection, status: &str) -> i64 {
    use ackbox_db::schema::jobs;
    jobs::table.filter(jobs::status.eq(status)).count().get_result(conn).expect("count")
}

fn max_attempts_used(conn: &mut PgConnection) -> i32 {
    use ackbox_db::schema::jobs;
    jobs::table.select(diesel::dsl::max(jobs::attempts)).first::<Option<i32>>(conn).expect("max").unwrap_or(0)
}

fn submit_noops(stack: &Stack, client: &reqwest::blocking::Client, n: usize) {
    for i in 0..n {
        stack.submit(client, serde_json::json!({"kind": "echo", "payload": {"i": i}}));
    }
}

#[test]
fn a_worker_killed_and_restarted_under_its_name_takes_its_partitions_back_before_its_session_ends() {
    let mut stack = Stack::start_with(LONG_SESSION);
    let client = stack.client();
    let mut conn = stack.db.conn();
    submit_noops(&stack, &client, 1);
    wait_for("the first job to succeed", Duration::from_secs(60), || {
        (count(&mut conn, "succeeded") == 1).then_some(())
    });
    let name = stack.worker_names();

    stack.signal(Component::Worker, 0, "KILL");
    // Jobs keyed over every partition, queued while no worker runs.
    submit_noops(&stack, &client, 30);
    stack.spawn(Component::Worker);
    assert_eq!(stack.worker_names(), name, "the restarted worker has the killed one's name");

    wait_for("the restarted worker to run every queued job", WELL_BEFORE_THE_SESSION_ENDS, || {
        (count(&mut conn, "succeeded") == 31).then_some(())
    });
    assert_eq!(max_attempts_used(&mut conn), 1, "no job needed a second attempt");
    stack.assert_alive();
}

#[test]
fn a_static_worker_stopped_with_sigterm_hands_its_partitions_on_at_once() {
    let mut stack = Stack::start_with(LONG_SESSION);
    let client = stack.client();
    let mut conn = stack.db.conn();
    stack.spawn(Component::Worker);
    submit_noops(&stack, &client, 20);
    wait_for("the first jobs to succeed", Duration::from_secs(60), || {
        (count(&mut conn, "succeeded") == 20).then_some(())
    });

    // A static member's close does not leave the group; the worker must leave explicitly, or the survivor would
    // not get the stopped worker's partitions until its session ran out.
    stack.signal(Component::Worker, 0, "TERM");
    assert!(stack.wait_exited(Duration::from_secs(60)), "the worker exits after SIGTERM");
    assert_eq!(stack.count(Component::Worker), 1, "one worker stopped");
    submit_noops(&stack, &client, 30);
    wait_for("the remaining worker to run every job", WELL_BEFORE_THE_SESSION_ENDS, || {
        (count(&mut conn, "succeeded") == 50).then_some(())
    });
    let log = std::fs::read_to_string(stack.log_path(Component::Worker)).expect("worker log");
    assert!(log.contains("left group"), "the stopped worker says it left its group");
}

#[test]
fn a_second_worker_under_the_same_name_is_refused_and_the_group_keeps_working() {
    let mut stack = Stack::start_with(LONG_SESSION);
    let client = stack.client();
    let mut conn = stack.db.conn();
    let name = stack.worker_names().pop().expect("a worker name");
    // A copy-pasted replica: the same instance id as the running worker.
    stack.spawn_with(Component::Worker, &[("ACKBOX_WORKER_INSTANCE_ID", &name)]);

    // Kafka fences the older of the two; the fenced one exits, and says why.
    wait_for("one of the two same-named workers to exit", Duration::from_secs(60), || {
        (stack.count(Component::Worker) == 1).then_some(())
    });
    let log = std::fs::read_to_string(stack.log_path(Component::Worker)).expect("worker log");
    assert!(log.contains("ACKBOX_WORKER_INSTANCE_ID"), "the fenced worker names the setting to fix:\n{log}");

    submit_noops(&stack, &client, 10);
    wait_for("the surviving worker to run the jobs", WELL_BEFORE_THE_SESSION_ENDS, || {
        (count(&mut conn, "succeeded") == 10).then_some(())
    });
}

#[test]
fn a_broker_that_is_down_at_start_up_is_named_in_the_logs_and_the_api_keeps_accepting() {
    // Port 9 (discard) on loopback: nothing listens, every connection is refused.
    let mut stack = Stack::start_with(&[("KAFKA_BROKERS", "127.0.0.1:9")]);
    let client = stack.client();
    let doc = stack.submit(&client, serde_json::json!({"kind": "echo", "payload": {}}));
    assert_eq!(doc["status"], "queued");
    for component in [Component::Relay, Component::Worker] {
        let path = stack.log_path(component);
        wait_for("a log line naming KAFKA_BROKERS", Duration::from_secs(60), || {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            log.contains("KAFKA_BROKERS=127.0.0.1:9").then_some(())
        });
    }
    // The job waits in the outbox, and the processes wait for the broker instead of exiting.
    let mut conn = stack.db.conn();
    assert_eq!(count(&mut conn, "queued"), 1);
    stack.assert_alive();
}
