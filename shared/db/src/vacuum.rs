//! Dead versions in the tables every job churns, and vacuuming them where autovacuum does not (#14).
//!
//! A job's claim and completion each leave a dead `jobs` version, the relay's mark and retention's delete leave dead
//! `outbox` versions, and their index entries stay until vacuum removes them. Job retention's tombstones and delivered
//! callbacks are deleted too, and a table whose dead versions are never vacuumed never reuses their space. The relay's claim walks every dead
//! entry of `outbox_unpublished_idx`, so without vacuum it slows down in proportion to all rows ever published
//! (measured: 11 to 19 ms per claim with 300,000 of them, 0.4 ms after one VACUUM). Migration 8 makes autovacuum
//! prompt on these tables; where autovacuum is off altogether (a CI Postgres, a misconfigured server), the relay
//! calls [`vacuum`] itself when [`health`] says so.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text};

/// A table whose dead versions Ackbox watches. A closed set, so [`vacuum`] never builds SQL from input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `outbox`: marked published by the relay, deleted by retention.
    Outbox,
    /// `jobs`: claimed and completed by workers.
    Jobs,
    /// `idempotency_keys`: deleted once expired.
    IdempotencyKeys,
    /// `job_tombstones`: written by job retention, deleted after their own retention.
    JobTombstones,
    /// `callbacks`: one row per job end with a `callback_url`, deleted once delivered or given up.
    Callbacks,
}

impl Table {
    /// Every watched table.
    pub const ALL: [Table; 5] =
        [Table::Outbox, Table::Jobs, Table::IdempotencyKeys, Table::JobTombstones, Table::Callbacks];

    /// The table's name in SQL and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Outbox => "outbox",
            Table::Jobs => "jobs",
            Table::IdempotencyKeys => "idempotency_keys",
            Table::JobTombstones => "job_tombstones",
            Table::Callbacks => "callbacks",
        }
    }

    fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// What Postgres says of one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableHealth {
    /// Which table.
    pub table: Table,
    /// Live rows (`pg_stat_user_tables.n_live_tup`, an estimate).
    pub live: i64,
    /// Dead versions not yet vacuumed (`n_dead_tup`, an estimate; backends report theirs within about a second).
    pub dead: i64,
    /// Whether autovacuum looks after it: the server's `autovacuum` is on and the table does not turn it off.
    pub autovacuum: bool,
    /// Whether this connection's role may vacuum it (superuser, or a member of the table's or the database's owner).
    pub can_vacuum: bool,
}

#[derive(QueryableByName)]
struct HealthRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    live: i64,
    #[diesel(sql_type = BigInt)]
    dead: i64,
    #[diesel(sql_type = Bool)]
    autovacuum: bool,
    #[diesel(sql_type = Bool)]
    can_vacuum: bool,
}

/// The health of every watched table, in [`Table::ALL`] order. Any role can read it (statistics views).
pub fn health(conn: &mut PgConnection) -> QueryResult<Vec<TableHealth>> {
    let names: Vec<&str> = Table::ALL.iter().map(|t| t.as_str()).collect();
    let rows: Vec<HealthRow> = diesel::sql_query(
        "SELECT c.relname::text AS name,
                coalesce(s.n_live_tup, 0) AS live,
                coalesce(s.n_dead_tup, 0) AS dead,
                current_setting('autovacuum')::bool
                  AND NOT EXISTS (SELECT 1 FROM unnest(c.reloptions) o
                                   WHERE o ~* '^autovacuum_enabled=(false|off|no|n|f|0)$') AS autovacuum,
                r.rolsuper OR pg_has_role(current_user, c.relowner, 'MEMBER')
                  OR pg_has_role(current_user, d.datdba, 'MEMBER') AS can_vacuum
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
           JOIN pg_roles r ON r.rolname = current_user
           JOIN pg_database d ON d.datname = current_database()
           LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
          WHERE c.relname = ANY($1) AND c.relkind IN ('r', 'p')",
    )
    .bind::<Array<Text>, _>(names)
    .load(conn)?;
    let mut out: Vec<TableHealth> = rows
        .into_iter()
        .filter_map(|r| {
            Some(TableHealth {
                table: Table::from_name(&r.name)?,
                live: r.live,
                dead: r.dead,
                autovacuum: r.autovacuum,
                can_vacuum: r.can_vacuum,
            })
        })
        .collect();
    out.sort_by_key(|h| h.table);
    Ok(out)
}

/// `VACUUM (SKIP_LOCKED, TRUNCATE false)` of one table: removes its dead versions and their index entries without
/// blocking reads or writes, and skips the table (without waiting) while another vacuum holds it. `TRUNCATE false`:
/// giving empty trailing pages back to the operating system takes an ACCESS EXCLUSIVE lock that stalls every claim
/// and submit while vacuum checks the pages; a queue table reuses them soon anyway. Must not run inside a transaction.
pub fn vacuum(conn: &mut PgConnection, table: Table) -> QueryResult<()> {
    diesel::sql_query(format!("VACUUM (SKIP_LOCKED, TRUNCATE false) {}", table.as_str())).execute(conn).map(|_| ())
}
