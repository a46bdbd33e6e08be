//! The lease heartbeat: one UPDATE extends the leases of every attempt this process runs, and relays cancel
//! requests and lost leases to the attempts. Cancel requests normally arrive sooner, pushed by `cancels.rs`; the
//! heartbeat is the backstop for a notification missed while the listener was away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ackbox_db::db::DbError;
use ackbox_db::state;
use ackbox_runtime::retry::blocking;
use tokio_util::sync::CancellationToken;

use crate::shared::{AttemptKey, Shared};

/// Extends the leases of every attempt this process runs, in one statement, every `ACKBOX_HEARTBEAT_MS` (at most a
/// third of the lease). An attempt whose lease is gone (the rescuer took the job back after a stall) is cancelled:
/// another attempt may be running, and this one's writes would be refused anyway. An attempt whose job got a cancel
/// request is cancelled too, and marked so its failure ends the job `cancelled`. Attempts whose outcome is being
/// written are left out: the completer owns those rows now.
pub(crate) async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let every = shared.config.heartbeat.min(shared.config.lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shared.beat_now.notified() => {}
            _ = stop.cancelled() => return,
        }
        let mut held: Vec<AttemptKey> =
            shared.running().iter().filter(|(_, r)| !r.finishing).map(|(key, _)| *key).collect();
        if held.is_empty() {
            continue;
        }
        held.sort();
        let s = shared.clone();
        let h = held.clone();
        let res = blocking(move || -> Result<Vec<(uuid::Uuid, i32, bool)>, DbError> {
            let mut conn = s.pool.get()?;
            Ok(state::heartbeat(&mut conn, &h, s.config.lease)?)
        })
        .await;
        match res {
            Ok(extended) => {
                let extended: HashMap<AttemptKey, bool> = extended.into_iter().map(|(id, a, c)| ((id, a), c)).collect();
                let running = shared.running();
                for key in held {
                    // Gone from `running` meanwhile means it finished normally.
                    let Some(r) = running.get(&key).filter(|r| !r.cancel.is_cancelled() && !r.finishing) else {
                        continue;
                    };
                    let (id, attempt) = key;
                    match extended.get(&key) {
                        Some(false) => {}
                        Some(true) => r.request_cancel(key),
                        None => {
                            shared.metrics.leases_lost.inc();
                            log::warn!(job_id:% = id, attempt; "job {id} attempt {attempt} lost its lease; cancelling it");
                            r.cancel.cancel();
                        }
                    }
                }
            }
            Err(e) => log::warn!("heartbeat for {} attempts failed (retrying next beat): {e}", held.len()),
        }
    }
}
