//! Waiting without hammering: long-poll, conditional GET, honest Retry-After, overdue.

use std::time::{Duration, Instant};

use ackbox_db::state::{self, Success};

use crate::helpers::{spawn_app, spawn_app_with};

async fn finish(app: &crate::helpers::TestApp, id: uuid::Uuid) {
    // Claim and complete in one transaction, so a watcher sees one change: queued → succeeded.
    app.with_db(move |c| {
        diesel::Connection::transaction(c, |c| {
            let claimed = state::claim(c, &[id], Duration::from_secs(30))?;
            state::complete(c, &[Success { id, attempt: claimed[0].attempt, result: serde_json::json!("done") }])
        })
        .expect("finish");
    })
    .await;
}

#[actix_web::test]
async fn a_long_poll_returns_as_soon_as_the_job_finishes() {
    let app = spawn_app().await;
    let id = app.submit(serde_json::json!({"kind": "noop"})).await;
    // Wait until the API's listener is connected (a long-poll before that still works, it just cannot be woken).
    ackbox_testing::wait_for_async("the listener to connect", Duration::from_secs(30), || async {
        let text = app.client.get(app.ops_url("/metrics")).send().await.ok()?.text().await.ok()?;
        text.lines().any(|l| l == "ackbox_listener_connected 1").then_some(())
    })
    .await;

    let poll = app.get(&format!("/v1/jobs/{id}")).header("prefer", "wait=30").send();
    let finisher = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        finish(&app, id).await;
        Instant::now()
    };
    let (resp, finished_at) = futures::join!(poll, finisher);
    let woke_after = finished_at.elapsed();
    let resp = resp.expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["preference-applied"], "wait=30");
    assert!(resp.headers().get("retry-after").is_none(), "terminal: no Retry-After");
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(doc["status"], "succeeded");
    // Functional, not a speed goal: it was woken by the change, long before its 30 s wait would have run out.
    eprintln!("long-poll answered {woke_after:?} after the job finished");
    assert!(woke_after < Duration::from_secs(15), "woken by NOTIFY, not by the timeout: {woke_after:?}");
}

#[actix_web::test]
async fn a_long_poll_on_an_unchanging_job_returns_its_state_when_the_wait_runs_out() {
    let app = spawn_app().await;
    let id = app.submit(serde_json::json!({"kind": "noop"})).await;
    let start = Instant::now();
    let resp = app.get(&format!("/v1/jobs/{id}")).header("prefer", "respond-async, wait=1").send().await.expect("GET");
    assert!(start.elapsed() >= Duration::from_secs(1), "held for the requested wait");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["preference-applied"], "wait=1");
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(doc["status"], "queued");
}

#[actix_web::test]
async fn a_thousand_waiters_do_not_exhaust_a_pool_of_four() {
    let app = spawn_app().await; // pool_size = 4
    let id = app.submit(serde_json::json!({"kind": "noop"})).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let waiters = (0..1000).map(|_| {
        client.get(app.url(&format!("/v1/jobs/{id}"))).bearer_auth(&app.key).header("prefer", "wait=5").send()
    });
    let all = futures::future::join_all(waiters);
    let meanwhile = async {
        // While 1000 requests wait, the metrics show them and a submission still gets a connection.
        let gauge = ackbox_testing::wait_for_async("waiters to register", Duration::from_secs(30), || async {
            let text = app.client.get(app.ops_url("/metrics")).send().await.ok()?.text().await.ok()?;
            let n: i64 = text.lines().find_map(|l| l.strip_prefix("ackbox_long_poll_waiters "))?.parse().ok()?;
            (n >= 500).then_some(n)
        })
        .await;
        let resp = app.post_job(serde_json::json!({"kind": "noop"})).await;
        (gauge, resp.status().as_u16())
    };
    let (responses, (gauge, post_status)) = futures::join!(all, meanwhile);
    assert!(gauge >= 500, "{gauge} waiters seen");
    assert_eq!(post_status, 202, "the pool was not exhausted by waiters");
    let ok = responses.into_iter().filter(|r| r.as_ref().is_ok_and(|r| r.status().as_u16() == 200)).count();
    assert_eq!(ok, 1000);
}

