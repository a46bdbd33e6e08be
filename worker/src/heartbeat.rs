//! The lease heartbeat: one UPDATE extends the leases of every attempt this process runs, and relays cancel
//! requests and lost leases to the attempts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ackbox_db::db::DbError;
use ackbox_db::state;
use ackbox_runtime::retry::blocking;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::shared::Shared;

/// Extends the leases of every attempt this process runs, in one statement, every `ACKBOX_HEARTBEAT_MS` (at most a
/// third of the lease). An attempt whose lease is gone (the rescuer took the job back after a stall) is cancelled:
/// another attempt may be running, and this one's writes would be refused anyway. An attempt whose job got a cancel
/// request is cancelled too, and marked so its failure ends the job `cancelled`.
pub(crate) async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let every = shared.config.heartbeat.min(shared.config.lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let held: Vec<(Uuid, i32)> =
            shared.running.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(id, r)| (*id, r.attempt)).collect();
        if held.is_empty() {
            continue;
        }
        let s = shared.clone();
        let h = held.clone();
        let res = blocking(move || -> Result<Vec<(Uuid, bool)>, DbError> {
            let mut conn = s.pool.get()?;
            Ok(state::heartbeat(&mut conn, &h, s.config.lease)?)
        })
        .await;
        match res {
            Ok(extended) => {
                let extended: HashMap<Uuid, bool> = extended.into_iter().collect();
                let running = shared.running.lock().unwrap_or_else(|p| p.into_inner());
                for (id, attempt) in held {
                    // Gone from `running` meanwhile means it finished normally.
                    let Some(r) = running.get(&id).filter(|r| r.attempt == attempt && !r.cancel.is_cancelled()) else {
                        continue;
                    };
                    match extended.get(&id) {
                        Some(false) => {}
                        Some(true) => {
                            log::info!("job {id} attempt {attempt}: cancel requested; stopping it");
                            r.cancel_requested.store(true, std::sync::atomic::Ordering::SeqCst);
                            r.cancel.cancel();
                        }
                        None => {
                            shared.metrics.leases_lost.inc();
                            log::warn!("job {id} attempt {attempt} lost its lease; cancelling it");
                            r.cancel.cancel();
                        }
                    }
                }
            }
            Err(e) => log::warn!("heartbeat for {} attempts failed (retrying next beat): {e}", held.len()),
        }
    }
}
