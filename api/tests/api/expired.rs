//! Retention's tombstones at the API: a job of this tenant that retention deleted is 404 `/problems/expired` on every
//! route that takes its id; to any other tenant, and for an id never issued, it is the plain 404.

use crate::helpers::{assert_problem, spawn_app};

#[actix_web::test]
async fn a_deleted_job_is_expired_to_its_tenant_and_unknown_to_everyone_else() {
    let app = spawn_app().await;
    let body = serde_json::json!({"kind": "echo"});
    let resp = app.post("/v1/jobs").header("idempotency-key", "kept-then-gone").json(&body).send().await.expect("POST");
    let doc: serde_json::Value = resp.json().await.expect("json");
    let id: uuid::Uuid = doc["id"].as_str().expect("id").parse().expect("uuid");
    // It runs and finishes. Retention (any horizon the test likes: the relay refuses less than a minute) keeps it while
    // its Idempotency-Key lives, and deletes it once the key has expired.
    let (kept, deleted) = app
        .with_db(move |c| {
            use diesel::RunQueryDsl;
            ackbox_db::state::claim(c, &[id], std::time::Duration::from_secs(60)).expect("claim");
            let done = ackbox_db::state::Success { id, attempt: 1, result: serde_json::json!({}) };
            ackbox_db::state::complete(c, &[done]).expect("complete");
            let kept =
                ackbox_db::retention::delete_finished_jobs(c, std::time::Duration::ZERO, 100).expect("retention");
            diesel::sql_query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
                .execute(c)
                .expect("the key expires");
            let deleted =
                ackbox_db::retention::delete_finished_jobs(c, std::time::Duration::ZERO, 100).expect("retention");
            (kept, deleted)
        })
        .await;
    assert_eq!((kept, deleted), (0, 1), "kept while its key lived, deleted after");

    for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}/result"), format!("/v1/operations/{id}")] {
        let problem = assert_problem(app.get(&path).send().await.expect("GET"), 404, "/problems/expired").await;
        assert!(problem["detail"].as_str().expect("detail").contains("ACKBOX_JOB_RETENTION_SECS"), "{problem}");
    }
    let cancel = app.post(&format!("/v1/jobs/{id}/cancel")).send().await.expect("POST");
    assert_problem(cancel, 404, "/problems/expired").await;

    // Another tenant, and an id never issued: the plain 404, the same body.
    let other = app.other_tenant("tenant-b").await;
    let foreign = app.client.get(app.url(&format!("/v1/jobs/{id}"))).bearer_auth(&other).send().await.expect("GET");
    assert_problem(foreign, 404, "/problems/not-found").await;
    let never = app.get(&format!("/v1/jobs/{}", uuid::Uuid::now_v7())).send().await.expect("GET");
    assert_problem(never, 404, "/problems/not-found").await;

    // Its expired Idempotency-Key went with it: the same request again is a new job, not a replay of a missing one.
    let again =
        app.post("/v1/jobs").header("idempotency-key", "kept-then-gone").json(&body).send().await.expect("POST");
    assert_eq!(again.status().as_u16(), 202);
    assert!(again.headers().get("idempotent-replayed").is_none());
    let again: serde_json::Value = again.json().await.expect("json");
    assert_ne!(again["id"], doc["id"]);
}
