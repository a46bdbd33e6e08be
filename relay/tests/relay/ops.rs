use ackbox_testing::{fresh_topic, TestDb};

use crate::helpers::{relay, relay_config, submit};

#[test]
fn ops_endpoint_serves_health_readiness_and_relay_metrics() {
    let db = TestDb::new();
    let kafka = fresh_topic("relay-ops", 1);
    let relay = relay(&db, relay_config(&db, &kafka));
    submit(&db, &kafka.topic, 4);
    relay.round().expect("round");
    ackbox_relay::maintenance::refresh_gauges(&relay).expect("gauges");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    let addr = rt
        .block_on(async { ackbox_runtime::ops::spawn("127.0.0.1:0", relay.metrics().registry.clone(), db.pool(1)) })
        .expect("ops server");
    let get = |path: &str| {
        let resp = reqwest::blocking::get(format!("http://{addr}{path}")).expect("GET");
        (resp.status().as_u16(), resp.text().expect("body"))
    };
    assert_eq!(get("/healthz").0, 200);
    assert_eq!(get("/readyz").0, 200);
    let (status, body) = get("/metrics");
    assert_eq!(status, 200);
    for line in [
        "ackbox_relay_published_total 4",
        "ackbox_outbox_backlog 0",
        "ackbox_jobs{status=\"queued\"} 4",
        "ackbox_relay_batch_size_count 1",
    ] {
        assert!(body.lines().any(|l| l == line), "metrics contain {line:?}:\n{body}");
    }
    assert!(body.contains("ackbox_outbox_oldest_unpublished_age_seconds"));
    assert!(body.contains("process_resident_memory_bytes"), "process metrics for RSS");
}
