//! Completion callbacks in the database: the trigger writes the delivery row in the very transaction that ends the
//! job (whoever ends it, under its own role), and every outcome is fenced by the claim's attempt number.

use std::time::Duration;

use ackbox_db::callbacks;
use ackbox_db::models::{Job, NewJob};
use ackbox_db::state::{self, Success};
use ackbox_testing::TestDb;
use diesel::prelude::*;
use uuid::Uuid;

const TOPIC: &str = "ackbox.test";

fn submit(db: &TestDb, callback: Option<&str>) -> Uuid {
    let mut job = NewJob::new("echo", serde_json::json!({}), 3);
    job.callback_url = callback.map(str::to_string);
    state::submit(&mut db.conn(), &job, TOPIC).expect("submit").id
}

fn rows(db: &TestDb, id: Uuid) -> i64 {
    use ackbox_db::schema::callbacks::dsl;
    dsl::callbacks.filter(dsl::job_id.eq(id)).count().get_result(&mut db.conn()).expect("count")
}

fn succeed(conn: &mut PgConnection, id: Uuid) {
    let claimed = state::claim(conn, &[id], Duration::from_secs(30)).expect("claim");
    let attempt = claimed[0].attempt;
    let done = state::complete(conn, &[Success { id, attempt, result: serde_json::json!(1) }]).expect("complete");
    assert_eq!(done.len(), 1);
}

fn job(db: &TestDb, id: Uuid) -> Job {
    Job::find(&mut db.conn(), id).expect("find").expect("job")
}

