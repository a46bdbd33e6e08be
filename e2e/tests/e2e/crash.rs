//! SIGKILL and SIGSTOP the real processes: every accepted job still ends, none takes effect twice.

use std::time::Duration;

use ackbox_e2e::{Component, Stack};
use ackbox_testing::wait_for;
use diesel::prelude::*;

/// Short leases and a fast rescuer, so crashed attempts come back within the test's deadline.
const FAST_RESCUE: &[(&str, &str)] = &[
    ("ACKBOX_LEASE_MS", "1500"),
    // At most a third of the lease (refused otherwise).
    ("ACKBOX_HEARTBEAT_MS", "500"),
    ("ACKBOX_RESCUE_INTERVAL_MS", "200"),
    ("ACKBOX_DISPATCH_TIMEOUT_MS", "5000"),
    ("ACKBOX_RELAY_BATCH", "10"),
    ("ACKBOX_WORKER_CONCURRENCY", "8"),
    ("ACKBOX_WORKER_BATCH", "8"),
    // The group must notice the killed worker soon for its replacement to get the partitions.
    ("ACKBOX_WORKER_SESSION_TIMEOUT_MS", "6000"),
];

#[derive(QueryableByName, Debug)]
struct Tally {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    total: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    terminal: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    succeeded: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    running: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    jobs_with_effects: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    duplicate_effects: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    unpublished: i64,
}

fn tally(conn: &mut PgConnection) -> Tally {
    diesel::sql_query(
        "SELECT count(*) AS total,
                count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'cancelled')) AS terminal,
                count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                count(*) FILTER (WHERE status = 'running') AS running,
                (SELECT count(DISTINCT job_id) FROM job_effects) AS jobs_with_effects,
                (SELECT count(*) FROM (SELECT job_id FROM job_effects GROUP BY job_id HAVING count(*) > 1) d)
                    AS duplicate_effects,
                (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished
           FROM jobs",
    )
    .get_result(conn)
    .expect("tally")
}

#[test]
fn killing_the_worker_and_the_relay_mid_flight_loses_nothing_and_doubles_nothing() {
    let mut stack = Stack::start_with(FAST_RESCUE);
    let client = stack.client();
    let mut conn = stack.db.conn();
    let submit = |stack: &Stack, n: usize| {
        for _ in 0..n {
            stack.submit(&client, serde_json::json!({"kind": "effect", "payload": {"ms": 30}, "max_attempts": 10}));
        }
    };

    // Worker in the middle of jobs: some done, some running.
    submit(&stack, 150);
    wait_for("the worker to be mid-batch", Duration::from_secs(60), || {
        let t = tally(&mut conn);
        (t.succeeded >= 10 && t.running > 0).then_some(())
    });
    stack.signal(Component::Worker, 0, "KILL");

    // Relay in the middle of a batch: kill it while submissions keep its rounds busy.
    submit(&stack, 60);
    stack.signal(Component::Relay, 0, "KILL");
    submit(&stack, 40);
    stack.spawn(Component::Relay);
    stack.spawn(Component::Worker);

    let t = wait_for("every accepted job to finish", Duration::from_secs(120), || {
        let t = tally(&mut conn);
        (t.terminal == t.total && t.unpublished == 0).then_some(t)
    });
    assert_eq!(t.total, 250, "every 202 has its row");
    assert_eq!(t.succeeded, 250, "{t:?}");
    assert_eq!(t.jobs_with_effects, 250, "every job took effect: {t:?}");
    assert_eq!(t.duplicate_effects, 0, "no job took effect twice: {t:?}");
    stack.assert_alive();
}

