use uuid::Uuid;

use crate::helpers::{assert_problem, spawn_app};

#[actix_web::test]
async fn a_queued_job_reads_back_with_retry_after_and_its_result_is_409() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.post_job(serde_json::json!({"kind": "echo"})).await.json().await.expect("json");
    let id = doc["id"].as_str().expect("id");

    let resp = app.get(&(format!("/v1/jobs/{id}"))).send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["retry-after"], "1");
    let got: serde_json::Value = resp.json().await.expect("json");
    for field in ["id", "kind", "status", "attempts", "max_attempts", "created_at", "updated_at", "links"] {
        assert_eq!(got[field], doc[field], "field {field}");
    }
    for field in ["started_at", "finished_at", "result", "error"] {
        assert!(got.get(field).is_some_and(|v| v.is_null()), "{field} present and null: {got}");
    }

    let result = app.get(&(format!("/v1/jobs/{id}/result"))).send().await.expect("GET result");
    assert_problem(result, 409, "/problems/conflict").await;
}

#[actix_web::test]
async fn a_succeeded_job_has_no_retry_after_and_serves_its_result() {
    let app = spawn_app().await;
    let doc: serde_json::Value =
        app.post_job(serde_json::json!({"kind": "echo", "payload": {"a": [1, 2]}})).await.json().await.expect("json");
    let id: Uuid = doc["id"].as_str().expect("id").parse().expect("uuid");

    // Drive the job through the state machine the way a worker would.
    let mut conn = app.db.conn();
    let claimed = ackbox_db::state::claim(&mut conn, &[id], std::time::Duration::from_secs(30)).expect("claim");
    assert_eq!(claimed.len(), 1);
    let done = ackbox_db::state::complete(
        &mut conn,
        &[ackbox_db::state::Success { id, attempt: claimed[0].attempt, result: claimed[0].payload.clone() }],
    )
    .expect("complete");
    assert_eq!(done, vec![(id, ackbox_db::models::JobStatus::Succeeded)]);

    let resp = app.get(&(format!("/v1/jobs/{id}"))).send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("retry-after").is_none(), "terminal jobs carry no Retry-After");
    let got: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(got["status"], "succeeded");
    assert_eq!(got["attempts"], 1);
    assert!(got["finished_at"].is_string() && got["started_at"].is_string());

    let result = app.get(&(format!("/v1/jobs/{id}/result"))).send().await.expect("GET result");
    assert_eq!(result.status().as_u16(), 200);
    assert_eq!(result.json::<serde_json::Value>().await.expect("json"), serde_json::json!({"a": [1, 2]}));
}

#[actix_web::test]
async fn an_id_never_issued_is_404_problem_json() {
    let app = spawn_app().await;
    for path in [format!("/v1/jobs/{}", Uuid::now_v7()), format!("/v1/jobs/{}/result", Uuid::new_v4())] {
        let resp = app.get(&path).send().await.expect("GET");
        assert_problem(resp, 404, "/problems/not-found").await;
    }
}

#[actix_web::test]
async fn a_malformed_id_is_400_problem_json() {
    let app = spawn_app().await;
    for path in ["/v1/jobs/not-a-uuid", "/v1/jobs/123/result", "/v1/jobs/%00"] {
        let resp = app.get(path).send().await.expect("GET");
        assert_problem(resp, 400, "/problems/bad-request").await;
    }
}

#[actix_web::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let h = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(h.status().as_u16(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status().as_u16(), 200);
    let unknown = app.client.get(app.url("/nope")).send().await.expect("GET");
    let body = assert_problem(unknown, 404, "/problems/not-found").await;
    let detail = body["detail"].as_str().expect("detail");
    assert!(!detail.contains("job"), "an unknown route is not an unknown job: {detail}");
}

#[actix_web::test]
async fn readyz_is_503_problem_json_when_postgres_is_unreachable() {
    // Port 1 on loopback refuses connections at once: a database that is down.
    let app = crate::helpers::spawn_app_with(|c| {
        c.db.url = "postgres://postgres@127.0.0.1:1/none".into();
        c.db.connect_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let r = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.headers()["retry-after"], "1");
    assert_problem(r, 503, "/problems/unavailable").await;
    let post = app.post_job(serde_json::json!({"kind": "noop"})).await;
    assert_problem(post, 503, "/problems/unavailable").await;
}

#[actix_web::test]
async fn a_queued_job_whose_kind_no_live_worker_runs_says_why_it_waits() {
    use diesel::RunQueryDsl;
    let app = spawn_app().await;
    let id = app.submit(serde_json::json!({"kind": "echo"})).await;
    // The workers that ran `echo` stopped a while ago.
    diesel::sql_query("UPDATE job_kinds SET last_seen_at = now() - interval '10 minutes' WHERE kind = 'echo'")
        .execute(&mut app.db.conn())
        .expect("age the kind");
    let doc = ackbox_testing::wait_for_async("the document to say why", std::time::Duration::from_secs(30), || async {
        let doc: serde_json::Value =
            app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
        doc["waiting_reason"].as_str().is_some().then_some(doc)
    })
    .await;
    assert_eq!(doc["status"], "queued");
    let reason = doc["waiting_reason"].as_str().expect("reason");
    assert!(reason.contains("echo") && reason.contains("no live worker"), "{reason}");
}
