//! Idempotency-Key, IETF draft semantics.

use crate::helpers::{assert_problem, spawn_app};

#[actix_web::test]
async fn the_same_key_and_body_replays_the_same_job_and_response() {
    let app = spawn_app().await;
    let body = serde_json::json!({"kind": "echo", "payload": {"a": 1, "b": 2}});
    let first = app.post("/v1/jobs").header("idempotency-key", "order-42").json(&body).send().await.expect("POST");
    assert_eq!(first.status().as_u16(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let location = first.headers()["location"].clone();
    let doc: serde_json::Value = first.json().await.expect("json");

    // Same body with keys in another order: the same request.
    let again = serde_json::json!({"payload": {"b": 2, "a": 1}, "kind": "echo", "max_attempts": 3});
    let second = app.post("/v1/jobs").header("idempotency-key", "order-42").json(&again).send().await.expect("POST");
    assert_eq!(second.status().as_u16(), 202);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.headers()["location"], location);
    let replay: serde_json::Value = second.json().await.expect("json");
    assert_eq!(replay["id"], doc["id"]);
    assert_eq!(app.row_counts().await, (1, 1), "one job, one dispatch");
}

#[actix_web::test]
async fn the_same_key_with_another_body_is_422() {
    let app = spawn_app().await;
    let ok = app
        .post("/v1/jobs")
        .header("idempotency-key", "k1")
        .json(&serde_json::json!({"kind": "noop"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(ok.status().as_u16(), 202);
    let clash = app
        .post("/v1/jobs")
        .header("idempotency-key", "k1")
        .json(&serde_json::json!({"kind": "echo"}))
        .send()
        .await
        .expect("POST");
    assert_problem(clash, 422, "/problems/validation").await;
    assert_eq!(app.row_counts().await, (1, 1));
}

#[actix_web::test]
async fn keys_are_per_tenant() {
    let app = spawn_app().await;
    let other = app.other_tenant("tenant-b").await;
    let body = serde_json::json!({"kind": "noop"});
    let a: serde_json::Value = app
        .post("/v1/jobs")
        .header("idempotency-key", "shared")
        .json(&body)
        .send()
        .await
        .expect("A")
        .json()
        .await
        .expect("json");
    let b = app
        .client
        .post(app.url("/v1/jobs"))
        .bearer_auth(&other)
        .header("idempotency-key", "shared")
        .json(&body)
        .send()
        .await
        .expect("B");
    assert!(b.headers().get("idempotent-replayed").is_none(), "B's key is its own");
    let b: serde_json::Value = b.json().await.expect("json");
    assert_ne!(a["id"], b["id"]);
}

#[actix_web::test]
async fn fifty_concurrent_posts_with_one_key_create_exactly_one_job() {
    let app = spawn_app().await;
    let body = serde_json::json!({"kind": "noop", "payload": {"race": true}});
    let requests = (0..50).map(|_| app.post("/v1/jobs").header("idempotency-key", "race-1").json(&body).send());
    let responses = futures::future::join_all(requests).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut replayed = 0;
    for resp in responses {
        let resp = resp.expect("POST");
        match resp.status().as_u16() {
            202 => {
                replayed += usize::from(resp.headers().get("idempotent-replayed").is_some());
                let doc: serde_json::Value = resp.json().await.expect("json");
                ids.insert(doc["id"].as_str().expect("id").to_string());
            }
            409 => {} // allowed by the draft while the first is in flight; ours waits instead
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ids.len(), 1, "every 202 names the same job");
    assert_eq!(replayed, 49, "all but the first are replays");
    assert_eq!(app.row_counts().await, (1, 1), "exactly one job and one outbox row");
}

#[actix_web::test]
async fn an_expired_key_can_be_used_again_for_a_new_job() {
    let app = spawn_app().await;
    let body = serde_json::json!({"kind": "noop"});
    let first: serde_json::Value = app
        .post("/v1/jobs")
        .header("idempotency-key", "k")
        .json(&body)
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    app.with_db(|c| {
        diesel::RunQueryDsl::execute(
            diesel::sql_query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'"),
            c,
        )
        .expect("expire")
    })
    .await;
    let second = app.post("/v1/jobs").header("idempotency-key", "k").json(&body).send().await.expect("POST");
    assert!(second.headers().get("idempotent-replayed").is_none());
    let second: serde_json::Value = second.json().await.expect("json");
    assert_ne!(first["id"], second["id"]);
}

#[actix_web::test]
async fn a_malformed_or_oversized_key_is_400_and_writes_nothing() {
    let app = spawn_app().await;
    for key in ["", "has space", &"k".repeat(256)] {
        let resp = app
            .post("/v1/jobs")
            .header("idempotency-key", key)
            .json(&serde_json::json!({"kind": "noop"}))
            .send()
            .await
            .expect("POST");
        assert_problem(resp, 400, "/problems/bad-request").await;
    }
    assert_eq!(app.row_counts().await, (0, 0));
}

/// Found by `make fuzz` (fuzz/corpus/idempotency_fingerprint/regression-big-number.json): an integer too large for
/// i64/u64 is read as a float, and without correctly rounded float parsing the same body, re-serialized by a client,
/// fingerprinted differently, so its retry would have been refused as "reused with another body".
#[test]
fn a_body_with_huge_numbers_fingerprints_the_same_after_a_client_reformats_it() {
    use ackbox_api::routes::{fingerprint, SubmitJob};
    let raw = include_str!("../../../fuzz/corpus/idempotency_fingerprint/regression-big-number.json");
    let body: serde_json::Value = serde_json::from_str(raw).expect("json");
    let first = SubmitJob::from_json(body.clone()).and_then(SubmitJob::validate).expect("valid");
    let pretty = serde_json::to_string_pretty(&body).expect("serialize");
    let again = serde_json::from_str(&pretty).expect("parse");
    let second = SubmitJob::from_json(again).and_then(SubmitJob::validate).expect("valid");
    assert_eq!(fingerprint(&first), fingerprint(&second));
}

#[actix_web::test]
async fn a_replay_answers_the_first_202_again_even_after_the_job_finished() {
    let app = spawn_app().await;
    let body = serde_json::json!({"kind": "fail", "max_attempts": 1});
    let first = app.post("/v1/jobs").header("idempotency-key", "k-done").json(&body).send().await.expect("POST");
    let first: serde_json::Value = first.json().await.expect("json");
    let id: uuid::Uuid = first["id"].as_str().expect("id").parse().expect("uuid");
    let topic = app.topic.clone();
    app.with_db(move |c| {
        ackbox_db::state::claim(c, &[id], std::time::Duration::from_secs(60)).expect("claim");
        let err = ackbox_db::models::JobError { code: "deliberate_failure".into(), message: "no".into() };
        ackbox_db::state::fail(c, id, 1, &err, false, std::time::Duration::ZERO, &topic).expect("fail");
    })
    .await;

    let second = app.post("/v1/jobs").header("idempotency-key", "k-done").json(&body).send().await.expect("POST");
    assert_eq!(second.status().as_u16(), 202);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let replay: serde_json::Value = second.json().await.expect("json");
    // The first answer again (as the IETF draft asks): accepted and queued, so an Azure-style poller, which reads
    // `status` from the 202 itself, goes on to poll the monitor instead of taking a failed job for a finished success.
    assert_eq!(replay["id"], first["id"]);
    assert_eq!(replay["status"], "queued");
    assert_eq!(replay["attempts"], 0);
    assert_eq!(replay["error"], serde_json::Value::Null);
    assert_eq!(replay["links"], first["links"]);
    // Its current state is one GET away.
    let now: serde_json::Value =
        app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
    assert_eq!(now["status"], "failed");
}
