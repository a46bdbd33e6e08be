//! The status document's headers never lie: the ETag changes whenever the document does (a client polling with
//! If-None-Match sees a job turn overdue), Retry-After is never shorter than a backoff still to wait, and `overdue`
//! counts from when the job became due, not from its submission.

use crate::helpers::spawn_app_with;

fn sql(app: &crate::helpers::TestApp, statement: &str, id: uuid::Uuid) {
    use diesel::RunQueryDsl;
    diesel::sql_query(statement).bind::<diesel::sql_types::Uuid, _>(id).execute(&mut app.db.conn()).expect("sql");
}

#[actix_web::test]
async fn the_etag_changes_when_a_queued_job_turns_overdue() {
    let app = spawn_app_with(|c| c.overdue_after = std::time::Duration::from_secs(1)).await;
    let id = app.submit(serde_json::json!({"kind": "echo"})).await;
    let first = app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET");
    let tag = first.headers()["etag"].to_str().expect("etag").to_string();
    let doc: serde_json::Value = first.json().await.expect("json");
    assert_eq!(doc["overdue"], false);

    // No worker runs: within a second the job is overdue. A client polling with its ETag must be told.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let changed = loop {
        let resp = app.get(&format!("/v1/jobs/{id}")).header("If-None-Match", &tag).send().await.expect("GET");
        if resp.status().as_u16() == 200 {
            break resp;
        }
        assert_eq!(resp.status().as_u16(), 304);
        assert!(std::time::Instant::now() < deadline, "still 304 although the job is overdue by now");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_ne!(changed.headers()["etag"].to_str().expect("etag"), tag);
    let doc: serde_json::Value = changed.json().await.expect("json");
    assert_eq!(doc["overdue"], true, "{doc}");
}

#[actix_web::test]
async fn retry_after_is_never_shorter_than_the_backoff_left_to_wait() {
    let app = spawn_app_with(|_| {}).await;
    let id = app.submit(serde_json::json!({"kind": "echo"})).await;
    sql(&app, "UPDATE jobs SET attempts = 1, not_before = now() + interval '90 seconds' WHERE id = $1", id);
    let resp = app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET");
    let secs: u64 = resp.headers()["retry-after"].to_str().expect("header").parse().expect("seconds");
    assert!(secs >= 89, "Retry-After {secs} s while 90 s of backoff remain");
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert!(doc["retry_after_seconds"].as_u64().is_some_and(|s| s == secs), "{doc}");
}

#[actix_web::test]
async fn a_job_in_a_normal_retry_backoff_is_not_overdue_however_old_it_is() {
    let app = spawn_app_with(|c| c.overdue_after = std::time::Duration::from_secs(60)).await;
    let id = app.submit(serde_json::json!({"kind": "echo"})).await;
    // Submitted 10 min ago; its first attempt failed just now and its retry is due in 30 s.
    sql(
        &app,
        "UPDATE jobs SET created_at = now() - interval '10 minutes', attempts = 1,
                         not_before = now() + interval '30 seconds' WHERE id = $1",
        id,
    );
    let doc: serde_json::Value =
        app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
    assert_eq!(doc["status"], "queued");
    assert_eq!(doc["overdue"], false, "{doc}");

    // Due for 2 minutes and still not started: that is overdue.
    sql(&app, "UPDATE jobs SET not_before = now() - interval '2 minutes', updated_at = now() - interval '3 minutes' WHERE id = $1", id);
    let doc: serde_json::Value =
        app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
    assert_eq!(doc["overdue"], true, "{doc}");
}
