//! The r2d2 pool of diesel connections every service uses for its short transactions.

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};

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
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
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
            DbError::Query(_) => false,
        }
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
        .build_unchecked(ConnectionManager::<PgConnection>::new(&cfg.url))
}
