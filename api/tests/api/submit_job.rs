use ackbox_types::envelope::Envelope;
use diesel::prelude::*;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn submit_commits_job_and_outbox_row_before_answering_202() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let resp = app.post_job(serde_json::json!({"kind": "echo", "payload": {"x": 1}, "max_attempts": 5})).await;

    // Assert: 202 with absolute Location and Operation-Location, Retry-After and the status document.
    assert_eq!(resp.status().as_u16(), 202);
    let location = resp.headers()["location"].to_str().expect("ascii").to_string();
    let resp_operation_location = resp.headers()["operation-location"].to_str().expect("ascii").to_string();
    assert_eq!(resp.headers()["retry-after"], "1");
    let doc: serde_json::Value = resp.json().await.expect("json");
    let id: Uuid = doc["id"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(id.get_version_num(), 7, "ids are UUIDv7");
    assert_eq!(location, app.url(&format!("/v1/jobs/{id}")), "Location is absolute");
    assert_eq!(resp_operation_location, app.url(&format!("/v1/operations/{id}")));
    assert_eq!(doc["status"], "queued");
    assert_eq!(doc["kind"], "echo");
    assert_eq!(doc["attempts"], 0);
    assert_eq!(doc["max_attempts"], 5);
    assert_eq!(doc["links"]["self"], location);
    assert_eq!(doc["links"]["result"], format!("{location}/result"));
    assert_eq!(doc["links"]["cancel"], format!("{location}/cancel"));
    assert_eq!(doc["links"]["monitor"], resp_operation_location);
    assert_eq!(doc["links"]["operation"], format!("{location}/operation"));

    // ... and both rows are committed: the outbox row names the job, the topic and the first attempt.
    let mut conn = app.db.conn();
    let rows = ackbox_db::outbox::for_job(&mut conn, id).expect("outbox rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].topic, app.topic);
    assert_eq!(rows[0].key, id.to_string());
    assert!(rows[0].published_at.is_none());
    let env: Envelope = serde_json::from_value(rows[0].payload.clone()).expect("envelope");
    assert_eq!((env.job_id, env.kind.as_str(), env.attempt), (id, "echo", 1));
    let payload: serde_json::Value = ackbox_db::schema::jobs::table
        .find(id)
        .select(ackbox_db::schema::jobs::payload)
        .first(&mut conn)
        .expect("job row");
    assert_eq!(payload, serde_json::json!({"x": 1}));
}

#[actix_web::test]
async fn payload_and_max_attempts_have_defaults() {
    let app = spawn_app().await;
    let resp = app.post_job(serde_json::json!({"kind": "noop"})).await;
    assert_eq!(resp.status().as_u16(), 202);
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(doc["max_attempts"], 3);
    let id: Uuid = doc["id"].as_str().expect("id").parse().expect("uuid");
    let job = ackbox_db::models::Job::find(&mut app.db.conn(), id).expect("query").expect("row");
    assert_eq!(job.payload, serde_json::json!({}));
}

#[actix_web::test]
async fn a_get_immediately_after_each_202_never_answers_404() {
    let app = spawn_app().await;
    for i in 0..50 {
        let resp = app.post_job(serde_json::json!({"kind": "noop", "payload": {"i": i}})).await;
        assert_eq!(resp.status().as_u16(), 202);
        let location = resp.headers()["location"].to_str().expect("ascii").to_string();
        let got = app.client.get(&location).bearer_auth(&app.key).send().await.expect("GET");
        assert_eq!(got.status().as_u16(), 200, "GET {location} right after its 202");
    }
}
