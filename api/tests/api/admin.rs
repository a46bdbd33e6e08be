//! The operator's endpoints (`/v1/admin/...`, an admin key): every tenant's jobs listed with filters and pages, a
//! failed job retried, any job cancelled, and every failed job a filter matches retried in bounded batches.

use std::collections::HashSet;

use uuid::Uuid;

use crate::helpers::{assert_problem, spawn_app, TestApp};

async fn admin_key(app: &TestApp) -> String {
    app.with_db(|c| {
        let ops = ackbox_db::models::tenant::ensure_tenant(c, "ops").expect("tenant");
        ackbox_db::models::tenant::set_admin(c, ops.id, true).expect("admin");
        ackbox_db::models::tenant::create_key(c, ops.id).expect("key").1
    })
    .await
}

/// Marks a job failed after one attempt, as a worker would have.
async fn fail(app: &TestApp, id: Uuid) {
    app.with_db(move |c| {
        use diesel::prelude::*;
        diesel::sql_query(
            "UPDATE jobs SET status = 'failed', attempts = 1, max_attempts = 1, finished_at = now(),
                    error = '{\"code\": \"boom\", \"message\": \"no\"}' WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(c)
        .expect("fail");
    })
    .await
}

async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[actix_web::test]
async fn the_list_shows_every_tenants_jobs_filtered_and_paged_to_admins_only() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let mine: Vec<Uuid> =
        futures::future::join_all((0..5).map(|i| app.submit(serde_json::json!({"kind": "echo", "payload": {"i": i}}))))
            .await;
    let other_key = app.other_tenant("tenant-b").await;
    let theirs = app
        .client
        .post(app.url("/v1/jobs"))
        .bearer_auth(&other_key)
        .json(&serde_json::json!({"kind": "sleep"}))
        .send()
        .await
        .expect("POST");
    let theirs: Uuid =
        theirs.json::<serde_json::Value>().await.expect("json")["id"].as_str().expect("id").parse().expect("uuid");
    fail(&app, mine[0]).await;

    let list = |q: &str| app.client.get(app.url(&format!("/v1/admin/jobs{q}"))).bearer_auth(&admin);
    let (status, all) = send(list("")).await;
    assert_eq!(status, 200, "{all}");
    let ids: Vec<&str> =
        all["items"].as_array().expect("items").iter().map(|j| j["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 6, "both tenants' jobs: {all}");
    assert_eq!(all["items"][0]["id"], theirs.to_string(), "newest first");
    assert_eq!(all["items"][0]["tenant"], "tenant-b");
    assert!(all["items"][0].get("payload").is_none(), "never a payload");

    let (_, failed) = send(list("?status=failed")).await;
    assert_eq!(failed["items"].as_array().expect("items").len(), 1);
    assert_eq!(failed["items"][0]["error"]["code"], "boom");
    let (_, sleeps) = send(list("?kind=sleep&tenant=tenant-b&queue=default")).await;
    assert_eq!(sleeps["items"][0]["id"], theirs.to_string());
    assert_eq!(sleeps["items"].as_array().expect("items").len(), 1);
    let (_, none) = send(list("?tenant=tenant-a&since=2999-01-01T00:00:00Z")).await;
    assert_eq!(none["items"].as_array().expect("items").len(), 0);
    let (_, before) = send(list("?until=2000-01-01T00:00:00Z")).await;
    assert_eq!(before["items"].as_array().expect("items").len(), 0);

    // Pages of 2 walk every job once.
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".into(),
        };
        let (_, page) = send(list(&q)).await;
        for j in page["items"].as_array().expect("items") {
            assert!(seen.insert(j["id"].as_str().expect("id").to_string()), "seen twice: {j}");
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 6);

    assert_problem(list("?limit=0").send().await.expect("GET"), 400, "/problems/bad-request").await;
    assert_problem(app.get("/v1/admin/jobs").send().await.expect("GET"), 403, "/problems/forbidden").await;
    assert_problem(app.client.get(app.url("/v1/admin/jobs")).send().await.expect("GET"), 401, "/problems/unauthorized")
        .await;
}

#[actix_web::test]
async fn an_admin_retries_a_failed_job_and_cancels_any_tenants_job() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let post = |path: String| app.client.post(app.url(&path)).bearer_auth(&admin);
    let failed = app.submit(serde_json::json!({"kind": "echo"})).await;
    let queued = app.submit(serde_json::json!({"kind": "echo"})).await;
    fail(&app, failed).await;
    let outbox_before = app.row_counts().await.1;

    let (status, job) = send(post(format!("/v1/admin/jobs/{failed}/retry"))).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("queued")), "{job}");
    assert_eq!(job["max_attempts"], 2, "one more attempt than it had used");
    assert_eq!(app.row_counts().await.1, outbox_before + 1, "a fresh dispatch");
    let (status, _) = send(post(format!("/v1/admin/jobs/{queued}/retry"))).await;
    assert_eq!(status, 409, "only failed jobs are retried");
    let (status, _) = send(post(format!("/v1/admin/jobs/{}/retry", Uuid::now_v7()))).await;
    assert_eq!(status, 404);

    // The job belongs to tenant-a; the admin (tenant ops) cancels it all the same.
    let (status, job) = send(post(format!("/v1/admin/jobs/{queued}/cancel"))).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("cancelled")), "{job}");
    let (status, _) = send(post(format!("/v1/admin/jobs/{queued}/cancel"))).await;
    assert_eq!(status, 409, "already finished");
    // A tenant's own key cannot.
    assert_problem(
        app.post(&format!("/v1/admin/jobs/{failed}/cancel")).send().await.expect("POST"),
        403,
        "/problems/forbidden",
    )
    .await;
}

#[actix_web::test]
async fn a_bulk_retry_takes_every_failed_job_the_filter_matches_and_refuses_an_unnarrowed_one() {
    let app = spawn_app().await;
    let admin = admin_key(&app).await;
    let retry =
        |body: serde_json::Value| app.client.post(app.url("/v1/admin/jobs/retry")).bearer_auth(&admin).json(&body);
    let mut echoes = Vec::new();
    for _ in 0..3 {
        echoes.push(app.submit(serde_json::json!({"kind": "echo"})).await);
    }
    let sleep = app.submit(serde_json::json!({"kind": "sleep"})).await;
    for id in echoes.iter().chain([&sleep]) {
        fail(&app, *id).await;
    }

    let (status, problem) = send(retry(serde_json::json!({}))).await;
    assert_eq!(status, 422, "{problem}");
    let (status, _) = send(retry(serde_json::json!({"kind": "echo", "colour": "red"}))).await;
    assert_eq!(status, 422, "unknown field");

    let (status, done) = send(retry(serde_json::json!({"kind": "echo", "queue": "default"}))).await;
    assert_eq!((status, done["retried"].as_u64(), done["more"].as_bool()), (200, Some(3), Some(false)), "{done}");
    let statuses = app
        .with_db(move |c| {
            use diesel::prelude::*;
            ackbox_db::schema::jobs::table
                .select((ackbox_db::schema::jobs::kind, ackbox_db::schema::jobs::status))
                .load::<(String, String)>(c)
                .expect("jobs")
        })
        .await;
    for (kind, status) in &statuses {
        assert_eq!(status, if kind == "echo" { "queued" } else { "failed" }, "{statuses:?}");
    }
    let (_, rest) = send(retry(serde_json::json!({"all": true}))).await;
    assert_eq!(rest["retried"], 1, "the sleep job");
}
