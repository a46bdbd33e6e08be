//! The API process's background thread: ONE `LISTEN` connection shared by every request (key-cache invalidation and
//! long-poll wake-ups), and the periodic refresh of the Retry-After estimates. Waiting requests never hold a pool
//! connection: they hold a `watch` receiver that the listener bumps.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ackbox_shared::db::PgPool;
use ackbox_shared::listen::{spawn_events, Event, JOB_STATUS_CHANNEL, KEYS_CHANNEL};
use diesel::RunQueryDsl;
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::SharedKeys;

/// Long-poll waiters by job id. A waiter subscribes before it reads the job, so a change that lands between its read
/// and its wait is never missed.
#[derive(Default)]
pub struct Waiters {
    by_job: Mutex<HashMap<Uuid, (watch::Sender<u64>, usize)>>,
    gauge: Option<prometheus::IntGauge>,
}

/// A registered waiter; unregisters on drop.
pub struct Waiter {
    waiters: Arc<Waiters>,
    id: Uuid,
    /// Changes whenever the job's status changes (or the listener reconnects).
    pub changed: watch::Receiver<u64>,
}

impl Waiters {
    /// A registry reporting its size to `gauge`.
    pub fn with_gauge(gauge: prometheus::IntGauge) -> Self {
        Self { by_job: Mutex::new(HashMap::new()), gauge: Some(gauge) }
    }

    /// Registers a waiter for `id`.
    pub fn register(self: &Arc<Self>, id: Uuid) -> Waiter {
        let mut map = self.by_job.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(id).or_insert_with(|| (watch::channel(0).0, 0));
        entry.1 += 1;
        let changed = entry.0.subscribe();
        if let Some(g) = &self.gauge {
            g.inc();
        }
        Waiter { waiters: self.clone(), id, changed }
    }

    /// Wakes the waiters of `id`.
    pub fn wake(&self, id: Uuid) {
        if let Some((tx, _)) = self.by_job.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// Wakes everyone (the listener reconnected: notifications may have been missed).
    pub fn wake_all(&self) {
        for (tx, _) in self.by_job.lock().unwrap_or_else(|p| p.into_inner()).values() {
            tx.send_modify(|v| *v += 1);
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut map = self.waiters.by_job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&self.id) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.id);
            }
        }
        if let Some(g) = &self.waiters.gauge {
            g.dec();
        }
    }
}

/// Observed medians per kind, for an honest Retry-After.
#[derive(Default)]
pub struct Estimates {
    by_kind: RwLock<HashMap<String, (f64, f64)>>,
}

impl Estimates {
    /// Median seconds from acceptance to start, and median run time, of recent jobs of `kind`.
    pub fn get(&self, kind: &str) -> Option<(f64, f64)> {
        self.by_kind.read().unwrap_or_else(|p| p.into_inner()).get(kind).copied()
    }

    /// Replaces the estimates.
    pub fn set(&self, values: HashMap<String, (f64, f64)>) {
        *self.by_kind.write().unwrap_or_else(|p| p.into_inner()) = values;
    }
}

#[derive(diesel::QueryableByName)]
struct KindStats {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    to_start: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    run: f64,
}

/// Reads the medians of jobs started in the last 10 minutes (the partial sample keeps this cheap).
pub fn load_estimates(pool: &PgPool) -> Result<HashMap<String, (f64, f64)>, ackbox_shared::db::DbError> {
    let mut conn = pool.get()?;
    let rows: Vec<KindStats> = diesel::sql_query(
        "SELECT kind,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))::float8 AS to_start,
                coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
                         FILTER (WHERE finished_at IS NOT NULL), 0)::float8 AS run
           FROM (SELECT kind, created_at, started_at, finished_at FROM jobs
                  WHERE started_at > now() - interval '10 minutes'
                  ORDER BY started_at DESC LIMIT 5000) recent
          GROUP BY kind",
    )
    .load(&mut conn)?;
    Ok(rows.into_iter().map(|r| (r.kind, (r.to_start, r.run))).collect())
}

/// Starts the background thread. It runs for the life of the process.
pub fn start(database_url: String, pool: PgPool, keys: SharedKeys, waiters: Arc<Waiters>, estimates: Arc<Estimates>) {
    let spawned = std::thread::Builder::new().name("ackbox-live".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                log::error!("cannot start the listener runtime: {e}");
                return;
            }
        };
        rt.block_on(async move {
            let (k, w) = (keys.clone(), waiters.clone());
            spawn_events(
                database_url,
                &[KEYS_CHANNEL, JOB_STATUS_CHANNEL],
                Arc::new(move |event| match event {
                    Event::Connected => {
                        k.clear();
                        k.live.store(true, Ordering::SeqCst);
                        w.wake_all();
                    }
                    Event::Disconnected => {
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
                match tokio::task::spawn_blocking(move || load_estimates(&p)).await {
                    Ok(Ok(values)) => estimates.set(values),
                    Ok(Err(e)) => log::debug!("refreshing Retry-After estimates failed: {e}"),
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        });
    });
    if let Err(e) = spawned {
        log::error!("cannot start the listener thread: {e}");
    }
}
