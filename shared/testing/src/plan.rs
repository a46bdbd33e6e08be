//! Reading `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` in tests: the promises that a query "reads only the index of
//! X" or "never scans the history" are asserted on the plan Postgres actually ran, not on timings.

use diesel::pg::PgConnection;
use diesel::{QueryableByName, RunQueryDsl};
use serde_json::Value;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[diesel(column_name = "QUERY PLAN")]
    plan: String,
}

/// Runs `sql` under `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` and returns the root plan node (the `"Plan"` of the
/// document's only statement). ANALYZE executes the statement: row locks it takes end with the connection's
/// transaction.
pub fn explain(conn: &mut PgConnection, sql: &str) -> Value {
    let row: Row =
        diesel::sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")).get_result(conn).expect("EXPLAIN");
    let mut doc: Value = serde_json::from_str(&row.plan).expect("EXPLAIN printed JSON");
    doc[0]["Plan"].take()
}

/// Every node of a plan, depth first, the root first.
pub fn nodes(plan: &Value) -> Vec<&Value> {
    let mut out = vec![plan];
    for child in plan["Plans"].as_array().into_iter().flatten() {
        out.extend(nodes(child));
    }
    out
}

/// Shared buffers the whole plan touched (hit or read): the cost that grows with what a query visits.
pub fn buffers(plan: &Value) -> i64 {
    plan["Shared Hit Blocks"].as_i64().unwrap_or(0) + plan["Shared Read Blocks"].as_i64().unwrap_or(0)
}

/// The plan's node that scans one of `indexes`, if any.
pub fn index_scan<'p>(plan: &'p Value, indexes: &[&str]) -> Option<&'p Value> {
    nodes(plan).into_iter().find(|n| indexes.iter().any(|i| n["Index Name"] == *i))
}

/// The most rows any one node of the plan produced or threw away over all its loops (`Actual Rows` and the rows its
/// filters removed, which EXPLAIN prints per loop, times `Actual Loops`). A statement whose work is linear in its
/// input keeps this near the input's size; a nested loop that rescans the input for every row makes it the square.
pub fn most_rows_of_a_node(plan: &Value) -> i64 {
    let per_loop =
        ["Actual Rows", "Rows Removed by Filter", "Rows Removed by Join Filter", "Rows Removed by Index Recheck"];
    nodes(plan)
        .iter()
        .map(|n| {
            let loops = n["Actual Loops"].as_f64().unwrap_or(1.0);
            (per_loop.iter().map(|k| n[*k].as_f64().unwrap_or(0.0)).sum::<f64>() * loops).round() as i64
        })
        .max()
        .unwrap_or(0)
}

/// Whether any node of the plan is a sequential scan.
pub fn has_seq_scan(plan: &Value) -> bool {
    nodes(plan).iter().any(|n| n["Node Type"] == "Seq Scan")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_buffers_and_index_scans_are_read_from_nested_plans() {
        let plan = serde_json::json!({
            "Node Type": "Limit", "Shared Hit Blocks": 3, "Shared Read Blocks": 4,
            "Plans": [{"Node Type": "Sort", "Plans": [
                {"Node Type": "Index Scan", "Index Name": "b_idx"},
                {"Node Type": "Seq Scan"}
            ]}]
        });
        assert_eq!(nodes(&plan).len(), 4);
        assert_eq!(buffers(&plan), 7);
        assert_eq!(index_scan(&plan, &["a_idx", "b_idx"]).expect("found")["Node Type"], "Index Scan");
        assert!(index_scan(&plan, &["a_idx"]).is_none());
        assert!(has_seq_scan(&plan));
        assert!(!has_seq_scan(&plan["Plans"][0]["Plans"][0]));
    }

    #[test]
    fn the_busiest_node_counts_its_rows_and_filtered_rows_over_every_loop() {
        let plan = serde_json::json!({
            "Node Type": "Nested Loop", "Actual Rows": 512, "Actual Loops": 1, "Rows Removed by Join Filter": 1000,
            "Plans": [
                {"Node Type": "Function Scan", "Actual Rows": 512, "Actual Loops": 512},
                {"Node Type": "Index Scan", "Actual Rows": 1, "Actual Loops": 512, "Rows Removed by Filter": 0.5}
            ]
        });
        assert_eq!(most_rows_of_a_node(&plan), 512 * 512);
        assert_eq!(most_rows_of_a_node(&plan["Plans"][1]), 768);
        assert_eq!(most_rows_of_a_node(&serde_json::json!({"Node Type": "Result"})), 0, "a node without counts");
    }
}
