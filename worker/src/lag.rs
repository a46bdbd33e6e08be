//! Consumer lag, from librdkafka's statistics into Postgres (`consumer_lag`) for the dashboard and the CLI.

use std::sync::Arc;

use ackbox_db::db::DbError;
use ackbox_runtime::retry::blocking;
use tokio_util::sync::CancellationToken;

use crate::context::LatestLag;
use crate::shared::Shared;

/// Writes the latest consumer lag to `consumer_lag` once per statistics interval (one upsert), for the dashboard and
/// the CLI. Losing a report is harmless: the next one replaces it.
pub(crate) async fn lag_report_loop(shared: Arc<Shared>, lag: LatestLag, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.stats_interval) => {}
            _ = stop.cancelled() => return,
        }
        let Some(rows) = lag.lock().unwrap_or_else(|p| p.into_inner()).take() else { continue };
        let s = shared.clone();
        let res = blocking(move || -> Result<usize, DbError> {
            let mut conn = s.pool.get()?;
            Ok(ackbox_db::models::consumer_lag::report(&mut conn, &s.config.group, &rows)?)
        })
        .await;
        if let Err(e) = res {
            log::warn!("reporting consumer lag failed (next report replaces it): {e}");
        }
    }
}
