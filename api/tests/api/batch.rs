//! `POST /v1/jobs/batch`: up to 1000 jobs in one transaction, all or nothing, ids in order, idempotent as a whole.

use crate::helpers::{assert_problem, spawn_app};

fn jobs(n: usize) -> Vec<serde_json::Value> {
    (0..n).map(|i| serde_json::json!({"kind": "echo", "payload": {"n": i}})).collect()
}

#[actix_web::test]
async fn a_batch_commits_every_job_and_answers_them_in_request_order_each_readable_at_once() {
    let app = spawn_app().await;
    let body = serde_json::json!({"jobs": [
        {"kind": "echo", "payload": {"n": 0}},
        {"kind": "noop"},
        {"kind": "fail", "payload": {"times": 1}, "max_attempts": 5},
    ]});
    let resp = app.post("/v1/jobs/batch").json(&body).send().await.expect("POST");
    assert_eq!(resp.status().as_u16(), 202);
    let doc: serde_json::Value = resp.json().await.expect("json");
    let items = doc["jobs"].as_array().expect("jobs");
    assert_eq!(items.len(), 3);
    let kinds: Vec<&str> = items.iter().map(|j| j["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["echo", "noop", "fail"], "in request order");
    assert_eq!(items[2]["max_attempts"], 5);
    for item in items {
        assert_eq!(item["status"], "queued");
        // Read-your-writes: each id is found right after the 202.
        let id = item["id"].as_str().expect("id");
        let got = app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET");
        assert_eq!(got.status().as_u16(), 200, "job {id}");
    }
    assert_eq!(app.row_counts().await, (3, 3), "three jobs, three dispatches");

    // The maximum, 1000, in one request.
    let resp = app.post("/v1/jobs/batch").json(&serde_json::json!({"jobs": jobs(1000)})).send().await.expect("POST");
    assert_eq!(resp.status().as_u16(), 202);
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(doc["jobs"].as_array().expect("jobs").len(), 1000);
    assert_eq!(app.row_counts().await, (1003, 1003));
}

#[actix_web::test]
async fn a_bad_item_is_a_422_naming_its_index_and_nothing_is_written() {
    let app = spawn_app().await;
    let cases = [
        (
            serde_json::json!({"jobs": [{"kind": "echo"}, {"kind": "echo", "max_attempts": -1}]}),
            "jobs[1]: max_attempts",
        ),
        (serde_json::json!({"jobs": [{"kind": "echo"}, {"kind": "echo"}, {"kind": "bad kind"}]}), "jobs[2]: kind"),
        (serde_json::json!({"jobs": [{"kind": "echo"}, {"kind": "nobody-runs-this"}]}), "jobs[1].kind"),
        (serde_json::json!({"jobs": [{"kind": "echo", "colour": "red"}]}), "jobs[0]: unknown field `colour`"),
        (serde_json::json!({"jobs": [{"kind": "echo"}, 7]}), "jobs[1]"),
        (serde_json::json!({"jobs": jobs(1001)}), "1 to 1000 items, not 1001"),
        (serde_json::json!({"jobs": []}), "1 to 1000 items, not 0"),
        (serde_json::json!({"job": [{"kind": "echo"}]}), "unknown field `job`"),
        (serde_json::json!([{"kind": "echo"}]), "must be a JSON object"),
    ];
    for (body, says) in cases {
        let resp = app.post("/v1/jobs/batch").json(&body).send().await.expect("POST");
        let problem = assert_problem(resp, 422, "/problems/validation").await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(says), "{says:?} not in {detail:?}");
    }
    assert_eq!(app.row_counts().await, (0, 0), "nothing was written");
}

#[actix_web::test]
async fn an_idempotency_key_stands_for_the_whole_batch() {
    let app = spawn_app().await;
    let body = serde_json::json!({"jobs": jobs(5)});
    let first = app.post("/v1/jobs/batch").header("idempotency-key", "b-1").json(&body).send().await.expect("POST");
    assert_eq!(first.status().as_u16(), 202);
    let first: serde_json::Value = first.json().await.expect("json");
    let again = app.post("/v1/jobs/batch").header("idempotency-key", "b-1").json(&body).send().await.expect("POST");
    assert_eq!(again.status().as_u16(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.expect("json");
    let ids = |doc: &serde_json::Value| -> Vec<String> {
        doc["jobs"].as_array().expect("jobs").iter().map(|j| j["id"].as_str().expect("id").to_string()).collect()
    };
    assert_eq!(ids(&first), ids(&again), "the same ids, in the same order");
    assert_eq!(app.row_counts().await, (5, 5), "written once");

    // The key with another batch, or with a single submit, is refused and writes nothing.
    let other = serde_json::json!({"jobs": jobs(4)});
    let clash = app.post("/v1/jobs/batch").header("idempotency-key", "b-1").json(&other).send().await.expect("POST");
    assert_problem(clash, 422, "/problems/validation").await;
    let single = app
        .post("/v1/jobs")
        .header("idempotency-key", "b-1")
        .json(&serde_json::json!({"kind": "echo", "payload": {"n": 0}}))
        .send()
        .await
        .expect("POST");
    assert_problem(single, 422, "/problems/validation").await;
    // And a single submit's key is not a batch's.
    let one = serde_json::json!({"kind": "echo", "payload": {"n": 0}});
    let ok = app.post("/v1/jobs").header("idempotency-key", "s-1").json(&one).send().await.expect("POST");
    assert_eq!(ok.status().as_u16(), 202);
    let batch_of_one = serde_json::json!({"jobs": [one]});
    let clash =
        app.post("/v1/jobs/batch").header("idempotency-key", "s-1").json(&batch_of_one).send().await.expect("POST");
    assert_problem(clash, 422, "/problems/validation").await;
    assert_eq!(app.row_counts().await, (6, 6));
}

#[actix_web::test]
async fn another_tenants_batch_is_invisible_and_a_body_over_the_batch_limit_is_413() {
    let app = spawn_app().await;
    let resp = app.post("/v1/jobs/batch").json(&serde_json::json!({"jobs": jobs(2)})).send().await.expect("POST");
    let doc: serde_json::Value = resp.json().await.expect("json");
    let other = app.other_tenant("tenant-b").await;
    for item in doc["jobs"].as_array().expect("jobs") {
        let id = item["id"].as_str().expect("id");
        let resp = app.client.get(app.url(&format!("/v1/jobs/{id}"))).bearer_auth(&other).send().await.expect("GET");
        assert_eq!(resp.status().as_u16(), 404, "another tenant sees {id}");
    }
    let big = "x".repeat(5 * 1024 * 1024);
    let body = serde_json::json!({"jobs": [{"kind": "echo", "payload": {"big": big}}]});
    let resp = app.post("/v1/jobs/batch").json(&body).send().await.expect("POST");
    assert_eq!(resp.status().as_u16(), 413);
}
