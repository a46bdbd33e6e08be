//! Bad input gets the right 4xx as problem+json, and writes nothing.

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[actix_web::test]
async fn malformed_json_is_400_and_writes_nothing() {
    let app = spawn_app().await;
    let resp = app
        .post("/v1/jobs")
        .header("content-type", "application/json")
        .body("{\"kind\": \"noop\",")
        .send()
        .await
        .expect("POST");
    assert_problem(resp, 400, "/problems/bad-request").await;
    assert_eq!(app.row_counts().await, (0, 0));
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_415_and_writes_nothing() {
    let app = spawn_app().await;
    for ct in [Some("text/plain"), None] {
        let mut req = app.post("/v1/jobs").body("{\"kind\":\"noop\"}");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        assert_problem(req.send().await.expect("POST"), 415, "/problems/unsupported-media-type").await;
    }
    assert_eq!(app.row_counts().await, (0, 0));
}

#[actix_web::test]
async fn a_body_over_the_limit_is_413_and_writes_nothing() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    let big = "x".repeat(2048);
    let resp = app.post_job(serde_json::json!({"kind": "noop", "payload": {"big": big}})).await;
    assert_problem(resp, 413, "/problems/payload-too-large").await;
    assert_eq!(app.row_counts().await, (0, 0));
}

#[actix_web::test]
async fn wrong_fields_and_values_are_422_naming_the_field_and_write_nothing() {
    let app = spawn_app().await;
    let cases = [
        (serde_json::json!({"payload": {}}), "kind"),
        (serde_json::json!({"kind": 5}), "invalid type"),
        (serde_json::json!({"kind": "noop", "surprise": true}), "surprise"),
        (serde_json::json!({"kind": ""}), "kind"),
        (serde_json::json!({"kind": "x".repeat(129)}), "kind"),
        (serde_json::json!({"kind": "has space"}), "kind"),
        (serde_json::json!({"kind": "noop", "max_attempts": 0}), "max_attempts"),
        (serde_json::json!({"kind": "noop", "max_attempts": 101}), "max_attempts"),
        (serde_json::json!({"kind": "noop", "max_attempts": "3"}), "invalid type"),
        (serde_json::json!(["noop"]), "expected"),
        (serde_json::json!({"kind": "noop", "payload": [1.7976931348623155e308]}), "payload"),
        (serde_json::json!({"kind": "noop", "payload": {"a": "nul\u{0}here"}}), "payload"),
        (serde_json::json!({"kind": "noop", "payload": {"nul\u{0}key": 1}}), "payload"),
    ];
    for (body, mentions) in cases {
        let resp = app.post_job(body.clone()).await;
        assert_eq!(resp.status().as_u16(), 422, "{body}");
        let problem = assert_problem(resp, 422, "/problems/validation").await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(mentions), "422 for {body} should mention {mentions:?}: {detail}");
    }
    assert_eq!(app.row_counts().await, (0, 0));
}
