use std::time::Duration;

use crate::helpers::{assert_problem, spawn_app};

#[actix_web::test]
async fn cancel_a_queued_job_at_once_a_running_one_by_request_and_refuse_a_finished_one() {
    let app = spawn_app().await;
    // queued → 200, cancelled, terminal
    let queued = app.submit(serde_json::json!({"kind": "noop"})).await;
    let resp = app.post(&format!("/v1/jobs/{queued}/cancel")).send().await.expect("cancel");
    assert_eq!(resp.status().as_u16(), 200);
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(doc["status"], "cancelled");
    assert!(doc["finished_at"].is_string());
    // the worker would now skip it: a claim finds nothing
    let claimed =
        app.with_db(move |c| ackbox_db::state::claim(c, &[queued], Duration::from_secs(30)).expect("claim")).await;
    assert!(claimed.is_empty(), "a cancelled job is never claimed");

    // running → 202, cancel_requested, still running until the worker stops it
    let running = app.submit(serde_json::json!({"kind": "sleep", "payload": {"ms": 60000}})).await;
    let attempt = app
        .with_db(move |c| ackbox_db::state::claim(c, &[running], Duration::from_secs(30)).expect("claim")[0].attempt)
        .await;
    let resp = app.post(&format!("/v1/jobs/{running}/cancel")).send().await.expect("cancel");
    assert_eq!(resp.status().as_u16(), 202);
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!((doc["status"].as_str(), doc["cancel_requested"].as_bool()), (Some("running"), Some(true)));
    // the worker's heartbeat sees the request; its stopped attempt ends cancelled (never retried)
    let beat = app
        .with_db(move |c| ackbox_db::state::heartbeat(c, &[(running, attempt)], Duration::from_secs(30)).expect("hb"))
        .await;
    assert_eq!(beat, vec![(running, attempt, true)]);
    let stopped = ackbox_db::models::JobError { code: "cancelled".into(), message: "stopped on request".into() };
    let ended = app
        .with_db(move |c| {
            ackbox_db::state::fail(c, running, attempt, &stopped, true, Duration::ZERO, "t").expect("fail")
        })
        .await;
    assert_eq!(ended, ackbox_db::state::FailOutcome::Cancelled);
    let doc: serde_json::Value =
        app.get(&format!("/v1/jobs/{running}")).send().await.expect("GET").json().await.expect("json");
    assert_eq!(doc["status"], "cancelled");

    // terminal → 409
    let resp = app.post(&format!("/v1/jobs/{queued}/cancel")).send().await.expect("cancel");
    assert_problem(resp, 409, "/problems/conflict").await;
    // unknown → 404
    let resp = app.post(&format!("/v1/jobs/{}/cancel", uuid::Uuid::now_v7())).send().await.expect("cancel");
    assert_problem(resp, 404, "/problems/not-found").await;
}

#[actix_web::test]
async fn list_pages_with_a_cursor_newest_first_and_filters() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let kind = if i % 5 == 0 { "echo" } else { "noop" };
        ids.push(app.submit(serde_json::json!({"kind": kind})).await.to_string());
    }
    ids.reverse(); // newest first

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=10&cursor={c}"),
            None => "/v1/jobs?limit=10".to_string(),
        };
        let page: serde_json::Value = app.get(&path).send().await.expect("GET").json().await.expect("json");
        pages += 1;
        seen.extend(page["items"].as_array().expect("items").iter().map(|d| d["id"].as_str().expect("id").to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every job once, newest first, across pages");

    let echo: serde_json::Value = app.get("/v1/jobs?kind=echo").send().await.expect("GET").json().await.expect("json");
    assert_eq!(echo["items"].as_array().expect("items").len(), 5);
    let cancelled: serde_json::Value =
        app.get("/v1/jobs?status=cancelled").send().await.expect("GET").json().await.expect("json");
    assert_eq!(cancelled["items"], serde_json::json!([]));
    let all: serde_json::Value = app.get("/v1/jobs?limit=100").send().await.expect("GET").json().await.expect("json");
    assert_eq!(all["items"].as_array().expect("items").len(), 25);
    assert!(all["next_cursor"].is_null());
}

#[actix_web::test]
async fn bad_list_parameters_are_400_naming_the_parameter() {
    let app = spawn_app().await;
    for (query, names) in [
        ("status=done", "status"),
        ("kind=has%20space", "kind"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=nope", "cursor"),
        ("colour=red", "colour"),
    ] {
        let resp = app.get(&format!("/v1/jobs?{query}")).send().await.expect("GET");
        let problem = assert_problem(resp, 400, "/problems/bad-request").await;
        assert!(problem["detail"].as_str().expect("detail").contains(names), "{query}: {problem}");
    }
}
