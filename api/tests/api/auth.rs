//! Tenants and keys: who may do what, and that a refused request writes nothing.

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[actix_web::test]
async fn missing_malformed_and_unknown_keys_are_401_and_write_nothing() {
    let app = spawn_app().await;
    let body = serde_json::json!({"kind": "noop"});
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("wrong scheme", Some(format!("Basic {}", app.key))),
        ("garbage", Some("Bearer nope".into())),
        (
            "unknown well-formed key",
            Some("Bearer ackbox_0123456789ab_00112233445566778899aabbccddeeff0011223344556677".into()),
        ),
    ];
    for (what, header) in cases {
        let mut req = app.client.post(app.url("/v1/jobs")).json(&body);
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let resp = req.send().await.expect("POST");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{what}");
        assert_problem(resp, 401, "/problems/unauthorized").await;
    }
    assert_eq!(app.row_counts().await, (0, 0));
}

#[actix_web::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = spawn_app().await;
    // Warm the key cache first: revocation must beat it.
    assert_eq!(app.get("/v1/jobs").send().await.expect("GET").status().as_u16(), 200);
    let key = app.key.clone();
    let prefix = ackbox_db::models::tenant::key_prefix(&key).expect("prefix").to_string();
    assert!(app.with_db(move |c| ackbox_db::models::tenant::revoke_key(c, &prefix).expect("revoke")).await);

    // The revocation reaches the API through NOTIFY; wait for the condition, not for a fixed time.
    let status =
        ackbox_testing::wait_for_async("the revoked key to be refused", std::time::Duration::from_secs(10), || async {
            let s = app.get("/v1/jobs").send().await.map(|r| r.status().as_u16());
            s.ok().filter(|s| *s == 401)
        })
        .await;
    assert_eq!(status, 401);
    assert_problem(app.post_job(serde_json::json!({"kind": "noop"})).await, 401, "/problems/unauthorized").await;
}

#[actix_web::test]
async fn a_key_in_the_query_string_is_refused() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url(&format!("/v1/jobs?api_key={}", app.key))).send().await.expect("GET");
    assert_problem(resp, 400, "/problems/bad-request").await;
    let resp = app.get(&format!("/v1/jobs?cursor={}", app.key)).send().await.expect("GET");
    assert_problem(resp, 400, "/problems/bad-request").await;
}

#[actix_web::test]
async fn another_tenants_job_is_404_everywhere_exactly_like_a_random_id() {
    let app = spawn_app().await;
    let id = app.submit(serde_json::json!({"kind": "echo", "payload": {"secret": 1}})).await;
    let other = app.other_tenant("tenant-b").await;
    let random = uuid::Uuid::now_v7();

    for target in [id, random] {
        for (method, path) in [
            ("GET", format!("/v1/jobs/{target}")),
            ("GET", format!("/v1/jobs/{target}/result")),
            ("POST", format!("/v1/jobs/{target}/cancel")),
        ] {
            let req = if method == "GET" { app.client.get(app.url(&path)) } else { app.client.post(app.url(&path)) };
            let resp = req.bearer_auth(&other).send().await.expect("request");
            let body = assert_problem(resp, 404, "/problems/not-found").await;
            assert_eq!(body["detail"], "No job with this id exists.", "{method} {path}: same body for both");
        }
    }
    let listed: serde_json::Value =
        app.client.get(app.url("/v1/jobs")).bearer_auth(&other).send().await.expect("GET").json().await.expect("json");
    assert_eq!(listed["items"], serde_json::json!([]), "B lists nothing of A's");
    // A still sees and controls its job.
    assert_eq!(app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").status().as_u16(), 200);
    assert_eq!(app.post(&format!("/v1/jobs/{id}/cancel")).send().await.expect("POST").status().as_u16(), 200);
}

#[actix_web::test]
async fn a_kind_no_worker_registered_is_422_and_writes_nothing() {
    let app = spawn_app().await;
    let resp = app.post_job(serde_json::json!({"kind": "nobody-runs-this"})).await;
    let problem = assert_problem(resp, 422, "/problems/validation").await;
    assert!(problem["detail"].as_str().expect("detail").contains("nobody-runs-this"));
    assert_eq!(app.row_counts().await, (0, 0));
    // Registered later (a worker started): accepted without restarting the API.
    app.with_db(|c| ackbox_db::models::job_kind::register(c, &["nobody-runs-this".to_string()]).expect("register"))
        .await;
    assert_eq!(app.post_job(serde_json::json!({"kind": "nobody-runs-this"})).await.status().as_u16(), 202);
}

#[actix_web::test]
async fn over_the_rate_limit_is_429_with_retry_after_writes_nothing_and_spares_other_tenants() {
    let app = spawn_app_with(|c| {
        c.rate_limit_per_sec = 1;
        c.rate_limit_burst = 2;
    })
    .await;
    let body = serde_json::json!({"kind": "noop"});
    assert_eq!(app.post_job(body.clone()).await.status().as_u16(), 202);
    assert_eq!(app.post_job(body.clone()).await.status().as_u16(), 202);
    let limited = app.post_job(body.clone()).await;
    let retry_after: u64 = limited.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!(retry_after >= 1);
    assert_problem(limited, 429, "/problems/rate-limited").await;
    assert_eq!(app.row_counts().await, (2, 2), "the refused request wrote nothing");

    let other = app.other_tenant("tenant-b").await;
    let resp = app.client.post(app.url("/v1/jobs")).bearer_auth(&other).json(&body).send().await.expect("POST");
    assert_eq!(resp.status().as_u16(), 202, "tenant B is not slowed by A's burst");
}
