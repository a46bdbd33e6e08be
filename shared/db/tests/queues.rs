//! Queues: a paused queue's jobs are not claimed (they stay queued, marked skipped) and are not re-dispatched while
//! it is paused; resuming it makes the rescuer dispatch them again at once. Every dispatch names the job's queue.

use std::time::Duration;

use ackbox_db::models::queue::{self, Change};
use ackbox_db::models::{Job, JobStatus, NewJob};
use ackbox_db::state;
use ackbox_testing::TestDb;
use ackbox_types::envelope::Envelope;
use diesel::prelude::*;
use uuid::Uuid;

const TOPIC: &str = "ackbox.test";
const LEASE: Duration = Duration::from_secs(30);

fn submit(db: &TestDb, queue: &str) -> Uuid {
    let mut job = NewJob::new("echo", serde_json::json!({}), 3);
    job.queue = queue.to_string();
    state::submit(&mut db.conn(), &job, TOPIC).expect("submit").id
}

fn envelopes(db: &TestDb, id: Uuid) -> Vec<Envelope> {
    use ackbox_db::schema::outbox::dsl as o;
    let payloads: Vec<serde_json::Value> =
        o::outbox.filter(o::aggregate_id.eq(id)).order(o::id).select(o::payload).load(&mut db.conn()).expect("rows");
    payloads.into_iter().map(|p| serde_json::from_value(p).expect("envelope")).collect()
}

/// Marks every dispatch published long ago, as if the broker had lost them.
fn publish_long_ago(db: &TestDb) {
    for sql in [
        "UPDATE outbox SET published_at = now() - interval '1 hour'",
        "UPDATE jobs SET updated_at = now() - interval '1 hour'",
    ] {
        diesel::sql_query(sql).execute(&mut db.conn()).expect("age");
    }
}

#[test]
fn a_paused_queue_keeps_its_jobs_queued_until_resumed_and_then_they_are_dispatched_again_at_once() {
    let db = TestDb::new();
    let mut conn = db.conn();
    queue::ensure(&mut conn, &["mail".to_string()]).expect("create");
    let mail = submit(&db, "mail");
    let other = submit(&db, "default");
    assert_eq!(envelopes(&db, mail)[0].queue(), "mail", "the dispatch names the queue");

    // Paused: the claim takes the other queue's job only, and marks this one skipped.
    assert_eq!(queue::pause(&mut conn, "mail").expect("pause"), Change::Changed);
    assert_eq!(queue::pause(&mut conn, "mail").expect("pause"), Change::Already);
    assert_eq!(queue::pause(&mut conn, "nope").expect("pause"), Change::Unknown);
    let claimed = state::claim(&mut conn, &[mail, other], LEASE).expect("claim");
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![other]);
    assert_eq!(claimed[0].queue, "default");
    let job = Job::find(&mut conn, mail).expect("find").expect("job");
    assert_eq!(job.status, JobStatus::Queued);
    assert!(job.dispatch_skipped_at.is_some(), "marked skipped");

    // While paused, even a dispatch that looks lost is not sent again.
    publish_long_ago(&db);
    let sent = state::rescue_dispatches(&mut conn, Duration::from_secs(60), 100, TOPIC).expect("rescue").expect("lock");
    assert_eq!(sent, 0, "a paused queue's job is not re-dispatched");

    // Resumed: dispatched again at the next pass, naming its queue, and claimable.
    assert_eq!(queue::resume(&mut conn, "mail").expect("resume"), Change::Changed);
    assert_eq!(queue::resume(&mut conn, "mail").expect("resume"), Change::Already);
    let sent = state::rescue_dispatches(&mut conn, Duration::from_secs(3600 * 24), 100, TOPIC).expect("rescue");
    assert_eq!(sent, Some(1), "the skipped job is dispatched again at once, whatever the dispatch timeout");
    let all = envelopes(&db, mail);
    assert_eq!((all.len(), all[1].queue()), (2, "mail"));
    let claimed = state::claim(&mut conn, &[mail], LEASE).expect("claim");
    assert_eq!(claimed.len(), 1);

    let listed = queue::list(&mut conn).expect("list");
    let mail_row = listed.iter().find(|q| q.name == "mail").expect("mail listed");
    assert_eq!((mail_row.paused_at, mail_row.queued, mail_row.running), (None, 0, 1));
}
