//! Hostile clients against the real api: slow-loris on headers and on bodies, oversized headers and URLs, random
//! ids; and nothing secret or private (a key, a payload) in any response, log line or metric.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ackbox_e2e::{Component, Stack};
use ackbox_testing::wait_for;

/// Short deadlines so the slow clients are cut within the test.
// The request deadline must be at least the longest wait + 5 s (a shorter one is refused at start-up).
const SHORT: &[(&str, &str)] = &[("ACKBOX_MAX_WAIT_SECS", "1"), ("ACKBOX_REQUEST_TIMEOUT_SECS", "6")];

fn connect(stack: &Stack) -> TcpStream {
    let addr = stack.api_url.trim_start_matches("http://").to_string();
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    s
}

/// Everything the server sends until it closes the connection (or the read times out).
fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn slow_clients_are_cut_off_and_do_not_block_anyone_else() {
    let stack = Stack::start_with(SHORT);
    let client = stack.client();

    // Ten clients that send a body's first bytes and then stall, and ten that never finish their headers.
    let mut slow_bodies: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = connect(&stack);
            write!(
                s,
                "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\n\r\n{{\"kind\": \"echo\", ",
                stack.key
            )
            .expect("write");
            s
        })
        .collect();
    let mut slow_heads: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = connect(&stack);
            s.write_all(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: ").expect("write");
            s
        })
        .collect();

    // Meanwhile everyone else is served.
    for _ in 0..20 {
        let doc = stack.submit(&client, serde_json::json!({"kind": "echo", "payload": {}}));
        assert!(doc["id"].is_string());
    }

    // The stalled bodies get 408 (problem+json) and their connections are closed; the stalled heads are closed with
    // 408 by actix's header timeout. None of them created a job.
    for s in &mut slow_bodies {
        let answer = read_all(s);
        assert!(answer.starts_with("HTTP/1.1 408"), "slow body: {answer:?}");
        assert!(answer.contains("/problems/request-timeout"), "{answer}");
    }
    for s in &mut slow_heads {
        let answer = read_all(s);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "slow head: {answer:?}");
    }
    let jobs: i64 =
        diesel::RunQueryDsl::get_result(diesel::QueryDsl::count(ackbox_db::schema::jobs::table), &mut stack.db.conn())
            .expect("count");
    assert_eq!(jobs, 20, "only the 20 complete submits created jobs");
}

