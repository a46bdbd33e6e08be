use std::collections::BTreeSet;
use std::sync::Arc;

use ackbox_testing::{consume, consume_dispatches, fresh_topic, wait_for, TestDb};
use ackbox_types::envelope::Envelope;

use crate::helpers::{relay, relay_config, submit, DEADLINE};

#[test]
fn rounds_publish_every_row_once_acknowledged_and_mark_it_published() {
    // Arrange: 20 jobs, a batch of 7, so it takes three full-ish rounds.
    let db = TestDb::new();
    let kafka = fresh_topic("relay", 2);
    let ids = submit(&db, &kafka.topic, 20);
    let mut cfg = relay_config(&db, &kafka);
    cfg.batch = 7;
    let relay = relay(&db, cfg);

    // Act
    let mut claimed = Vec::new();
    loop {
        let round = relay.round().expect("round");
        if round.claimed == 0 {
            break;
        }
        assert_eq!(round.published, round.claimed, "every claimed row acknowledged: {round:?}");
        claimed.push(round.claimed);
    }

    // Assert: batches were bounded, every row is marked, and the topic holds exactly our jobs.
    assert_eq!(claimed, vec![7, 7, 6]);
    let mut conn = db.conn();
    assert_eq!(ackbox_db::outbox::unpublished_count(&mut conn).expect("count"), 0);
    for id in &ids {
        let rows = ackbox_db::outbox::for_job(&mut conn, *id).expect("rows");
        assert_eq!(rows.len(), 1);
        assert!(rows[0].published_at.is_some());
        assert_eq!(rows[0].attempts, 1);
        assert!(rows[0].last_error.is_none());
    }
    let dispatches = consume_dispatches(&kafka, &kafka.topic, 20, DEADLINE);
    let jobs: BTreeSet<String> = dispatches.iter().map(|d| d.envelope.job_id.to_string()).collect();
    let expected: BTreeSet<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(jobs, expected);
    // Each round's rows travelled as one packed record (`ACKBOX_RELAY_RECORD_JOBS`, 16), keyed by its first job.
    let records: BTreeSet<(i32, String)> =
        dispatches.iter().map(|d| (d.record.partition, d.record.key.clone())).collect();
    assert_eq!(records.len(), 3, "one record per round");
    for d in &dispatches {
        assert!(d.packed);
        assert_eq!(d.envelope.attempt, 1);
        assert!(expected.contains(&d.record.key));
        // Kind and attempt are in the envelope, so an untraced record has no headers (a broker that stores each
        // header as a row pays for every one; bench/findings.md, session 11).
        assert!(d.record.headers.is_empty(), "headers: {:?}", d.record.headers);
    }
}

#[test]
fn with_one_job_per_record_each_row_is_its_own_record_its_envelope_as_written() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-single", 1);
    let ids = submit(&db, &kafka.topic, 3);
    let mut cfg = relay_config(&db, &kafka);
    cfg.record_jobs = 1;
    assert_eq!(relay(&db, cfg).round().expect("round").published, 3);
    let messages = consume(&kafka, &kafka.topic, 3, DEADLINE);
    let keys: BTreeSet<String> = messages.iter().map(|m| m.key.clone()).collect();
    assert_eq!(keys, ids.iter().map(ToString::to_string).collect::<BTreeSet<_>>());
    for m in &messages {
        let env = Envelope::decode(Some(&m.payload)).expect("a version-1 envelope");
        assert_eq!(env.job_id.to_string(), m.key);
        assert!(m.headers.is_empty(), "headers: {:?}", m.headers);
    }
}

