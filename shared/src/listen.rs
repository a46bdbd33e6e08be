//! One long-lived `LISTEN` connection per process, turned into a wake-up signal.
//!
//! Diesel connections are blocking and pooled; a listener must sit idle on a socket, so it uses tokio-postgres on
//! its own connection. It never holds a pool connection, reconnects by itself with backoff, and fires the signal once
//! after every (re)connect, because notifications sent while it was away are lost and the caller must re-check.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

/// Channel the outbox trigger notifies on every insert.
pub const OUTBOX_CHANNEL: &str = "ackbox_outbox";

/// Spawns a task that `LISTEN`s on `channel` and calls `notify_one` on `wake` for each notification. Runs until the
/// runtime shuts down.
pub fn spawn_listener(database_url: String, channel: &'static str, wake: Arc<Notify>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match listen_once(&database_url, channel, &wake).await {
                Ok(()) => log::warn!("LISTEN {channel}: connection closed; reconnecting"),
                Err(e) => log::warn!("LISTEN {channel}: {e}; reconnecting in {backoff:?}"),
            }
            // Whatever happened while we were gone, the caller must look again.
            wake.notify_one();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
}

async fn listen_once(database_url: &str, channel: &str, wake: &Notify) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    let (tx, mut rx) = futures::channel::mpsc::unbounded();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(m) => {
                    if tx.unbounded_send(m).is_err() {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    log::info!("listening for notifications on {channel}");
    wake.notify_one();
    while let Some(msg) = rx.next().await {
        if let AsyncMessage::Notification(_) = msg {
            wake.notify_one();
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
