//! The `ackbox` CLI's HTTP side (`submit`, `submit --wait`) against a running stack.

use std::process::Command;
use std::time::Duration;

use ackbox_e2e::{bin_path, Stack};

fn ackbox(stack: &Stack, args: &[&str]) -> std::process::Output {
    Command::new(bin_path("ackbox"))
        .args(args)
        .env("ACKBOX_URL", &stack.api_url)
        .env("ACKBOX_API_KEY", &stack.key)
        .env("DATABASE_URL", stack.db.url())
        .current_dir(std::env::temp_dir()) // no .ackbox/local.env to fall back on
        .output()
        .expect("run ackbox")
}

#[test]
fn submit_waits_for_the_job_and_reports_its_outcome_in_the_exit_code() {
    let stack = Stack::start();

    let out = ackbox(&stack, &["submit", "echo", "--payload", r#"{"x": [1, 2]}"#, "--wait", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["result"], serde_json::json!({"x": [1, 2]}));
    assert_eq!(doc["priority"], "normal");

    // --priority reaches the job, which runs through its lane.
    let out = ackbox(&stack, &["submit", "echo", "--priority", "high", "--wait", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((doc["status"].as_str(), doc["priority"].as_str()), (Some("succeeded"), Some("high")));

    // A job that fails ends the command non-zero, with the error.
    let out = ackbox(&stack, &["submit", "fail", "--payload", r#"{"times": 9}"#, "--max-attempts", "1", "--wait"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ended failed") && stderr.contains("deliberate_failure"), "{stderr}");

    // Without --wait it prints the id at once; the job exists.
    let out = ackbox(&stack, &["submit", "echo"]);
    assert!(out.status.success());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let shown = ackbox(&stack, &["jobs", "show", &id, "--json"]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));

    // Errors say what to do next.
    let out = ackbox(&stack, &["submit", "echo", "--payload", "{not json"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--payload is not valid JSON"));
    let out = ackbox(&stack, &["submit", "nobody-runs-this"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("refused the job"));
    let out = Command::new(bin_path("ackbox"))
        .args(["submit", "echo", "--url", &stack.api_url, "--api-key", "ackbox_000000000000_nope"])
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("ackbox keys create"));
}

#[test]
fn submit_file_sends_every_line_through_the_batch_endpoint_in_order_and_a_rerun_with_a_key_adds_nothing() {
    let stack = Stack::start();
    let dir = std::env::temp_dir().join(format!("ackbox-ndjson-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    // 2,500 jobs: three requests (1000, 1000, 500).
    let lines: Vec<String> =
        (0..2500).map(|n| serde_json::json!({"kind": "echo", "payload": {"n": n}}).to_string()).collect();
    let file = dir.join("jobs.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    let path = file.to_str().expect("utf-8 path");

    let out = ackbox(&stack, &["submit", "--file", path, "--idempotency-key", "import-1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 2500);
    // In file order: the n-th id's job carries payload n.
    for n in [0usize, 999, 1000, 2499] {
        let shown = ackbox(&stack, &["jobs", "show", &ids[n], "--json"]);
        let doc: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
        assert_eq!(doc["payload"]["n"], n, "line {n}: {doc}");
    }
    // Again with the same key: the same ids, nothing new written.
    let again = ackbox(&stack, &["submit", "--file", path, "--idempotency-key", "import-1"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let again: Vec<String> = String::from_utf8_lossy(&again.stdout).lines().map(str::to_string).collect();
    assert_eq!(again, ids);
    let count: i64 =
        diesel::RunQueryDsl::get_result(diesel::QueryDsl::count(ackbox_db::schema::jobs::table), &mut stack.db.conn())
            .expect("count");
    assert_eq!(count, 2500);

    // A bad line stops everything before a request is sent, naming the line.
    std::fs::write(&file, "{\"kind\": \"echo\"}\nnot json\n").expect("write");
    let bad = ackbox(&stack, &["submit", "--file", path]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("jobs.ndjson:2"), "{}", String::from_utf8_lossy(&bad.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn queues_pause_holds_a_queues_jobs_and_resume_runs_them() {
    // The worker puts echo jobs in queue mail (and creates it); the relay's rescuer passes often.
    let stack = Stack::start_with(&[
        ("ACKBOX_KIND_QUEUES", "echo=mail"),
        ("ACKBOX_QUEUE_CONCURRENCY", "mail=2"),
        ("ACKBOX_RESCUE_INTERVAL_MS", "200"),
    ]);
    let client = stack.client();
    let queues = |stack: &Stack| -> serde_json::Value {
        let out = ackbox(stack, &["--json", "queues", "ls"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    };
    ackbox_testing::wait_for("the worker to create its queue", Duration::from_secs(30), || {
        queues(&stack).as_array()?.iter().any(|q| q["name"] == "mail").then_some(())
    });

    let out = ackbox(&stack, &["queues", "pause", "mail"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ackbox(&stack, &["queues", "pause", "nobody-made-this"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no queue"), "{}", String::from_utf8_lossy(&out.stderr));

    // A job of the paused queue waits, saying why.
    let doc = stack.submit(&client, serde_json::json!({"kind": "echo", "payload": {"q": 1}}));
    assert_eq!(doc["queue"], "mail", "the kind's queue");
    let id = doc["id"].as_str().expect("id").to_string();
    let waiting = ackbox_testing::wait_for("the job to say its queue is paused", Duration::from_secs(30), || {
        let got: serde_json::Value = client.get(stack.url(&format!("/v1/jobs/{id}"))).send().ok()?.json().ok()?;
        got["waiting_reason"].as_str().is_some_and(|r| r.contains("paused")).then_some(got)
    });
    assert_eq!(waiting["status"], "queued");
    let listed = queues(&stack);
    let mail = listed.as_array().expect("rows").iter().find(|q| q["name"] == "mail").expect("mail").clone();
    assert!(mail["paused_at"].is_string() && mail["queued"] == 1, "{mail}");

    // Resumed: the rescuer dispatches it again and it runs.
    let out = ackbox(&stack, &["queues", "resume", "mail"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = stack.wait_terminal(&client, &id, Duration::from_secs(60));
    assert_eq!(done["status"], "succeeded", "{done}");
}
