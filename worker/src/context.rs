//! librdkafka callbacks of the worker's consumer: consumer lag and log ends from statistics, a synchronous commit before
//! partitions are revoked, and the count of partitions held (a leaving static member waits for it to reach 0).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

use crate::ends::LaneEnds;
use crate::metrics::WorkerMetrics;

/// The latest per-partition lag `(topic, partition, lag)` from librdkafka's statistics, until the reporter takes it.
pub(crate) type LatestLag = Arc<Mutex<Option<Vec<(String, i32, i64)>>>>;

/// librdkafka callbacks: consumer lag from statistics, and a synchronous commit before partitions are revoked.
pub struct WorkerContext {
    pub(crate) metrics: WorkerMetrics,
    /// Partitions held now (a leaving static member waits for its revocation).
    pub(crate) held: Arc<AtomicUsize>,
    /// The latest per-partition lag `(topic, partition, lag)`, taken by the lag reporter.
    pub(crate) lag: LatestLag,
    /// Set at the first assignment (possibly empty): the consumer has joined its group.
    pub(crate) joined: Arc<AtomicBool>,
    /// Where the lane's partitions end, from the statistics (see `ends.rs`).
    pub(crate) ends: Arc<Mutex<LaneEnds>>,
}

impl ClientContext for WorkerContext {
    fn stats(&self, statistics: Statistics) {
        let mut seen = Vec::new();
        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        for (name, topic) in &statistics.topics {
            for (partition, p) in &topic.partitions {
                if *partition >= 0 {
                    let assigned = !matches!(p.fetch_state.as_str(), "none" | "stopping" | "stopped");
                    // Under read_committed (librdkafka's default) the last stable offset is where reading ends.
                    let end = if p.ls_offset >= 0 { p.ls_offset } else { p.hi_offset };
                    ends.observe(*partition, assigned, end, p.app_offset.max(p.committed_offset));
                }
                // librdkafka reports the internal UA partition as -1.
                if let Some(lag) = partition_lag(p.consumer_lag, p.consumer_lag_stored).filter(|_| *partition >= 0) {
                    self.metrics.consumer_lag.with_label_values(&[name, &partition.to_string()]).set(lag);
                    seen.push((name.clone(), *partition, lag));
                }
            }
        }
        drop(ends);
        // This runs on librdkafka's thread: hand the numbers over and let the reporter write them.
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
    }
}

/// A partition's lag from librdkafka's statistics: behind the committed offset or, while librdkafka does not know
/// that one (it reports -1 until a commit of its own has completed, which on a quiet partition or a slow broker can
/// take a long while), behind the offset the worker stored. Offsets are stored only after the Postgres commit and
/// committed from them, so both count the messages not yet done. `None` when neither is known.
pub(crate) fn partition_lag(committed: i64, stored: i64) -> Option<i64> {
    [committed, stored].into_iter().find(|lag| *lag >= 0)
}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Hand over with everything stored so far committed, so the next owner redelivers as little as possible.
            // Jobs still running for these partitions finish and record their status normally (or their leases lapse
            // and the rescuer retries them); their late offsets are simply not stored.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(())
                | Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => log::warn!("commit before revoking {} partitions failed: {e}", partitions.count()),
            }
            log::info!("partitions revoked: {}", partitions.count());
            self.metrics.rebalances.with_label_values(&["revoke"]).inc();
            self.held.store(0, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            log::info!("partitions assigned: {}", partitions.count());
            self.metrics.rebalances.with_label_values(&["assign"]).inc();
            self.held.store(partitions.count(), Ordering::SeqCst);
            self.joined.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::partition_lag;

    #[test]
    fn the_lag_falls_back_to_the_stored_offset_until_a_commit_is_known() {
        assert_eq!(partition_lag(4, 2), Some(4), "the committed lag when librdkafka knows it");
        assert_eq!(partition_lag(-1, 3), Some(3), "before the first commit completes: the stored offset's lag");
        assert_eq!(partition_lag(0, -1), Some(0));
        assert_eq!(partition_lag(-1, -1), None, "neither known: no report");
    }
}
