#![doc = include_str!("../README.md")]

//! Test support (feature `testing`): a fresh database per test, cloned from a migrated template, and a fresh topic
//! and consumer group per test, so integration tests run in parallel and never see each other's rows or messages.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ACKBOX_TEST_ADMIN_URL` | [`DEFAULT_ADMIN_URL`] | a database URL with `CREATEDB` rights, used to create and drop test databases |
//! | `KAFKA_BROKERS` | `127.0.0.1:9092` | the broker tests create their topics on |

use std::sync::OnceLock;

use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};

use ackbox_db::db::{build_pool, PgPool};
use ackbox_runtime::kafka::{KafkaConfig, DEFAULT_KAFKA_BROKERS};

pub mod certs;
pub mod plan;
pub mod tls_postgres;

/// Admin URL used when `ACKBOX_TEST_ADMIN_URL` is unset (the machine's trust-auth Postgres).
///
/// Without TLS: the tests talk to Postgres over loopback, and with libpq's default (`sslmode=prefer`, and the local
/// cluster serving TLS) every connection goes through OpenSSL, whose exit-time cleanup can race pool threads still
/// holding connections when a test binary exits ("corrupted size vs. prev_size in fastbins", seen once after all of
/// `ackbox-api`'s tests had passed).
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

const TEMPLATE_LOCK_KEY: i64 = 0x61636b5f746d70;

/// The admin URL for creating and dropping databases.
pub fn admin_url() -> String {
    ackbox_db::config::optional("ACKBOX_TEST_ADMIN_URL").unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string())
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let prefix = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

fn template_name() -> String {
    format!("ackbox_tpl_{}", env!("ACKBOX_MIGRATIONS_HASH"))
}

fn admin_conn() -> PgConnection {
    PgConnection::establish(&admin_url())
        .unwrap_or_else(|e| panic!("test admin database unreachable ({}): {e}", admin_url()))
}

fn exec(conn: &mut PgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Creates the migrated template once per schema version. An advisory lock serialises test processes; the template
/// is built under a temporary name and renamed when complete, so a crashed build never leaves a half-migrated one.
fn ensure_template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = template_name();
        let mut conn = admin_conn();
        exec(&mut conn, &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"));
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let exists: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut conn)
            .expect("query pg_database");
        if exists.n == 0 {
            let building = format!("{name}_building");
            exec(&mut conn, &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"));
            exec(&mut conn, &format!("CREATE DATABASE {building}"));
            ackbox_db::migrate::run_pending(&with_database(&admin_url(), &building)).expect("migrate test template");
            exec(&mut conn, &format!("ALTER DATABASE {building} RENAME TO {name}"));
        }
        exec(&mut conn, &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"));
        name
    })
}

/// A database of its own for one test, dropped (with its connections) when the value goes out of scope.
pub struct TestDb {
    name: String,
    url: String,
    /// The URL it was created through, and is dropped through.
    admin: String,
    /// Set by [`TestDb::expect_drained`]: dropping the database checks that every outbox row was delivered.
    expect_drained: std::sync::atomic::AtomicBool,
}

