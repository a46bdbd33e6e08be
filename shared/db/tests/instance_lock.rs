//! The worker-name lock: one session holds a name at a time, and a session that ends frees it at once.

use ackbox_db::instance_lock::try_lock;
use ackbox_testing::TestDb;

#[test]
fn a_name_is_held_by_one_session_until_it_ends() {
    let db = TestDb::new();
    let mut first = db.conn();
    let mut second = db.conn();
    assert!(try_lock(&mut first, "workers/w-0").expect("lock"), "free at first");
    assert!(!try_lock(&mut second, "workers/w-0").expect("lock"), "held by the first session");
    assert!(try_lock(&mut second, "workers/w-1").expect("lock"), "another name is free");
    drop(first); // the process died: its session and lock with it
    ackbox_testing::wait_for("the name to be free again", std::time::Duration::from_secs(10), || {
        try_lock(&mut second, "workers/w-0").expect("lock").then_some(())
    });
}
