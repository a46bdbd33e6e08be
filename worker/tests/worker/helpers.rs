use std::time::Duration;

use ackbox_db::config::DbConfig;
use ackbox_db::models::{Job, JobStatus, NewJob};
use ackbox_runtime::kafka::KafkaConfig;
use ackbox_testing::{fresh_topic, unique_topic, wait_for, TestDb};
use ackbox_worker::config::WorkerConfig;
use ackbox_worker::Registry;
use uuid::Uuid;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// A worker running in the background on its own runtime, with its own database, topic and group.
pub struct TestWorker {
    pub db: TestDb,
    pub kafka: KafkaConfig,
    pub config: WorkerConfig,
    pub metrics: ackbox_worker::metrics::WorkerMetrics,
    pub rt: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<Result<(), ackbox_worker::consumer::WorkerError>>>,
}

pub fn start(registry: Registry) -> TestWorker {
    let (config, db, kafka) = start_config();
    start_with(registry, config, db, kafka)
}

pub fn start_with_config(registry: Registry, tweak: impl FnOnce(&mut WorkerConfig)) -> TestWorker {
    let mut w = start_config();
    tweak(&mut w.0);
    start_with(registry, w.0, w.1, w.2)
}

/// A worker's configuration, database and topic, for a test that prepares them before the worker starts
/// ([`start_prepared`]).
pub fn prepare(tweak: impl FnOnce(&mut WorkerConfig)) -> (WorkerConfig, TestDb, KafkaConfig) {
    let mut w = start_config();
    tweak(&mut w.0);
    w
}

/// Starts the worker of [`prepare`].
pub fn start_prepared(registry: Registry, (config, db, kafka): (WorkerConfig, TestDb, KafkaConfig)) -> TestWorker {
    start_with(registry, config, db, kafka)
}

fn start_config() -> (WorkerConfig, TestDb, KafkaConfig) {
    let db = TestDb::new();
    let kafka = fresh_topic("worker", 1);
    let config = WorkerConfig {
        db: DbConfig {
            url: db.url().to_string(),
            pool_size: 3,
            connect_timeout: Duration::from_secs(10),
            auto_migrate: false,
        },
        kafka: kafka.clone(),
        group: unique_topic("group"),
        concurrency: 8,
        batch: 8,
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_millis(100),
        job_timeout: Duration::from_secs(10),
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        fetch_wait: Duration::from_millis(10),
        max_consumers: None,
        session_timeout: Duration::from_secs(10),
        instance_id: None,
        shutdown_grace: Duration::from_secs(10),
        stats_interval: Duration::from_millis(200),
        ops_bind: "127.0.0.1:0".into(),
        max_result_bytes: ackbox_worker::config::DEFAULT_MAX_RESULT_BYTES,
        outcome_write_tries: ackbox_worker::config::DEFAULT_OUTCOME_WRITE_TRIES,
        kind_queues: Default::default(),
        queue_concurrency: Default::default(),
    };
    (config, db, kafka)
}

fn start_with(registry: Registry, config: WorkerConfig, db: TestDb, kafka: KafkaConfig) -> TestWorker {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let pool = db.pool(3);
    let metrics = ackbox_worker::metrics::WorkerMetrics::new();
    let task = rt.spawn(ackbox_worker::consumer::run(config.clone(), pool, registry, metrics.clone(), stop_rx));
    TestWorker { db, kafka, config, metrics, rt, stop, task: Some(task) }
}

impl TestWorker {
    /// Inserts a queued job (with its outbox row, which these tests leave unpublished) and returns its id.
    pub fn submit(&self, kind: &str, payload: serde_json::Value, max_attempts: i32) -> Uuid {
        ackbox_db::state::submit(&mut self.db.conn(), &NewJob::new(kind, payload, max_attempts), &self.kafka.topic)
            .expect("submit")
            .id
    }

    pub fn job(&self, id: Uuid) -> Job {
        Job::find(&mut self.db.conn(), id).expect("query").expect("job exists")
    }

    pub fn wait_terminal(&self, id: Uuid) -> Job {
        wait_for(&format!("job {id} to finish"), DEADLINE, || {
            let job = self.job(id);
            job.status.is_terminal().then_some(job)
        })
    }

    /// Rows in `job_effects` for a job: the number of executions that took effect.
    pub fn effects(&self, id: Uuid) -> i64 {
        use ackbox_db::schema::job_effects;
        use diesel::prelude::*;
        job_effects::table
            .filter(job_effects::job_id.eq(id))
            .count()
            .get_result(&mut self.db.conn())
            .expect("count effects")
    }

    /// The rescuer takes the job back as if its worker had stalled: its lease forced into the past and a rescuer
    /// pass, in one transaction (the worker's heartbeat would otherwise extend the lease again in between).
    pub fn expire_and_rescue(&self, id: Uuid) -> ackbox_db::state::RescueReport {
        diesel::Connection::transaction(&mut self.db.conn(), |c| {
            diesel::RunQueryDsl::execute(
                diesel::sql_query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
                    .bind::<diesel::sql_types::Uuid, _>(id),
                c,
            )?;
            ackbox_db::state::rescue(c, Duration::from_secs(300), 10, &self.kafka.topic)
        })
        .expect("expire and rescue")
        .expect("lock")
    }

    pub fn wait_status(&self, id: Uuid, status: JobStatus) -> Job {
        wait_for(&format!("job {id} to be {status}"), DEADLINE, || {
            let job = self.job(id);
            (job.status == status).then_some(job)
        })
    }

    /// Stops the worker gracefully (final synchronous commit) and returns the group's committed offset of partition 0.
    pub fn stop_and_committed_offset(self) -> i64 {
        match self.stop_and_committed() {
            Some(o) => o,
            None => panic!("no committed offset"),
        }
    }

    /// [`Self::stop_and_committed_offset`], `None` when the group never committed one.
    pub fn stop_and_committed(mut self) -> Option<i64> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        self.stop.send(true).expect("stop");
        if let Some(task) = self.task.take() {
            self.rt.block_on(task).expect("join").expect("worker ran without error");
        }
        let probe: BaseConsumer =
            self.kafka.client_config().set("group.id", &self.config.group).create().expect("probe consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(&self.kafka.topic, 0);
        let committed = probe.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
        match committed.find_partition(&self.kafka.topic, 0).map(|p| p.offset()) {
            Some(rdkafka::Offset::Offset(o)) => Some(o),
            _ => None,
        }
    }
}
