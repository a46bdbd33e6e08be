//! Group commit (`state::submit_batch`) against a real database: many submissions in one transaction, each with its
//! own outcome; a refused one fails alone; two with one Idempotency-Key in one batch make one job; a batch whose
//! connection dies mid-way writes nothing.

use std::time::Duration;

use ackbox_db::models::{Job, NewJob};
use ackbox_db::state::{self, BatchItem, IdempotencyKey, Submitted};
use ackbox_testing::{wait_for, TestDb};
use diesel::prelude::*;

const TOPIC: &str = "ackbox.test";

fn counts(conn: &mut PgConnection) -> (i64, i64) {
    use ackbox_db::schema::{jobs, outbox};
    (jobs::table.count().get_result(conn).expect("jobs"), outbox::table.count().get_result(conn).expect("outbox"))
}

fn key(k: &str) -> IdempotencyKey<'_> {
    IdempotencyKey { key: k, fingerprint: b"same body", expires_at: chrono::Utc::now() + chrono::Duration::hours(1) }
}

#[test]
fn a_batch_commits_every_job_with_its_dispatch_and_a_refused_one_fails_alone() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let good: Vec<NewJob> = (0..5).map(|i| NewJob::new("noop", serde_json::json!({"i": i}), 3)).collect();
    // A tenant that does not exist: Postgres refuses this one row (foreign key), after validation let it through.
    let bad = NewJob::new("noop", serde_json::json!({}), 3).for_tenant(uuid::Uuid::now_v7());
    let keyed_bad = NewJob::new("noop", serde_json::json!({}), 3).for_tenant(uuid::Uuid::now_v7());
    let mut items: Vec<BatchItem<'_>> = good.iter().map(|new| BatchItem { new, key: None }).collect();
    items.insert(2, BatchItem { new: &bad, key: None });
    items.push(BatchItem { new: &keyed_bad, key: Some(key("k-bad")) });

    let results = state::submit_batch(&mut conn, &items, TOPIC).expect("the batch commits");

    assert_eq!(results.len(), 7, "one outcome per request, in order");
    assert!(results[2].is_err(), "the refused row fails: {:?}", results[2]);
    assert!(results[6].is_err(), "the refused keyed row fails: {:?}", results[6]);
    for (i, r) in results.iter().enumerate().filter(|(i, _)| ![2, 6].contains(i)) {
        let Ok(Submitted::Created(job)) = r else { panic!("request {i}: {r:?}") };
        assert_eq!(job.id, items[i].new.id, "outcomes are in request order");
        assert!(Job::find(&mut conn, job.id).expect("query").is_some());
        let rows = ackbox_db::outbox::for_job(&mut conn, job.id).expect("rows");
        assert_eq!(rows.len(), 1, "each job has its dispatch");
    }
    assert_eq!(counts(&mut conn), (5, 5), "the refused ones wrote nothing, the others everything");
    let keys: i64 = ackbox_db::schema::idempotency_keys::table.count().get_result(&mut conn).expect("keys");
    assert_eq!(keys, 0, "the refused keyed request left no key behind");
}

#[test]
fn two_requests_with_one_key_in_one_batch_make_one_job() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (a, b, other) = (
        NewJob::new("echo", serde_json::json!({"x": 1}), 3),
        NewJob::new("echo", serde_json::json!({"x": 1}), 3),
        NewJob::new("echo", serde_json::json!({"x": 2}), 3),
    );
    let items = [
        BatchItem { new: &a, key: Some(key("order-42")) },
        BatchItem { new: &other, key: None },
        BatchItem { new: &b, key: Some(key("order-42")) },
    ];
    let results = state::submit_batch(&mut conn, &items, TOPIC).expect("commit");
    let Ok(Submitted::Created(first)) = &results[0] else { panic!("{:?}", results[0]) };
    let Ok(Submitted::Replayed(second)) = &results[2] else { panic!("{:?}", results[2]) };
    assert_eq!(first.id, second.id, "the second request gets the first one's job");
    assert!(matches!(results[1], Ok(Submitted::Created(_))));
    assert_eq!(counts(&mut conn), (2, 2));
}

