//! The test harness checks itself: a test that promised a drained outbox and left a row undelivered fails.

use ackbox_db::models::NewJob;
use ackbox_testing::TestDb;

#[test]
#[should_panic(expected = "never delivered")]
fn a_test_that_promised_a_drain_and_left_a_row_undelivered_fails() {
    let db = TestDb::new();
    db.expect_drained();
    ackbox_db::state::submit(&mut db.conn(), &NewJob::new("noop", serde_json::json!({}), 1), "t").expect("submit");
    // Dropping `db` here must panic: one outbox row was never published.
}

#[test]
fn a_test_that_promised_a_drain_and_delivered_everything_passes() {
    let db = TestDb::new();
    db.expect_drained();
    let job =
        ackbox_db::state::submit(&mut db.conn(), &NewJob::new("noop", serde_json::json!({}), 1), "t").expect("submit");
    let rows = ackbox_db::outbox::for_job(&mut db.conn(), job.id).expect("rows");
    ackbox_db::outbox::mark_published(&mut db.conn(), &[rows[0].id]).expect("mark");
    assert_eq!(db.undelivered(), 0);
}
