//! Raw SQL that Postgres parses and plans once per connection instead of on every call.
//!
//! diesel keeps a prepared statement per connection for the queries its DSL builds, but never for [`sql_query`]: it
//! cannot know that the text is one of a few. Every call then makes Postgres parse, analyse and plan the statement
//! again, which for the worker's claim and completion (CTEs over the batch) and the relay's idle-round question cost
//! more than running them: at 1,000 jobs/s, planning alone took ~0.12 ms of Postgres CPU per job
//! (`pg_stat_statements` with `track_planning`, `bench/findings.md`, session 15).
//!
//! [`prepared`] marks a query as safe to keep: diesel then caches it keyed by its SQL text and bind types, like its
//! own. Only for SQL from a bounded set (constants, or text built from constants): each distinct text stays prepared
//! on every pooled connection for the connection's life. Postgres plans a prepared statement afresh for its first
//! five runs and may then keep a generic plan; the statements this wraps are checked as generic plans too
//! (`tests/batch_plans.rs`).
//!
//! [`sql_query`]: diesel::sql_query

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// A query diesel may keep prepared per connection; see the module documentation.
#[derive(Debug, Clone)]
#[must_use = "Queries are only executed when calling `load`, `get_result`, or similar."]
pub struct Prepared<Q>(Q);

/// Wraps `query`, a [`diesel::sql_query`] with its binds whose SQL text is one of a bounded set, so that diesel keeps
/// its prepared statement.
pub fn prepared<Q>(query: Q) -> Prepared<Q> {
    Prepared(query)
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    // The one difference from the wrapped query: `sql_query` says "never cache", which is right for arbitrary text and
    // needless for ours. diesel keys such a statement by its SQL and bind types (no static query id below).
    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for Prepared<Q> {}
