//! State shared by the receive loop, the job tasks, the heartbeat and the completer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use ackbox_db::db::PgPool;
use ackbox_db::state::ClaimedJob;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::context::LatestLag;
use crate::handler::{Effect, HandlerError, Registry};
use crate::membership::Kafka;
use crate::metrics::WorkerMetrics;
use crate::offsets::OffsetTracker;

/// A finished attempt on its way to the completer. The permit travels with it, so the in-flight bound covers jobs
/// whose status is not yet written.
pub(crate) struct Outcome {
    pub(crate) job: ClaimedJob,
    pub(crate) at: Position,
    pub(crate) result: Result<serde_json::Value, HandlerError>,
    pub(crate) effects: Vec<Effect>,
    pub(crate) _permit: OwnedSemaphorePermit,
    /// The job's place in its capped queue, if it has a cap: freed (waking a parked message) with the permit.
    pub(crate) _queue_slot: Option<crate::queues::QueueSlot>,
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

/// Where a message was read: its lane (an index into [`Shared::lanes`]), partition and offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) lane: usize,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

/// One priority lane: the topic its level's dispatches travel on (`ackbox_types::priority`), read by a consumer of
/// its own in a group of its own, with its own in-flight offsets.
pub(crate) struct Lane {
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) consumer: Kafka,
    pub(crate) tracker: Mutex<OffsetTracker>,
    /// Partitions this lane's consumer holds now (a leaving static member waits for its revocation).
    pub(crate) held: Arc<AtomicUsize>,
    /// Whether the consumer has had its first assignment (possibly empty): until every lane has, the loop takes no
    /// message, so a lower lane cannot start work while a higher one is still joining.
    pub(crate) joined: Arc<AtomicBool>,
    /// The latest per-partition lag from this consumer's statistics, until the lag reporter takes it.
    pub(crate) lag: LatestLag,
    /// Where this lane's partitions end and how far the worker has read them (see `ends.rs`).
    pub(crate) ends: Arc<Mutex<crate::ends::LaneEnds>>,
}

impl Lane {
    /// Whether the lane is known to hold messages the worker has not been delivered yet (no broker request).
    pub(crate) fn behind(&self) -> bool {
        self.ends.lock().unwrap_or_else(|p| p.into_inner()).behind()
    }

    /// Counts everything known to wait in this lane as read (see `ends.rs`).
    pub(crate) fn give_up_waiting(&self) {
        self.ends.lock().unwrap_or_else(|p| p.into_inner()).give_up();
    }

    /// Records that the loop was delivered the message at `offset` of `partition`.
    pub(crate) fn read(&self, partition: i32, offset: i64) {
        self.ends.lock().unwrap_or_else(|p| p.into_inner()).read(partition, offset);
    }
}

/// State shared by the loop, the job tasks, the heartbeat and the completer.
pub(crate) struct Shared {
    pub(crate) config: WorkerConfig,
    pub(crate) pool: PgPool,
    pub(crate) registry: Registry,
    /// The registry's kinds, sorted: what this worker claims and registers (the registry never changes once running).
    pub(crate) kinds: Vec<String>,
    /// The priority lanes, highest first: the loop always takes from the highest lane that has a message.
    pub(crate) lanes: Vec<Lane>,
    pub(crate) metrics: WorkerMetrics,
    /// Per-queue caps, and the messages they hold back.
    pub(crate) queues: crate::queues::QueueCaps,
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

    /// Records a message as received and not done, with the dispatches it carries (several for a packed record):
    /// its offset is stored only once each of them is [`finish`](Self::finish)ed.
    pub(crate) fn begin(&self, at: Position, parts: usize) {
        if let Some(lane) = self.lanes.get(at.lane) {
            lane.tracker.lock().unwrap_or_else(|e| e.into_inner()).begin(at.partition, at.offset, parts);
        }
    }

    /// Marks dispatches done (one position per dispatch) and stores whatever offsets that made storable, one call per
    /// lane.
    pub(crate) fn finish(&self, done: impl IntoIterator<Item = Position>) {
        // The highest storable offset of each lane's partitions. A list must name a partition once: adding one again
        // appends an entry, librdkafka's set-offset then updates the first, and the second is stored as it was,
        // INVALID, which leaves the partition with nothing to commit (every finished message redelivered after a
        // restart: `tests/worker/delivery.rs`).
        let mut next: BTreeMap<(usize, i32), i64> = BTreeMap::new();
        for p in done {
            let Some(lane) = self.lanes.get(p.lane) else { continue };
            if let Some(n) = lane.tracker.lock().unwrap_or_else(|e| e.into_inner()).finish(p.partition, p.offset) {
                next.entry((p.lane, p.partition)).and_modify(|o| *o = (*o).max(n)).or_insert(n);
            }
        }
        for (i, lane) in self.lanes.iter().enumerate() {
            let mut tpl = TopicPartitionList::new();
            for (&(_, partition), &offset) in next.range((i, i32::MIN)..=(i, i32::MAX)) {
                let _ = tpl.add_partition_offset(&lane.topic, partition, Offset::Offset(offset));
            }
            if tpl.count() == 0 {
                continue;
            }
            // Fails only for partitions no longer assigned to us (librdkafka reports a whole failure only when no
            // partition could be stored); their new owner redelivers, which fencing absorbs.
            if let Err(e) = lane.consumer.store_offsets(&tpl) {
                log::debug!("storing offsets of {} skipped: {e}", lane.topic);
            }
            for e in tpl.elements().iter().filter(|e| e.error().is_err()) {
                log::debug!(
                    "storing offset {:?} of {} [{}] skipped: {:?}",
                    e.offset(),
                    lane.topic,
                    e.partition(),
                    e.error()
                );
            }
        }
    }

    /// Every lane has had its first assignment.
    pub(crate) fn joined(&self) -> bool {
        self.lanes.iter().all(|l| l.joined.load(std::sync::atomic::Ordering::SeqCst))
    }
}
