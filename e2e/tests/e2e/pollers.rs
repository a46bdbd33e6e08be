//! Standard clients nobody here wrote drive Ackbox unchanged: the Azure SDK's own long-running-operation poller
//! (`azure-core`'s `LROPoller` + `LROBasePolling`, given only the 202), and OpenTelemetry: the spans the api, the
//! relay and the worker export over OTLP form one trace under the client's `traceparent`.

use std::process::Command;
use std::time::Duration;

use ackbox_db::models::{Job, JobStatus};
use ackbox_e2e::otlp::OtlpReceiver;
use ackbox_e2e::{repo_root, Stack};
use ackbox_testing::wait_for;

/// The venv `make test` installs azure-core into (deploy/local/stack.sh tools).
fn python() -> std::path::PathBuf {
    let python = repo_root().join(".ackbox/venv/bin/python");
    assert!(python.exists(), "{} is missing: `make test` installs it (deploy/local/stack.sh tools)", python.display());
    python
}

fn job(stack: &Stack, id: &str) -> Job {
    Job::find(&mut stack.db.conn(), id.parse().expect("uuid")).expect("query").expect("the job exists")
}

#[test]
fn the_azure_sdk_poller_waits_for_results_raises_for_failures_and_stops_for_cancels() {
    let stack = Stack::start();
    let out = Command::new(python())
        .arg(repo_root().join("e2e/pollers/azure_lro.py"))
        .arg(&stack.api_url)
        .arg(&stack.key)
        .output()
        .expect("run the Azure poller script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the poller script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert_eq!(runs.len(), 4, "{stdout}");

    // A 1.5 s job: the poller returned only once it had succeeded, with its result.
    let sleep = &runs[0];
    assert_eq!(sleep["outcome"], "returned", "{sleep}");
    let j = job(&stack, sleep["id"].as_str().expect("id"));
    assert_eq!(j.status, JobStatus::Succeeded);
    assert_eq!(sleep["result"], j.result.clone().expect("a result"), "the poller returned the job's result");
    assert_eq!(sleep["poller_status"], "Succeeded");

    // The same POST replayed (Idempotency-Key) after it succeeded: the same job, and the poller still returns the
    // result, not the status document.
    let replay = &runs[1];
    assert_eq!(replay["id"], sleep["id"], "{replay}");
    assert_eq!(replay["outcome"], "returned", "{replay}");
    assert_eq!(replay["result"], sleep["result"]);

    // A failed job: the poller raised, having seen Failed.
    let failed = &runs[2];
    assert_eq!(failed["outcome"], "raised", "{failed}");
    assert_eq!(failed["last_status"], "Failed");
    assert_eq!(job(&stack, failed["id"].as_str().expect("id")).status, JobStatus::Failed);

    // A cancelled job: the poller stopped (raising, as azure-core does for any canceled operation) at Canceled.
    let cancelled = &runs[3];
    assert_eq!(cancelled["outcome"], "raised", "{cancelled}");
    assert_eq!(cancelled["last_status"], "Canceled");
    assert_eq!(cancelled["done"], true);
    assert_eq!(job(&stack, cancelled["id"].as_str().expect("id")).status, JobStatus::Cancelled);
}

#[test]
fn the_spans_of_api_relay_and_worker_form_one_trace_under_the_clients_traceparent() {
    let receiver = OtlpReceiver::start();
    let stack = Stack::start_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let client = stack.client();
    let (trace_id, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let resp = client
        .post(stack.url("/v1/jobs"))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&serde_json::json!({"kind": "echo", "payload": {"x": 1}}))
        .send()
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 202);
    let id = resp.json::<serde_json::Value>().expect("json")["id"].as_str().expect("id").to_string();

    let spans = wait_for("spans from the api, the relay and the worker", Duration::from_secs(60), || {
        let spans: Vec<_> = receiver.spans().into_iter().filter(|s| s.trace_id == trace_id).collect();
        let services: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        (services.len() == 3).then_some(spans)
    });
    let by = |service: &str| {
        spans.iter().find(|s| s.service == service).unwrap_or_else(|| panic!("a span of {service}: {spans:?}"))
    };
    let (api, relay, worker) = (by("ackbox-api"), by("ackbox-relay"), by("ackbox-worker"));
    assert_eq!(api.name, "POST /v1/jobs");
    assert_eq!(api.parent_span_id, client_span, "the submit span is a child of the client's span");
    assert_eq!(relay.parent_span_id, api.span_id, "the publish is a child of the submit span");
    assert_eq!(worker.parent_span_id, api.span_id, "the worker's span is a child of the submit span");
    assert_eq!((api.kind, relay.kind, worker.kind), (2, 4, 5), "server, producer, consumer");
    assert!(worker.attributes.contains(&("ackbox.job_id".to_string(), id.clone())), "{worker:?}");
    // The job row keeps the submit span's context, which every later dispatch carries.
    let stored = job(&stack, &id).trace_context().expect("stored");
    assert_eq!((stored.trace_id(), stored.span_id()), (trace_id, api.span_id.as_str()));
}

#[test]
fn the_readmes_five_lines_of_python_submit_and_wait_with_the_azure_poller() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let start = readme.find("```python\n").expect("a python block in the README") + "```python\n".len();
    let snippet = &readme[start..start + readme[start..].find("```").expect("its end")];
    assert_eq!(snippet.lines().count(), 5, "five lines:\n{snippet}");
    let stack = Stack::start();
    let out = Command::new(python())
        .args(["-c", snippet])
        .env("ACKBOX_URL", &stack.api_url)
        .env("ACKBOX_API_KEY", &stack.key)
        .output()
        .expect("run the README's snippet");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{'slept_ms': 1500}");
}
