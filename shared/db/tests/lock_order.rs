//! The worker's heartbeat and its completer write the same rows from two connections. They must take row locks in
//! one order (by id), or Postgres finds a deadlock and aborts one of them: a lost heartbeat or a failed batch write.

use std::time::Duration;

use ackbox_db::models::NewJob;
use ackbox_db::state::{self, Success};
use ackbox_testing::TestDb;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);

#[test]
fn heartbeat_and_completer_never_deadlock_whatever_order_they_are_given_ids_in() {
    let db = TestDb::new();
    let mut conn = db.conn();
    for round in 0..10 {
        let ids: Vec<Uuid> = (0..200)
            .map(|_| state::submit(&mut conn, &NewJob::new("noop", serde_json::json!({}), 3), "t").expect("submit").id)
            .collect();
        let claimed = state::claim(&mut conn, &ids, LEASE).expect("claim");
        let mut held: Vec<(Uuid, i32)> = claimed.iter().map(|c| (c.id, c.attempt)).collect();
        held.sort();
        let mut successes: Vec<Success> =
            held.iter().map(|&(id, attempt)| Success { id, attempt, result: serde_json::json!(1) }).collect();
        successes.reverse();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let beat = {
            let (mut c, held, barrier) = (db.conn(), held.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                state::heartbeat(&mut c, &held, LEASE).map(|_| ())
            })
        };
        let mut c = db.conn();
        barrier.wait();
        let completed = state::complete(&mut c, &successes);
        let beat = beat.join().expect("heartbeat thread");
        assert!(completed.is_ok(), "round {round}: complete failed: {:?}", completed.err());
        assert!(beat.is_ok(), "round {round}: heartbeat failed: {:?}", beat.err());
    }
}
