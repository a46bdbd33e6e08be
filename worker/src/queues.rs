//! Per-queue caps (`ACKBOX_QUEUE_CONCURRENCY`): at most n jobs of a queue run at once in this process. A message
//! of a queue at its cap is *parked* before its claim (its job stays `queued`, so the cap is never exceeded and
//! never shows as `running`), keeping its slot of `ACKBOX_WORKER_CONCURRENCY` and its offset unstored, and is taken
//! up again as soon as one of the queue's jobs ends. Parked messages are bounded by the slots they hold; a queue that
//! backs up therefore holds back this worker's other queues once it holds every slot, so give such a queue's kinds a
//! topic of their own (`ACKBOX_KIND_TOPICS`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::consumer::Delivered;

/// A message of a capped queue waiting for room, with its in-flight slot.
pub(crate) struct Parked {
    pub(crate) delivered: Delivered,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// A place in a capped queue, held by a running job: dropping it frees the place and wakes the parked messages.
pub(crate) struct QueueSlot {
    _permit: OwnedSemaphorePermit,
    wake: Arc<Notify>,
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        // A stored permit if nobody waits yet: the wake-up is never lost.
        self.wake.notify_one();
    }
}

/// The caps, and the messages waiting for room.
pub(crate) struct QueueCaps {
    caps: HashMap<String, Arc<Semaphore>>,
    parked: Mutex<VecDeque<Parked>>,
    /// Signalled whenever a place frees up.
    pub(crate) wake: Arc<Notify>,
}

/// A message's queue is at its cap.
pub(crate) struct AtCap;

impl QueueCaps {
    /// Caps from `queue → n`.
    pub(crate) fn new(caps: &std::collections::BTreeMap<String, usize>) -> Self {
        Self {
            caps: caps.iter().map(|(q, n)| (q.clone(), Arc::new(Semaphore::new(*n)))).collect(),
            parked: Mutex::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// A place for a job of `queue`: `Ok(None)` when the queue has no cap.
    pub(crate) fn try_take(&self, queue: &str) -> Result<Option<QueueSlot>, AtCap> {
        let Some(sem) = self.caps.get(queue) else { return Ok(None) };
        match sem.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(QueueSlot { _permit: permit, wake: self.wake.clone() })),
            Err(_) => Err(AtCap),
        }
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, VecDeque<Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a message until its queue has room.
    pub(crate) fn park(&self, p: Parked) {
        self.parked().push_back(p);
    }

    /// The parked messages whose queue has room now, in the order they arrived, each with its place.
    pub(crate) fn unpark(&self) -> Vec<(Parked, QueueSlot)> {
        let mut parked = self.parked();
        let mut ready = Vec::new();
        let mut still = VecDeque::with_capacity(parked.len());
        for p in parked.drain(..) {
            let queue = p.delivered.envelope.as_ref().map_or("default", |e| e.queue());
            match self.try_take(queue) {
                Ok(Some(slot)) => ready.push((p, slot)),
                // The cap went away (cannot happen while running) or the queue is full: keep waiting.
                Ok(None) | Err(AtCap) => still.push_back(p),
            }
        }
        *parked = still;
        ready
    }

    /// Drops every parked message (shutdown: their offsets were never stored, so Kafka delivers them again).
    pub(crate) fn clear(&self) -> usize {
        let mut parked = self.parked();
        let n = parked.len();
        parked.clear();
        n
    }
}
