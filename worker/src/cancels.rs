//! Cancel requests, pushed: the worker `LISTEN`s on `ackbox_job_cancel` (a trigger notifies with the job id when a
//! cancel is accepted for a running job) and stops the attempts it runs of that job at once, instead of at its next
//! heartbeat. After every (re)connect it runs a heartbeat at once, which reads every request it may have missed.

use std::sync::Arc;

use ackbox_runtime::listen::{spawn_events, Event, JOB_CANCEL_CHANNEL};
use uuid::Uuid;

use crate::shared::Shared;

/// Starts the listener task; it ends with the runtime (or when the handle is aborted).
pub(crate) fn spawn_cancel_listener(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    let url = shared.config.db.url.clone();
    let s = shared.clone();
    spawn_events(
        url,
        &[JOB_CANCEL_CHANNEL],
        Arc::new(move |event| match event {
            Event::Connected => s.beat_now.notify_one(),
            Event::Disconnected => {}
            Event::Notification { payload, .. } => {
                let Ok(id) = Uuid::try_parse(&payload) else { return };
                for (key, r) in s.running().iter().filter(|(key, r)| key.0 == id && !r.finishing) {
                    r.request_cancel(*key);
                }
            }
        }),
    )
}
