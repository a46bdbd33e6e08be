//! The `ackbox` CLI's HTTP side (`submit`, `submit --wait`) against a running stack.

use std::process::Command;

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
