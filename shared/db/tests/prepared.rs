//! The statements every job runs are parsed and planned once per connection, not on every call: diesel keeps them
//! prepared (`ackbox_db::prepared`). Read from Postgres's own list of the session's prepared statements.

use std::time::Duration;

use ackbox_db::models::NewJob;
use ackbox_db::{outbox, state};
use ackbox_testing::TestDb;
use diesel::prelude::*;

#[derive(QueryableByName, Debug)]
struct PreparedRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    runs: i64,
}

/// The session's prepared statements and how often each ran (`pg_prepared_statements`, Postgres 14+).
fn prepared_statements(conn: &mut PgConnection) -> Vec<PreparedRow> {
    diesel::sql_query("SELECT statement, generic_plans + custom_plans AS runs FROM pg_prepared_statements")
        .load(conn)
        .expect("pg_prepared_statements")
}

#[test]
fn submit_claim_heartbeat_completion_and_the_relays_idle_question_are_prepared_once_and_reused() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let lease = Duration::from_secs(30);
    for _ in 0..3 {
        let job = state::submit(&mut conn, &NewJob::new("noop", serde_json::json!({}), 3), "t").expect("submit");
        let claimed = state::claim(&mut conn, &[job.id], lease).expect("claim");
        assert_eq!(claimed.len(), 1);
        let attempt = claimed[0].attempt;
        assert_eq!(state::heartbeat(&mut conn, &[(job.id, attempt)], lease).expect("beat").len(), 1);
        let done = state::complete(&mut conn, &[state::Success { id: job.id, attempt, result: serde_json::json!({}) }])
            .expect("complete");
        assert_eq!(done.len(), 1);
        outbox::queue::next_due(&mut conn).expect("next due");
    }

    let prepared = prepared_statements(&mut conn);
    let complete_sql = state::complete_sql();
    for (what, sql) in [
        ("claim", state::CLAIM_SQL),
        ("heartbeat", state::HEARTBEAT_SQL),
        ("completion", complete_sql.as_str()),
        ("next due", outbox::queue::NEXT_DUE_SQL),
        ("submit", state::SUBMIT_SQL),
    ] {
        let found: Vec<_> = prepared.iter().filter(|p| p.statement == sql).collect();
        assert_eq!(found.len(), 1, "{what} is prepared once on this connection: {prepared:#?}");
        assert_eq!(found[0].runs, 3, "{what} ran three times from the one prepared statement");
    }
}

#[test]
fn a_group_commit_of_any_size_reuses_the_one_prepared_submit_statement() {
    let db = TestDb::new();
    let mut conn = db.conn();
    for size in [1, 4, 9] {
        let news: Vec<NewJob> = (0..size).map(|i| NewJob::new("noop", serde_json::json!({ "i": i }), 3)).collect();
        let items: Vec<state::BatchItem<'_>> = news.iter().map(|new| state::BatchItem { new, key: None }).collect();
        let results = state::submit_batch(&mut conn, &items, "t").expect("the batch commits");
        assert!(results.iter().all(|r| matches!(r, Ok(state::Submitted::Created(_)))), "{results:?}");
    }
    let prepared = prepared_statements(&mut conn);
    let submits: Vec<_> = prepared.iter().filter(|p| p.statement.contains("INSERT INTO jobs")).collect();
    assert_eq!(submits.len(), 1, "one statement for batches of 1, 4 and 9: {prepared:#?}");
    assert_eq!(submits[0].statement, state::SUBMIT_SQL);
    assert_eq!(submits[0].runs, 3, "it ran once per batch");
}
