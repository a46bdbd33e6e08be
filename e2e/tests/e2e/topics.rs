//! The topic has one owner: the relay creates it; a worker that starts first waits for it (and does not create it),
//! then warns when it has fewer partitions than the fleet's most consumers.

use std::time::Duration;

use ackbox_e2e::{Component, Stack};
use ackbox_runtime::kafka::{partition_count, KafkaConfig};
use ackbox_testing::{unique_topic, wait_for};

#[test]
fn a_worker_waits_for_the_relay_to_create_its_topic_and_warns_about_too_few_partitions() {
    let mut stack = Stack::start();
    let topic = unique_topic("owned");
    let group = unique_topic("owned-group");
    let cfg = KafkaConfig { topic: topic.clone(), ..stack.kafka.clone() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let worker_log = stack.log_path(Component::Worker);
    let lines_about = |what: &str| {
        std::fs::read_to_string(&worker_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&topic) && l.contains(what))
            .count()
    };

    // A worker of a fleet of up to 8, on a topic nobody created yet.
    stack.spawn_with(
        Component::Worker,
        &[("ACKBOX_TOPIC", &topic), ("ACKBOX_WORKER_GROUP", &group), ("ACKBOX_WORKER_MAX_CONSUMERS", "8")],
    );
    wait_for("the worker to say it waits for the topic", Duration::from_secs(60), || {
        (lines_about("does not exist yet") >= 2).then_some(())
    });
    // It asked twice and still did not create it: creating is the relay's.
    assert_eq!(rt.block_on(partition_count(&cfg, &topic)).expect("metadata"), None, "the worker created the topic");

    // The relay creates it and its priority lanes (ACKBOX_TOPIC_PARTITIONS=3 in the stack); the worker finds them and
    // warns once for each: 3 < 8.
    stack.spawn_with(Component::Relay, &[("ACKBOX_TOPIC", &topic)]);
    let warning = |lane: &str| format!("topic {lane} has 3 partitions but ACKBOX_WORKER_MAX_CONSUMERS is 8");
    let lanes = [format!("{topic}.high"), topic.clone(), format!("{topic}.low")];
    wait_for("the worker to warn about 3 partitions for 8 consumers, once per lane", Duration::from_secs(60), || {
        lanes.iter().all(|lane| lines_about(&warning(lane)) == 1).then_some(())
    });
    assert_eq!(rt.block_on(partition_count(&cfg, &topic)).expect("metadata"), Some(3));
    stack.assert_alive();
}
