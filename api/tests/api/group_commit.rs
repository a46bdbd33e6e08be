//! Group commit through the API: submissions that arrive while a commit is in flight share the next transaction,
//! each is answered 202 only after it committed, and a full queue is refused at once with 503, not waited in.

use std::time::Duration;

use diesel::prelude::*;

use crate::helpers::{assert_problem, spawn_app_with, TestApp};

/// A metric's value from `/metrics` (the first sample whose line starts with `name`).
pub(crate) async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.client.get(app.ops_url("/metrics")).send().await.expect("GET /metrics").text().await.expect("text");
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

pub(crate) async fn wait_metric(app: &TestApp, name: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = metric(app, name).await;
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} stayed {got}, expected {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Holds `LOCK TABLE outbox` in a transaction of its own on a thread until `release` is sent: a commit in flight
/// waits on it, mid-transaction.
pub(crate) fn hold_outbox(app: &TestApp) -> std::sync::mpsc::Sender<()> {
    let url = app.db.url().to_string();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked_tx, locked) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut conn = PgConnection::establish(&url).expect("connect");
        conn.begin_test_transaction().expect("begin");
        diesel::sql_query("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE").execute(&mut conn).expect("lock");
        locked_tx.send(()).expect("locked");
        let _ = released.recv();
    });
    locked.recv().expect("the outbox is held");
    release
}

#[actix_web::test]
async fn submits_that_arrive_during_a_commit_share_the_next_transaction_and_all_commit_before_their_202() {
    let app = spawn_app_with(|c| c.submit_committers = 1).await;
    let release = hold_outbox(&app);
    // The first submit's transaction waits on the held outbox; ten more queue behind it.
    let mut posts = Vec::new();
    for i in 0..11 {
        let req = app.post("/v1/jobs").json(&serde_json::json!({"kind": "noop", "payload": {"i": i}}));
        posts.push(tokio::spawn(async move { req.send().await.expect("POST") }));
        if i == 0 {
            wait_metric(&app, "ackbox_submit_queued", 0.0).await;
            wait_metric(&app, "ackbox_submit_batch_size_count", 1.0).await;
        }
    }
    wait_metric(&app, "ackbox_submit_queued", 10.0).await;
    // (The outbox is locked: count only jobs. The first transaction's rows are not committed, so not visible.)
    let jobs: i64 = app.with_db(|c| ackbox_db::schema::jobs::table.count().get_result(c).expect("count")).await;
    assert_eq!(jobs, 0, "nothing committed yet");
    assert!(posts.iter().all(|p| !p.is_finished()), "and nothing answered");
    release.send(()).expect("release");

    for p in posts {
        let resp = p.await.expect("task");
        assert_eq!(resp.status().as_u16(), 202);
        let location = resp.headers()["location"].to_str().expect("ascii").to_string();
        let got = app.client.get(&location).bearer_auth(&app.key).send().await.expect("GET");
        assert_eq!(got.status().as_u16(), 200, "readable right after its 202");
    }
    assert_eq!(app.row_counts().await, (11, 11));
    // Two transactions: the first alone, then the ten that queued meanwhile, together.
    assert_eq!(metric(&app, "ackbox_submit_batch_size_count").await, 2.0);
    assert_eq!(metric(&app, "ackbox_submit_batch_size_sum").await, 11.0);
}

#[actix_web::test]
async fn a_full_submit_queue_is_refused_at_once_with_503_and_retry_after_and_writes_nothing() {
    let app = spawn_app_with(|c| {
        c.submit_committers = 1;
        c.submit_queue = 2;
    })
    .await;
    let release = hold_outbox(&app);
    let mut accepted = Vec::new();
    for i in 0..3 {
        let req = app.post("/v1/jobs").json(&serde_json::json!({"kind": "noop", "payload": {"i": i}}));
        accepted.push(tokio::spawn(async move { req.send().await.expect("POST") }));
        // One in the transaction, then two queued: the queue is full.
        let (in_flight, queued) = if i == 0 { (1.0, 0.0) } else { (1.0, i as f64) };
        wait_metric(&app, "ackbox_submit_batch_size_count", in_flight).await;
        wait_metric(&app, "ackbox_submit_queued", queued).await;
    }
    let refused = app.post_job(serde_json::json!({"kind": "noop", "payload": {"refused": true}})).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_problem(refused, 503, "/problems/overloaded").await;
    assert_eq!(metric(&app, "ackbox_overload_refused_total").await, 1.0);

    release.send(()).expect("release");
    for p in accepted {
        assert_eq!(p.await.expect("task").status().as_u16(), 202, "every accepted submit is still honoured");
    }
    assert_eq!(app.row_counts().await, (3, 3), "the refused submit wrote nothing");
}
