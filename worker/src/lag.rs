//! Consumer lag, from librdkafka's statistics into Postgres (`consumer_lag`) for the dashboard and the CLI.

use std::sync::Arc;
use std::time::Duration;

use ackbox_db::db::DbError;
use ackbox_runtime::retry::blocking;
use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use tokio_util::sync::CancellationToken;

use crate::context::LatestLag;
use crate::membership::Kafka;
use crate::shared::Shared;

/// How long one broker request of the fallback below may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes the latest consumer lag to `consumer_lag` once per statistics interval (one upsert), for the dashboard and
/// the CLI. Losing a report is harmless: the next one replaces it.
pub(crate) async fn lag_report_loop(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.stats_interval) => {}
            _ = stop.cancelled() => return,
        }
        // Each priority lane reports under its own group.
        for lane in 0..shared.lanes.len() {
            let Some(from_stats) = take(&shared.lanes[lane].lag) else { continue };
            let s = shared.clone();
            let res = blocking(move || -> Result<usize, DbError> {
                let lane = &s.lanes[lane];
                // librdkafka's statistics know a partition's end only from fetch answers that carry it; a broker
                // that answers fetches without offsets while it is busy (nisshi does, documented in its fetch
                // service) leaves every lag unknown for as long as that lasts. Then ask the broker for the
                // watermarks directly.
                let rows = if from_stats.is_empty() { from_watermarks(&lane.consumer) } else { from_stats };
                let mut conn = s.pool.get()?;
                Ok(ackbox_db::models::consumer_lag::report(&mut conn, &lane.group, &rows)?)
            })
            .await;
            if let Err(e) = res {
                log::warn!("reporting consumer lag failed (next report replaces it): {e}");
            }
        }
    }
}

fn take(lag: &LatestLag) -> Option<Vec<(String, i32, i64)>> {
    lag.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// `(topic, partition, lag)` for every assigned partition whose high watermark the broker gives: the messages
/// after the group's committed offset (after the low watermark when nothing is committed yet, as
/// `auto.offset.reset=earliest` starts there). Blocking: a few broker requests, each bounded.
fn from_watermarks(consumer: &Kafka) -> Vec<(String, i32, i64)> {
    let Ok(assignment) = consumer.assignment() else { return Vec::new() };
    let committed = consumer.committed_offsets(assignment.clone(), WATERMARK_TIMEOUT).ok();
    let mut rows = Vec::new();
    for elem in assignment.elements() {
        let Ok((low, high)) = consumer.fetch_watermarks(elem.topic(), elem.partition(), WATERMARK_TIMEOUT) else {
            continue;
        };
        let done = committed
            .as_ref()
            .and_then(|c| c.find_partition(elem.topic(), elem.partition()))
            .and_then(|c| match c.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(low);
        rows.push((elem.topic().to_string(), elem.partition(), (high - done).max(0)));
    }
    rows
}
