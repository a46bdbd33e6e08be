//! The standards a client built on someone else's library relies on: absolute links (and `ACKBOX_PUBLIC_URL`), the
//! Azure status monitor behind `Operation-Location`, the AIP-151 operation view, `X-Request-Id`, and the W3C trace
//! context a submit stores and every outbox row of the job carries.

use std::time::Duration;

use ackbox_db::models::JobError;
use ackbox_db::state::{self, Success};
use diesel::RunQueryDsl as _;
use uuid::Uuid;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, TestApp};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn monitor(app: &TestApp, id: Uuid) -> (serde_json::Value, Option<String>) {
    let resp = app.get(&format!("/v1/operations/{id}")).send().await.expect("GET monitor");
    assert_eq!(resp.status().as_u16(), 200);
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().expect("ascii").to_string());
    (resp.json().await.expect("json"), retry_after)
}

async fn operation(app: &TestApp, id: Uuid) -> serde_json::Value {
    let resp = app.get(&format!("/v1/jobs/{id}/operation")).send().await.expect("GET operation");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("json")
}

/// Claims the job as a worker would (attempt 1).
async fn start(app: &TestApp, id: Uuid) {
    app.with_db(move |c| {
        let claimed = state::claim(c, &[id], Duration::from_secs(60)).expect("claim");
        assert_eq!(claimed.len(), 1);
    })
    .await;
}

#[actix_web::test]
async fn links_and_location_headers_are_absolute_under_the_configured_public_url() {
    let app = spawn_app_with(|c| c.public_url = Some("https://jobs.example.com/ackbox".into())).await;
    let resp = app.post_job(serde_json::json!({"kind": "noop"})).await;
    assert_eq!(resp.status().as_u16(), 202);
    let base = "https://jobs.example.com/ackbox";
    let location = resp.headers()["location"].to_str().expect("ascii").to_string();
    let operation_location = resp.headers()["operation-location"].to_str().expect("ascii").to_string();
    let doc: serde_json::Value = resp.json().await.expect("json");
    let id = doc["id"].as_str().expect("id");
    assert_eq!(location, format!("{base}/v1/jobs/{id}"));
    assert_eq!(operation_location, format!("{base}/v1/operations/{id}"));
    assert_eq!(doc["links"]["self"], location);
    assert_eq!(doc["links"]["result"], format!("{location}/result"));
    assert_eq!(doc["links"]["cancel"], format!("{location}/cancel"));
    assert_eq!(doc["links"]["monitor"], operation_location);
    assert_eq!(doc["links"]["operation"], format!("{location}/operation"));
    // Every representation of a job uses the same base, listings included.
    let list: serde_json::Value = app.get("/v1/jobs").send().await.expect("GET").json().await.expect("json");
    assert_eq!(list["items"][0]["links"]["self"], location);
}

#[actix_web::test]
async fn the_status_monitor_speaks_the_azure_status_values_through_a_jobs_life() {
    let app = spawn_app().await;

    // Queued, never started: NotStarted, with a Retry-After.
    let id = app.submit(serde_json::json!({"kind": "echo", "payload": {"x": 1}})).await;
    let (m, retry_after) = monitor(&app, id).await;
    assert_eq!(m["id"], id.to_string());
    assert_eq!(m["status"], "NotStarted");
    assert!(m["createdDateTime"].is_string() && m["lastActionDateTime"].is_string(), "{m}");
    assert!(m.get("resourceLocation").is_none() && m.get("error").is_none(), "{m}");
    assert!(retry_after.is_some(), "a monitor that is not done says when to poll again");

    // Running.
    start(&app, id).await;
    assert_eq!(monitor(&app, id).await.0["status"], "Running");

    // A failed attempt waiting for its retry is still Running: the operation is under way, not new.
    let (id_for_fail, topic) = (id, app.topic.clone());
    app.with_db(move |c| {
        let err = JobError { code: "flaky".into(), message: "try again".into() };
        state::fail(c, id_for_fail, 1, &err, true, Duration::from_secs(600), &topic).expect("fail");
    })
    .await;
    assert_eq!(monitor(&app, id).await.0["status"], "Running");

    // Succeeded: no Retry-After, and resourceLocation is the result's absolute URL, which serves the result.
    let done = app.submit(serde_json::json!({"kind": "echo", "payload": {"x": 2}})).await;
    start(&app, done).await;
    app.with_db(move |c| {
        state::complete(c, &[Success { id: done, attempt: 1, result: serde_json::json!({"x": 2}) }]).expect("complete")
    })
    .await;
    let (m, retry_after) = monitor(&app, done).await;
    assert_eq!(m["status"], "Succeeded");
    assert_eq!(retry_after, None);
    let location = m["resourceLocation"].as_str().expect("resourceLocation").to_string();
    assert_eq!(location, app.url(&format!("/v1/jobs/{done}/result")));
    let result: serde_json::Value =
        app.client.get(&location).bearer_auth(&app.key).send().await.expect("GET").json().await.expect("json");
    assert_eq!(result, serde_json::json!({"x": 2}));
    // The status document names it too, for a poller handed a replayed 202 of a finished job.
    let doc: serde_json::Value =
        app.get(&format!("/v1/jobs/{done}")).send().await.expect("GET").json().await.expect("json");
    assert_eq!(doc["resourceLocation"], location);

    // Failed for good: Failed with the job's own error.
    let failed = app.submit(serde_json::json!({"kind": "fail", "max_attempts": 1})).await;
    start(&app, failed).await;
    let topic = app.topic.clone();
    app.with_db(move |c| {
        let err = JobError { code: "deliberate_failure".into(), message: "failed on purpose".into() };
        state::fail(c, failed, 1, &err, true, Duration::ZERO, &topic).expect("fail");
    })
    .await;
    let (m, _) = monitor(&app, failed).await;
    assert_eq!(m["status"], "Failed");
    assert_eq!(m["error"], serde_json::json!({"code": "deliberate_failure", "message": "failed on purpose"}));
    assert!(m.get("resourceLocation").is_none());

    // Cancelled: Canceled (the guidelines' spelling).
    let cancelled = app.submit(serde_json::json!({"kind": "noop"})).await;
    let resp = app.post(&format!("/v1/jobs/{cancelled}/cancel")).send().await.expect("cancel");
    assert_eq!(resp.status().as_u16(), 200);
    let (m, _) = monitor(&app, cancelled).await;
    assert_eq!(m["status"], "Canceled");
    assert_eq!(m["error"]["code"], "cancelled");
}