#[actix_web::test]
async fn etags_make_conditional_gets_answer_304_until_the_job_changes() {
    let app = spawn_app().await;
    let id = app.submit(serde_json::json!({"kind": "noop"})).await;
    let first = app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET");
    let tag = first.headers()["etag"].to_str().expect("ascii").to_string();
    assert!(tag.starts_with('"') && tag.ends_with('"'));

    let same = app.get(&format!("/v1/jobs/{id}")).header("if-none-match", &tag).send().await.expect("GET");
    assert_eq!(same.status().as_u16(), 304);
    assert_eq!(same.headers()["etag"].to_str().expect("ascii"), tag);
    assert!(same.headers().get("retry-after").is_some());

    finish(&app, id).await;
    let changed = app.get(&format!("/v1/jobs/{id}")).header("if-none-match", &tag).send().await.expect("GET");
    assert_eq!(changed.status().as_u16(), 200);
    assert_ne!(changed.headers()["etag"].to_str().expect("ascii"), tag);
}

#[actix_web::test]
async fn retry_after_is_in_the_header_and_the_body_and_overdue_jobs_say_so() {
    let app = spawn_app_with(|c| c.overdue_after = Duration::ZERO).await;
    let id = app.submit(serde_json::json!({"kind": "noop"})).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let resp = app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET");
    let header: u64 = resp.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(doc["retry_after_seconds"], header);
    assert!((1..=60).contains(&header));
    assert_eq!(doc["overdue"], true);
    assert!(doc["overdue_message"].as_str().is_some_and(|m| m.contains("contact support")));

    finish(&app, id).await;
    let doc: serde_json::Value =
        app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
    assert_eq!((doc["overdue"].as_bool(), doc["retry_after_seconds"].is_null()), (Some(false), true));
}

#[test]
fn the_retry_after_estimate_follows_observed_time_to_start_clamped_to_1_60() {
    use ackbox_api::estimates::{load_estimates, Estimates};
    use diesel::RunQueryDsl;
    let db = ackbox_testing::TestDb::new();
    let mut conn = db.conn();
    // Recent "slow" jobs started 7 s after acceptance; "glacial" ones 500 s after.
    diesel::sql_query(
        "INSERT INTO jobs (id, tenant_id, kind, status, attempts, created_at, started_at, finished_at)
         SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000000', k, 'succeeded', 1, now() - (d + 3) * interval '1 second',
                now() - 3 * interval '1 second', now() - interval '1 second'
           FROM (VALUES ('slow', 7), ('glacial', 500)) v(k, d), generate_series(1, 5)",
    )
    .execute(&mut conn)
    .expect("seed");
    let estimates = Estimates::default();
    estimates.set(load_estimates(&db.pool(1)).expect("estimates"));
    let queued = |kind: &str| {
        let new = ackbox_db::models::NewJob::new(kind, serde_json::json!({}), 1);
        let job = ackbox_db::state::submit(&mut db.conn(), &new, "t").expect("submit");
        ackbox_api::document::retry_after(&job, &estimates)
    };
    assert_eq!(queued("slow"), Some(7));
    assert_eq!(queued("glacial"), Some(60), "clamped");
    assert_eq!(queued("never-seen"), Some(1), "no data: poll soon");
}

#[test]
fn the_listener_thread_stops_when_its_handle_is_dropped() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use ackbox_api::auth::KeyCache;
    use ackbox_api::estimates::Estimates;
    use ackbox_api::waiters::Waiters;
    use ackbox_testing::{wait_for, TestDb};

    let db = TestDb::new();
    let config = crate::helpers::test_config(&db, "unused");
    let pool = ackbox_db::db::build_pool(&config.db);
    let keys = Arc::new(KeyCache::new(Duration::from_secs(60)));
    let live = ackbox_api::live::start(
        config.db.url.clone(),
        pool,
        keys.clone(),
        Arc::new(Waiters::default()),
        Arc::new(Estimates::default()),
        prometheus::IntGauge::new("connected", "test").expect("gauge"),
    );
    wait_for("the listener to connect", Duration::from_secs(30), || keys.live.load(Ordering::SeqCst).then_some(()));

    // What happens when the server's state is dropped at shutdown: the handle goes.
    let thread = live.stop().expect("the thread started");
    wait_for("the thread to end", Duration::from_secs(30), || thread.is_finished().then_some(()));
    assert!(!keys.live.load(Ordering::SeqCst), "its LISTEN connection is gone with it");
}