#[test]
fn a_batch_whose_connection_dies_mid_way_writes_nothing() {
    let db = TestDb::new();
    let news: Vec<NewJob> = (0..20).map(|i| NewJob::new("noop", serde_json::json!({"i": i}), 3)).collect();
    let mut blocker = db.conn();
    let mut victim = db.conn();
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result::<Pid>(&mut victim).expect("pid").pid;
    // Hold the outbox: the batch inserts its jobs, then waits on the outbox insert, mid-transaction.
    blocker.begin_test_transaction().expect("begin");
    diesel::sql_query("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE").execute(&mut blocker).expect("lock");
    let batch = std::thread::spawn(move || {
        let items: Vec<BatchItem<'_>> = news.iter().map(|new| BatchItem { new, key: None }).collect();
        state::submit_batch(&mut victim, &items, TOPIC).map(|r| r.len())
    });
    let mut watcher = db.conn();
    wait_for("the batch to wait on the outbox lock", Duration::from_secs(30), || {
        #[derive(QueryableByName)]
        struct Waiting {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let w: Waiting =
            diesel::sql_query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'")
                .bind::<diesel::sql_types::Integer, _>(pid)
                .get_result(&mut watcher)
                .ok()?;
        (w.n == 1).then_some(())
    });
    // Postgres "dies" for this batch: its backend is terminated mid-transaction.
    diesel::sql_query(format!("SELECT pg_terminate_backend({pid})")).execute(&mut watcher).expect("terminate");
    drop(blocker);

    let outcome = batch.join().expect("the batch thread returns");
    let err = outcome.expect_err("the whole batch fails");
    assert!(ackbox_db::db::is_outage(&err), "an outage (every request gets 503): {err:?}");
    assert_eq!(counts(&mut watcher), (0, 0), "nothing of the batch was written");
}

#[test]
fn a_batch_of_requests_without_keys_is_one_statement_and_a_refused_one_still_fails_alone() {
    use std::sync::{Arc, Mutex};
    let db = TestDb::new();
    let mut conn = db.conn();
    // Every statement the connection sends, as diesel reports it.
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = sent.clone();
    conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
        if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event {
            let sql = query.to_string();
            log.lock().expect("log").push(sql.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
        }
    });
    let good: Vec<NewJob> = (0..3).map(|i| NewJob::new("noop", serde_json::json!({"i": i}), 3)).collect();
    let items: Vec<BatchItem<'_>> = good.iter().map(|new| BatchItem { new, key: None }).collect();

    let results = state::submit_batch(&mut conn, &items, TOPIC).expect("the batch commits");

    assert!(results.iter().all(|r| matches!(r, Ok(Submitted::Created(_)))), "{results:?}");
    let statements = std::mem::take(&mut *sent.lock().expect("log"));
    assert_eq!(
        statements.iter().map(|s| s.split(' ').next().unwrap_or("").to_uppercase()).collect::<Vec<_>>(),
        ["WITH"],
        "one round trip: both inserts in one statement, atomic on its own (no BEGIN, COMMIT or savepoint): \
         {statements:#?}"
    );
    // Every job came back with its one dispatch, in request order.
    for (i, result) in results.iter().enumerate() {
        let Ok(Submitted::Created(job)) = result else { panic!("request {i}: {result:?}") };
        assert_eq!(job.id, items[i].new.id, "outcomes are in request order");
        assert_eq!(ackbox_db::outbox::for_job(&mut conn, job.id).expect("outbox").len(), 1);
    }

    // The same batch shape with one row Postgres refuses: the others still commit, and it fails alone.
    let more: Vec<NewJob> = (0..3).map(|i| NewJob::new("noop", serde_json::json!({"i": i}), 3)).collect();
    let bad = NewJob::new("noop", serde_json::json!({}), 3).for_tenant(uuid::Uuid::now_v7());
    let mut items: Vec<BatchItem<'_>> = more.iter().map(|new| BatchItem { new, key: None }).collect();
    items.insert(1, BatchItem { new: &bad, key: None });
    let results = state::submit_batch(&mut conn, &items, TOPIC).expect("the batch commits");
    assert!(results[1].is_err(), "the refused row fails: {:?}", results[1]);
    for i in [0, 2, 3] {
        let Ok(Submitted::Created(job)) = &results[i] else { panic!("request {i}: {:?}", results[i]) };
        assert_eq!(job.id, items[i].new.id);
    }
    assert_eq!(counts(&mut conn), (6, 6), "the refused one wrote nothing, the others everything");
}
