//! The OpenAPI document is generated from the code; here the real responses are checked against it, and the
//! metrics endpoint is checked for what operators need.

use crate::helpers::spawn_app;

/// A validator for `#/components/schemas/{name}` of the served document.
fn validator(doc: &serde_json::Value, name: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$ref"] = serde_json::json!(format!("#/components/schemas/{name}"));
    jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&root).expect("schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, instance: &serde_json::Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{what} violates the schema: {errors:?}\n{instance:#}");
}

#[actix_web::test]
async fn real_responses_match_the_served_openapi_31_document() {
    let app = spawn_app().await;
    let doc: serde_json::Value =
        app.client.get(app.url("/openapi.json")).send().await.expect("GET").json().await.expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1: {}", doc["openapi"]);
    for path in ["/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/result", "/v1/jobs/{id}/cancel"] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    let status_doc = validator(&doc, "StatusDocument");
    let list = validator(&doc, "JobList");
    let problem = validator(&doc, "Problem");

    let accepted: serde_json::Value =
        app.post_job(serde_json::json!({"kind": "echo", "payload": [1]})).await.json().await.expect("json");
    assert_valid(&status_doc, &accepted, "202 body");
    let id = accepted["id"].as_str().expect("id");
    let got: serde_json::Value =
        app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
    assert_valid(&status_doc, &got, "200 body");
    let listed: serde_json::Value = app.get("/v1/jobs").send().await.expect("GET").json().await.expect("json");
    assert_valid(&list, &listed, "list body");
    let cancelled: serde_json::Value =
        app.post(&format!("/v1/jobs/{id}/cancel")).send().await.expect("POST").json().await.expect("json");
    assert_valid(&status_doc, &cancelled, "cancel body");
    for resp in [
        app.get(&format!("/v1/jobs/{}", uuid::Uuid::now_v7())).send().await.expect("404"),
        app.get(&format!("/v1/jobs/{id}/result")).send().await.expect("409"),
        app.client.get(app.url("/v1/jobs")).send().await.expect("401"),
        app.post_job(serde_json::json!({"kind": 1})).await,
    ] {
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_valid(&problem, &body, "problem body");
    }
    // And the schema is not vacuous: a wrong document fails it.
    let mut broken = got.clone();
    broken["status"] = serde_json::json!("exploded");
    assert!(!status_doc.is_valid(&broken), "an unknown status must violate the schema");
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_status_and_submissions_by_kind() {
    let app = spawn_app().await;
    app.submit(serde_json::json!({"kind": "echo"})).await;
    app.submit(serde_json::json!({"kind": "echo"})).await;
    app.get(&format!("/v1/jobs/{}", uuid::Uuid::now_v7())).send().await.expect("GET");
    let text = app.client.get(app.ops_url("/metrics")).send().await.expect("GET").text().await.expect("text");
    // Metrics live on the ops port only: the public port, which a load balancer exposes, does not serve them.
    let public = app.client.get(app.url("/metrics")).send().await.expect("GET public /metrics");
    assert_eq!(public.status().as_u16(), 404, "the public port serves /metrics");
    let ready = app.client.get(app.ops_url("/readyz")).send().await.expect("GET ops /readyz");
    assert_eq!(ready.status().as_u16(), 200);
    for line in [
        "ackbox_http_requests_total{method=\"POST\",route=\"/v1/jobs\",status=\"202\"} 2",
        "ackbox_http_requests_total{method=\"GET\",route=\"/v1/jobs/{id}\",status=\"404\"} 1",
        "ackbox_jobs_submitted_total{kind=\"echo\"} 2",
        "ackbox_long_poll_waiters 0",
    ] {
        assert!(text.lines().any(|l| l == line), "metrics contain {line:?}:\n{text}");
    }
    assert!(text.contains("ackbox_http_request_duration_seconds_bucket"));
    assert!(!text.contains(&app.key), "no key in metrics");
}
