use std::net::TcpListener;

use ackbox_api::config::ApiConfig;
use ackbox_shared::config::DbConfig;
use ackbox_shared::testing::TestDb;
use diesel::prelude::*;

/// A running API on a random port with its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub topic: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut ApiConfig)) -> TestApp {
    let db = tokio::task::spawn_blocking(TestDb::new).await.expect("create test database");
    let topic = ackbox_shared::testing::unique_topic("api");
    let mut config = ApiConfig {
        bind: "127.0.0.1:0".into(),
        http_workers: 2,
        max_body_bytes: 256 * 1024,
        retry_after_secs: 1,
        topic: topic.clone(),
        db: DbConfig {
            url: db.url().to_string(),
            pool_size: 4,
            connect_timeout: std::time::Duration::from_secs(10),
            auto_migrate: false,
        },
    };
    tweak(&mut config);
    let listener = TcpListener::bind(&config.bind).expect("bind port 0");
    let address = format!("http://{}", listener.local_addr().expect("local addr"));
    let pool = ackbox_shared::db::build_pool(&config.db);
    let server = ackbox_api::run(listener, pool, config).expect("start server");
    actix_web::rt::spawn(server);
    TestApp { address, client: reqwest::Client::new(), db, topic }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_job(&self, body: serde_json::Value) -> reqwest::Response {
        self.client.post(self.url("/v1/jobs")).json(&body).send().await.expect("POST /v1/jobs")
    }

    /// (jobs, outbox) row counts, to prove that rejected requests wrote nothing.
    pub async fn row_counts(&self) -> (i64, i64) {
        let url = self.db.url().to_string();
        tokio::task::spawn_blocking(move || {
            use ackbox_shared::schema::{jobs, outbox};
            let mut conn = PgConnection::establish(&url).expect("connect");
            let j: i64 = jobs::table.count().get_result(&mut conn).expect("count jobs");
            let o: i64 = outbox::table.count().get_result(&mut conn).expect("count outbox");
            (j, o)
        })
        .await
        .expect("count task")
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
