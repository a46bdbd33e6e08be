//! Overload sheds, never queues: past `ACKBOX_MAX_IN_FLIGHT` requests being worked on, one more gets 503 with
//! `Retry-After` at once (the ops paths still answer), and past `ACKBOX_MAX_WAITERS` a long-poll is answered at once
//! instead of waiting, and past `ACKBOX_MAX_BATCHES` a batch waits for a slot, up to `ACKBOX_BATCH_QUEUE` of them.
//! Every request accepted before still gets its answer.

use crate::group_commit::{hold_outbox, metric, wait_metric};
use crate::helpers::{assert_problem, spawn_app_with};

#[actix_web::test]
async fn past_the_in_flight_bound_a_request_gets_503_at_once_and_the_ops_paths_still_answer() {
    let app = spawn_app_with(|c| c.max_in_flight = 1).await;
    let release = hold_outbox(&app);
    // One submit in flight, held mid-transaction.
    let req = app.post("/v1/jobs").json(&serde_json::json!({"kind": "noop"}));
    let held = tokio::spawn(async move { req.send().await.expect("POST") });
    wait_metric(&app, "ackbox_submit_batch_size_count", 1.0).await;

    let refused = app.get("/v1/jobs").send().await.expect("GET");
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_problem(refused, 503, "/problems/overloaded").await;
    assert!(!held.is_finished(), "the refusal did not wait for the request in flight");
    let health = app.client.get(app.url("/healthz")).send().await.expect("GET");
    assert_eq!(health.status().as_u16(), 200, "/healthz is never shed");
    let metrics = app.client.get(app.ops_url("/metrics")).send().await.expect("GET");
    assert_eq!(metrics.status().as_u16(), 200, "/metrics (ops port) is never shed");
    assert_eq!(metric(&app, "ackbox_overload_refused_total{reason=\"in_flight\"}").await, 1.0);

    release.send(()).expect("release");
    assert_eq!(held.await.expect("task").status().as_u16(), 202, "the request in flight is honoured");
    assert_eq!(app.get("/v1/jobs").send().await.expect("GET").status().as_u16(), 200, "and the bound frees");
}

#[actix_web::test]
async fn past_the_waiter_bound_a_long_poll_is_answered_at_once_without_waiting() {
    let app = spawn_app_with(|c| c.max_waiters = 1).await;
    let id = app.submit(serde_json::json!({"kind": "noop"})).await;
    let first = app.get(&format!("/v1/jobs/{id}")).header("prefer", "wait=30");
    let first = tokio::spawn(async move { first.send().await.expect("GET") });
    wait_metric(&app, "ackbox_long_poll_waiters", 1.0).await;

    let second = app.get(&format!("/v1/jobs/{id}")).header("prefer", "wait=30").send().await.expect("GET");
    assert_eq!(second.status().as_u16(), 200);
    assert!(second.headers().get("preference-applied").is_none(), "it did not wait");
    assert!(!first.is_finished(), "answered while the first long-poll still waits");
    assert_eq!(metric(&app, "ackbox_overload_refused_total{reason=\"waiters\"}").await, 1.0);
    first.abort();
}

#[actix_web::test]
async fn batches_past_their_slots_wait_in_turn_and_past_the_batch_queue_get_503_at_once() {
    let app = spawn_app_with(|c| {
        c.max_batches = 1;
        c.batch_queue = 1;
    })
    .await;
    let batch = serde_json::json!({"jobs": [{"kind": "noop"}, {"kind": "noop"}]});
    let release = hold_outbox(&app);
    // Two batches: one takes the only slot and waits mid-transaction on the held outbox, the other waits for the slot.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let req = app.post("/v1/jobs/batch").json(&batch);
            tokio::spawn(async move { req.send().await.expect("POST") })
        })
        .collect();
    wait_metric(&app, "ackbox_batch_queued", 1.0).await;

    // The queue is full: a third batch is refused at once, and writes nothing.
    let refused = app.post("/v1/jobs/batch").json(&batch).send().await.expect("POST");
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_problem(refused, 503, "/problems/overloaded").await;
    assert_eq!(metric(&app, "ackbox_overload_refused_total{reason=\"batches\"}").await, 1.0);
    assert!(held.iter().all(|h| !h.is_finished()), "the refusal did not wait for the batches before it");
    // Only batches are bounded by the batch slots: other requests are answered while they wait.
    assert_eq!(app.get("/v1/jobs").send().await.expect("GET").status().as_u16(), 200);

    release.send(()).expect("release");
    for h in held {
        assert_eq!(h.await.expect("task").status().as_u16(), 202, "a batch that waited for its slot is honoured");
    }
    assert_eq!(metric(&app, "ackbox_batch_queued").await, 0.0);
    assert_eq!(app.row_counts().await, (4, 4), "the two batches that got a slot, and nothing of the refused one");
    let again = app.post("/v1/jobs/batch").json(&batch).send().await.expect("POST");
    assert_eq!(again.status().as_u16(), 202, "and the slots free");
}
