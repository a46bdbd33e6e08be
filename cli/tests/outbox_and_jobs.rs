//! `ackbox outbox ...` and `ackbox jobs ...` against a real database.

use std::process::Command;
use std::time::Duration;

use ackbox_db::models::{Job, JobError, JobStatus, NewJob};
use ackbox_db::{outbox, state};
use ackbox_testing::TestDb;

fn ackbox(db: &TestDb, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ackbox")).args(args).env("DATABASE_URL", db.url()).output().expect("run ackbox")
}

fn ok_json(db: &TestDb, args: &[&str]) -> serde_json::Value {
    let out = ackbox(db, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn submit(db: &TestDb, kind: &str) -> Job {
    state::submit(&mut db.conn(), &NewJob::new(kind, serde_json::json!({"n": 1}), 1), "t.cli").expect("submit")
}

/// A job that ran once and failed permanently.
fn failed_job(db: &TestDb) -> Job {
    let job = submit(db, "fail");
    let mut conn = db.conn();
    let claimed = state::claim(&mut conn, &[job.id], Duration::from_secs(30)).expect("claim");
    assert_eq!(claimed.len(), 1);
    let err = JobError { code: "boom".into(), message: "it broke".into() };
    state::fail(&mut conn, job.id, 1, &err, false, Duration::ZERO, "t.cli").expect("fail");
    Job::find(&mut conn, job.id).expect("find").expect("job")
}

#[test]
fn outbox_stats_ls_show_and_replay_read_and_extend_history_without_editing_it() {
    let db = TestDb::new();
    let a = submit(&db, "echo");
    let b = submit(&db, "echo");
    let rows = outbox::for_job(&mut db.conn(), a.id).expect("rows");
    let row_a = rows[0].id;
    // One delivery failed and is waiting for its retry.
    outbox::mark_failed(&mut db.conn(), &[(row_a, "broker down".into())]).expect("mark failed");

    let stats = ok_json(&db, &["outbox", "stats", "--json"]);
    assert_eq!(stats["outbox"]["unpublished"], 2);
    assert_eq!(stats["outbox"]["failing"], 1);
    assert_eq!(stats["outbox"]["unpublished_by_attempts"], serde_json::json!([[0, 1], [1, 1]]));
    let human = ackbox(&db, &["outbox", "stats"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("backlog (undelivered rows)"));

    let failed = ok_json(&db, &["outbox", "ls", "--failed", "--json"]);
    assert_eq!(failed.as_array().map(Vec::len), Some(1));
    assert_eq!(failed[0]["last_error"], "broker down");
    let of_b = ok_json(&db, &["outbox", "ls", "--job", &b.id.to_string(), "--json"]);
    assert_eq!(of_b.as_array().map(Vec::len), Some(1));
    assert_eq!(of_b[0]["job_id"], b.id.to_string());
    let table = String::from_utf8_lossy(&ackbox(&db, &["outbox", "ls"]).stdout).to_string();
    assert!(table.contains(&a.id.to_string()) && table.contains("failing, next try"), "{table}");

    let show = String::from_utf8_lossy(&ackbox(&db, &["outbox", "show", &row_a.to_string()]).stdout).to_string();
    assert!(show.contains("envelope") && show.contains(&format!("\"job_id\": \"{}\"", a.id)), "{show}");

    let replay = ok_json(&db, &["outbox", "replay", &row_a.to_string(), "--json"]);
    assert_ne!(replay["id"], row_a, "a new row");
    assert_eq!(replay["job_id"], a.id.to_string());
    assert_eq!(replay["headers"]["ackbox-replay-of"], row_a.to_string());
    assert!(replay["published_at"].is_null() && replay["attempts"] == 0);
    let original = outbox::find(&mut db.conn(), row_a).expect("find").expect("row");
    assert_eq!(original.last_error.as_deref(), Some("broker down"), "history is not edited");
    assert_eq!(original.attempts, 1);

    let missing = ackbox(&db, &["outbox", "show", "999999"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ackbox outbox ls"), "says what to do next");
}

#[test]
fn jobs_ls_show_cancel_and_retry_work_across_tenants() {
    let db = TestDb::new();
    let queued = submit(&db, "echo");
    let failed = failed_job(&db);
    assert_eq!(failed.status, JobStatus::Failed);

    let listed = ok_json(&db, &["jobs", "ls", "--status", "failed", "--json"]);
    let ids: Vec<&str> = listed.as_array().expect("array").iter().filter_map(|j| j["id"].as_str()).collect();
    assert_eq!(ids, vec![failed.id.to_string().as_str()]);
    let table = String::from_utf8_lossy(&ackbox(&db, &["jobs", "ls"]).stdout).to_string();
    assert!(table.contains("boom") && table.contains(&queued.id.to_string()), "{table}");

    let show = ok_json(&db, &["jobs", "show", &failed.id.to_string(), "--json"]);
    assert_eq!(show["error"]["code"], "boom");
    assert_eq!(show["outbox"].as_array().map(Vec::len), Some(1));

    // retry: failed → queued with a fresh dispatch for attempt 2, in one transaction; max_attempts grows to allow it.
    let retried = ok_json(&db, &["jobs", "retry", &failed.id.to_string(), "--json"]);
    assert_eq!(retried["status"], "queued");
    assert_eq!(retried["max_attempts"], 2);
    let rows = outbox::for_job(&mut db.conn(), failed.id).expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].payload["attempt"], 2);
    assert_eq!(rows[1].topic, "t.cli", "the retry goes where the job's dispatches went");
    // The new attempt is claimable, and only as attempt 2.
    let claimed = state::claim(&mut db.conn(), &[failed.id], Duration::from_secs(30)).expect("claim");
    assert_eq!(claimed.first().map(|c| c.attempt), Some(2));

    let again = ackbox(&db, &["jobs", "retry", &queued.id.to_string()]);
    assert!(!again.status.success(), "only failed jobs can be retried");
    assert!(String::from_utf8_lossy(&again.stderr).contains("only failed jobs"));

    let cancel = ackbox(&db, &["jobs", "cancel", &queued.id.to_string()]);
    assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
    assert_eq!(Job::find(&mut db.conn(), queued.id).expect("find").expect("job").status, JobStatus::Cancelled);
    let twice = ackbox(&db, &["jobs", "cancel", &queued.id.to_string()]);
    assert!(!twice.status.success() && String::from_utf8_lossy(&twice.stderr).contains("already cancelled"));

    let nobody = ackbox(&db, &["jobs", "show", &uuid::Uuid::now_v7().to_string()]);
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("ackbox jobs ls"));
    let bad = ackbox(&db, &["jobs", "show", "not-a-uuid"]);
    assert!(!bad.status.success(), "clap refuses a malformed id");
}

#[test]
fn outbox_ls_dead_shows_only_rows_the_broker_refused_for_good_with_their_error() {
    let db = TestDb::new();
    let dead = submit(&db, "echo");
    let alive = submit(&db, "echo");
    let row = outbox::for_job(&mut db.conn(), dead.id).expect("rows")[0].id;
    outbox::mark_dead(&mut db.conn(), &[(row, "Message size too large".into())]).expect("mark dead");

    let rows = ok_json(&db, &["outbox", "ls", "--dead", "--json"]);
    let jobs: Vec<&str> = rows.as_array().expect("array").iter().filter_map(|r| r["job_id"].as_str()).collect();
    assert_eq!(jobs, vec![dead.id.to_string()], "{rows}");
    assert!(rows[0]["dead_at"].is_string());
    let human = String::from_utf8(ackbox(&db, &["outbox", "ls", "--dead"]).stdout).expect("utf-8");
    assert!(human.contains("dead since") && human.contains("Message size too large"), "{human}");
    assert!(!human.contains(&alive.id.to_string()));
    let unpublished = ok_json(&db, &["outbox", "ls", "--unpublished", "--json"]);
    assert_eq!(unpublished.as_array().map(Vec::len), Some(1), "a dead row is not waiting for the relay");
}

/// A failed job of `kind` that failed `ago` ago.
fn failed_of(db: &TestDb, kind: &str, ago: &str) -> Job {
    let job = submit(db, kind);
    let mut conn = db.conn();
    state::claim(&mut conn, &[job.id], Duration::from_secs(30)).expect("claim");
    let err = JobError { code: "boom".into(), message: "it broke".into() };
    state::fail(&mut conn, job.id, 1, &err, false, Duration::ZERO, "t.cli").expect("fail");
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!("UPDATE jobs SET finished_at = now() - interval '{ago}' WHERE id = $1"))
            .bind::<diesel::sql_types::Uuid, _>(job.id),
        &mut conn,
    )
    .expect("age");
    Job::find(&mut conn, job.id).expect("find").expect("job")
}