impl TestDb {
    /// Clones the migrated template into a new uniquely named database.
    pub fn new() -> Self {
        let template = ensure_template();
        let name = format!("ackbox_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin_conn();
        exec(&mut conn, &format!("CREATE DATABASE {name} TEMPLATE {template}"));
        let url = with_database(&admin_url(), &name);
        Self { name, url, admin: admin_url(), expect_drained: Default::default() }
    }

    /// A new database on another cluster (`admin` is a URL with `CREATEDB` rights there, e.g.
    /// [`tls_postgres::TlsPostgres::url`]), migrated from scratch: the template lives on the main cluster only.
    pub fn migrated_on(admin: &str) -> Self {
        let name = format!("ackbox_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(admin).unwrap_or_else(|e| panic!("connect to {admin}: {e}"));
        exec(&mut conn, &format!("CREATE DATABASE {name}"));
        let url = with_database(admin, &name);
        ackbox_db::migrate::run_pending(&url).expect("migrate the test database");
        Self { name, url, admin: admin.to_string(), expect_drained: Default::default() }
    }

    /// The test database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test database's URL, connecting as `role` (e.g. `ackbox_api`, one of the least-privilege roles the
    /// migrations create) instead of the admin user. The local cluster trusts loopback connections.
    pub fn url_as(&self, role: &str) -> String {
        match self.url.split_once("://") {
            Some((scheme, rest)) => {
                let host = rest.split_once('@').map_or(rest, |(_, host)| host);
                format!("{scheme}://{role}@{host}")
            }
            None => self.url.clone(),
        }
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A small pool on the test database (tests run in parallel against one Postgres with ~100 connections).
    pub fn pool(&self, size: u32) -> PgPool {
        build_pool(&ackbox_db::config::DbConfig {
            url: self.url.clone(),
            pool_size: size,
            connect_timeout: std::time::Duration::from_secs(10),
            auto_migrate: false,
        })
    }

    /// A direct connection to the test database.
    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to test database")
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDb {
    /// Promises that the test drains its outbox: when the database is dropped at the end of a test that passed,
    /// an undelivered outbox row fails it (as the crates.io job queue's test harness checks for jobs left behind).
    pub fn expect_drained(&self) {
        self.expect_drained.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Outbox rows not yet delivered.
    pub fn undelivered(&self) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
            .get_result::<N>(&mut self.conn())
            .map(|r| r.n)
            .unwrap_or(-1)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.expect_drained.load(std::sync::atomic::Ordering::SeqCst) && !std::thread::panicking() {
            let left = self.undelivered();
            if left != 0 {
                // Dropped before the database: the panic fails the test, and the database still goes below.
                if let Ok(mut conn) = PgConnection::establish(&self.admin) {
                    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                        .execute(&mut conn);
                }
                panic!(
                    "the test promised a drained outbox (TestDb::expect_drained) but {left} rows were never delivered"
                );
            }
        }
        // FORCE terminates connections a still-running component holds, so a failing test never leaks a database.
        if let Ok(mut conn) = PgConnection::establish(&self.admin) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut conn);
        }
    }
}

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("ackbox-test-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Kafka config for a test: the broker from `KAFKA_BROKERS`, the given topic, no extras.
pub fn kafka_config(topic: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: ackbox_db::config::optional("KAFKA_BROKERS").unwrap_or_else(|| DEFAULT_KAFKA_BROKERS.to_string()),
        topic: topic.to_string(),
        extra: Vec::new(),
    }
}

/// The polling schedule of every wait below: 5 ms at first, doubling up to 100 ms.
fn polling_backoff() -> ackbox_runtime::retry::Backoff {
    ackbox_runtime::retry::Backoff::new(std::time::Duration::from_millis(5), std::time::Duration::from_millis(100))
}

/// Polls `check` (every 5 ms at first, backing off to 100 ms) until it returns `Some`, or `None` once `deadline` has
/// passed. The one polling loop of the test suites; the helpers below are its faces.
pub fn poll<T>(deadline: std::time::Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    let mut pause = polling_backoff();
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(pause.next_delay());
    }
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: std::time::Duration, check: impl FnMut() -> Option<T>) -> T {
    poll(deadline, check).unwrap_or_else(|| panic!("timed out after {deadline:?} waiting for {what}"))
}

/// Polls `check` until it is true; returns whether it became true within `deadline`. For conditions a run may
/// legitimately miss (a drain the checker then reports), and for giving something the chance NOT to happen.
pub fn poll_until(deadline: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    poll(deadline, || check().then_some(())).is_some()
}

/// The async twin of [`wait_for`], for checks that need the test's own runtime (HTTP calls).
pub async fn wait_for_async<T, F, Fut>(what: &str, deadline: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    let mut pause = polling_backoff();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(pause.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_swaps_only_the_database_name() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
        assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
    }
}

/// A message read back by [`consume`].
#[derive(Clone, Debug)]
pub struct Consumed {
    /// Partition it was read from.
    pub partition: i32,
    /// Message key.
    pub key: String,
    /// Message value.
    pub payload: Vec<u8>,
    /// Headers as (name, value) pairs.
    pub headers: Vec<(String, String)>,
}

/// Reads `count` messages from the start of `topic` with a fresh consumer group, or panics after `deadline`.
pub fn consume(cfg: &KafkaConfig, topic: &str, count: usize, deadline: std::time::Duration) -> Vec<Consumed> {
    let consumer = reader(cfg, topic);
    let start = std::time::Instant::now();
    let mut out = Vec::new();
    while out.len() < count {
        assert!(start.elapsed() < deadline, "read {} of {count} messages from {topic} within {deadline:?}", out.len());
        out.extend(next_record(&consumer));
    }
    out
}

/// Creates a fresh topic with `partitions` partitions on the test broker, with its priority lanes (`.high`, `.low`:
/// a worker reads all three), and returns its config.
pub fn fresh_topic(prefix: &str, partitions: i32) -> KafkaConfig {
    let cfg = kafka_config(&unique_topic(prefix));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(ackbox_runtime::kafka::ensure_lanes(&cfg, partitions, 1))
        .unwrap_or_else(|e| panic!("create test topic {} on {}: {e}", cfg.topic, cfg.brokers));
    cfg
}

/// Produces one raw message to the test topic and waits for the broker's acknowledgement.
pub fn produce(cfg: &KafkaConfig, key: &str, payload: &[u8]) {
    produce_with_headers(cfg, key, payload, &[]);
}

/// [`produce`] with record headers.
pub fn produce_with_headers(cfg: &KafkaConfig, key: &str, payload: &[u8], headers: &[(&str, &str)]) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> =
        cfg.client_config().set("acks", "all").create().expect("test producer");
    let headers =
        headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| h.insert(Header { key: k, value: Some(v.as_bytes()) }));
    producer
        .send(BaseRecord::to(&cfg.topic).key(key).payload(payload).headers(headers))
        .map_err(|(e, _)| e)
        .expect("enqueue");
    producer.flush(std::time::Duration::from_secs(30)).expect("flush test message");
}

