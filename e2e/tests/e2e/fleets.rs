//! Two worker fleets with different kinds, the way `worker/examples/custom_worker.rs` documents it: the relay routes
//! `word_count` to its own topic (`ACKBOX_KIND_TOPICS`), the custom worker consumes that topic in its own group, the
//! built-in worker never sees those jobs. A job submitted while its fleet is down waits, and runs when it is back
//! (a rolling deploy of that fleet): no job fails for lack of a worker.

use std::time::Duration;

use ackbox_e2e::{Component, Stack};
use ackbox_testing::{fresh_topic, unique_topic, wait_for};

fn document(stack: &Stack, client: &reqwest::blocking::Client, id: &str) -> serde_json::Value {
    client.get(stack.url(&format!("/v1/jobs/{id}"))).send().expect("GET").json().expect("json")
}

fn wait_terminal(stack: &Stack, client: &reqwest::blocking::Client, id: &str) -> serde_json::Value {
    stack.wait_terminal(client, id, Duration::from_secs(90))
}

#[test]
fn a_kind_routed_to_its_own_topic_runs_on_its_own_fleet_and_waits_while_that_fleet_restarts() {
    let words = fresh_topic("e2e-words", 1);
    let routes = format!("word_count={}", words.topic);
    let mut stack = Stack::start_with(&[("ACKBOX_KIND_TOPICS", routes.as_str())]);
    let group = unique_topic("e2e-words-group");
    let fleet = [("ACKBOX_TOPIC", words.topic.as_str()), ("ACKBOX_WORKER_GROUP", group.as_str())];
    stack.spawn_example_worker("custom_worker", &fleet);
    wait_for("the custom worker to register word_count", Duration::from_secs(60), || {
        let kinds = ackbox_db::models::job_kind::all(&mut stack.db.conn()).ok()?;
        kinds.iter().any(|k| k == "word_count").then_some(())
    });
    let client = stack.client();

    let words_job = stack.submit(&client, serde_json::json!({"kind": "word_count", "payload": {"text": "a b a"}}));
    let echo = stack.submit(&client, serde_json::json!({"kind": "echo", "payload": {"x": 1}}));
    let doc = wait_terminal(&stack, &client, words_job["id"].as_str().expect("id"));
    assert_eq!((doc["status"].as_str(), doc["attempts"].as_i64()), (Some("succeeded"), Some(1)), "{doc}");
    assert_eq!(doc["result"]["words"], 3);
    assert_eq!(wait_terminal(&stack, &client, echo["id"].as_str().expect("id"))["status"], "succeeded");

    // The custom fleet goes away (the second worker process of the stack); a job of its kind waits, queued.
    stack.signal(Component::Worker, 1, "KILL");
    let waiting = stack.submit(&client, serde_json::json!({"kind": "word_count", "payload": {"text": "x"}}));
    let id = waiting["id"].as_str().expect("id");
    wait_for("the dispatch to reach Kafka", Duration::from_secs(30), || {
        let rows = ackbox_db::outbox::for_job(&mut stack.db.conn(), id.parse().expect("uuid")).ok()?;
        rows.iter().all(|r| r.published_at.is_some()).then_some(())
    });
    assert_eq!(document(&stack, &client, id)["status"], "queued", "nobody else ran or failed it");

    // Back (a new version of the fleet): it runs.
    stack.spawn_example_worker("custom_worker", &fleet);
    let doc = wait_terminal(&stack, &client, id);
    assert_eq!((doc["status"].as_str(), doc["attempts"].as_i64()), (Some("succeeded"), Some(1)), "{doc}");
    assert!(
        !std::fs::read_to_string(stack.log_path(Component::Worker)).unwrap_or_default().contains("no handler for"),
        "the built-in worker never received a word_count job"
    );
}
