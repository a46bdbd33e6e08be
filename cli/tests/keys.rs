//! The `ackbox keys` commands against a real database.

use std::process::Command;

use ackbox_testing::TestDb;

fn ackbox(db: &TestDb, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ackbox")).args(args).env("DATABASE_URL", db.url()).output().expect("run ackbox")
}

#[test]
fn create_prints_a_working_key_once_list_hides_it_and_revoke_disables_it() {
    let db = TestDb::new();

    let out = ackbox(&db, &["keys", "create", "--tenant", "acme", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let key = created["key"].as_str().expect("key").to_string();
    let mut conn = db.conn();
    let tenant = ackbox_db::models::tenant::authenticate(&mut conn, &key).expect("query");
    assert!(tenant.is_some(), "the printed key authenticates");

    let list = ackbox(&db, &["keys", "list"]);
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(listing.contains("acme") && listing.contains(created["prefix"].as_str().expect("prefix")));
    assert!(!listing.contains(&key), "the key itself is never listed");

    let revoke = ackbox(&db, &["keys", "revoke", created["prefix"].as_str().expect("prefix")]);
    assert!(revoke.status.success());
    assert_eq!(ackbox_db::models::tenant::authenticate(&mut conn, &key).expect("query"), None);
    let again = ackbox(&db, &["keys", "revoke", created["prefix"].as_str().expect("prefix")]);
    assert!(!again.status.success(), "revoking twice says so");
    assert!(String::from_utf8_lossy(&again.stderr).contains("no live key"));
}

#[test]
fn without_a_database_the_error_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_ackbox"))
        .args(["keys", "list"])
        .env_remove("DATABASE_URL")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("make up"), "{}", String::from_utf8_lossy(&out.stderr));
}
