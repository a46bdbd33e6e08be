//! The API process's background thread: ONE `LISTEN` connection shared by every request (key-cache invalidation and
//! long-poll wake-ups), and the periodic refresh of the Retry-After estimates. It stops when the server's state is
//! dropped (the [`Live`] handle lives in `AppState`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ackbox_db::db::PgPool;
use ackbox_runtime::listen::{spawn_events, Event, JOB_STATUS_CHANNEL, KEYS_CHANNEL};
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::SharedKeys;
use crate::estimates::{load_estimates, load_live_kinds, Estimates};
use crate::waiters::Waiters;

/// The running background thread. Dropping the handle stops it: the listener's connection closes and the estimates
/// refresh ends (within the refresh it is in, if any).
pub struct Live {
    _stop: watch::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Live {
    /// Tells the thread to stop (as dropping the handle does) and returns it, to wait for its end.
    pub fn stop(mut self) -> Option<std::thread::JoinHandle<()>> {
        self.thread.take()
    }
}

/// Starts the background thread.
pub fn start(
    database_url: String,
    pool: PgPool,
    keys: SharedKeys,
    waiters: Arc<Waiters>,
    estimates: Arc<Estimates>,
    connected: prometheus::IntGauge,
) -> Live {
    let (stop, mut stopped) = watch::channel(());
    let spawned = std::thread::Builder::new().name("ackbox-live".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                log::error!("cannot start the listener runtime: {e}");
                return;
            }
        };
        let after = keys.clone();
        rt.block_on(async move {
            let (k, w) = (keys.clone(), waiters.clone());
            spawn_events(
                database_url,
                &[KEYS_CHANNEL, JOB_STATUS_CHANNEL],
                Arc::new(move |event| match event {
                    Event::Connected => {
                        connected.set(1);
                        k.clear();
                        k.live.store(true, Ordering::SeqCst);
                        w.wake_all();
                    }
                    Event::Disconnected => {
                        connected.set(0);
                        k.live.store(false, Ordering::SeqCst);
                        k.clear();
                    }
                    Event::Notification { channel, payload } => {
                        if channel == KEYS_CHANNEL {
                            k.clear();
                        } else if let Ok(id) = Uuid::try_parse(&payload) {
                            w.wake(id);
                        }
                    }
                }),
            );
            loop {
                let p = pool.clone();
                match ackbox_runtime::retry::blocking(move || load_estimates(&p)).await {
                    Ok(values) => estimates.set(values),
                    Err(e) => log::debug!("refreshing Retry-After estimates failed: {e}"),
                }
                let p = pool.clone();
                match ackbox_runtime::retry::blocking(move || load_live_kinds(&p)).await {
                    Ok((kinds, paused)) => {
                        estimates.set_live_kinds(kinds);
                        estimates.set_paused_queues(paused);
                    }
                    Err(e) => log::debug!("refreshing the live kinds failed: {e}"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                    // The handle was dropped: the server is gone.
                    _ = stopped.changed() => break,
                }
            }
        });
        // Dropping the runtime here ends the listener task and closes its connection.
        drop(rt);
        after.live.store(false, Ordering::SeqCst);
        log::info!("listener thread stopped");
    });
    match spawned {
        Ok(thread) => Live { _stop: stop, thread: Some(thread) },
        Err(e) => {
            log::error!("cannot start the listener thread: {e}");
            Live { _stop: stop, thread: None }
        }
    }
}
