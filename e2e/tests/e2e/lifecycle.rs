use std::time::Duration;

use ackbox_e2e::Stack;
use ackbox_testing::wait_for;

fn wait_terminal(stack: &Stack, client: &reqwest::blocking::Client, id: &str) -> serde_json::Value {
    stack.wait_terminal(client, id, Duration::from_secs(60))
}

#[test]
fn echo_result_fail_retries_and_final_failure_through_the_whole_chain() {
    let mut stack = Stack::start();
    let client = stack.client();

    // echo: the result endpoint serves the payload.
    let echo = stack.submit(&client, serde_json::json!({"kind": "echo", "payload": {"hello": ["world", 1]}}));
    let echo_id = echo["id"].as_str().expect("id");
    // fail twice, then succeed on attempt 3 of 3 (retries go back through outbox → relay → Kafka).
    let flaky = stack.submit(&client, serde_json::json!({"kind": "fail", "payload": {"times": 2}, "max_attempts": 3}));
    // fail forever: ends failed after max_attempts with the last error kept.
    let doomed =
        stack.submit(&client, serde_json::json!({"kind": "fail", "payload": {"times": 99}, "max_attempts": 2}));
    // a kind no worker has registered is refused at once, and nothing is written.
    let unknown =
        client.post(stack.url("/v1/jobs")).json(&serde_json::json!({"kind": "nobody-runs-this"})).send().expect("POST");
    assert_eq!(unknown.status().as_u16(), 422);

    let doc = wait_terminal(&stack, &client, echo_id);
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["result"], serde_json::json!({"hello": ["world", 1]}));
    let result = client.get(stack.url(&format!("/v1/jobs/{echo_id}/result"))).send().expect("GET result");
    assert_eq!(result.status().as_u16(), 200);
    assert_eq!(result.json::<serde_json::Value>().expect("json"), serde_json::json!({"hello": ["world", 1]}));

    let doc = wait_terminal(&stack, &client, flaky["id"].as_str().expect("id"));
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["attempts"], 3);
    assert_eq!(doc["result"], serde_json::json!({"attempt": 3}));
    assert!(doc["error"].is_null(), "a later success clears the error");

    let doomed_id = doomed["id"].as_str().expect("id");
    let doc = wait_terminal(&stack, &client, doomed_id);
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["attempts"], 2);
    assert_eq!(doc["error"]["code"], "deliberate_failure");
    assert!(doc["finished_at"].is_string());
    let result = client.get(stack.url(&format!("/v1/jobs/{doomed_id}/result"))).send().expect("GET result");
    assert_eq!(result.status().as_u16(), 409);

    let jobs: i64 =
        diesel::RunQueryDsl::get_result(diesel::QueryDsl::count(ackbox_db::schema::jobs::table), &mut stack.db.conn())
            .expect("count");
    assert_eq!(jobs, 3, "the refused kind wrote no job");

    stack.assert_alive();
}

#[test]
fn cancelling_a_running_sleep_job_stops_it_early_and_it_ends_cancelled() {
    let mut stack = Stack::start();
    let client = stack.client();
    let doc = stack.submit(&client, serde_json::json!({"kind": "sleep", "payload": {"ms": 60000}}));
    let id = doc["id"].as_str().expect("id").to_string();
    wait_for("the sleep to start", Duration::from_secs(30), || {
        let d: serde_json::Value = client.get(stack.url(&format!("/v1/jobs/{id}"))).send().ok()?.json().ok()?;
        (d["status"] == "running").then_some(())
    });

    let started = std::time::Instant::now();
    let resp = client.post(stack.url(&format!("/v1/jobs/{id}/cancel"))).send().expect("cancel");
    assert_eq!(resp.status().as_u16(), 202, "running: a cancel request");
    // Long-poll for the end instead of polling.
    let doc = wait_for("the job to end", Duration::from_secs(60), || {
        let d: serde_json::Value =
            client.get(stack.url(&format!("/v1/jobs/{id}"))).header("prefer", "wait=20").send().ok()?.json().ok()?;
        (d["status"] != "running").then_some(d)
    });
    assert_eq!(doc["status"], "cancelled");
    assert_eq!(doc["error"]["code"], "cancelled");
    assert!(started.elapsed() < Duration::from_secs(50), "the 60 s sleep stopped early ({:?})", started.elapsed());
    stack.assert_alive();
}

#[test]
fn a_delayed_job_starts_when_due_and_a_job_timeout_of_its_own_stops_its_handler() {
    let mut stack = Stack::start();
    let client = stack.client();
    let delayed = stack.submit(&client, serde_json::json!({"kind": "echo", "payload": {"d": 1}, "delay_ms": 1500}));
    let due: chrono::DateTime<chrono::Utc> = delayed["not_before"].as_str().expect("not_before").parse().expect("time");
    // sleep 10 s with a timeout of its own of 300 ms (the worker's default is 5 min): the attempt fails `timeout`.
    let slow = stack.submit(
        &client,
        serde_json::json!({"kind": "sleep", "payload": {"ms": 10_000}, "timeout_ms": 300, "max_attempts": 1}),
    );

    let doc = wait_terminal(&stack, &client, delayed["id"].as_str().expect("id"));
    assert_eq!(doc["status"], "succeeded");
    let started: chrono::DateTime<chrono::Utc> = doc["started_at"].as_str().expect("started_at").parse().expect("time");
    assert!(started >= due, "started {started} before it was due {due}");

    let doc = wait_terminal(&stack, &client, slow["id"].as_str().expect("id"));
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["error"]["code"], "timeout", "{doc}");
    stack.assert_alive();
}
