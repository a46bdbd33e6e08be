//! The least-privilege roles the migrations create: each has its timeouts, and each is refused what its service
//! never does. (That each can do what its service does is shown by the e2e tests, which run every process as its
//! role.)

use ackbox_testing::TestDb;
use diesel::prelude::*;

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

fn show(conn: &mut PgConnection, name: &str) -> String {
    diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
        .get_result::<Setting>(conn)
        .expect("show")
        .value
}

fn as_role(db: &TestDb, role: &str) -> PgConnection {
    PgConnection::establish(&db.url_as(role)).unwrap_or_else(|e| panic!("connect as {role}: {e}"))
}

/// Runs `sql` as `role` and says whether Postgres refused it for lack of privilege.
fn denied(db: &TestDb, role: &str, sql: &str) -> bool {
    match diesel::sql_query(sql).execute(&mut as_role(db, role)) {
        Err(diesel::result::Error::DatabaseError(_, info)) => info.message().contains("permission denied"),
        Err(e) => panic!("{role}: {sql}: unexpected error {e}"),
        Ok(_) => false,
    }
}

#[test]
fn every_service_role_has_statement_and_idle_in_transaction_timeouts() {
    let db = TestDb::new();
    for (role, statement, idle) in [
        ("ackbox_api", "15s", "30s"),
        ("ackbox_relay", "30s", "1min"),
        ("ackbox_worker", "15s", "30s"),
        ("ackbox_keys", "15s", "30s"),
    ] {
        let mut conn = as_role(&db, role);
        assert_eq!(show(&mut conn, "statement_timeout"), statement, "{role}");
        assert_eq!(show(&mut conn, "idle_in_transaction_session_timeout"), idle, "{role}");
    }
    // The admin connection the tests and migrations use is not limited.
    assert_eq!(show(&mut db.conn(), "statement_timeout"), "0");
}

#[test]
fn each_role_is_refused_what_its_service_never_does() {
    let db = TestDb::new();
    // api: never deletes history, never writes keys.
    assert!(denied(&db, "ackbox_api", "DELETE FROM outbox"));
    assert!(denied(&db, "ackbox_api", "DELETE FROM jobs"));
    assert!(denied(&db, "ackbox_api", "UPDATE api_keys SET revoked_at = now()"));
    assert!(denied(&db, "ackbox_api", "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'x')"));
    // relay: never creates jobs, never reads keys.
    assert!(denied(&db, "ackbox_relay", "INSERT INTO jobs (id, kind) VALUES (gen_random_uuid(), 'x')"));
    assert!(denied(&db, "ackbox_relay", "SELECT key_hash FROM api_keys"));
    // worker: never creates jobs, never reads keys or idempotency records, never deletes.
    assert!(denied(&db, "ackbox_worker", "INSERT INTO jobs (id, kind) VALUES (gen_random_uuid(), 'x')"));
    assert!(denied(&db, "ackbox_worker", "SELECT key_hash FROM api_keys"));
    assert!(denied(&db, "ackbox_worker", "SELECT * FROM idempotency_keys"));
    assert!(denied(&db, "ackbox_worker", "DELETE FROM outbox"));
    // keys (migration 10): tenants and keys only.
    assert!(denied(&db, "ackbox_keys", "SELECT count(*) FROM jobs"));
    assert!(denied(&db, "ackbox_keys", "DELETE FROM api_keys"));
    assert!(denied(&db, "ackbox_keys", "UPDATE api_keys SET key_hash = ''"));
    assert!(!denied(&db, "ackbox_keys", "UPDATE api_keys SET revoked_at = now() WHERE false"));
    // And what they do is allowed (a control, so the checks above cannot pass for another reason).
    assert!(!denied(&db, "ackbox_api", "SELECT count(*) FROM jobs"));
    assert!(!denied(&db, "ackbox_relay", "DELETE FROM outbox WHERE false"));
    assert!(!denied(&db, "ackbox_worker", "UPDATE jobs SET updated_at = now() WHERE false"));
}

#[test]
fn the_relay_role_can_run_every_rescuer_part() {
    // Both parts of the rescuer as ackbox_relay, with work to do: the stale-dispatch part reads job_kinds (a skipped
    // job goes out again once a worker for its kind registers), which the role lacked until migration 9.
    let db = TestDb::new();
    let mut admin = db.conn();
    let job =
        ackbox_db::state::submit(&mut admin, &ackbox_db::models::NewJob::new("noop", serde_json::json!({}), 3), "t")
            .expect("submit");
    diesel::sql_query("UPDATE outbox SET published_at = now() - interval '1 hour'").execute(&mut admin).expect("age");
    diesel::sql_query("UPDATE jobs SET updated_at = now() - interval '1 hour'").execute(&mut admin).expect("age");

    let mut relay = as_role(&db, "ackbox_relay");
    let report = ackbox_db::state::rescue(&mut relay, std::time::Duration::from_secs(60), 100, "t")
        .expect("the rescuer runs as ackbox_relay")
        .expect("no other rescuer holds the lock");

    assert_eq!(report.redispatched, 1, "the lost dispatch of {} is sent again", job.id);
}
