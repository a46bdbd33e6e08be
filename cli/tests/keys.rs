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

#[test]
fn a_bootstrap_key_from_the_environment_is_stored_once_as_the_least_privileged_keys_role() {
    let db = TestDb::new();
    // As a deploy's bootstrap Job runs it: the ackbox_keys role (migration 10), not the schema owner.
    let as_keys_role = |args: &[&str], key: &str| {
        Command::new(env!("CARGO_BIN_EXE_ackbox"))
            .args(args)
            .env("DATABASE_URL", db.url_as("ackbox_keys"))
            .env("ACKBOX_BOOTSTRAP_KEY", key)
            .output()
            .expect("run ackbox")
    };
    let key = "ackbox_0123456789ab_00112233445566778899aabbccddeeff0011223344556677";
    let args = ["keys", "create", "--tenant", "ops", "--admin", "--key-from-env", "ACKBOX_BOOTSTRAP_KEY", "--json"];
    for expected in ["stored", "already present"] {
        let out = as_keys_role(&args, key);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let said: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(said["result"], expected);
        assert!(!String::from_utf8_lossy(&out.stdout).contains(key), "the key is never printed");
    }
    let mut conn = db.conn();
    let tenant = ackbox_db::models::tenant::authenticate(&mut conn, key).expect("query").expect("the key works");
    assert!(ackbox_db::models::tenant::is_admin(&mut conn, tenant).expect("query"), "the tenant is an admin");

    // Another key under the same prefix, and a malformed one, are refused and change nothing.
    let clash = "ackbox_0123456789ab_ffffffffffffffffffffffffffffffffffffffffffffffff";
    for bad in [clash, "not-a-key"] {
        let out = as_keys_role(&args, bad);
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(bad) || bad == "not-a-key", "the key is echoed");
    }
    assert_eq!(ackbox_db::models::tenant::authenticate(&mut conn, clash).expect("query"), None);
    // The role revokes and lists too (everything `ackbox keys` does), and nothing beyond keys and tenants.
    let revoke = as_keys_role(&["keys", "revoke", "0123456789ab"], key);
    assert!(revoke.status.success(), "{}", String::from_utf8_lossy(&revoke.stderr));
    assert_eq!(ackbox_db::models::tenant::authenticate(&mut conn, key).expect("query"), None);
    let jobs = as_keys_role(&["jobs", "ls"], key);
    assert!(!jobs.status.success(), "the keys role read jobs");
}
