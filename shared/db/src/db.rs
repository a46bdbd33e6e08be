//! The r2d2 pool of diesel connections every service uses for its short transactions.

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::RunQueryDsl as _;

use crate::config::DbConfig;

/// A pool of Postgres connections.
pub type PgPool = Pool<ConnectionManager<PgConnection>>;
/// A connection checked out of [`PgPool`].
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

/// Why a database operation failed, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time (Postgres down or pool exhausted): retry later / 503.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] diesel::r2d2::PoolError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl DbError {
    /// True when the failure is about reaching Postgres rather than about the query, so retrying later can help.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(e) => is_outage(e),
        }
    }
}

/// True when a query failed because Postgres went away (closed or terminated connection, shutting down), not because
/// it refused the query: the first is worth retrying as is, the second will fail the same way again.
pub fn is_outage(e: &diesel::result::Error) -> bool {
    match e {
        diesel::result::Error::DatabaseError(kind, info) => {
            matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
                || [
                    "terminating connection",
                    "server closed the connection",
                    "no connection to the server",
                    "could not receive data from server",
                    "the database system is",
                ]
                .iter()
                .any(|m| info.message().contains(m))
        }
        diesel::result::Error::BrokenTransactionManager => true,
        _ => false,
    }
}

/// Builds a pool without opening connections up front, so a service starts (and reports not-ready) while Postgres
/// is still coming up.
pub fn build_pool(cfg: &DbConfig) -> PgPool {
    Pool::builder()
        .max_size(cfg.pool_size)
        .min_idle(Some(0))
        .connection_timeout(cfg.connect_timeout)
        .test_on_check_out(false)
        .connection_customizer(Box::new(NoJit))
        .build_unchecked(ConnectionManager::<PgConnection>::new(&cfg.url))
}

/// Turns Postgres's JIT off on every pooled connection. Our statements are short; JIT only pays for long analytic
/// queries, but Postgres decides by the *estimated* cost, and the rescuer's scan of a large backlog crossed
/// `jit_above_cost`: with 100,000 queued jobs it spent 1.5 s compiling for a 75 ms query, every pass (bench/findings.md).
#[derive(Debug)]
struct NoJit;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for NoJit {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        diesel::sql_query("SET jit = off").execute(conn).map(|_| ()).map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(diesel::QueryableByName)]
struct Age {
    #[diesel(sql_type = diesel::sql_types::Double)]
    secs: f64,
}

/// Age in seconds of the oldest open transaction in this database, other than ours (0 when none). Needs
/// `pg_read_all_stats` to see other roles' sessions (the migrations grant it to `ackbox_relay`).
pub fn oldest_transaction_age(conn: &mut diesel::PgConnection) -> Result<f64, DbError> {
    use diesel::RunQueryDsl;
    let age: Age = diesel::sql_query(
        "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::float8 AS secs
           FROM pg_stat_activity
          WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
    )
    .get_result(conn)?;
    Ok(age.secs)
}
