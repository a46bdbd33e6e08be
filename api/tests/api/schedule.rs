//! Per-job options of `POST /v1/jobs`: `run_at` / `delay_ms` (accepted and readable at once, dispatched when due)
//! `timeout_ms` and `priority`, with the rules that bound them.

use chrono::{DateTime, Utc};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

fn time(doc: &serde_json::Value, field: &str) -> DateTime<Utc> {
    doc[field].as_str().unwrap_or_else(|| panic!("{field} in {doc}")).parse().expect("RFC 3339")
}

#[actix_web::test]
async fn a_scheduled_job_is_readable_at_once_queued_until_due_and_its_dispatch_waits_with_it() {
    // An overdue bound of 0 s: a scheduled job counts its wait from its due time, so it is not overdue.
    let app = spawn_app_with(|c| c.overdue_after = std::time::Duration::ZERO).await;
    let run_at = (Utc::now() + chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let resp = app.post_job(serde_json::json!({"kind": "echo", "run_at": run_at, "timeout_ms": 1500})).await;
    assert_eq!(resp.status().as_u16(), 202);
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(doc["status"], "queued");
    assert_eq!(time(&doc, "not_before"), run_at.parse::<DateTime<Utc>>().expect("time"));
    assert_eq!(doc["timeout_ms"], 1500);
    let id: uuid::Uuid = doc["id"].as_str().expect("id").parse().expect("uuid");
    let got: serde_json::Value =
        app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
    assert_eq!(got["overdue"], false, "its wait counts from its due time: {got}");
    assert_eq!(time(&got, "not_before"), time(&doc, "not_before"));

    let (available_at, claimed) = app
        .with_db(move |c| {
            use diesel::prelude::*;
            let available: DateTime<Utc> = ackbox_db::schema::outbox::table
                .filter(ackbox_db::schema::outbox::aggregate_id.eq(id))
                .select(ackbox_db::schema::outbox::available_at)
                .first(c)
                .expect("outbox row");
            let claimed = ackbox_db::state::claim(c, &[id], std::time::Duration::from_secs(30)).expect("claim");
            (available, claimed)
        })
        .await;
    assert_eq!(available_at, time(&doc, "not_before"), "the first dispatch is due when the job is");
    assert!(claimed.is_empty(), "a worker cannot start it before it is due");
}

#[actix_web::test]
async fn delay_ms_counts_from_acceptance_a_past_run_at_runs_now_and_the_timeout_reaches_the_worker() {
    let app = spawn_app().await;
    let before = Utc::now();
    let doc: serde_json::Value =
        app.post_job(serde_json::json!({"kind": "echo", "delay_ms": 60_000})).await.json().await.expect("json");
    let due = time(&doc, "not_before");
    assert!(due >= before + chrono::Duration::seconds(60), "{due} vs {before}");
    assert!(due <= Utc::now() + chrono::Duration::seconds(60), "{due}");

    let past = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let doc: serde_json::Value = app
        .post_job(serde_json::json!({"kind": "echo", "run_at": past, "timeout_ms": 250}))
        .await
        .json()
        .await
        .expect("json");
    assert!(doc["not_before"].is_null(), "a time in the past runs now: {doc}");
    let id: uuid::Uuid = doc["id"].as_str().expect("id").parse().expect("uuid");
    let claimed = app.with_db(move |c| ackbox_db::state::claim(c, &[id], std::time::Duration::from_secs(30))).await;
    let claimed = claimed.expect("claim");
    assert_eq!(claimed.len(), 1, "due at once");
    assert_eq!(claimed[0].timeout_ms, Some(250), "the worker gets the job's own timeout");
}

#[actix_web::test]
async fn bad_schedules_and_timeouts_are_422_naming_the_field_and_write_nothing() {
    let app = spawn_app().await;
    let in_two_years = (Utc::now() + chrono::Duration::days(730)).to_rfc3339();
    let soon = (Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let cases = [
        (serde_json::json!({"kind": "echo", "run_at": soon, "delay_ms": 1000}), "run_at, delay_ms"),
        (serde_json::json!({"kind": "echo", "delay_ms": -1}), "delay_ms"),
        (serde_json::json!({"kind": "echo", "delay_ms": 40_000_000_000_i64}), "delay_ms"),
        (serde_json::json!({"kind": "echo", "run_at": in_two_years}), "run_at"),
        (serde_json::json!({"kind": "echo", "run_at": "tomorrow"}), "run_at"),
        (serde_json::json!({"kind": "echo", "timeout_ms": -5}), "timeout_ms"),
        (serde_json::json!({"kind": "echo", "timeout_ms": 0}), "timeout_ms"),
        (serde_json::json!({"kind": "echo", "timeout_ms": 86_400_001}), "timeout_ms"),
    ];
    for (body, field) in cases {
        let problem = assert_problem(app.post_job(body.clone()).await, 422, "/problems/validation").await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(field), "{body}: {field:?} not in {detail:?}");
    }
    // In a batch too, with the item's index.
    let batch = serde_json::json!({"jobs": [{"kind": "echo"}, {"kind": "echo", "timeout_ms": -1}]});
    let resp = app.post("/v1/jobs/batch").json(&batch).send().await.expect("POST");
    let problem = assert_problem(resp, 422, "/problems/validation").await;
    assert!(problem["detail"].as_str().expect("detail").contains("jobs[1]: timeout_ms"), "{problem}");
    assert_eq!(app.row_counts().await, (0, 0), "nothing was written");
}

#[actix_web::test]
async fn a_retried_delayed_submit_is_the_same_request_and_another_delay_is_not() {
    let app = spawn_app().await;
    let body = serde_json::json!({"kind": "echo", "delay_ms": 30_000, "timeout_ms": 1000});
    let first = app.post("/v1/jobs").header("idempotency-key", "d-1").json(&body).send().await.expect("POST");
    let first: serde_json::Value = first.json().await.expect("json");
    // Sent later, so its not_before would be later: still the same request (the fingerprint holds the delay).
    let again = app.post("/v1/jobs").header("idempotency-key", "d-1").json(&body).send().await.expect("POST");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["not_before"], first["not_before"], "the replay shows the schedule it was accepted with");
    let other = serde_json::json!({"kind": "echo", "delay_ms": 31_000, "timeout_ms": 1000});
    let clash = app.post("/v1/jobs").header("idempotency-key", "d-1").json(&other).send().await.expect("POST");
    assert_problem(clash, 422, "/problems/validation").await;
    assert_eq!(app.row_counts().await, (1, 1));
}

