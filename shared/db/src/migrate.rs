//! Embedded migrations, run under a Postgres advisory lock so that several processes starting together apply each
//! migration exactly once.

use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The SQL migrations in `migrations/`, compiled into every binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Advisory lock key held while migrating ("ackbox" in ASCII, so it is recognisable in `pg_locks`).
pub const MIGRATION_LOCK_KEY: i64 = 0x61636b626f78;

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Could not connect.
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    /// Taking or releasing the advisory lock failed.
    #[error("advisory lock: {0}")]
    Lock(#[from] diesel::result::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

/// Connects to `database_url` and applies pending migrations; returns the versions applied by this call.
pub fn run_pending(database_url: &str) -> Result<Vec<String>, MigrateError> {
    let mut conn = PgConnection::establish(database_url)?;
    run_pending_on(&mut conn)
}

/// Applies pending migrations on an open connection under the advisory lock.
pub fn run_pending_on(conn: &mut PgConnection) -> Result<Vec<String>, MigrateError> {
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")).execute(conn)?;
    let outcome = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| MigrateError::Migration(e.to_string()));
    // Unlock even when a migration failed; the session ending would release it too, but a pooled caller may go on.
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")).execute(conn)?;
    outcome
}

/// [`run_pending`] off the async executor, for services migrating at start-up.
pub async fn run_pending_in_background(database_url: &str) -> Result<Vec<String>, MigrateError> {
    let url = database_url.to_string();
    tokio::task::spawn_blocking(move || run_pending(&url))
        .await
        .map_err(|e| MigrateError::Migration(format!("migration task failed: {e}")))?
}