#[test]
fn ending_a_job_with_a_callback_writes_its_delivery_in_the_same_transaction_once() {
    let db = TestDb::new();
    let with = submit(&db, Some("https://example.com/hook"));
    let without = submit(&db, None);

    // A transaction that ends the job and then rolls back leaves no delivery behind.
    let _ = db.conn().transaction(|c| {
        succeed(c, with);
        Err::<(), _>(diesel::result::Error::RollbackTransaction)
    });
    assert_eq!(rows(&db, with), 0, "rolled back with the status");

    succeed(&mut db.conn(), with);
    succeed(&mut db.conn(), without);
    assert_eq!((rows(&db, with), rows(&db, without)), (1, 0));
    let j = job(&db, with);
    assert_eq!((j.callback_state.as_deref(), j.callback_attempts), (Some("pending"), 0));
    // A later write to the finished job (a stale duplicate outcome) adds none.
    diesel::sql_query("UPDATE jobs SET status = status, updated_at = now() WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(with)
        .execute(&mut db.conn())
        .expect("touch");
    assert_eq!(rows(&db, with), 1);
}

#[test]
fn the_worker_and_relay_roles_can_end_a_job_that_has_a_callback() {
    let db = TestDb::new();
    for role in ["ackbox_worker", "ackbox_relay"] {
        let id = submit(&db, Some("https://example.com/hook"));
        let mut conn = PgConnection::establish(&db.url_as(role)).expect("connect");
        diesel::sql_query("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("{role} ends a job: {e}"));
        assert_eq!(rows(&db, id), 1, "{role}");
    }
}

#[test]
fn an_outcome_is_fenced_by_its_claim_and_retries_wait_out_their_backoff() {
    let db = TestDb::new();
    let id = submit(&db, Some("https://example.com/hook"));
    succeed(&mut db.conn(), id);

    // Attempt 1 is claimed, and its lease lapses (a stalled or killed sender): attempt 2 takes it.
    let first = callbacks::claim(&mut db.conn(), 10, Duration::ZERO).expect("claim");
    assert_eq!((first.len(), first[0].attempt), (1, 1));
    std::thread::sleep(Duration::from_millis(5));
    let second = callbacks::claim(&mut db.conn(), 10, Duration::from_secs(60)).expect("claim");
    assert_eq!((second.len(), second[0].attempt), (1, 2));
    assert!(callbacks::claim(&mut db.conn(), 10, Duration::from_secs(60)).expect("claim").is_empty(), "leased");

    // The stalled attempt 1 reports late: nothing changes.
    assert!(!callbacks::delivered(&mut db.conn(), first[0].id, 1).expect("delivered"));
    callbacks::failed(&mut db.conn(), first[0].id, 1, "late", None).expect("failed");
    assert_eq!((rows(&db, id), job(&db, id).callback_state.as_deref()), (1, Some("pending")));

    // Attempt 2 fails: retried after its backoff, and the job says why.
    callbacks::failed(&mut db.conn(), second[0].id, 2, "the receiver answered 503", Some(Duration::from_secs(60)))
        .expect("failed");
    let j = job(&db, id);
    assert_eq!(
        (j.callback_state.as_deref(), j.callback_attempts, j.callback_last_error.as_deref()),
        (Some("pending"), 2, Some("the receiver answered 503"))
    );
    assert!(callbacks::claim(&mut db.conn(), 10, Duration::from_secs(60)).expect("claim").is_empty(), "backing off");

    // Due again: attempt 3 delivers.
    diesel::sql_query("UPDATE callbacks SET available_at = now() WHERE job_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut db.conn())
        .expect("due");
    let third = callbacks::claim(&mut db.conn(), 10, Duration::from_secs(60)).expect("claim");
    assert_eq!(third[0].attempt, 3);
    assert!(callbacks::delivered(&mut db.conn(), third[0].id, 3).expect("delivered"));
    let j = job(&db, id);
    assert_eq!((j.callback_state.as_deref(), j.callback_attempts, j.callback_last_error), (Some("delivered"), 3, None));
    assert_eq!(rows(&db, id), 0);
}

#[test]
fn giving_up_says_failed_and_a_newer_end_is_not_overwritten_by_an_older_ones_outcome() {
    let db = TestDb::new();
    let id = submit(&db, Some("https://example.com/hook"));
    succeed(&mut db.conn(), id);
    let old = callbacks::claim(&mut db.conn(), 10, Duration::from_secs(60)).expect("claim");
    // Meanwhile the job is retried by an operator and ends again: a second delivery for the new end.
    diesel::sql_query("UPDATE jobs SET status = 'queued', finished_at = NULL WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut db.conn())
        .expect("requeue");
    succeed(&mut db.conn(), id);
    assert_eq!(rows(&db, id), 2);
    // The old end's callback gives up: the job's state is the new end's, still pending.
    callbacks::failed(&mut db.conn(), old[0].id, 1, "gone", None).expect("failed");
    assert_eq!((rows(&db, id), job(&db, id).callback_state.as_deref()), (1, Some("pending")));
    // The new one gives up too: failed.
    let new = callbacks::claim(&mut db.conn(), 10, Duration::from_secs(60)).expect("claim");
    callbacks::failed(&mut db.conn(), new[0].id, 1, "the receiver answered 410", None).expect("failed");
    let j = job(&db, id);
    assert_eq!(
        (j.callback_state.as_deref(), j.callback_last_error.as_deref()),
        (Some("failed"), Some("the receiver answered 410"))
    );
    assert_eq!(rows(&db, id), 0);
}

#[test]
fn a_tenants_secret_is_made_once_and_kept() {
    let db = TestDb::new();
    let tenant = ackbox_db::models::tenant::ensure_tenant(&mut db.conn(), "t").expect("tenant").id;
    let first = callbacks::secret(&mut db.conn(), tenant, "whsec_first").expect("secret");
    let again = callbacks::secret(&mut db.conn(), tenant, "whsec_second").expect("secret");
    assert_eq!((first.as_deref(), again.as_deref()), (Some("whsec_first"), Some("whsec_first")));
    assert_eq!(callbacks::secret(&mut db.conn(), Uuid::now_v7(), "x").expect("secret"), None, "no such tenant");
}