/// Produces the dispatch envelope for `attempt` of a job, as the relay would.
pub fn dispatch(cfg: &KafkaConfig, job_id: uuid::Uuid, kind: &str, attempt: i32) {
    dispatch_with_headers(cfg, job_id, kind, attempt, &[]);
}

/// [`dispatch`] with record headers (a `traceparent`, say), as the relay copies them from the outbox row.
pub fn dispatch_with_headers(
    cfg: &KafkaConfig,
    job_id: uuid::Uuid,
    kind: &str,
    attempt: i32,
    headers: &[(&str, &str)],
) {
    let env = ackbox_types::envelope::Envelope::new(job_id, kind, attempt);
    let bytes = serde_json::to_vec(&env.to_json()).expect("serialise envelope");
    produce_with_headers(cfg, &job_id.to_string(), &bytes, headers);
}

/// Produces one packed record (`ackbox_types::envelope`, version 2) dispatching attempt 1 of each `(job, kind)`, the
/// way the relay packs a round's rows, each with its trace context if given.
pub fn dispatch_packed(cfg: &KafkaConfig, jobs: &[(uuid::Uuid, &str, Option<ackbox_types::trace::TraceContext>)]) {
    use ackbox_types::envelope::{encode_packed, Envelope};
    let envelopes: Vec<serde_json::Value> =
        jobs.iter().map(|(id, kind, _)| Envelope::new(*id, kind, 1).to_json()).collect();
    let value = encode_packed(envelopes.iter().zip(jobs).map(|(env, (_, _, trace))| (env, trace.clone())));
    produce(cfg, &jobs[0].0.to_string(), &value);
}

/// One dispatch read back by [`consume_dispatches`].
#[derive(Clone, Debug)]
pub struct ConsumedDispatch {
    /// The record it came in.
    pub record: Consumed,
    /// Whether that record was packed (several dispatches).
    pub packed: bool,
    /// The dispatch.
    pub envelope: ackbox_types::envelope::Envelope,
    /// Its trace context: a packed entry's own, else the record's headers'.
    pub trace: Option<ackbox_types::trace::TraceContext>,
}

/// Reads records from the start of `topic` (a fresh consumer group) until they hold `count` dispatches, packed
/// records expanded into theirs (as a worker reads them), or panics after `deadline` or at a record a worker could
/// not decode.
pub fn consume_dispatches(
    cfg: &KafkaConfig,
    topic: &str,
    count: usize,
    deadline: std::time::Duration,
) -> Vec<ConsumedDispatch> {
    use ackbox_types::trace::{TraceContext, TRACEPARENT, TRACESTATE};
    let consumer = reader(cfg, topic);
    let start = std::time::Instant::now();
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            start.elapsed() < deadline,
            "read {} of {count} dispatches from {topic} within {deadline:?}",
            out.len()
        );
        let Some(record) = next_record(&consumer) else { continue };
        let dispatches = ackbox_types::envelope::decode_record(Some(&record.payload))
            .unwrap_or_else(|e| panic!("a record on {topic} a worker cannot read ({e}): {record:?}"));
        let header = |name: &str| record.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let headers = header(TRACEPARENT).and_then(|tp| TraceContext::parse(tp, header(TRACESTATE)));
        let packed = dispatches.len() > 1;
        out.extend(dispatches.into_iter().map(|d| ConsumedDispatch {
            record: record.clone(),
            packed,
            envelope: d.envelope,
            trace: d.trace.or_else(|| headers.clone()),
        }));
    }
    out
}

/// A consumer of `topic` from its start, in a fresh group.
fn reader(cfg: &KafkaConfig, topic: &str) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = cfg
        .client_config()
        .set("group.id", unique_topic("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("test consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// The next record within 100 ms, if any.
fn next_record(consumer: &rdkafka::consumer::BaseConsumer) -> Option<Consumed> {
    use rdkafka::message::{Headers, Message};
    match consumer.poll(std::time::Duration::from_millis(100)) {
        Some(Ok(m)) => Some(Consumed {
            partition: m.partition(),
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        }),
        Some(Err(e)) => {
            log::debug!("test consumer: {e}");
            None
        }
        None => None,
    }
}
