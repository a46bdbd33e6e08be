//! Work beside the relay loop, on its own timer: the rescuer (the database decides what still needs doing),
//! retention of published outbox rows and expired Idempotency-Keys, vacuum where autovacuum does not, and the backlog
//! and jobs-by-status gauges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ackbox_db::db::DbError;
use ackbox_db::{outbox, state, vacuum};
use tokio::sync::watch;

use crate::Relay;

/// What one maintenance pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Rescuer results (all zero when another process held the rescuer lock).
    pub rescue: state::RescueReport,
    /// Published rows deleted by retention.
    pub deleted: usize,
    /// Expired Idempotency-Keys deleted.
    pub expired_keys: usize,
    /// Finished jobs deleted by retention (with their dependent rows), each leaving a tombstone.
    pub deleted_jobs: usize,
    /// Tombstones deleted.
    pub deleted_tombstones: usize,
    /// Tables the relay vacuumed (autovacuum off for them, dead versions past `ACKBOX_VACUUM_DEAD_TUPLES`).
    pub vacuumed: usize,
}

/// One pass, blocking: one rescuer pass (at most `ACKBOX_RESCUE_BATCH` jobs for each part: a backlog is worked off
/// over several intervals, never resent at once), then retention batches until they come back short, then [`vacuum()`].
pub fn pass(relay: &Relay) -> Result<Pass, DbError> {
    let cfg = relay.config();
    let metrics = relay.metrics();
    let mut conn = relay.pool().get()?;
    let mut out = Pass::default();
    // `None`: another relay's rescuer is running this pass.
    if let Some(r) = state::rescue(&mut conn, cfg.dispatch_timeout, cfg.rescue_batch, &cfg.kafka.topic)? {
        metrics.rescued.with_label_values(&["requeued"]).inc_by(r.requeued as u64);
        metrics.rescued.with_label_values(&["failed"]).inc_by(r.failed as u64);
        metrics.rescued.with_label_values(&["cancelled"]).inc_by(r.cancelled as u64);
        metrics.rescued.with_label_values(&["redispatched"]).inc_by(r.redispatched as u64);
        if r.requeued + r.failed + r.cancelled + r.redispatched > 0 {
            log::info!(
                "rescuer: {} expired leases requeued, {} failed, {} cancelled as requested, {} lost dispatches sent again",
                r.requeued,
                r.failed,
                r.cancelled,
                r.redispatched
            );
        }
        out.rescue = r;
    }
    let batch = cfg.retention_batch;
    out.expired_keys = in_batches(batch, |n| ackbox_db::models::idempotency::delete_expired(&mut conn, n))?;
    out.deleted = in_batches(batch, |n| outbox::delete_published_before(&mut conn, cfg.retention, n))?;
    metrics.retention_deleted.inc_by(out.deleted as u64);
    if let Some(retention) = cfg.job_retention {
        out.deleted_jobs = in_batches(batch, |n| ackbox_db::retention::delete_finished_jobs(&mut conn, retention, n))?;
        metrics.jobs_deleted.inc_by(out.deleted_jobs as u64);
        out.deleted_tombstones =
            in_batches(batch, |n| ackbox_db::retention::delete_old_tombstones(&mut conn, cfg.tombstone_retention, n))?;
    }
    out.vacuumed = vacuum(relay, &mut conn)?;
    Ok(out)
}

/// Runs `delete` (one statement removing at most `batch` rows) until it comes back short, and returns how many rows
/// it removed in all: a backlog is worked off in bounded statements, each holding its locks briefly.
fn in_batches(batch: i64, mut delete: impl FnMut(i64) -> diesel::QueryResult<usize>) -> diesel::QueryResult<usize> {
    let mut total = 0;
    loop {
        let n = delete(batch)?;
        total += n;
        if (n as i64) < batch {
            return Ok(total);
        }
    }
}