#[test]
fn a_worker_paused_past_its_lease_cannot_overwrite_the_attempt_that_replaced_it() {
    let mut stack = Stack::start_with(&[
        ("ACKBOX_LEASE_MS", "1000"),
        ("ACKBOX_HEARTBEAT_MS", "333"),
        ("ACKBOX_RESCUE_INTERVAL_MS", "200"),
    ]);
    let client = stack.client();
    let mut conn = stack.db.conn();
    let doc = stack.submit(&client, serde_json::json!({"kind": "effect", "payload": {"ms": 2500}, "max_attempts": 3}));
    let id: uuid::Uuid = doc["id"].as_str().expect("id").parse().expect("uuid");
    let attempts = |conn: &mut PgConnection| -> (String, i32) {
        use ackbox_db::schema::jobs;
        jobs::table.find(id).select((jobs::status, jobs::attempts)).first(conn).expect("job")
    };
    wait_for("attempt 1 to run", Duration::from_secs(30), || {
        (attempts(&mut conn) == ("running".into(), 1)).then_some(())
    });

    // Freeze worker A mid-attempt; its lease lapses and the rescuer puts the job back.
    stack.signal(Component::Worker, 0, "STOP");
    wait_for("the rescuer to requeue the job", Duration::from_secs(30), || {
        (attempts(&mut conn).0 == "queued").then_some(())
    });

    // Worker B runs attempt 2. It is in a group of its own: a frozen member would hold its partitions in the shared
    // group until the session timeout; B reads the topic from the start and claims the job as it now stands.
    stack.spawn_with(Component::Worker, &[("ACKBOX_WORKER_GROUP", &format!("{}-b", stack.kafka.topic))]);
    wait_for("attempt 2 to succeed", Duration::from_secs(60), || {
        (attempts(&mut conn) == ("succeeded".into(), 2)).then_some(())
    });

    // A wakes up and finishes (or is cancelled by its heartbeat): either way its write is fenced out.
    stack.signal(Component::Worker, 0, "CONT");
    let effects = || -> Vec<i32> {
        use ackbox_db::schema::job_effects;
        job_effects::table
            .filter(job_effects::job_id.eq(id))
            .select(job_effects::attempt)
            .load(&mut stack.db.conn())
            .expect("effects")
    };
    // Wait for A's late outcome itself: A logs it as stale, whether it finished its attempt or was cancelled.
    let log = stack.log_path(Component::Worker);
    let a_done = format!("job {id} attempt 1");
    wait_for("worker A's stale outcome of attempt 1", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().any(|l| l.contains(&a_done) && l.contains("stale")).then_some(())
    });
    assert_eq!(effects(), vec![2], "exactly one effect, from the attempt that owned the job");
    assert_eq!(attempts(&mut conn), ("succeeded".into(), 2));
}

#[test]
fn scaling_workers_up_and_down_mid_flow_rebalances_without_losing_or_doubling() {
    let mut stack = Stack::start_with(FAST_RESCUE);
    let client = stack.client();
    let mut conn = stack.db.conn();
    for _ in 0..80 {
        stack.submit(&client, serde_json::json!({"kind": "effect", "payload": {"ms": 20}, "max_attempts": 10}));
    }
    // Scale 1 → 2 (a rebalance while jobs flow) ...
    stack.spawn(Component::Worker);
    for _ in 0..80 {
        stack.submit(&client, serde_json::json!({"kind": "effect", "payload": {"ms": 20}, "max_attempts": 10}));
    }
    // ... and 2 → 1 gracefully (SIGTERM: in-flight jobs finish, offsets commit before the partitions move).
    stack.signal(Component::Worker, 0, "TERM");
    for _ in 0..40 {
        stack.submit(&client, serde_json::json!({"kind": "effect", "payload": {"ms": 20}, "max_attempts": 10}));
    }
    let t = wait_for("every job to finish", Duration::from_secs(120), || {
        let t = tally(&mut conn);
        (t.terminal == t.total).then_some(t)
    });
    assert_eq!((t.total, t.succeeded, t.jobs_with_effects, t.duplicate_effects), (200, 200, 200, 0), "{t:?}");
}
