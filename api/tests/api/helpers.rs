use std::net::TcpListener;

use ackbox_api::config::ApiConfig;
use ackbox_db::config::DbConfig;
use ackbox_testing::TestDb;
use diesel::prelude::*;

/// The kinds the built-in worker registers; tests register them as a worker would.
pub const KINDS: &[&str] = &["noop", "echo", "sleep", "fail", "effect"];

/// A running API on a random port with its own database and a tenant with a key.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub topic: String,
    pub key: String,
    /// The ops endpoint (`/metrics`, `/healthz`, `/readyz`), e.g. `http://127.0.0.1:41235`.
    pub ops_address: String,
}

pub fn test_config(db: &TestDb, topic: &str) -> ApiConfig {
    ApiConfig {
        bind: "127.0.0.1:0".into(),
        ops_bind: "127.0.0.1:0".into(),
        http_workers: 2,
        max_body_bytes: 256 * 1024,
        max_batch_body_bytes: 4 * 1024 * 1024,
        topic: topic.to_string(),
        idempotency_ttl: std::time::Duration::from_secs(86_400),
        overdue_after: std::time::Duration::from_secs(300),
        rate_limit_per_sec: 10_000,
        rate_limit_burst: 10_000,
        max_wait: std::time::Duration::from_secs(60),
        request_timeout: std::time::Duration::from_secs(75),
        key_cache_ttl: std::time::Duration::from_secs(60),
        max_waiters: 10_000,
        max_in_flight: 1024,
        max_connections: 16_384,
        submit_committers: 4,
        submit_batch: 256,
        submit_queue: 2048,
        max_batches: 4,
        batch_queue: 64,
        public_url: None,
        // Test receivers listen on loopback.
        callbacks: ackbox_api::config::CallbackConfig {
            policy: ackbox_api::callbacks::target::Policy { allow_loopback: true, allow_private: false },
            ..Default::default()
        },
        db: DbConfig {
            url: db.url().to_string(),
            pool_size: 4,
            connect_timeout: std::time::Duration::from_secs(10),
            auto_migrate: false,
        },
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut ApiConfig)) -> TestApp {
    let db = tokio::task::spawn_blocking(TestDb::new).await.expect("create test database");
    let topic = ackbox_testing::unique_topic("api");
    let url = db.url().to_string();
    let key = tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&url).expect("connect");
        let kinds: Vec<String> = KINDS.iter().map(|k| k.to_string()).collect();
        ackbox_db::models::job_kind::register(&mut conn, &kinds).expect("register kinds");
        let t = ackbox_db::models::tenant::ensure_tenant(&mut conn, "tenant-a").expect("tenant");
        ackbox_db::models::tenant::create_key(&mut conn, t.id).expect("key").1
    })
    .await
    .expect("seed");
    let mut config = test_config(&db, &topic);
    tweak(&mut config);
    let listener = TcpListener::bind(&config.bind).expect("bind port 0");
    let address = format!("http://{}", listener.local_addr().expect("local addr"));
    let pool = ackbox_db::db::build_pool(&config.db);
    let (server, ops) = ackbox_api::run(listener, pool, config).expect("start server");
    actix_web::rt::spawn(server);
    TestApp { address, client: reqwest::Client::new(), db, topic, key, ops_address: format!("http://{ops}") }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// `path` on the ops endpoint (`/metrics`).
    pub fn ops_url(&self, path: &str) -> String {
        format!("{}{}", self.ops_address, path)
    }

    /// An authenticated GET.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&self.key)
    }

    /// A GET with another tenant's `key`.
    pub async fn client_get_with_key(&self, path: &str, key: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(key).send().await.expect("GET")
    }

    /// An authenticated POST.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(&self.key)
    }

    pub async fn post_job(&self, body: serde_json::Value) -> reqwest::Response {
        self.post("/v1/jobs").json(&body).send().await.expect("POST /v1/jobs")
    }

    /// Submits a job and returns its id (asserting the 202).
    pub async fn submit(&self, body: serde_json::Value) -> uuid::Uuid {
        let resp = self.post_job(body).await;
        assert_eq!(resp.status().as_u16(), 202);
        let doc: serde_json::Value = resp.json().await.expect("json");
        doc["id"].as_str().expect("id").parse().expect("uuid")
    }

    /// A second tenant with its own key, in the same database.
    pub async fn other_tenant(&self, name: &str) -> String {
        let url = self.db.url().to_string();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(&url).expect("connect");
            let t = ackbox_db::models::tenant::ensure_tenant(&mut conn, &name).expect("tenant");
            ackbox_db::models::tenant::create_key(&mut conn, t.id).expect("key").1
        })
        .await
        .expect("seed")
    }

    /// Runs `f` on a fresh connection to the test database, off the async runtime.
    pub async fn with_db<T: Send + 'static>(&self, f: impl FnOnce(&mut PgConnection) -> T + Send + 'static) -> T {
        let url = self.db.url().to_string();
        tokio::task::spawn_blocking(move || f(&mut PgConnection::establish(&url).expect("connect")))
            .await
            .expect("db task")
    }

    /// (jobs, outbox) row counts, to prove that rejected requests wrote nothing.
    pub async fn row_counts(&self) -> (i64, i64) {
        self.with_db(|conn| {
            use ackbox_db::schema::{jobs, outbox};
            let j: i64 = jobs::table.count().get_result(conn).expect("count jobs");
            let o: i64 = outbox::table.count().get_result(conn).expect("count outbox");
            (j, o)
        })
        .await
    }
}

/// Asserts an RFC 9457 problem response with the given status and type.
pub async fn assert_problem(resp: reqwest::Response, status: u16, type_: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp.headers().get("content-type").expect("content-type").to_str().expect("ascii").to_string();
    assert_eq!(ct, "application/problem+json");
    let body: serde_json::Value = resp.json().await.expect("problem body is JSON");
    assert_eq!(body["type"], type_);
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string(), "title and detail: {body}");
    body
}