#[test]
fn jobs_retry_by_filter_requeues_the_matching_failed_jobs_in_batches_with_fresh_dispatches() {
    let db = TestDb::new();
    let recent_a: Vec<Job> = (0..5).map(|_| failed_of(&db, "alpha", "10 minutes")).collect();
    let old_a = failed_of(&db, "alpha", "3 hours");
    let recent_b = failed_of(&db, "beta", "5 minutes");
    let running = submit(&db, "alpha");
    state::claim(&mut db.conn(), &[running.id], Duration::from_secs(30)).expect("claim");

    // Unnarrowed, it refuses rather than retry everything by accident.
    let refused = ackbox(&db, &["jobs", "retry"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--all"));

    // alpha, failed within the hour, in batches of 2 (2 + 2 + 1).
    let done = ok_json(&db, &["jobs", "retry", "--kind", "alpha", "--since", "1h", "--batch", "2", "--json"]);
    assert_eq!(done["retried"], 5);
    let mut conn = db.conn();
    for job in &recent_a {
        let now = Job::find(&mut conn, job.id).expect("find").expect("job");
        assert_eq!(now.status, JobStatus::Queued, "{}", job.id);
        assert!(now.max_attempts >= 2, "one more attempt than it had used");
        let rows = outbox::for_job(&mut conn, job.id).expect("rows");
        assert_eq!(rows.last().and_then(|r| r.payload.get("attempt")).and_then(|a| a.as_i64()), Some(2));
        assert_eq!(rows.last().map(|r| r.topic.as_str()), Some("t.cli"), "to its last dispatch's topic");
    }
    for untouched in [&old_a, &recent_b] {
        assert_eq!(Job::find(&mut conn, untouched.id).expect("find").expect("job").status, JobStatus::Failed);
    }
    assert_eq!(Job::find(&mut conn, running.id).expect("find").expect("job").status, JobStatus::Running);

    // --queue narrows to a queue's failed jobs (--status takes only `failed`).
    diesel::RunQueryDsl::execute(
        diesel::sql_query("UPDATE jobs SET queue = 'mail' WHERE id = $1").bind::<diesel::sql_types::Uuid, _>(old_a.id),
        &mut conn,
    )
    .expect("queue");
    let done = ok_json(&db, &["jobs", "retry", "--status", "failed", "--queue", "mail", "--json"]);
    assert_eq!(done["retried"], 1);
    assert_eq!(Job::find(&mut conn, old_a.id).expect("find").expect("job").status, JobStatus::Queued);
    assert!(!ackbox(&db, &["jobs", "retry", "--status", "running", "--all"]).status.success());

    // --all takes the rest of the failed ones, and only those.
    let done = ok_json(&db, &["jobs", "retry", "--all", "--json"]);
    assert_eq!(done["retried"], 1);
    let bad = ackbox(&db, &["jobs", "retry", "--since", "soon"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("expected a number and a unit"));
}
