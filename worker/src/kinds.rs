//! This worker's kinds in `job_kinds`: registered when it starts (the rescuer then dispatches again what a worker
//! without them skipped) and refreshed every `SEEN_EVERY` while it runs, so the API can tell a client that no live
//! worker runs a queued job's kind.

use std::sync::Arc;

use ackbox_db::db::DbError;
use ackbox_db::models::job_kind;
use ackbox_runtime::retry::blocking;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

/// Registers the kinds, then refreshes them until `stop`.
pub(crate) async fn kinds_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut registered = false;
    loop {
        let (s, first) = (shared.clone(), !registered);
        let res = blocking(move || -> Result<usize, DbError> {
            let mut conn = s.pool.get()?;
            Ok(if first { job_kind::register(&mut conn, &s.kinds)? } else { job_kind::seen(&mut conn, &s.kinds)? })
        })
        .await;
        match res {
            Ok(_) => registered = true,
            Err(e) => log::warn!("refreshing this worker's kinds in job_kinds failed (retrying): {e}"),
        }
        let wait = if registered { job_kind::SEEN_EVERY } else { std::time::Duration::from_secs(1) };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}