#[actix_web::test]
async fn the_operation_view_has_the_aip_151_shape() {
    let app = spawn_app().await;
    let id = app.submit(serde_json::json!({"kind": "echo", "payload": {"x": 1}})).await;
    let op = operation(&app, id).await;
    assert_eq!(op["name"], format!("jobs/{id}/operation"));
    assert_eq!(op["done"], false);
    assert_eq!(op["metadata"]["@type"], "type.googleapis.com/google.protobuf.Struct");
    assert_eq!(op["metadata"]["value"]["status"], "queued");
    assert!(op.get("response").is_none() && op.get("error").is_none(), "{op}");
    // GET /v1/{name} reads it again.
    let again = app.get(&format!("/v1/{}", op["name"].as_str().expect("name"))).send().await.expect("GET");
    assert_eq!(again.status().as_u16(), 200);

    start(&app, id).await;
    app.with_db(move |c| {
        state::complete(c, &[Success { id, attempt: 1, result: serde_json::json!({"x": 1}) }]).expect("complete")
    })
    .await;
    let op = operation(&app, id).await;
    assert_eq!(op["done"], true);
    assert_eq!(
        op["response"],
        serde_json::json!({"@type": "type.googleapis.com/google.protobuf.Value", "value": {"x": 1}})
    );
    assert!(op.get("error").is_none());

    let cancelled = app.submit(serde_json::json!({"kind": "noop"})).await;
    app.post(&format!("/v1/jobs/{cancelled}/cancel")).send().await.expect("cancel");
    let op = operation(&app, cancelled).await;
    assert_eq!(op["done"], true);
    assert_eq!(op["error"]["code"], 1, "google.rpc.Code CANCELLED");
    assert_eq!(op["error"]["details"][0]["reason"], "cancelled");
    assert!(op.get("response").is_none());
}

#[actix_web::test]
async fn another_tenants_job_is_404_in_every_view() {
    let app = spawn_app().await;
    let id = app.submit(serde_json::json!({"kind": "noop"})).await;
    let other = app.other_tenant("tenant-b").await;
    for path in [format!("/v1/operations/{id}"), format!("/v1/jobs/{id}/operation")] {
        let resp = app.client.get(app.url(&path)).bearer_auth(&other).send().await.expect("GET");
        assert_problem(resp, 404, "/problems/not-found").await;
        let resp = app.get(&path.replace(&id.to_string(), &Uuid::now_v7().to_string())).send().await.expect("GET");
        assert_problem(resp, 404, "/problems/not-found").await;
    }
}

