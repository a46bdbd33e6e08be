//! The worker's batch writes cost what their batch holds, whatever Postgres's statistics say about the table. A busy
//! table has almost no `running` jobs among many finished ones, and a freshly loaded backlog was analysed before any
//! ran: either way the planner expects about one running row. A statement that joins its input twice then rescans
//! the whole batch for every row (512 × 512 rows a call, `bench/findings.md` session 13); these plans must stay
//! near the batch's size, as a custom plan and as the generic one a prepared statement ends up with.

use ackbox_db::state;
use ackbox_testing::plan::most_rows_of_a_node;
use ackbox_testing::TestDb;
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

const BATCH: usize = 512;

#[derive(QueryableByName)]
struct Plan {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[diesel(column_name = "QUERY PLAN")]
    plan: String,
}

/// `EXPLAIN ANALYZE` of `sql` prepared with `types` and run with `args`, under `mode` (`plan_cache_mode`), in a
/// transaction rolled back afterwards: the root plan node.
fn explain_prepared(conn: &mut PgConnection, mode: &str, sql: &str, types: &str, args: &str) -> Value {
    let mut out = Value::Null;
    let _ = conn.transaction::<(), diesel::result::Error, _>(|c| {
        diesel::sql_query(format!("SET LOCAL plan_cache_mode = {mode}")).execute(c)?;
        diesel::sql_query("DEALLOCATE ALL").execute(c)?;
        diesel::sql_query(format!("PREPARE batch({types}) AS {sql}")).execute(c)?;
        let row: Plan =
            diesel::sql_query(format!("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE batch({args})")).get_result(c)?;
        let mut doc: Value = serde_json::from_str(&row.plan).expect("EXPLAIN printed JSON");
        out = doc[0]["Plan"].take();
        Err(diesel::result::Error::RollbackTransaction)
    });
    out
}

/// The batch's ids as an SQL array literal.
fn id_list(ids: &[Uuid]) -> String {
    format!("'{{{}}}'::uuid[]", ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(","))
}

/// Asserts that each of `statements` (what, SQL, parameter types, arguments) writes `rows` rows with no plan node
/// handling more than a few times that, as a custom plan and as a generic one.
fn assert_linear(conn: &mut PgConnection, rows: usize, statements: &[(&str, String, &str, String)]) {
    for mode in ["force_custom_plan", "force_generic_plan"] {
        for (what, sql, types, args) in statements {
            let plan = explain_prepared(conn, mode, sql, types, args);
            assert_eq!(plan["Actual Rows"], rows, "{what} ({mode}) wrote every row of the batch: {plan:#}");
            let most = most_rows_of_a_node(&plan);
            assert!(most <= 4 * rows as i64, "{what} ({mode}): a node handled {most} rows for {rows}: {plan:#}");
        }
    }
}

#[test]
fn claim_completion_and_heartbeat_of_a_batch_stay_linear_in_a_backlog_analysed_before_it_ran() {
    let db = TestDb::new();
    let mut conn = db.conn();
    state::preload(&mut conn, 50_000, "noop", "t").expect("preload");
    // Statistics of a backlog nobody has started: no job is running as far as the planner knows.
    diesel::sql_query("ANALYZE jobs").execute(&mut conn).expect("analyze");
    let ids: Vec<Uuid> = {
        use ackbox_db::schema::jobs;
        jobs::table.select(jobs::id).order(jobs::id).limit(BATCH as i64).load(&mut conn).expect("ids")
    };
    let claim =
        ("claim", state::CLAIM_SQL.to_string(), "uuid[], float8, text[]", format!("{}, 30000, NULL", id_list(&ids)));
    assert_linear(&mut conn, BATCH, std::slice::from_ref(&claim));
    let claimed = state::claim(&mut conn, &ids, std::time::Duration::from_secs(30)).expect("claim");
    assert_eq!(claimed.len(), BATCH);

    let attempts = format!("array_fill(1, ARRAY[{BATCH}])");
    let results = format!("array_fill('null'::jsonb, ARRAY[{BATCH}])");
    assert_linear(
        &mut conn,
        BATCH,
        &[
            (
                "complete",
                state::complete_sql(),
                "uuid[], int4[], jsonb[]",
                format!("{}, {attempts}, {results}", id_list(&ids)),
            ),
            (
                "heartbeat",
                state::HEARTBEAT_SQL.to_string(),
                "uuid[], int4[], float8",
                format!("{}, {attempts}, 30000", id_list(&ids)),
            ),
        ],
    );
}

#[test]
fn a_claim_stays_linear_in_a_table_of_finished_jobs() {
    // A busy table's statistics: nearly every job finished, queued ones rare.
    let db = TestDb::new();
    let mut conn = db.conn();
    state::preload(&mut conn, 50_000, "noop", "t").expect("preload");
    diesel::sql_query(format!(
        "UPDATE jobs SET status = 'succeeded', attempts = 1, started_at = now(), finished_at = now()
          WHERE id NOT IN (SELECT id FROM jobs ORDER BY id DESC LIMIT {BATCH})"
    ))
    .execute(&mut conn)
    .expect("finish most");
    diesel::sql_query("VACUUM ANALYZE jobs").execute(&mut conn).expect("analyze");
    let ids: Vec<Uuid> = {
        use ackbox_db::schema::jobs;
        jobs::table.select(jobs::id).order(jobs::id.desc()).limit(BATCH as i64).load(&mut conn).expect("ids")
    };
    let claim =
        ("claim", state::CLAIM_SQL.to_string(), "uuid[], float8, text[]", format!("{}, 30000, NULL", id_list(&ids)));
    assert_linear(&mut conn, BATCH, &[claim]);
}
