use std::time::Duration;

use ackbox_db::config::DbConfig;
use ackbox_db::models::NewJob;
use ackbox_relay::config::RelayConfig;
use ackbox_relay::Relay;
use ackbox_runtime::kafka::KafkaConfig;
use ackbox_testing::TestDb;
use uuid::Uuid;

pub fn relay_config(db: &TestDb, kafka: &KafkaConfig) -> RelayConfig {
    RelayConfig {
        db: DbConfig {
            url: db.url().to_string(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(10),
            auto_migrate: false,
        },
        kafka: kafka.clone(),
        batch: 500,
        record_jobs: ackbox_relay::config::DEFAULT_RECORD_JOBS,
        concurrency: 2,
        // The production settings: an idempotent producer with librdkafka's maximum in flight.
        max_in_flight: 5,
        idempotence: true,
        poll_interval: Duration::from_secs(1),
        linger: Duration::from_millis(0),
        delivery_timeout: Duration::from_secs(10),
        partitions: 2,
        replication: 1,
        rescue_interval: Duration::from_millis(200),
        dispatch_timeout: Duration::from_secs(300),
        rescue_batch: 1000,
        retention: Duration::from_secs(3600),
        retention_batch: 5000,
        job_retention: Some(Duration::from_secs(7 * 86_400)),
        tombstone_retention: Duration::from_secs(30 * 86_400),
        stats_interval: Duration::from_millis(200),
        vacuum: true,
        vacuum_dead_tuples: 10_000,
        ops_bind: "127.0.0.1:0".into(),
        kind_topics: Default::default(),
    }
}

pub fn relay(db: &TestDb, config: RelayConfig) -> Relay {
    Relay::new(db.pool(2), config, ackbox_relay::metrics::RelayMetrics::new()).expect("relay")
}

/// Submits `n` jobs the way the API does and returns their ids.
pub fn submit(db: &TestDb, topic: &str, n: usize) -> Vec<Uuid> {
    let mut conn = db.conn();
    (0..n)
        .map(|i| {
            ackbox_db::state::submit(&mut conn, &NewJob::new("noop", serde_json::json!({ "i": i }), 3), topic)
                .expect("submit")
                .id
        })
        .collect()
}

pub const DEADLINE: Duration = Duration::from_secs(30);

/// The partial indexes of unpublished outbox rows; the claim may be served by any of them (with a handful of rows
/// waiting the planner picks by statistics, and a sort of 5 rows costs nothing).
pub const UNPUBLISHED_INDEXES: [&str; 3] =
    ["outbox_unpublished_priority_idx", "outbox_unpublished_idx", "outbox_due_idx"];

/// The relay's claim statement (`ackbox_db::outbox::claim_statement`, what `claim_batch` runs), rendered by diesel,
/// with its limit (500) inlined.
pub fn claim_sql() -> String {
    let claim = diesel::debug_query::<diesel::pg::Pg, _>(&ackbox_db::outbox::claim_statement(500)).to_string();
    claim.split(" -- binds").next().expect("sql").replace("$1", "500")
}
