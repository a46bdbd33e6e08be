//! This worker's kinds in `job_kinds`: registered when it starts (the rescuer then dispatches again what a worker
//! without them skipped) and refreshed every `SEEN_EVERY` while it runs, so the API can tell a client that no live
//! worker runs a queued job's kind.

use std::sync::Arc;

use ackbox_db::db::DbError;
use ackbox_db::models::{job_kind, queue};
use ackbox_runtime::retry::blocking;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

/// Registers this worker's kinds, the queues it serves (`default`, its kinds' queues, its capped queues) and each
/// kind's queue, in one transaction.
fn register(conn: &mut diesel::PgConnection, shared: &Shared) -> diesel::QueryResult<usize> {
    use diesel::Connection;
    let config = &shared.config;
    let kind_queues: Vec<(String, String)> = shared
        .kinds
        .iter()
        .map(|k| (k.clone(), config.kind_queues.get(k).cloned().unwrap_or_else(|| queue::DEFAULT_QUEUE.to_string())))
        .collect();
    let mut queues: std::collections::BTreeSet<String> = kind_queues.iter().map(|(_, q)| q.clone()).collect();
    queues.insert(queue::DEFAULT_QUEUE.to_string());
    queues.extend(config.queue_concurrency.keys().cloned());
    conn.transaction(|c| {
        let n = job_kind::register(c, &shared.kinds)?;
        queue::ensure(c, &queues.into_iter().collect::<Vec<_>>())?;
        job_kind::set_queues(c, &kind_queues)?;
        Ok(n)
    })
}

/// Registers the kinds, then refreshes them until `stop`.
pub(crate) async fn kinds_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut registered = false;
    loop {
        let (s, first) = (shared.clone(), !registered);
        let res = blocking(move || -> Result<usize, DbError> {
            let mut conn = s.pool.get()?;
            Ok(if first { register(&mut conn, &s)? } else { job_kind::seen(&mut conn, &s.kinds)? })
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
