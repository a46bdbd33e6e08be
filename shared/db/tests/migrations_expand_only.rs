//! The rolling-deploy rule for migrations, checked on every `cargo test` (so in CI): while a migration is applied,
//! the previous release's binaries are still running, so a migration may only **expand** the schema. Anything that
//! breaks the previous release's reads or writes is a **contract** step and must wait for a later release, marked
//! with a `-- contract: <why the previous release no longer needs it>` line (see migrations/README.md).
//!
//! Refused in an expand migration:
//! - a column added `NOT NULL` without a `DEFAULT` (the previous release's INSERTs do not name it);
//! - `ALTER COLUMN ... DROP DEFAULT | SET NOT NULL | TYPE`, `DROP COLUMN`, `DROP TABLE`, `RENAME`;
//! - a constraint added to an existing table without `NOT VALID` (it scans and locks the table);
//! - `CREATE INDEX` on an existing table without `CONCURRENTLY` (it blocks writes for the whole build), and
//!   `CONCURRENTLY` in a migration that runs in a transaction (Postgres refuses it: add a `metadata.toml` with
//!   `run_in_transaction = false`);
//! - `DROP INDEX` without `CONCURRENTLY` (it waits for, and then blocks, every read and write of the table).

use std::path::Path;

/// Migrations applied before the rule existed. They are never run again on a live database, so they are not
/// rewritten; each names what it broke.
const GRANDFATHERED: &[(&str, &str)] = &[
    ("2026-11-25-000002_delivery", "indexes on jobs and outbox built without CONCURRENTLY"),
    (
        "2026-11-25-000003_api_contract",
        "jobs.tenant_id made NOT NULL without a default (DROP DEFAULT) and an index built without CONCURRENTLY",
    ),
];

/// Why `sql` (one migration's up.sql) is not expand-only, one line per problem. `in_transaction` is whether the
/// migration runs in a transaction (no `metadata.toml` saying otherwise).
fn violations(sql: &str, in_transaction: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let statements = statements(sql);
    let created: Vec<String> = statements
        .iter()
        .filter_map(|(s, _)| {
            s.strip_prefix("create table ").map(|rest| first_word(rest.trim_start_matches("if not exists ")))
        })
        .collect();
    for (s, contract) in &statements {
        if *contract {
            continue;
        }
        let on_existing = |table: &str| !created.iter().any(|c| c == table);
        if let Some(rest) = s.strip_prefix("alter table ") {
            let table = first_word(rest.trim_start_matches("only ").trim_start_matches("if exists "));
            for clause in rest.split(',') {
                let c = clause.trim();
                if c.contains("add column") && c.contains("not null") && !c.contains("default") {
                    problems.push(format!("{table}: a NOT NULL column without a DEFAULT: {c}"));
                }
                for bad in ["drop default", "set not null", " type ", "drop column", "rename "] {
                    if c.contains(bad) && !(bad == " type " && c.contains("add column")) {
                        problems.push(format!("{table}: `{}` breaks the previous release: {c}", bad.trim()));
                    }
                }
                if c.contains("add constraint") && !c.contains("not valid") && on_existing(&table) {
                    problems.push(format!("{table}: a constraint without NOT VALID: {c}"));
                }
            }
        }
        if s.starts_with("drop table") {
            problems.push(format!("`{s}` breaks the previous release"));
        }
        if s.starts_with("create index") || s.starts_with("create unique index") {
            let table = s.split(" on ").nth(1).map(first_word).unwrap_or_default();
            if s.contains(" concurrently ") {
                if in_transaction {
                    problems.push(format!("{table}: CREATE INDEX CONCURRENTLY needs run_in_transaction = false"));
                }
            } else if on_existing(&table) {
                problems.push(format!("{table}: an index on an existing table without CONCURRENTLY: {s}"));
            }
        }
        if s.starts_with("drop index") {
            if !s.contains(" concurrently ") {
                problems.push(format!("DROP INDEX without CONCURRENTLY locks its table: {s}"));
            } else if in_transaction {
                problems.push(format!("DROP INDEX CONCURRENTLY needs run_in_transaction = false: {s}"));
            }
        }
    }
    problems
}