#[test]
fn the_loop_wakes_on_notify_long_before_its_poll_interval() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-notify", 1);
    let mut cfg = relay_config(&db, &kafka);
    // A poll interval far beyond the deadline: only the NOTIFY can explain a prompt publish.
    cfg.poll_interval = std::time::Duration::from_secs(3600);
    let relay = Arc::new(relay(&db, cfg));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = rt.spawn(ackbox_relay::run(relay, stop_rx));

    // Give the loop time to go idle: wait until its LISTEN connection is up.
    let db_name = db.name().to_string();
    wait_for("the relay's LISTEN connection", DEADLINE, || {
        let mut conn = db.conn();
        let listening: i64 = diesel::RunQueryDsl::get_result::<Count>(
            diesel::sql_query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'")
                .bind::<diesel::sql_types::Text, _>(&db_name),
            &mut conn,
        )
        .expect("pg_stat_activity")
        .n;
        (listening > 0).then_some(())
    });

    let ids = submit(&db, &kafka.topic, 3);
    wait_for("the relay to publish after NOTIFY", std::time::Duration::from_secs(20), || {
        let n = ackbox_db::outbox::unpublished_count(&mut db.conn()).expect("count");
        (n == 0).then_some(())
    });
    assert_eq!(consume_dispatches(&kafka, &kafka.topic, ids.len(), DEADLINE).len(), 3);

    stop_tx.send(true).expect("stop");
    rt.block_on(task).expect("relay loop ends on shutdown");
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[test]
fn several_relays_on_one_table_publish_every_row_and_never_block_each_other() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-many", 2);
    let ids = submit(&db, &kafka.topic, 300);
    let relays: Vec<_> = (0..3)
        .map(|_| {
            let mut cfg = relay_config(&db, &kafka);
            cfg.batch = 20;
            relay(&db, cfg)
        })
        .collect();

    // Three relays race over the same rows until none is left.
    let per_relay: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = relays
            .iter()
            .map(|r| {
                s.spawn(move || {
                    let mut published = 0;
                    loop {
                        let round = r.round().expect("round");
                        published += round.published;
                        if round.claimed == 0 {
                            break published;
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("relay thread")).collect()
    });

    assert_eq!(per_relay.iter().sum::<usize>(), 300, "SKIP LOCKED handed each row to exactly one relay: {per_relay:?}");
    assert_eq!(ackbox_db::outbox::unpublished_count(&mut db.conn()).expect("count"), 0);
    let keys: BTreeSet<String> = consume_dispatches(&kafka, &kafka.topic, 300, DEADLINE)
        .into_iter()
        .map(|d| d.envelope.job_id.to_string())
        .collect();
    assert_eq!(keys, ids.iter().map(ToString::to_string).collect::<BTreeSet<_>>());
}

/// The partition counts the broker reports for `topic` (`None`: no such topic), asked by a client that cannot create
/// topics.
fn partitions_of(kafka: &ackbox_runtime::kafka::KafkaConfig, topic: &str) -> Option<usize> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let probe: BaseConsumer = kafka.client_config().create().expect("probe");
    let md = probe.fetch_metadata(None, std::time::Duration::from_secs(10)).expect("metadata");
    md.topics().iter().find(|t| t.name() == topic).map(|t| t.partitions().len())
}

#[test]
fn the_relay_creates_its_topic_with_the_configured_partitions() {
    // Arrange: a topic nobody created yet; the relay is configured for 3 partitions (a broker's own default differs:
    // nisshi auto-creates with 4, Apache Kafka with num.partitions).
    let db = TestDb::new();
    let kafka = ackbox_testing::kafka_config(&ackbox_testing::unique_topic("relay-create"));
    let mut cfg = relay_config(&db, &kafka);
    cfg.partitions = 3;
    cfg.delivery_timeout = std::time::Duration::from_secs(2);

    // Act 1: the producer asks for the topic's metadata before anything created it.
    {
        use rdkafka::producer::{BaseProducer, Producer};
        let producer: BaseProducer = kafka.client_config().create().expect("producer");
        let _ = producer.client().fetch_metadata(Some(&kafka.topic), std::time::Duration::from_secs(5));
    }

    // Assert 1: asking did not create it.
    assert_eq!(partitions_of(&kafka, &kafka.topic), None, "a metadata request must not auto-create the topic");

    // Act 2: what the relay does at start-up, then a round.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(ackbox_runtime::kafka::ensure_lanes(&kafka, cfg.partitions, 1)).expect("ensure topic");
    let ids = submit(&db, &kafka.topic, 6);
    let relay = relay(&db, cfg);
    let round = relay.round().expect("round");

    // Assert 2: the configured count, for the topic and its priority lanes, and the rows went out.
    assert_eq!(partitions_of(&kafka, &kafka.topic), Some(3));
    for lane in [".high", ".low"] {
        assert_eq!(partitions_of(&kafka, &format!("{}{lane}", kafka.topic)), Some(3), "lane {lane}");
    }
    assert_eq!(round.published, ids.len(), "{round:?}");
}

#[test]
fn a_traced_jobs_record_carries_its_w3c_trace_context_in_kafka_headers() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-trace", 1);
    let trace = ackbox_types::trace::TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("congo=t61rcWkgMzE"),
    );
    let new = ackbox_db::models::NewJob::new("noop", serde_json::json!({}), 3).with_trace(trace.clone());
    let job = ackbox_db::state::submit(&mut db.conn(), &new, &kafka.topic).expect("submit");
    let relay = relay(&db, relay_config(&db, &kafka));
    assert_eq!(relay.round().expect("round").published, 1);

    let m = consume(&kafka, &kafka.topic, 1, DEADLINE).remove(0);
    assert_eq!(m.key, job.id.to_string());
    let header = |name: &str| m.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let trace = trace.expect("valid");
    assert_eq!(header("traceparent"), Some(trace.traceparent), "headers: {:?}", m.headers);
    assert_eq!(header("tracestate"), trace.tracestate, "headers: {:?}", m.headers);
    assert_eq!(m.headers.len(), 2, "the trace context and nothing else: {:?}", m.headers);
}
