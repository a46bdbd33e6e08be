//! The worker's Kafka consumer: how it joins its group (dynamic, or static with `ACKBOX_WORKER_INSTANCE_ID`), with
//! manual offset store and automatic commit of stored offsets, and how it leaves on purpose.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};

use crate::config::WorkerConfig;
use crate::consumer::WorkerError;
use ackbox_types::priority::Priority;

use crate::context::{LatestLag, WorkerContext};
use crate::metrics::WorkerMetrics;
use crate::shared::{Lane, Shared};

/// The worker's consumer.
pub(crate) type Kafka = StreamConsumer<WorkerContext>;

/// How often a lane above the lowest reports its statistics at most: how stale the loop's idea of where that lane's
/// log ends may be (on top of the fetch that carried it). Costs librdkafka a small JSON document per report.
const HIGHER_LANE_STATS_INTERVAL: Duration = Duration::from_millis(100);

/// Builds one lane per priority level, highest first (see `ackbox_types::priority`): each a consumer of the level's
/// topic in the level's group (`normal` keeps `ACKBOX_TOPIC` and `ACKBOX_WORKER_GROUP` themselves).
pub(crate) fn build_lanes(config: &WorkerConfig, metrics: &WorkerMetrics) -> Result<Vec<Lane>, WorkerError> {
    Priority::HIGHEST_FIRST
        .iter()
        .map(|&priority| {
            let topic = priority.lane_topic(&config.kafka.topic);
            let group = priority.lane_group(&config.group);
            // A static member's name is unique per group, so every lane can reuse it as it is.
            let context = WorkerContext {
                metrics: metrics.clone(),
                lag: LatestLag::default(),
                held: Arc::new(AtomicUsize::new(0)),
                joined: Arc::new(AtomicBool::new(false)),
                ends: Default::default(),
            };
            let (lag, held, joined, ends) =
                (context.lag.clone(), context.held.clone(), context.joined.clone(), context.ends.clone());
            // A higher lane's statistics tell the receive loop whether that lane has more on its way
            // (`consumer::catch_up`), so they come often; the lowest lane's are only for the lag.
            let stats = match priority == *Priority::HIGHEST_FIRST.last().expect("three levels") {
                true => config.stats_interval,
                false => config.stats_interval.min(HIGHER_LANE_STATS_INTERVAL),
            };
            let consumer = build_consumer(config, &topic, &group, stats, context)?;
            Ok(Lane { topic, group, consumer, tracker: Default::default(), held, joined, lag, ends })
        })
        .collect()
}

/// Builds a lane's consumer: a group member with manual offset *store* and automatic *commit* of stored offsets.
fn build_consumer(
    config: &WorkerConfig,
    topic: &str,
    group: &str,
    stats_interval: Duration,
    context: WorkerContext,
) -> Result<Kafka, WorkerError> {
    let mut client = config.kafka.client_config();
    // A member that does not poll for max.poll.interval.ms is put out of its group. The receive loop polls even
    // while every slot is busy, but never let the limit sit below the job timeout (ACKBOX_KAFKA_OPTS may set it).
    if !config.kafka.extra.iter().any(|(k, _)| k == "max.poll.interval.ms") {
        let at_least = (config.job_timeout + Duration::from_secs(60)).max(Duration::from_secs(300));
        client.set("max.poll.interval.ms", at_least.as_millis().to_string());
    }
    if let Some(instance) = &config.instance_id {
        // Static membership: a restart under the same name takes the partitions back without a rebalance, instead
        // of leaving them unconsumed until the session of the killed process runs out.
        client.set("group.instance.id", instance);
    }
    let consumer: Kafka = client
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", config.fetch_wait.as_millis().to_string())
        .set("session.timeout.ms", config.session_timeout.as_millis().to_string())
        .set("statistics.interval.ms", stats_interval.as_millis().to_string())
        .create_with_context(context)?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// A static member does not leave its group when its consumer closes (KIP-345: the group waits for it to come back
/// until its session times out). A worker that stops on purpose is not coming back soon, so it leaves explicitly:
/// an unsubscribe sends LeaveGroup, and the group hands its partitions on at once. Waits (briefly) for the
/// revocation that confirms it; a dynamic member leaves on close anyway.
pub(crate) async fn leave_group(shared: &Shared) {
    if shared.config.instance_id.is_none() {
        return;
    }
    for lane in &shared.lanes {
        lane.consumer.unsubscribe();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    // Rebalance callbacks run inside recv(); messages still buffered are dropped unstored (redelivered, harmlessly).
    for lane in &shared.lanes {
        while lane.held.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), lane.consumer.recv()).await;
        }
        log::info!("left group {} (static member {:?})", lane.group, shared.config.instance_id);
    }
}
