//! librdkafka callbacks of the worker's consumer: consumer lag from statistics, a synchronous commit before
//! partitions are revoked, and the count of partitions held (a leaving static member waits for it to reach 0).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

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
}

impl ClientContext for WorkerContext {
    fn stats(&self, statistics: Statistics) {
        let mut seen = Vec::new();
        for (name, topic) in &statistics.topics {
            for (partition, p) in &topic.partitions {
                // librdkafka reports the internal UA partition as -1 and unknown lag as -1.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics.consumer_lag.with_label_values(&[&partition.to_string()]).set(p.consumer_lag);
                    seen.push((name.clone(), *partition, p.consumer_lag));
                }
            }
        }
        // This runs on librdkafka's thread: hand the numbers over and let the reporter write them.
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
    }
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
        }
    }
}