/// Reports each churned table's dead versions and whether autovacuum looks after it; where it does not (and
/// `ACKBOX_RELAY_VACUUM` is on), vacuums the tables whose dead versions passed `ACKBOX_VACUUM_DEAD_TUPLES` plus 1 % of
/// their live rows (each vacuum reads the table's whole indexes, so a big table waits for proportionally more), or warns
/// once per table that this role may not. Returns how many it vacuumed. Several relays may do this at once: `VACUUM
/// (SKIP_LOCKED)` skips a table another one is vacuuming.
pub fn vacuum(relay: &Relay, conn: &mut diesel::PgConnection) -> Result<usize, DbError> {
    let cfg = relay.config();
    let metrics = relay.metrics();
    let mut vacuumed = 0;
    for h in vacuum::health(conn)? {
        let label = [h.table.as_str()];
        metrics.dead_tuples.with_label_values(&label).set(h.dead);
        metrics.autovacuum.with_label_values(&label).set(i64::from(h.autovacuum));
        if h.autovacuum || !cfg.vacuum || h.dead < cfg.vacuum_dead_tuples + h.live / 100 {
            continue;
        }
        if !h.can_vacuum {
            if relay.vacuum_warned.lock().unwrap_or_else(|p| p.into_inner()).insert(h.table) {
                log::warn!(
                    "autovacuum is off for table {} ({} dead versions) and this role may not vacuum it: the relay's \
                     claim slows down as they grow; turn autovacuum on, or run the relay as the table's owner",
                    h.table.as_str(),
                    h.dead
                );
            }
            continue;
        }
        let started = Instant::now();
        vacuum::vacuum(conn, h.table)?;
        metrics.vacuums.with_label_values(&label).inc();
        log::info!(
            "vacuumed {} ({} dead versions, autovacuum off) in {} ms",
            h.table.as_str(),
            h.dead,
            started.elapsed().as_millis()
        );
        vacuumed += 1;
    }
    Ok(vacuumed)
}

/// How long backlog samples are kept (the dashboard shows the last hour).
pub const BACKLOG_HISTORY: Duration = Duration::from_secs(24 * 3600);

/// Refreshes the backlog and jobs-by-status gauges, and records a backlog sample for the dashboard's chart.
pub fn refresh_gauges(relay: &Relay) -> Result<(), DbError> {
    let metrics = relay.metrics();
    let mut conn = relay.pool().get()?;
    let backlog = outbox::backlog(&mut conn)?;
    metrics.backlog.set(backlog.unpublished);
    metrics.oldest_unpublished_age.set(backlog.oldest_unpublished_age_secs);
    outbox::record_backlog_sample(&mut conn, &backlog, relay.config().stats_interval / 2, BACKLOG_HISTORY)?;
    metrics.oldest_transaction_age.set(ackbox_db::db::oldest_transaction_age(&mut conn)?);
    for (status, n) in ackbox_db::models::job::count_by_status(&mut conn)? {
        metrics.jobs_by_status.with_label_values(&[status.as_str()]).set(n);
    }
    Ok(())
}

/// Runs passes every `ACKBOX_RESCUE_INTERVAL_MS` and gauge refreshes every `ACKBOX_STATS_INTERVAL_MS` until shutdown.
pub async fn run(relay: Arc<Relay>, mut shutdown: watch::Receiver<bool>) {
    let mut last_stats: Option<Instant> = None;
    while !*shutdown.borrow() {
        let r = relay.clone();
        if let Err(e) = ackbox_runtime::retry::blocking(move || pass(&r)).await {
            log::error!("rescuer/retention pass failed (retried next interval): {e}");
        }
        if last_stats.is_none_or(|t| t.elapsed() >= relay.config().stats_interval) {
            let r = relay.clone();
            if let Err(e) = ackbox_runtime::retry::blocking(move || refresh_gauges(&r)).await {
                log::warn!("refreshing gauges failed: {e}");
            }
            last_stats = Some(Instant::now());
        }
        let wait = relay.config().rescue_interval.min(relay.config().stats_interval).max(Duration::from_millis(10));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}
