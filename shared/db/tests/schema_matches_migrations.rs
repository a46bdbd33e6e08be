//! `shared/src/schema.rs` is kept by hand; this test fails when it and the migrated database disagree on any
//! table's columns or their nullability.

use std::collections::BTreeMap;

use ackbox_testing::TestDb;
use diesel::prelude::*;

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    nullable: bool,
}

/// (table, column) → nullable, as declared in schema.rs.
fn declared() -> BTreeMap<(String, String), bool> {
    let src = include_str!("../src/schema.rs");
    let mut out = BTreeMap::new();
    let mut table: Option<String> = None;
    for line in src.lines().map(str::trim) {
        if let Some(rest) = line.strip_suffix('{') {
            if let Some((name, _)) = rest.split_once('(') {
                if !name.contains("table!") {
                    table = Some(name.trim().to_string());
                }
            }
        } else if line == "}" {
            table = None;
        } else if let (Some(t), Some((col, ty))) = (&table, line.split_once("->")) {
            out.insert((t.clone(), col.trim().to_string()), ty.trim().starts_with("Nullable<"));
        }
    }
    out
}

#[test]
fn schema_rs_matches_the_migrated_database() {
    let db = TestDb::new();
    let declared = declared();
    assert!(declared.len() > 20, "parsed schema.rs: {declared:?}");
    let tables: Vec<String> = declared.keys().map(|(t, _)| t.clone()).collect();
    let actual: BTreeMap<(String, String), bool> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, is_nullable = 'YES' AS nullable
           FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&tables)
    .load::<Column>(&mut db.conn())
    .expect("columns")
    .into_iter()
    .map(|c| ((c.table_name, c.column_name), c.nullable))
    .collect();
    assert_eq!(declared, actual, "schema.rs (left) differs from the migrations (right)");
}
