//! Completion callbacks against a real HTTP receiver: the status document is POSTed when the job ends, signed in the
//! Standard Webhooks style; a receiver that is down or failing gets it later; targets inside our own network are
//! refused at submit with a 422 that names the field, and nothing is written.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use hmac::{Hmac, Mac};
use uuid::Uuid;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, TestApp};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A real HTTP receiver on loopback that records every request and answers with `status`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    fn on(listener: TcpListener) -> Self {
        let url = format!("http://{}/hooks/ackbox?token=t-1", listener.local_addr().expect("addr"));
        let got: Arc<Mutex<Vec<Received>>> = Default::default();
        let status = Arc::new(AtomicU16::new(200));
        let (g, s) = (got.clone(), status.clone());
        let server = HttpServer::new(move || {
            let (g, s) = (g.clone(), s.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (g, s) = (g.clone(), s.clone());
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect();
                    g.lock().expect("lock").push(Received { headers, body: body.to_vec() });
                    let code = actix_web::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).expect("status");
                    HttpResponse::build(code).body("receiver says hello")
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        Self { url, got, status }
    }

    fn start() -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").expect("bind"))
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits (at most `within`) until it has received at least `n` requests.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "the receiver got {} requests within {within:?}, not {n}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The job's document once `done(doc)` holds (at most `within`).
async fn document_when(
    app: &TestApp,
    id: Uuid,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let doc: serde_json::Value =
            app.get(&format!("/v1/jobs/{id}")).send().await.expect("GET").json().await.expect("json");
        if done(&doc) {
            return doc;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {doc}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits a job with a callback to `url` and cancels it while it is queued: it ends `cancelled`.
async fn submit_and_end(app: &TestApp, url: &str) -> Uuid {
    let id = app.submit(serde_json::json!({"kind": "echo", "callback_url": url})).await;
    let resp = app.post(&format!("/v1/jobs/{id}/cancel")).send().await.expect("cancel");
    assert_eq!(resp.status().as_u16(), 200, "a queued job is cancelled at once");
    id
}

/// Verifies a Standard Webhooks signature as a receiver would, independently of the server's code.
fn verify(secret: &str, r: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).expect("key");
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).expect("key");
    let (id, ts) = (&r.headers["webhook-id"], &r.headers["webhook-timestamp"]);
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    r.headers["webhook-signature"].split(' ').any(|s| s == expected)
}

#[actix_web::test]
async fn a_finished_jobs_document_is_posted_signed_with_the_tenants_secret() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    let id = submit_and_end(&app, &receiver.url).await;

    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    let secret: serde_json::Value =
        app.get("/v1/callbacks/secret").send().await.expect("GET").json().await.expect("json");
    let secret = secret["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let first = &got[0];
    assert!(verify(secret, first), "the signature verifies with the tenant's secret: {:?}", first.headers);
    assert_eq!(first.headers["content-type"], "application/json");
    let ts: i64 = first.headers["webhook-timestamp"].parse().expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 300, "a current timestamp: {ts}");
    let body: serde_json::Value = serde_json::from_slice(&first.body).expect("the body is JSON");
    assert_eq!((body["id"].as_str(), body["status"].as_str()), (Some(id.to_string().as_str()), Some("cancelled")));
    assert_eq!(body["callback"]["url"], receiver.url.as_str());

    let doc = document_when(&app, id, Duration::from_secs(10), |d| d["callback"]["state"] == "delivered").await;
    assert_eq!((doc["callback"]["attempts"].as_i64(), doc["callback"]["last_error"].as_str()), (Some(1), None));
    // A tampered body does not verify.
    let mut forged = first.clone();
    forged.body = br#"{"status":"succeeded"}"#.to_vec();
    assert!(!verify(secret, &forged));
    // Another tenant's secret is another secret.
    let other = app.other_tenant("tenant-b").await;
    let theirs: serde_json::Value =
        app.client_get_with_key("/v1/callbacks/secret", &other).await.json().await.expect("json");
    assert_ne!(theirs["secret"].as_str(), Some(secret));
}

#[actix_web::test]
async fn a_receiver_answering_errors_is_retried_and_the_document_shows_the_last_error() {
    let app = spawn_app().await;
    let receiver = Receiver::start();
    receiver.status.store(500, Ordering::SeqCst);
    let id = submit_and_end(&app, &receiver.url).await;

    let doc = document_when(&app, id, Duration::from_secs(20), |d| d["callback"]["attempts"].as_i64() >= Some(1)).await;
    assert_eq!(doc["callback"]["state"], "pending", "{doc}");
    let error = doc["callback"]["last_error"].as_str().expect("last_error");
    assert!(error.contains("500") && error.contains("receiver says hello"), "{error}");

    receiver.status.store(204, Ordering::SeqCst);
    let doc = document_when(&app, id, Duration::from_secs(30), |d| d["callback"]["state"] == "delivered").await;
    assert!(doc["callback"]["attempts"].as_i64() >= Some(2), "{doc}");
    let got = receiver.received();
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.headers["webhook-id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "every retry carries the same webhook-id, so a receiver can drop duplicates: {ids:?}");
}

#[actix_web::test]
async fn a_receiver_down_for_30_seconds_still_gets_the_callback() {
    let app = spawn_app().await;
    // A port with nobody listening: every attempt is refused until the receiver starts on it.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}/hooks/ackbox?token=t-1");
    let id = submit_and_end(&app, &url).await;
    let doc = document_when(&app, id, Duration::from_secs(20), |d| d["callback"]["attempts"].as_i64() >= Some(1)).await;
    assert_eq!(doc["callback"]["state"], "pending", "{doc}");
    let down_since = Instant::now();

    // Down for 30 s (this is the scenario, not a wait for a condition).
    tokio::time::sleep(Duration::from_secs(30)).await;
    let receiver = Receiver::on(TcpListener::bind(("127.0.0.1", port)).expect("the port is still free"));

    let got = receiver.wait_for(1, Duration::from_secs(90)).await;
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(body["id"], id.to_string());
    let doc = document_when(&app, id, Duration::from_secs(10), |d| d["callback"]["state"] == "delivered").await;
    assert!(doc["callback"]["attempts"].as_i64() > Some(1), "retried while down: {doc}");
    assert!(down_since.elapsed() >= Duration::from_secs(30));
}

#[actix_web::test]
async fn targets_inside_our_network_are_refused_at_submit_naming_the_field_and_nothing_is_written() {
    // The default policy: no loopback, no private addresses.
    let app = spawn_app_with(|c| c.callbacks.policy = Default::default()).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let resp = app.post_job(serde_json::json!({"kind": "echo", "callback_url": url})).await;
        let problem = assert_problem(resp, 422, "/problems/validation").await;
        assert!(problem["detail"].as_str().expect("detail").starts_with("callback_url: "), "{url}: {problem}");
    }
    let batch = serde_json::json!({"jobs": [
        {"kind": "echo", "callback_url": "https://example.com/ok"},
        {"kind": "echo", "callback_url": "http://169.254.169.254/"}
    ]});
    let problem = assert_problem(
        app.post("/v1/jobs/batch").json(&batch).send().await.expect("POST"),
        422,
        "/problems/validation",
    )
    .await;
    assert!(problem["detail"].as_str().expect("detail").contains("jobs[1].callback_url"), "{problem}");
    assert_eq!(app.row_counts().await, (0, 0), "nothing was written");
    // A public target is accepted, and shown as waiting until the job ends.
    let doc: serde_json::Value = app
        .post_job(serde_json::json!({"kind": "echo", "callback_url": "https://example.com/hooks"}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(doc["callback"]["state"], "waiting", "{doc}");
}

#[actix_web::test]
async fn the_callback_url_is_part_of_the_request_an_idempotency_key_stands_for() {
    let app = spawn_app().await;
    let send = |url: &'static str| {
        app.post("/v1/jobs")
            .header("idempotency-key", "cb-1")
            .json(&serde_json::json!({"kind": "echo", "callback_url": url}))
            .send()
    };
    assert_eq!(send("https://example.com/a").await.expect("POST").status().as_u16(), 202);
    assert_eq!(send("https://example.com/a").await.expect("POST").status().as_u16(), 202, "the same request");
    assert_problem(send("https://example.com/b").await.expect("POST"), 422, "/problems/validation").await;
}
