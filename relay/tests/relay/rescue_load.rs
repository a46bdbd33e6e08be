//! The rescuer under consumer lag: when workers fall behind by more than the dispatch timeout, the rescuer must not
//! send every queued job again on every pass. Time is moved, not waited for: between passes every timestamp is
//! shifted back by one dispatch timeout, and the relay "publishes" what the rescuer wrote (the consumer is stalled,
//! so nothing is ever claimed).

use std::time::Duration;

use ackbox_relay::maintenance;
use ackbox_testing::{kafka_config, unique_topic, TestDb};
use diesel::prelude::*;

use crate::helpers::{relay, relay_config};

const JOBS: i64 = 10_000;
const CAP: i64 = 1_000;
const PASSES: i64 = 8;

fn one_dispatch_timeout_later(conn: &mut PgConnection, timeout: Duration) {
    let shift = format!("interval '{} milliseconds'", timeout.as_millis());
    diesel::sql_query(format!(
        "UPDATE outbox SET published_at = coalesce(published_at, now()) - {shift}, created_at = created_at - {shift},
                           available_at = available_at - {shift}"
    ))
    .execute(conn)
    .expect("shift outbox");
    diesel::sql_query(format!(
        "UPDATE jobs SET created_at = created_at - {shift}, updated_at = updated_at - {shift},
                         last_dispatched_at = last_dispatched_at - {shift}"
    ))
    .execute(conn)
    .expect("shift jobs");
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql).get_result::<N>(conn).expect("count").n
}

#[test]
fn ten_thousand_queued_jobs_behind_a_stalled_consumer_get_a_bounded_number_of_extra_dispatches() {
    let db = TestDb::new();
    let kafka = kafka_config(&unique_topic("rescue-load"));
    let mut config = relay_config(&db, &kafka);
    config.dispatch_timeout = Duration::from_secs(60);
    config.rescue_batch = CAP;
    let timeout = config.dispatch_timeout;
    let relay = relay(&db, config);
    let mut conn = db.conn();
    ackbox_db::state::preload(&mut conn, JOBS, "noop", &kafka.topic).expect("preload");

    for _ in 0..PASSES {
        one_dispatch_timeout_later(&mut conn, timeout);
        maintenance::pass(&relay).expect("pass");
    }

    let extra = count(&mut conn, "SELECT count(*) AS n FROM outbox") - JOBS;
    assert!(extra > 0, "lost dispatches are still sent again");
    assert!(extra <= CAP * PASSES, "{extra} extra dispatches in {PASSES} passes: more than {CAP} per pass");
    // Per job, the waits double: after 8 timeouts a job was sent again at most 1 + log2(8) = 4 times.
    let most =
        count(&mut conn, "SELECT max(n) AS n FROM (SELECT count(*) - 1 AS n FROM outbox GROUP BY aggregate_id) c");
    assert!(most <= 4, "a job was dispatched again {most} times in {PASSES} dispatch timeouts");
}
