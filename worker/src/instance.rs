//! One process per worker name: with `ACKBOX_WORKER_INSTANCE_ID` set, the worker takes its name's advisory lock
//! (`ackbox_db::instance_lock`) before it joins any group, and stops at once, saying why, if another process holds
//! it. It keeps the lock's connection for as long as it runs; if that connection breaks it takes the lock again, and
//! if another process took it meanwhile the worker stops (the loop checks [`InstanceLock::lost`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ackbox_db::instance_lock;
use diesel::{Connection, PgConnection};

use crate::config::WorkerConfig;
use crate::consumer::WorkerError;

/// How often the lock's connection is checked.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// The held lock.
pub(crate) struct InstanceLock {
    lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl InstanceLock {
    /// Another process took this worker's name while the lock's connection was down.
    pub(crate) fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn duplicate(config: &WorkerConfig, name: &str) -> WorkerError {
    WorkerError::DuplicateInstance { name: name.to_string(), group: config.group.clone() }
}

/// Connects and takes the lock, waiting out an unreachable database; `Ok(false)`: another process holds it.
fn lock(url: &str, name: &str) -> (PgConnection, bool) {
    let mut wait = Duration::from_millis(200);
    loop {
        match PgConnection::establish(url).map_err(|e| e.to_string()).and_then(|mut c| {
            let held = instance_lock::try_lock(&mut c, name).map_err(|e| e.to_string())?;
            Ok((c, held))
        }) {
            Ok(done) => return done,
            Err(e) => {
                log::warn!("taking this worker's name lock failed, retrying in {wait:?}: {e}");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Takes the lock of this worker's name (none without `ACKBOX_WORKER_INSTANCE_ID`).
pub(crate) async fn acquire(config: &WorkerConfig) -> Result<Option<InstanceLock>, WorkerError> {
    let Some(instance) = config.instance_id.clone() else { return Ok(None) };
    let name = format!("{}/{instance}", config.group);
    let url = config.db.url.clone();
    let (conn, held) = {
        let (url, name) = (url.clone(), name.clone());
        tokio::task::spawn_blocking(move || lock(&url, &name)).await.map_err(|_| duplicate(config, &instance))?
    };
    if !held {
        return Err(duplicate(config, &instance));
    }
    let (lost, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (lost_w, stop_w) = (lost.clone(), stop.clone());
    std::thread::Builder::new()
        .name("instance-lock".into())
        .spawn(move || {
            let mut conn = conn;
            while !stop_w.load(Ordering::SeqCst) {
                std::thread::sleep(CHECK_EVERY);
                if instance_lock::alive(&mut conn).is_ok() {
                    continue;
                }
                let (again, held) = lock(&url, &name);
                if !held {
                    lost_w.store(true, Ordering::SeqCst);
                    return;
                }
                conn = again;
            }
        })
        .map_err(|_| duplicate(config, &instance))?;
    Ok(Some(InstanceLock { lost, stop }))
}
