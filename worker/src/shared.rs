//! State shared by the receive loop, the job tasks, the heartbeat and the completer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    /// A cancel was requested for this attempt (seen by the heartbeat); a failure then ends the job `cancelled`.
    pub(crate) cancel_requested: bool,
    pub(crate) _permit: OwnedSemaphorePermit,
}

/// An attempt this process runs.
pub(crate) struct Running {
    pub(crate) attempt: i32,
    pub(crate) cancel: CancellationToken,
    pub(crate) cancel_requested: Arc<std::sync::atomic::AtomicBool>,
}

/// State shared by the loop, the job tasks, the heartbeat and the completer.
pub(crate) struct Shared {
    pub(crate) config: WorkerConfig,
    pub(crate) pool: PgPool,
    pub(crate) registry: Registry,
    pub(crate) consumer: Kafka,
    pub(crate) metrics: WorkerMetrics,
    pub(crate) tracker: Mutex<OffsetTracker>,
    /// Attempts this process runs. The heartbeat extends their leases and relays cancel requests to them.
    pub(crate) running: Mutex<HashMap<Uuid, Running>>,
}

impl Shared {
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
