//! `queue` on submit: a named queue must exist (422 naming the field otherwise, writing nothing); without one a job
//! gets its kind's queue, else `default`; a paused queue's queued job says why it waits.

use crate::helpers::{assert_problem, spawn_app};

#[actix_web::test]
async fn a_job_gets_the_queue_it_names_else_its_kinds_else_default() {
    let app = spawn_app().await;
    app.with_db(|c| {
        use diesel::prelude::*;
        ackbox_db::models::queue::ensure(c, &["mail".into(), "media".into()]).expect("queues");
        diesel::sql_query("UPDATE job_kinds SET queue = 'media' WHERE kind = 'sleep'").execute(c).expect("kind queue");
    })
    .await;
    let named: serde_json::Value =
        app.post_job(serde_json::json!({"kind": "echo", "queue": "mail"})).await.json().await.expect("json");
    assert_eq!(named["queue"], "mail");
    let of_kind: serde_json::Value =
        app.post_job(serde_json::json!({"kind": "sleep"})).await.json().await.expect("json");
    assert_eq!(of_kind["queue"], "media", "the kind's queue");
    let plain: serde_json::Value = app.post_job(serde_json::json!({"kind": "echo"})).await.json().await.expect("json");
    assert_eq!(plain["queue"], "default");
    let batch = serde_json::json!({"jobs": [{"kind": "echo", "queue": "media"}, {"kind": "sleep"}]});
    let resp = app.post("/v1/jobs/batch").json(&batch).send().await.expect("POST");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!((body["jobs"][0]["queue"].as_str(), body["jobs"][1]["queue"].as_str()), (Some("media"), Some("media")));
    // The stored job says the same.
    let id: uuid::Uuid = named["id"].as_str().expect("id").parse().expect("uuid");
    let got: serde_json::Value =
        app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
    assert_eq!(got["queue"], "mail");
}

#[actix_web::test]
async fn an_unknown_or_malformed_queue_is_422_naming_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    for (queue, says) in
        [("nobody-made-this", "unknown queue"), ("has space", "queue: must be"), ("", "queue: must be")]
    {
        let body = serde_json::json!({"kind": "echo", "queue": queue});
        let problem = assert_problem(app.post_job(body.clone()).await, 422, "/problems/validation").await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains("queue") && detail.contains(says), "{body}: {detail}");
    }
    let batch = serde_json::json!({"jobs": [{"kind": "echo"}, {"kind": "echo", "queue": "nobody-made-this"}]});
    let resp = app.post("/v1/jobs/batch").json(&batch).send().await.expect("POST");
    let problem = assert_problem(resp, 422, "/problems/validation").await;
    assert!(problem["detail"].as_str().expect("detail").contains("jobs[1].queue"), "{problem}");
    assert_eq!(app.row_counts().await, (0, 0), "nothing was written");
}

#[actix_web::test]
async fn naming_a_queue_changes_the_request_for_its_idempotency_key() {
    let app = spawn_app().await;
    app.with_db(|c| ackbox_db::models::queue::ensure(c, &["mail".into()]).expect("queue")).await;
    let first = app.post("/v1/jobs").header("idempotency-key", "q-1").json(&serde_json::json!({"kind": "echo"}));
    assert_eq!(first.send().await.expect("POST").status().as_u16(), 202);
    let other = serde_json::json!({"kind": "echo", "queue": "mail"});
    let clash = app.post("/v1/jobs").header("idempotency-key", "q-1").json(&other).send().await.expect("POST");
    assert_problem(clash, 422, "/problems/validation").await;
}

#[actix_web::test]
async fn a_queued_job_of_a_paused_queue_says_why_it_waits() {
    let app = spawn_app().await;
    app.with_db(|c| {
        ackbox_db::models::queue::ensure(c, &["mail".into()]).expect("queue");
        ackbox_db::models::queue::pause(c, "mail").expect("pause");
    })
    .await;
    let doc: serde_json::Value =
        app.post_job(serde_json::json!({"kind": "echo", "queue": "mail"})).await.json().await.expect("json");
    let id = doc["id"].as_str().expect("id").to_string();
    // The API re-reads the paused queues every 10 s.
    let reason = ackbox_testing::wait_for_async(
        "the paused queue in waiting_reason",
        std::time::Duration::from_secs(30),
        || async {
            let got: serde_json::Value = app.get(&format!("/v1/jobs/{id}")).send().await.ok()?.json().await.ok()?;
            got["waiting_reason"].as_str().filter(|r| r.contains("paused")).map(str::to_string)
        },
    )
    .await;
    assert!(reason.contains("\"mail\"") && reason.contains("resume"), "{reason}");
}
