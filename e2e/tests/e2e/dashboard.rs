//! The dashboard: its data API behind an admin key, and the page itself rendered by headless Chromium (Debian's
//! `chromium`, installed by `make test`), whose numbers must match the database. The screenshot is saved to
//! `target/dashboard.png`.

use std::process::Command;
use std::time::Duration;

use ackbox_e2e::{bin_path, Component, Stack};
use ackbox_testing::wait_for;
use diesel::prelude::*;

use crate::cdp::CHROMIUM;

fn chromium(url: &str, extra: &[&str]) -> std::process::Output {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `make test` installs it (deploy/local/stack.sh tools), or apt-get install chromium"
    );
    let profile = std::env::temp_dir().join(format!("ackbox-chromium-{}", uuid::Uuid::now_v7()));
    let out = Command::new(CHROMIUM)
        .args(crate::cdp::HEADLESS)
        .args(["--disable-quic", "--virtual-time-budget=8000", &format!("--user-data-dir={}", profile.display())])
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(profile);
    out
}

/// The text of the first element carrying `attr` (e.g. `data-total-status="failed"`) in a dumped DOM.
fn text_of(dom: &str, attr: &str) -> Option<String> {
    let at = dom.find(attr)?;
    let rest = &dom[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(rest[start..start + end].trim().to_string())
}

#[test]
fn the_dashboard_shows_what_the_database_holds_and_only_to_admins() {
    let stack = Stack::start_with(&[("ACKBOX_STATS_INTERVAL_MS", "200")]);
    let http = stack.client();
    let admin_key = {
        let mut conn = stack.db.conn();
        let ops = ackbox_db::models::tenant::ensure_tenant(&mut conn, "ops").expect("tenant");
        ackbox_db::models::tenant::set_admin(&mut conn, ops.id, true).expect("admin");
        ackbox_db::models::tenant::create_key(&mut conn, ops.id).expect("key").1
    };

    for _ in 0..3 {
        stack.submit(&http, serde_json::json!({"kind": "echo", "payload": {}}));
    }
    let mut failed = Vec::new();
    for _ in 0..2 {
        let doc = stack.submit(&http, serde_json::json!({"kind": "fail", "payload": {"times": 9}, "max_attempts": 1}));
        failed.push(doc["id"].as_str().expect("id").to_string());
    }
    wait_for("all 5 jobs to finish", Duration::from_secs(60), || {
        let n: i64 = ackbox_db::schema::jobs::table
            .filter(ackbox_db::schema::jobs::status.eq_any(["succeeded", "failed"]))
            .count()
            .get_result(&mut stack.db.conn())
            .ok()?;
        (n == 5).then_some(())
    });
    // The relay samples the backlog and the worker reports its lag every 200 ms. Should that ever not happen, say
    // which of the two is missing and what the two processes logged, not only that the wait ran out.
    let mut seen = (0, 0, String::new());
    let reported = ackbox_testing::poll(Duration::from_secs(60), || {
        let mut conn = stack.db.conn();
        let samples = ackbox_db::outbox::backlog_history(&mut conn, Duration::from_secs(3600));
        let lag = ackbox_db::models::consumer_lag::current(&mut conn, Duration::from_secs(60));
        let all_lag: i64 = ackbox_db::schema::consumer_lag::table.count().get_result(&mut conn).unwrap_or(-1);
        seen = (
            samples.as_ref().map_or(0, Vec::len),
            lag.as_ref().map_or(0, Vec::len),
            format!("samples: {:?}, fresh lag: {:?}, lag rows of any age: {all_lag}", samples.err(), lag.err()),
        );
        (seen.0 >= 2 && seen.1 > 0).then_some(())
    });
    if reported.is_none() {
        let tail = |c: Component| {
            let log = std::fs::read_to_string(stack.log_path(c)).unwrap_or_default();
            log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        panic!(
            "no backlog samples and lag report within 60 s: {} samples, {} fresh lag rows ({})\n--- relay log ---\n{}\n\
             --- worker log ---\n{}",
            seen.0,
            seen.1,
            seen.2,
            tail(Component::Relay),
            tail(Component::Worker)
        );
    }

    // The data API: no key 401, a tenant's key 403, an admin key 200.
    let summary = stack.url("/dashboard/api/summary");
    let anonymous = reqwest::blocking::Client::new();
    assert_eq!(anonymous.get(&summary).send().expect("GET").status().as_u16(), 401);
    let tenant = http.get(&summary).send().expect("GET");
    assert_eq!(tenant.status().as_u16(), 403);
    assert_eq!(tenant.headers()["content-type"], "application/problem+json");
    let doc: serde_json::Value =
        anonymous.get(&summary).bearer_auth(&admin_key).send().expect("GET").json().expect("json");
    let count = |kind: &str, status: &str| {
        doc["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|c| c["kind"] == kind && c["status"] == status)
            .map(|c| c["count"].clone())
    };
    assert_eq!(count("echo", "succeeded"), Some(3.into()));
    assert_eq!(count("fail", "failed"), Some(2.into()));
    let listed: Vec<&str> =
        doc["recent_failures"].as_array().expect("failures").iter().filter_map(|f| f["id"].as_str()).collect();
    assert!(failed.iter().all(|id| listed.contains(&id.as_str())), "{listed:?}");
    assert_eq!(doc["recent_failures"][0]["code"], "deliberate_failure");
    let job = anonymous
        .get(stack.url(&format!("/dashboard/api/jobs/{}", failed[0])))
        .bearer_auth(&admin_key)
        .send()
        .expect("GET job");
    assert_eq!(job.status().as_u16(), 200);
    let job: serde_json::Value = job.json().expect("json");
    assert_eq!(job["job"]["status"], "failed");
    assert!(job["job"].get("payload").is_none(), "the dashboard never shows payloads");

    // The page itself, rendered: the numbers in the DOM are the database's.
    let page = format!("{}/dashboard#key={admin_key}", stack.api_url);
    let out = chromium(&page, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(dom.contains("data-generated-at"), "the page loaded its data: {}", String::from_utf8_lossy(&out.stderr));
    let db_count = |status: &str| -> i64 {
        ackbox_db::schema::jobs::table
            .filter(ackbox_db::schema::jobs::status.eq(status))
            .count()
            .get_result(&mut stack.db.conn())
            .expect("count")
    };
    for status in ["succeeded", "failed", "queued"] {
        assert_eq!(
            text_of(&dom, &format!("data-total-status=\"{status}\"")),
            Some(db_count(status).to_string()),
            "{status} total on the page"
        );
    }
    assert_eq!(text_of(&dom, "data-kind=\"echo\" data-status=\"succeeded\"").as_deref(), Some("3"));
    let backlog: i64 = ackbox_db::outbox::unpublished_count(&mut stack.db.conn()).expect("backlog");
    assert_eq!(text_of(&dom, "id=\"backlog\""), Some(backlog.to_string()));
    assert!(failed.iter().all(|id| dom.contains(&format!("data-job-id=\"{id}\""))), "failures listed");
    assert!(dom.contains("<svg"), "the backlog chart is drawn");
    assert!(!dom.contains(&admin_key), "the key is not left in the page");

    // The job view (#job=<id>): one row per finished attempt, as jobs.history holds them.
    let job_page = format!("{}/dashboard#key={admin_key}&job={}", stack.api_url, failed[0]);
    let out = chromium(&job_page, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    let history: serde_json::Value = ackbox_db::schema::jobs::table
        .find(uuid::Uuid::parse_str(&failed[0].to_string()).expect("uuid"))
        .select(ackbox_db::schema::jobs::history.assume_not_null())
        .first(&mut stack.db.conn())
        .expect("history");
    let attempts = history.as_array().expect("entries");
    assert!(!attempts.is_empty(), "a failed job has finished attempts: {history}");
    for a in attempts {
        assert!(dom.contains(&format!("data-attempt=\"{}\"", a["attempt"])), "attempt {a} shown: {dom}");
        assert_eq!(a["outcome"], "failed");
    }
    assert_eq!(dom.matches("data-outcome=\"failed\"").count(), attempts.len(), "one row per attempt");

    let shot = bin_path("ackbox-api").parent().expect("dir").join("../dashboard.png");
    let out = chromium(&page, &["--window-size=1400,1000", &format!("--screenshot={}", shot.display())]);
    assert!(shot.exists(), "screenshot written: {}", String::from_utf8_lossy(&out.stderr));
}

/// An admin key of a tenant `ops` in the stack's database.
fn admin_key(stack: &Stack) -> String {
    let mut conn = stack.db.conn();
    let ops = ackbox_db::models::tenant::ensure_tenant(&mut conn, "ops").expect("tenant");
    ackbox_db::models::tenant::set_admin(&mut conn, ops.id, true).expect("admin");
    ackbox_db::models::tenant::create_key(&mut conn, ops.id).expect("key").1
}

fn job_row(stack: &Stack, id: &str) -> ackbox_db::models::Job {
    let id: uuid::Uuid = id.parse().expect("uuid");
    ackbox_db::models::Job::find(&mut stack.db.conn(), id).expect("find").expect("job")
}

#[test]
fn an_operator_filters_the_job_list_and_retries_and_cancels_from_the_dashboard() {
    let stack = Stack::start();
    let http = stack.client();
    let key = admin_key(&stack);
    // Three failed jobs, one of another kind; one job waiting for an hour; one running for a minute.
    let failed: Vec<String> = (0..3)
        .map(|i| {
            let doc = stack.submit(&http, serde_json::json!({"kind": "fail", "payload": {"i": i}, "max_attempts": 1}));
            doc["id"].as_str().expect("id").to_string()
        })
        .collect();
    for id in &failed {
        assert_eq!(stack.wait_terminal(&http, id, Duration::from_secs(60))["status"], "failed");
    }
    let waiting = stack.submit(&http, serde_json::json!({"kind": "echo", "delay_ms": 3_600_000}))["id"]
        .as_str()
        .expect("id")
        .to_string();
    let running = stack.submit(&http, serde_json::json!({"kind": "sleep", "payload": {"ms": 60_000}}))["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_for("the sleep job to run", Duration::from_secs(60), || {
        (job_row(&stack, &running).status == ackbox_db::models::JobStatus::Running).then_some(())
    });

    // A link with a filter opens the list filtered: the failed jobs, and only them.
    let mut page = crate::cdp::Browser::open(&format!("{}/dashboard#key={key}&status=failed", stack.api_url));
    page.wait_for(
        "the failed jobs listed",
        "document.body.getAttribute('data-jobs-loaded') === '3'",
        Duration::from_secs(20),
    );
    let statuses = page.eval("[...document.querySelectorAll('[data-list-status]')].map(r => r.dataset.listStatus)");
    assert_eq!(statuses, serde_json::json!(["failed", "failed", "failed"]));

    // Retry one: it runs again (and, being `fail`, fails again with a second attempt).
    page.click(&format!("button[data-action=retry][data-job='{}']", failed[0]));
    wait_for("the retried job's second attempt", Duration::from_secs(60), || {
        let j = job_row(&stack, &failed[0]);
        (j.attempts == 2 && j.status.is_terminal()).then_some(())
    });
    page.wait_for(
        "the note",
        "document.getElementById('jobs-note').textContent.includes('queued again')",
        Duration::from_secs(10),
    );

    // Cancel the waiting job (cancelled at once) and the running one (a cancel requested, then cancelled).
    page.eval("document.getElementById('f-status').value = ''");
    page.click("#jobs-filter button");
    for id in [&waiting, &running] {
        page.wait_for(
            "the row",
            &format!("!!document.querySelector(\"button[data-action=cancel][data-job='{id}']\")"),
            Duration::from_secs(20),
        );
        page.click(&format!("button[data-action=cancel][data-job='{id}']"));
        wait_for("the job to end cancelled", Duration::from_secs(60), || {
            (job_row(&stack, id).status == ackbox_db::models::JobStatus::Cancelled).then_some(())
        });
    }

    // Retry every failed job of kind `fail`: the two left and the one that failed again.
    page.eval("document.getElementById('f-kind').value = 'fail'");
    page.click("#retry-matching");
    let retried =
        page.wait_for("the bulk retry", "document.body.getAttribute('data-retried')", Duration::from_secs(30));
    assert_eq!(retried, "3");
    // The first was retried twice (by its button, then by the filter), the others once.
    for (id, attempts) in failed.iter().zip([3, 2, 2]) {
        wait_for("another attempt", Duration::from_secs(60), || {
            let j = job_row(&stack, id);
            (j.attempts == attempts && j.status.is_terminal()).then_some(())
        });
    }
}
