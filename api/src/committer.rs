//! Group commit of submissions: `POST /v1/jobs` requests that arrive while a commit is in flight share the next
//! transaction ([`ackbox_db::state::submit_batch`]). There is no added wait: an idle committer takes a lone request
//! at once, and a batch is whatever queued up while the committers were busy, up to `ACKBOX_SUBMIT_BATCH`.
//!
//! Each request still gets its 202 only after the transaction holding its rows committed (invariant 1); a request
//! Postgres refuses fails alone; a batch whose transaction fails answers every request in it with the same error (an
//! outage: 503, nothing written, or during the COMMIT itself, possibly written: the Idempotency-Key resolves which).
//! The queue in front of the committers is bounded: a submit that finds it full is refused at once with 503 and
//! `Retry-After` instead of waiting behind it.

use std::sync::{Arc, Mutex};

use ackbox_db::db::{DbError, PgPool};
use ackbox_db::models::NewJob;
use ackbox_db::state::{self, BatchItem, IdempotencyKey, Submitted};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::metrics::ApiMetrics;

/// An Idempotency-Key that travels to a blocking thread (a committer, or a batch's transaction).
#[derive(Clone, Debug)]
pub struct OwnedKey {
    /// The header value.
    pub key: String,
    /// SHA-256 of the canonical request.
    pub fingerprint: Vec<u8>,
    /// When the key may be reused.
    pub expires_at: DateTime<Utc>,
}

impl OwnedKey {
    /// A key received now, for a request with `fingerprint`: it may be reused once `ttl` (the api's
    /// `ACKBOX_IDEMPOTENCY_TTL_SECS`) has passed.
    pub fn received(key: String, fingerprint: Vec<u8>, ttl: std::time::Duration) -> Self {
        let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(1));
        Self { key, fingerprint, expires_at }
    }

    /// The borrowed form the database layer takes.
    pub fn as_key(&self) -> IdempotencyKey<'_> {
        IdempotencyKey { key: &self.key, fingerprint: &self.fingerprint, expires_at: self.expires_at }
    }
}

struct Pending {
    new: NewJob,
    key: Option<OwnedKey>,
    reply: oneshot::Sender<Result<Submitted, ApiError>>,
}

/// The handle requests submit through; committer threads stop when it is dropped.
pub struct Committer {
    queue: mpsc::Sender<Pending>,
    queued: prometheus::IntGauge,
}

/// How the committers run.
#[derive(Clone, Debug)]
pub struct CommitterConfig {
    /// Transactions in flight at once (each holds a pool connection while it runs).
    pub committers: usize,
    /// Most submissions in one transaction.
    pub batch: usize,
    /// Most submissions waiting for a transaction; beyond it a submit gets 503 at once.
    pub queue: usize,
    /// Topic of the dispatch messages.
    pub topic: String,
}

impl Committer {
    /// Starts `config.committers` threads that take batches off one queue and commit them on `pool`.
    pub fn start(pool: PgPool, config: CommitterConfig, metrics: ApiMetrics) -> Self {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..config.committers.max(1) {
            let (rx, pool, config, metrics) = (rx.clone(), pool.clone(), config.clone(), metrics.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("ackbox-commit-{n}"))
                .spawn(move || run(&rx, &pool, &config, &metrics));
            if let Err(e) = spawned {
                log::error!("cannot start committer thread {n}: {e}");
            }
        }
        Self { queue: tx, queued: metrics.submit_queued }
    }

    /// Submits one job and waits for the commit of the transaction that holds it.
    pub async fn submit(&self, new: NewJob, key: Option<OwnedKey>) -> Result<Submitted, ApiError> {
        let (reply, answer) = oneshot::channel();
        // Counted before it is queued, so a committer that takes it at once never drives the gauge below zero.
        self.queued.inc();
        self.queue.try_send(Pending { new, key, reply }).map_err(|e| {
            self.queued.dec();
            match e {
                mpsc::error::TrySendError::Full(_) => ApiError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => ApiError::Internal("the committers have stopped".into()),
            }
        })?;
        answer
            .await
            .unwrap_or_else(|_| Err(ApiError::Internal("a committer dropped a submission without an answer".into())))
    }
}

/// One committer: waits for a first submission, takes whatever else is queued (up to the batch size), commits them
/// in one transaction and answers each.
fn run(rx: &Mutex<mpsc::Receiver<Pending>>, pool: &PgPool, config: &CommitterConfig, metrics: &ApiMetrics) {
    loop {
        let batch = {
            let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            let Some(first) = rx.blocking_recv() else { return };
            let mut batch = vec![first];
            while batch.len() < config.batch {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            metrics.submit_queued.sub(batch.len() as i64);
            batch
        };
        metrics.submit_batch.observe(batch.len() as f64);
        commit(batch, pool, &config.topic);
    }
}

fn commit(batch: Vec<Pending>, pool: &PgPool, topic: &str) {
    let keys: Vec<Option<IdempotencyKey<'_>>> = batch.iter().map(|p| p.key.as_ref().map(OwnedKey::as_key)).collect();
    let items: Vec<BatchItem<'_>> =
        batch.iter().zip(&keys).map(|(p, key)| BatchItem { new: &p.new, key: *key }).collect();
    let outcome =
        pool.get().map_err(DbError::from).and_then(|mut conn| Ok(state::submit_batch(&mut conn, &items, topic)?));
    match outcome {
        Ok(results) => {
            for (p, result) in batch.into_iter().zip(results) {
                let _ = p.reply.send(result.map_err(|e| ApiError::from(DbError::from(e))));
            }
        }
        Err(e) => {
            // The whole transaction failed: every request in it gets the same answer, the cause logged once.
            let err = ApiError::from(e);
            for p in batch {
                let _ = p.reply.send(Err(err.clone()));
            }
        }
    }
}
