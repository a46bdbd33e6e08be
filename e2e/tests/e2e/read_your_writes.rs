use std::time::Duration;

use ackbox_e2e::Stack;
use ackbox_testing::wait_for;
use diesel::prelude::*;

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    total: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    succeeded: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    not_once: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    unpublished: i64,
}

#[test]
fn three_hundred_jobs_from_several_threads_are_readable_at_once_and_each_runs_exactly_once() {
    // Arrange
    let mut stack = Stack::start();
    // Every job runs, so every dispatch must have gone out by the end.
    stack.db.expect_drained();
    const THREADS: usize = 6;
    const PER_THREAD: usize = 50;

    // Act: every thread POSTs and GETs each job immediately after its 202.
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let stack = &stack;
                s.spawn(move || {
                    let client = stack.client();
                    (0..PER_THREAD)
                        .map(|i| {
                            let doc =
                                stack.submit(&client, serde_json::json!({"kind": "noop", "payload": {"t": t, "i": i}}));
                            let id = doc["id"].as_str().expect("id").to_string();
                            let got = client.get(stack.url(&format!("/v1/jobs/{id}"))).send().expect("GET");
                            assert_eq!(got.status().as_u16(), 200, "GET right after the 202 of {id}");
                            id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(ids.len(), THREADS * PER_THREAD);

    // Assert: all succeed through relay → Kafka → worker, each on its first and only attempt.
    let mut conn = stack.db.conn();
    let counts = wait_for("all 300 jobs to succeed", Duration::from_secs(120), || {
        let c: Counts = diesel::sql_query(
            "SELECT count(*) AS total,
                    count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                    count(*) FILTER (WHERE attempts <> 1) AS not_once,
                    (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished
               FROM jobs",
        )
        .get_result(&mut conn)
        .expect("counts");
        (c.succeeded == c.total).then_some(c)
    });
    assert_eq!(counts.total, 300);
    assert_eq!(counts.not_once, 0, "every job ran exactly once (attempts == 1)");
    assert_eq!(counts.unpublished, 0, "the outbox drained");
    stack.assert_alive();
}