/// Statements, lower-cased and on one line each, with function bodies (`$$ ... $$`) and comments removed, each
/// with whether a `-- contract:` line marked it.
fn statements(sql: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let (mut current, mut contract, mut in_body) = (String::new(), false, false);
    for line in sql.lines() {
        let line = line.trim();
        if line.to_lowercase().starts_with("-- contract:") {
            contract = true;
            continue;
        }
        let code = line.split("--").next().unwrap_or("");
        for (i, part) in code.split("$$").enumerate() {
            if i > 0 {
                in_body = !in_body;
            }
            if in_body {
                continue;
            }
            for ch in part.chars() {
                if ch == ';' {
                    let s = current.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
                    if !s.is_empty() {
                        out.push((s, contract));
                    }
                    current.clear();
                    contract = false;
                } else {
                    current.push(ch);
                }
            }
        }
        current.push(' ');
    }
    out
}

fn first_word(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("").trim_matches('"').to_string()
}

#[test]
fn every_migration_after_the_grandfathered_ones_is_expand_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut checked = 0;
    let mut dirs: Vec<_> =
        std::fs::read_dir(&dir).expect("migrations dir").flatten().filter(|e| e.path().is_dir()).collect();
    dirs.sort_by_key(|e| e.file_name());
    for entry in dirs {
        let name = entry.file_name().to_string_lossy().to_string();
        let sql = std::fs::read_to_string(entry.path().join("up.sql")).expect("up.sql");
        let metadata = std::fs::read_to_string(entry.path().join("metadata.toml")).unwrap_or_default();
        let in_transaction = !metadata.replace(' ', "").contains("run_in_transaction=false");
        let problems = violations(&sql, in_transaction);
        match GRANDFATHERED.iter().find(|(g, _)| *g == name) {
            Some((_, what)) => {
                assert!(!problems.is_empty(), "{name} is grandfathered for {what:?} but passes: drop it")
            }
            None => {
                assert!(problems.is_empty(), "{name} is not expand-only:\n  {}", problems.join("\n  "));
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "the migrations were found and checked ({checked})");
}

#[test]
fn the_rule_catches_what_would_break_a_rolling_deploy_and_allows_expansion() {
    let bad = [
        "ALTER TABLE jobs ADD COLUMN owner uuid NOT NULL;",
        "ALTER TABLE jobs ALTER COLUMN tenant_id DROP DEFAULT;",
        "ALTER TABLE jobs ALTER COLUMN kind SET NOT NULL;",
        "ALTER TABLE jobs DROP COLUMN progress;",
        "ALTER TABLE jobs RENAME COLUMN kind TO job_kind;",
        "ALTER TABLE jobs ALTER COLUMN attempts TYPE bigint;",
        "CREATE INDEX jobs_kind_idx ON jobs (kind);",
        "CREATE INDEX CONCURRENTLY jobs_kind_idx ON jobs (kind);",
        "ALTER TABLE jobs ADD CONSTRAINT kind_len CHECK (length(kind) < 64);",
        "DROP TABLE job_effects;",
        "DROP INDEX jobs_queued_idx;",
        "DROP INDEX CONCURRENTLY jobs_queued_idx;",
    ];
    for sql in bad {
        assert!(!violations(sql, true).is_empty(), "not caught: {sql}");
    }
    let good = [
        "ALTER TABLE jobs ADD COLUMN owner uuid;",
        "ALTER TABLE jobs ADD COLUMN n integer NOT NULL DEFAULT 0;",
        "CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL); CREATE INDEX t_v_idx ON t (v);",
        "ALTER TABLE jobs ADD CONSTRAINT kind_len CHECK (length(kind) < 64) NOT VALID;",
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DROP TABLE x; RETURN NULL; END $$;",
        "-- contract: release 7 no longer reads it\nALTER TABLE jobs DROP COLUMN progress;",
    ];
    for sql in good {
        assert!(violations(sql, true).is_empty(), "refused: {sql}: {:?}", violations(sql, true));
    }
    assert!(violations("CREATE INDEX CONCURRENTLY i ON jobs (kind);", false).is_empty());
    assert!(violations("DROP INDEX CONCURRENTLY IF EXISTS i;", false).is_empty());
}
