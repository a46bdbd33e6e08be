//! One long-lived `LISTEN` connection per process, turned into events.
//!
//! Diesel connections are blocking and pooled; a listener must sit idle on a socket, so it uses tokio-postgres on
//! its own connection. It never holds a pool connection and reconnects by itself with backoff. Notifications sent
//! while it was away are lost, so it reports every (re)connect and disconnect: a cache must be dropped, a waiter
//! must re-check.
//!
//! It honours the TLS settings of `DATABASE_URL` as libpq does for the pooled connections ([`crate::pg_tls`]), and
//! [`preflight`] lets a service stop at start-up when those settings refuse the server's certificate, instead of
//! degrading quietly to time-outs.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use crate::pg_tls::{PgTls, PgTlsError};

/// Channel the outbox trigger notifies on every insert.
pub const OUTBOX_CHANNEL: &str = "ackbox_outbox";
/// Channel the jobs trigger notifies on every status or progress change, with the job id as payload.
pub const JOB_STATUS_CHANNEL: &str = "ackbox_job_status";
/// Channel the jobs trigger notifies when a cancel is accepted for a running job, with the job id as payload.
pub const JOB_CANCEL_CHANNEL: &str = "ackbox_job_cancel";
/// Channel the api_keys trigger notifies on every key change.
pub const KEYS_CHANNEL: &str = "ackbox_keys";

/// What the listener saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// (Re)connected and listening: anything may have changed while it was away.
    Connected,
    /// The connection dropped; until `Connected`, no notification arrives.
    Disconnected,
    /// A notification.
    Notification {
        /// Channel name.
        channel: String,
        /// Payload (may be empty).
        payload: String,
    },
}

/// Spawns a task that `LISTEN`s on `channels` and calls `on_event` for each event. Runs until the runtime shuts down.
pub fn spawn_events(
    database_url: String,
    channels: &'static [&'static str],
    on_event: Arc<dyn Fn(Event) + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = crate::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let wait = backoff.next_delay();
            match listen_once(&database_url, channels, &*on_event).await {
                Ok(()) => log::warn!("LISTEN connection closed; reconnecting in {wait:?}"),
                Err(e) => log::warn!("LISTEN connection: {e}; reconnecting in {wait:?}"),
            }
            on_event(Event::Disconnected);
            tokio::time::sleep(wait).await;
        }
    })
}

/// Spawns a task that `LISTEN`s on `channels` and calls `notify_one` on `wake` for each notification and after
/// every (re)connect.
pub fn spawn_listener(
    database_url: String,
    channels: &'static [&'static str],
    wake: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    spawn_events(
        database_url,
        channels,
        Arc::new(move |event| {
            if event != Event::Disconnected {
                wake.notify_one();
            }
        }),
    )
}

/// Why [`preflight`] stops a service.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The URL's TLS settings cannot be honoured (bad `sslmode`, unreadable CA file, …).
    #[error(transparent)]
    Settings(#[from] PgTlsError),
    /// The server answered, and its certificate is not what the settings accept (wrong CA, wrong host name).
    #[error("the Postgres server's TLS certificate is refused by DATABASE_URL's settings (sslmode, sslrootcert): {0}")]
    Certificate(String),
}

/// Checks `DATABASE_URL`'s TLS settings and connects once. A refused certificate or a bad setting is an error: it
/// will not fix itself, and the service would otherwise run with every Postgres connection failing. An unreachable
/// server is only logged: the service starts and waits for it, as before.
pub async fn preflight(database_url: &str) -> Result<(), PreflightError> {
    let tls = PgTls::from_url(database_url)?;
    let attempt = tokio::time::timeout(Duration::from_secs(10), tls.config.connect(tls.connector.clone())).await;
    match attempt {
        Ok(Ok((client, connection))) => {
            drop(client);
            let _ = connection.await;
            Ok(())
        }
        Ok(Err(e)) => {
            let chain = error_chain(&e);
            if chain.contains("certificate") || chain.contains("CertificateRequired") {
                return Err(PreflightError::Certificate(chain));
            }
            log::warn!("Postgres not reachable at start-up ({chain}); waiting for it");
            Ok(())
        }
        Err(_) => {
            log::warn!("Postgres did not answer within 10 s at start-up; waiting for it");
            Ok(())
        }
    }
}

/// An error and its sources, one line: tokio-postgres' own message ("error performing TLS handshake") hides the
/// reason, which is in the source.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn listen_once(
    database_url: &str,
    channels: &[&str],
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<(), ListenError> {
    let tls = PgTls::from_url(database_url)?;
    let (client, mut connection) = tls.config.connect(tls.connector).await.map_err(ListenError::from_pg)?;
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
    let listen: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
    client.batch_execute(&listen).await.map_err(ListenError::from_pg)?;
    log::info!("listening for notifications on {}", channels.join(", "));
    on_event(Event::Connected);
    while let Some(msg) = rx.next().await {
        if let AsyncMessage::Notification(n) = msg {
            on_event(Event::Notification { channel: n.channel().to_string(), payload: n.payload().to_string() });
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result.map_err(ListenError::from_pg),
        Err(_) => Ok(()),
    }
}

/// Why the LISTEN connection ended.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Settings(#[from] PgTlsError),
    #[error("{0}")]
    Postgres(String),
}

impl ListenError {
    fn from_pg(e: tokio_postgres::Error) -> Self {
        Self::Postgres(error_chain(&e))
    }
}