#[actix_web::test]
async fn every_response_carries_a_request_id_the_clients_own_when_valid() {
    let app = spawn_app().await;
    let resp = app.get("/v1/jobs").header("x-request-id", "client-42").send().await.expect("GET");
    assert_eq!(resp.headers()["x-request-id"], "client-42");
    // Errors too, and ones the middleware answers before any handler (431 here).
    let resp = app.get("/v1/nope").header("x-request-id", "client-43").send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.headers()["x-request-id"], "client-43");
    let resp = app.get("/v1/jobs").header("x-big", "x".repeat(20_000)).send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 431);
    assert!(resp.headers().contains_key("x-request-id"));
    // An invalid one is replaced, and ids are unique per request.
    let a = app.get("/v1/jobs").header("x-request-id", "has space").send().await.expect("GET");
    let b = app.get("/v1/jobs").send().await.expect("GET");
    let (a, b) = (a.headers()["x-request-id"].to_str().expect("a"), b.headers()["x-request-id"].to_str().expect("b"));
    assert_ne!(a, "has space");
    assert_ne!(a, b);
    assert!(!a.is_empty() && !b.is_empty());
}

fn outbox_headers(app: &TestApp, id: Uuid) -> Vec<serde_json::Value> {
    let rows = ackbox_db::outbox::for_job(&mut app.db.conn(), id).expect("outbox rows");
    rows.into_iter().map(|r| r.headers).collect()
}

#[actix_web::test]
async fn an_incoming_traceparent_is_stored_with_the_job_and_carried_by_every_outbox_row() {
    let app = spawn_app().await;
    let resp = app
        .post("/v1/jobs")
        .header("traceparent", TRACEPARENT)
        .header("tracestate", "congo=t61rcWkgMzE")
        .json(&serde_json::json!({"kind": "echo", "max_attempts": 3}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 202);
    let doc: serde_json::Value = resp.json().await.expect("json");
    let id: Uuid = doc["id"].as_str().expect("id").parse().expect("uuid");

    let job = ackbox_db::models::Job::find(&mut app.db.conn(), id).expect("query").expect("row");
    let stored = job.trace_context().expect("the job stores a trace context");
    assert_eq!(stored.trace_id(), TRACE_ID, "the client's trace");
    assert_ne!(stored.span_id(), "00f067aa0ba902b7", "the submit's own span, a child of the client's");
    assert_eq!(stored.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));

    // The first dispatch, a retry, and a rescue all carry it ...
    start(&app, id).await;
    let topic = app.topic.clone();
    app.with_db(move |c| {
        let err = JobError { code: "flaky".into(), message: "again".into() };
        state::fail(c, id, 1, &err, true, Duration::ZERO, &topic).expect("fail");
    })
    .await;
    app.with_db(move |c| {
        diesel::Connection::transaction(c, |c| {
            diesel::sql_query("UPDATE outbox SET published_at = now() - interval '1 hour'").execute(c)?;
            diesel::sql_query("UPDATE jobs SET updated_at = now() - interval '1 hour'").execute(c)
        })
        .expect("age the dispatch");
        let sent = state::rescue_dispatches(c, Duration::from_secs(1), 10, "t").expect("rescue");
        assert_eq!(sent, Some(1));
    })
    .await;
    // ... and an operator's replay of a row (`ackbox outbox replay`).
    let first_row = ackbox_db::outbox::for_job(&mut app.db.conn(), id).expect("rows")[0].id;
    ackbox_db::outbox::replay(&mut app.db.conn(), first_row).expect("replay");
    let headers = outbox_headers(&app, id);
    assert_eq!(headers.len(), 4, "first dispatch, retry, rescue, replay: {headers:?}");
    for h in &headers {
        assert_eq!(h["traceparent"], stored.traceparent, "{h}");
        assert_eq!(h["tracestate"], "congo=t61rcWkgMzE", "{h}");
    }
}

#[actix_web::test]
async fn without_a_traceparent_ackbox_starts_a_trace_and_a_malformed_one_is_replaced() {
    let app = spawn_app().await;
    let plain = app.submit(serde_json::json!({"kind": "noop"})).await;
    let bad = app
        .post("/v1/jobs")
        .header("traceparent", "00-not-a-trace-01")
        .json(&serde_json::json!({"kind": "noop"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status().as_u16(), 202, "a bad traceparent never fails a submit");
    let bad: Uuid =
        bad.json::<serde_json::Value>().await.expect("json")["id"].as_str().expect("id").parse().expect("id");
    let mut traces = Vec::new();
    for id in [plain, bad] {
        let headers = outbox_headers(&app, id);
        let tp = headers[0]["traceparent"].as_str().expect("a traceparent on the outbox row").to_string();
        let parsed = ackbox_types::trace::TraceContext::parse(&tp, None).expect("a valid W3C traceparent");
        traces.push(parsed.trace_id().to_string());
    }
    assert_ne!(traces[0], traces[1], "each submit starts its own trace");
}
