//! Completion callbacks (`callback_url` on submit): when the job ends, the api POSTs its status document there,
//! signed in the Standard Webhooks style.
//!
//! - The delivery is an outbox row of its own (`callbacks`), written by the transaction that makes the job terminal
//!   (a trigger on the status change, migration 20): never lost, whichever process ends the job and whenever it dies.
//! - The api delivers (it renders the status document): `deliver.rs` claims due rows with a lease, sends, and records
//!   the outcome on the job (`callback: {state, attempts, last_error}` in the document).
//! - `target.rs` keeps callbacks out of our own network (SSRF), at submit and again at send time; `sign.rs` signs.

pub mod deliver;
pub mod sign;
pub mod target;

use tokio::sync::watch;

use crate::callbacks::deliver::Deliverer;

/// The delivery thread; it stops when this is dropped (with the server's state).
pub struct Delivery {
    _stop: watch::Sender<()>,
}

/// Starts delivering callbacks on a thread of its own (its own runtime, like the listener's), so the work never
/// competes with request handling on the actix threads.
pub fn start(deliverer: Deliverer) -> Delivery {
    let (stop, stopped) = watch::channel(());
    let spawned = std::thread::Builder::new().name("ackbox-callbacks".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(deliverer.run(stopped)),
            Err(e) => log::error!("callbacks are not delivered: cannot start their runtime: {e}"),
        }
    });
    if let Err(e) = spawned {
        log::error!("callbacks are not delivered: cannot start their thread: {e}");
    }
    Delivery { _stop: stop }
}
