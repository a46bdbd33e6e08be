use std::sync::mpsc;

use ackbox_db::models::NewJob;
use ackbox_testing::{consume_dispatches, fresh_topic, TestDb};
use diesel::Connection;

use crate::helpers::{relay, relay_config, submit, DEADLINE};

#[test]
fn a_row_with_a_lower_id_that_commits_late_is_still_published() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-noskip", 1);
    let relay = relay(&db, relay_config(&db, &kafka));

    // Arrange: transaction A takes the lower outbox id and stays open.
    let (ready_tx, ready_rx) = mpsc::channel();
    let (commit_tx, commit_rx) = mpsc::channel::<()>();
    let url = db.url().to_string();
    let topic = kafka.topic.clone();
    let late = std::thread::spawn(move || {
        let mut conn = diesel::PgConnection::establish(&url).expect("connect");
        conn.transaction(|c| {
            let job = ackbox_db::state::submit(c, &NewJob::new("noop", serde_json::json!({}), 3), &topic)?;
            ready_tx.send(job.id).expect("signal");
            commit_rx.recv().expect("wait for the go-ahead");
            Ok::<_, diesel::result::Error>(job.id)
        })
        .expect("late transaction")
    });
    let late_id = ready_rx.recv().expect("late job id");

    // B commits first with a higher id.
    let early_id = submit(&db, &kafka.topic, 1)[0];
    let mut conn = db.conn();
    let a_row = ackbox_db::outbox::for_job(&mut conn, late_id).expect("rows");
    assert!(a_row.is_empty(), "A is not visible before it commits");

    // Act 1: a round publishes B; A is invisible, not skipped past.
    let first = relay.round().expect("round");
    assert_eq!(first.published, 1);

    // Act 2: A commits; the next round must still find it.
    commit_tx.send(()).expect("go");
    late.join().expect("late thread");
    let second = relay.round().expect("round");
    assert_eq!(second.published, 1);

    let a = ackbox_db::outbox::for_job(&mut conn, late_id).expect("rows");
    let b = ackbox_db::outbox::for_job(&mut conn, early_id).expect("rows");
    assert!(a[0].id < b[0].id, "A really had the lower id");
    assert!(a[0].published_at.is_some() && b[0].published_at.is_some());
    let keys: Vec<String> = consume_dispatches(&kafka, &kafka.topic, 2, DEADLINE)
        .into_iter()
        .map(|d| d.envelope.job_id.to_string())
        .collect();
    assert_eq!(keys, vec![early_id.to_string(), late_id.to_string()]);
}
