//! State shared by the receive loop, the job tasks, the heartbeat and the completer.

use std::collections::HashMap;
use std::sync::Mutex;

use ackbox_db::db::PgPool;
use ackbox_db::state::ClaimedJob;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::handler::{Effect, HandlerError, Registry};
use crate::membership::Kafka;
use crate::metrics::WorkerMetrics;
use crate::offsets::OffsetTracker;

/// A finished attempt on its way to the completer. The permit travels with it, so the in-flight bound covers jobs
/// whose status is not yet written.
pub(crate) struct Outcome {
    pub(crate) job: ClaimedJob,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) result: Result<serde_json::Value, HandlerError>,
    pub(crate) effects: Vec<Effect>,
    pub(crate) _permit: OwnedSemaphorePermit,
    /// The attempt's span: it ends when the outcome is recorded (or given up on) and this is dropped.
    pub(crate) _span: ackbox_runtime::telemetry::Span,
}

/// An attempt this process runs.
pub(crate) struct Running {
    pub(crate) cancel: CancellationToken,
    /// The handler returned and its outcome is on its way to the completer: the heartbeat leaves the row alone (the
    /// completer holds its lock next), and a batch Postgres keeps refusing is released by letting the lease lapse.
    pub(crate) finishing: bool,
}

impl Running {
    /// Tells the handler of attempt `key` to stop because a cancel was requested (once, however many times the
    /// request is heard: by `LISTEN` and by the heartbeat). The database decides the outcome: a job whose cancel was
    /// accepted ends `cancelled` whatever the attempt reports.
    pub(crate) fn request_cancel(&self, (id, attempt): AttemptKey) {
        if !self.cancel.is_cancelled() {
            log::info!(job_id:% = id, attempt; "job {id} attempt {attempt}: cancel requested; stopping it");
            self.cancel.cancel();
        }
    }
}

/// An attempt: the job and its attempt number. Two attempts of one job can run in one process (a stalled attempt
/// and the one that replaced it), so everything is keyed by both.
pub(crate) type AttemptKey = (Uuid, i32);

/// State shared by the loop, the job tasks, the heartbeat and the completer.
pub(crate) struct Shared {
    pub(crate) config: WorkerConfig,
    pub(crate) pool: PgPool,
    pub(crate) registry: Registry,
    /// The registry's kinds, sorted: what this worker claims and registers (the registry never changes once running).
    pub(crate) kinds: Vec<String>,
    pub(crate) consumer: Kafka,
    pub(crate) metrics: WorkerMetrics,
    pub(crate) tracker: Mutex<OffsetTracker>,
    /// Attempts this process runs. The heartbeat extends their leases and relays cancel requests to them.
    pub(crate) running: Mutex<HashMap<AttemptKey, Running>>,
    /// Wakes the heartbeat early (the cancel listener reconnected and may have missed requests).
    pub(crate) beat_now: tokio::sync::Notify,
}

impl Shared {
    /// The running-attempts map (a panicked holder cannot leave it inconsistent: every change is one insert or remove).
    pub(crate) fn running(&self) -> std::sync::MutexGuard<'_, HashMap<AttemptKey, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks messages done and stores whatever offsets that made storable, in one call.
    pub(crate) fn finish(&self, done: impl IntoIterator<Item = (i32, i64)>) {
        let mut tpl = TopicPartitionList::new();
        {
            let mut tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
            for (partition, offset) in done {
                if let Some(next) = tracker.finish(partition, offset) {
                    // A later finish of the same partition overwrites the earlier entry with a higher offset.
                    let _ = tpl.add_partition_offset(&self.config.kafka.topic, partition, Offset::Offset(next));
                }
            }
        }
        if tpl.count() > 0 {
            // Fails only for partitions no longer assigned to us; their new owner redelivers, which fencing absorbs.
            if let Err(e) = self.consumer.store_offsets(&tpl) {
                log::debug!("storing offsets skipped: {e}");
            }
        }
    }
}
