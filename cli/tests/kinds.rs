//! `ackbox kinds ...` against a real database.

use std::process::Command;

use ackbox_testing::TestDb;

fn ackbox(db: &TestDb, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ackbox")).args(args).env("DATABASE_URL", db.url()).output().expect("run ackbox")
}

#[test]
fn kinds_are_registered_and_listed_and_an_invalid_one_writes_nothing() {
    let db = TestDb::new();
    let out = ackbox(&db, &["kinds", "register", "noop", "report.pdf"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = ackbox(&db, &["--json", "kinds", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kinds: Vec<String> = serde_json::from_slice(&out.stdout).expect("json list");
    assert_eq!(kinds, vec!["noop".to_string(), "report.pdf".to_string()]);

    // One bad kind refuses the whole call: nothing is registered.
    let out = ackbox(&db, &["kinds", "register", "ok-kind", "has space"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has space"), "the error names the bad kind");
    let out = ackbox(&db, &["--json", "kinds", "list"]);
    let kinds: Vec<String> = serde_json::from_slice(&out.stdout).expect("json list");
    assert_eq!(kinds.len(), 2, "nothing new: {kinds:?}");
}