#[actix_web::test]
async fn a_priority_is_kept_on_the_job_and_its_dispatch_and_shown_in_the_document() {
    let app = spawn_app().await;
    let high: serde_json::Value =
        app.post_job(serde_json::json!({"kind": "echo", "priority": "high"})).await.json().await.expect("json");
    let plain: serde_json::Value = app.post_job(serde_json::json!({"kind": "echo"})).await.json().await.expect("json");
    assert_eq!(high["priority"], "high");
    assert_eq!(plain["priority"], "normal", "the default");
    let id: uuid::Uuid = high["id"].as_str().expect("id").parse().expect("uuid");
    let got: serde_json::Value =
        app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
    assert_eq!(got["priority"], "high");
    let outbox_priority: i16 = app
        .with_db(move |c| {
            use ackbox_db::schema::outbox::dsl as o;
            use diesel::prelude::*;
            o::outbox.filter(o::aggregate_id.eq(id)).select(o::priority).first(c).expect("outbox row")
        })
        .await;
    assert_eq!(outbox_priority, 2, "the dispatch row carries it, for the relay");

    // Asking for it changes the request: the same Idempotency-Key with another priority is refused.
    let first = app.post("/v1/jobs").header("idempotency-key", "p-1").json(&serde_json::json!({"kind": "echo"}));
    assert_eq!(first.send().await.expect("POST").status().as_u16(), 202);
    let other = serde_json::json!({"kind": "echo", "priority": "low"});
    let clash = app.post("/v1/jobs").header("idempotency-key", "p-1").json(&other).send().await.expect("POST");
    assert_problem(clash, 422, "/problems/validation").await;
    // Saying "normal" is the same request as saying nothing.
    let same = serde_json::json!({"kind": "echo", "priority": "normal"});
    let replay = app.post("/v1/jobs").header("idempotency-key", "p-1").json(&same).send().await.expect("POST");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
}

#[actix_web::test]
async fn an_unknown_priority_is_422_naming_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    for bad in [serde_json::json!("urgent"), serde_json::json!(9), serde_json::json!("HIGH")] {
        let body = serde_json::json!({"kind": "echo", "priority": bad});
        let problem = assert_problem(app.post_job(body.clone()).await, 422, "/problems/validation").await;
        assert!(problem["detail"].as_str().expect("detail").contains("priority"), "{body}: {problem}");
    }
    let batch = serde_json::json!({"jobs": [{"kind": "echo"}, {"kind": "echo", "priority": "urgent"}]});
    let resp = app.post("/v1/jobs/batch").json(&batch).send().await.expect("POST");
    let problem = assert_problem(resp, 422, "/problems/validation").await;
    assert!(problem["detail"].as_str().expect("detail").contains("jobs[1]: priority"), "{problem}");
    assert_eq!(app.row_counts().await, (0, 0), "nothing was written");
}
