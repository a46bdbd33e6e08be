//! Retry-After estimates: the observed medians per kind, refreshed by the background thread (`live.rs`) from
//! `ackbox_db::models::job::recent_medians`.

use std::collections::HashMap;
use std::sync::RwLock;

use ackbox_db::db::PgPool;

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

/// Reads the medians of jobs started in the last 10 minutes, by kind: `(to start, run)` in seconds.
pub fn load_estimates(pool: &PgPool) -> Result<HashMap<String, (f64, f64)>, ackbox_db::db::DbError> {
    let mut conn = pool.get()?;
    Ok(ackbox_db::models::job::recent_medians(&mut conn)?)
}