#[test]
fn oversized_headers_and_urls_are_refused_and_random_ids_are_all_404() {
    let stack = Stack::start();
    let client = stack.client();

    // Over our limits: 431 / 414 with problem+json. ("Connection: close" so the answer ends the read.)
    let big = "a".repeat(20 * 1024);
    let mut s = connect(&stack);
    write!(s, "GET /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {big}\r\n\r\n").ok();
    let answer = read_all(&mut s);
    assert!(answer.starts_with("HTTP/1.1 431"), "header: {:.80}", answer);
    assert!(answer.contains("/problems/headers-too-large"), "{answer}");
    let mut s = connect(&stack);
    write!(s, "GET /v1/jobs/{big} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok();
    let answer = read_all(&mut s);
    assert!(answer.starts_with("HTTP/1.1 414"), "url: {:.80}", answer);
    assert!(answer.contains("/problems/uri-too-long"), "{answer}");
    // Far over: the HTTP parser refuses the request line itself before any of our code runs.
    let huge = "a".repeat(200 * 1024);
    let mut s = connect(&stack);
    write!(s, "GET /v1/jobs/{huge} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok();
    let answer = read_all(&mut s);
    assert!(answer.starts_with("HTTP/1.1 4"), "huge url: {:.80}", answer);
    assert!(!answer.contains(" 200 ") && !answer.contains(" 500 "), "{answer:.80}");

    // 10,000 random ids: every one is a 404 with the same body as any other unknown id.
    let mut bodies = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let resp = client.get(stack.url(&format!("/v1/jobs/{}", uuid::Uuid::new_v4()))).send().expect("GET");
        assert_eq!(resp.status().as_u16(), 404);
        bodies.insert(resp.text().expect("body"));
    }
    assert_eq!(bodies.len(), 1, "every unknown id looks the same: {bodies:?}");
}

#[test]
fn no_response_log_line_or_metric_carries_a_key_or_a_payload() {
    let logs = no_secrets_anywhere(Stack::start());
    assert!(logs.iter().all(|l| !l.trim_start().starts_with('{')), "text is the default log format");
}

#[test]
fn json_logs_are_one_object_per_line_with_ids_and_carry_no_key_or_payload_either() {
    let stack = Stack::start_with(&[("ACKBOX_LOG_FORMAT", "json")]);
    let failed = {
        let client = stack.client();
        let doc =
            stack.submit(&client, serde_json::json!({"kind": "fail", "payload": {"times": 9}, "max_attempts": 1}));
        doc["id"].as_str().expect("id").to_string()
    };
    wait_for("the failing job to end", Duration::from_secs(60), || {
        let job = ackbox_db::models::Job::find(&mut stack.db.conn(), failed.parse().ok()?).ok()??;
        job.status.is_terminal().then_some(())
    });
    let logs = no_secrets_anywhere(stack);
    let lines: Vec<serde_json::Value> = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}")))
        .collect();
    for l in &lines {
        for field in ["ts", "level", "target", "msg"] {
            assert!(l[field].is_string(), "{field} in {l}");
        }
    }
    // The access log: the route template (never the raw path with its id), status, duration, request and trace ids.
    let access: Vec<&serde_json::Value> = lines.iter().filter(|l| l["target"] == "ackbox_api::access").collect();
    let get = access
        .iter()
        .find(|l| l["route"] == "/v1/jobs/{id}" && l["method"] == "GET" && l["status"] == 200)
        .unwrap_or_else(|| panic!("an access line for GET /v1/jobs/{{id}}: {access:?}"));
    assert!(get["duration_ms"].is_number(), "{get}");
    assert!(get["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{get}");
    assert_eq!(get["trace_id"].as_str().map(str::len), Some(32), "{get}");
    assert!(access.iter().all(|l| !l.to_string().contains("/v1/jobs/0")), "a raw path with an id: {access:?}");
    // The worker's lines about a job name it and the attempt as fields.
    assert!(
        lines.iter().any(|l| l["job_id"] == failed.as_str() && l["attempt"] == 1 && l["level"] == "WARN"),
        "a worker line with job_id and attempt for the failed job"
    );
}

/// Drives a job whose payload holds a marker through its life and refuses a few requests, then checks that no
/// response, metric or log line of any process carries the payload or the key. Returns the logs.
fn no_secrets_anywhere(stack: Stack) -> Vec<String> {
    let client = stack.client();
    let marker = format!("PRIVATE-{}", uuid::Uuid::now_v7().simple());

    // A job whose payload holds the marker, driven through its whole life, listed, and then refused in several ways.
    let doc = stack.submit(&client, serde_json::json!({"kind": "sleep", "payload": {"ms": 10, "note": marker}}));
    let id = doc["id"].as_str().expect("id").to_string();
    let mut responses = vec![doc.to_string()];
    let done = wait_for("the job to finish", Duration::from_secs(60), || {
        let body = client.get(stack.url(&format!("/v1/jobs/{id}"))).send().ok()?.text().ok()?;
        body.contains("succeeded").then_some(body)
    });
    responses.push(done);
    responses.push(client.get(stack.url("/v1/jobs")).send().expect("list").text().expect("body"));
    responses
        .push(client.get(stack.url(&format!("/v1/jobs/{id}/result"))).send().expect("result").text().expect("body"));
    // A payload that is refused (bad max_attempts) must not be echoed back in the error either.
    let refused = client
        .post(stack.url("/v1/jobs"))
        .json(&serde_json::json!({"kind": "sleep", "payload": {"note": marker}, "max_attempts": 0}))
        .send()
        .expect("POST");
    assert_eq!(refused.status().as_u16(), 422);
    responses.push(refused.text().expect("body"));
    let wrong_key = reqwest::blocking::Client::new()
        .get(stack.url("/v1/jobs"))
        .bearer_auth(format!("{}x", stack.key))
        .send()
        .expect("GET");
    assert_eq!(wrong_key.status().as_u16(), 401);
    responses.push(wrong_key.text().expect("body"));
    for component in [Component::Api, Component::Relay, Component::Worker] {
        let ops = stack.ops_url(component);
        responses.push(reqwest::blocking::get(format!("{ops}/metrics")).expect("metrics").text().expect("body"));
    }

    for r in &responses {
        assert!(!r.contains(&marker), "a response carries the payload: {r}");
        assert!(!r.contains(&stack.key), "a response carries the key: {r}");
    }
    // Every log line every process wrote for this stack.
    let logs = std::fs::read_dir(ackbox_e2e::bin_path("ackbox-api").parent().expect("dir").join("../e2e-logs"))
        .expect("log dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(stack.db.name()))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>();
    assert_eq!(logs.len(), 3, "api, relay and worker logs");
    for log in &logs {
        assert!(!log.is_empty());
        assert!(!log.contains(&marker), "a log line carries the payload");
        assert!(!log.contains(&stack.key), "a log line carries the key");
        assert!(!log.contains(stack.key.rsplit('_').next().unwrap_or("-")), "a log line carries the key's secret");
    }
    logs
}
