//! `ackbox jobs ...`: the operator's view of jobs, across tenants, straight from Postgres.

use ackbox_db::models::job::{list_all, AdminFilter};
use ackbox_db::models::{Job, JobStatus};
use ackbox_db::outbox;
use ackbox_db::state::{self, CancelOutcome, RetryOutcome};
use anyhow::{bail, Context};
use clap::Subcommand;
use diesel::PgConnection;
use uuid::Uuid;

use crate::table::{print_json, table, time};

/// Job commands.
#[derive(Subcommand)]
pub enum Jobs {
    /// Jobs of every tenant, newest first.
    Ls {
        /// Only this status (queued, running, succeeded, failed, cancelled).
        #[arg(long)]
        status: Option<JobStatus>,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only this tenant (by name).
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
    /// One job with its payload, result, error and dispatch history.
    Show {
        /// Job id.
        id: Uuid,
    },
    /// Cancels a job: a queued one at once, a running one by asking its handler to stop.
    Cancel {
        /// Job id.
        id: Uuid,
    },
    /// Puts a failed job back to queued with a fresh outbox row, in one transaction; without an id, every failed job
    /// the filters match, in bounded batches (one transaction each) with a progress bar.
    Retry {
        /// Job id (omit it to retry by filter).
        id: Option<Uuid>,
        /// Only failed jobs of this kind.
        #[arg(long, conflicts_with = "id")]
        kind: Option<String>,
        /// Only failed jobs of this tenant (by name).
        #[arg(long, conflicts_with = "id")]
        tenant: Option<String>,
        /// Only failed jobs of this queue.
        #[arg(long, conflicts_with = "id")]
        queue: Option<String>,
        /// Which jobs are retried: failed ones (the only status a retry takes; accepted so the filter reads as
        /// `ackbox jobs ls` does).
        #[arg(long, conflicts_with = "id", value_parser = ["failed"])]
        status: Option<String>,
        /// Only jobs that failed within this long ago: 90s, 30m, 1h, 2d.
        #[arg(long, conflicts_with = "id", value_parser = parse_age)]
        since: Option<chrono::Duration>,
        /// Retry every failed job (required when no --kind, --tenant, --queue or --since narrows it).
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// Jobs per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch: i64,
    },
}

/// Runs a jobs command.
pub fn run(conn: &mut PgConnection, cmd: Jobs, json: bool) -> anyhow::Result<()> {
    match cmd {
        Jobs::Ls { status, kind, tenant, limit } => {
            let rows = list_all(conn, &AdminFilter { status, kind, tenant, limit, ..Default::default() })
                .context("failed to list jobs")?;
            if json {
                let out: Vec<_> = rows.iter().map(|(j, t)| job_json(j, t.as_deref())).collect();
                return print_json(&out);
            }
            let mut t = table(&["ID", "TENANT", "KIND", "STATUS", "ATTEMPTS", "CREATED", "FINISHED", "ERROR"]);
            for (j, tenant) in &rows {
                t.add_row(vec![
                    j.id.to_string(),
                    tenant.clone().unwrap_or_else(|| "-".into()),
                    j.kind.clone(),
                    j.status.to_string(),
                    format!("{}/{}", j.attempts, j.max_attempts),
                    time(Some(j.created_at)),
                    time(j.finished_at),
                    j.error_field("code").unwrap_or_default().to_string(),
                ]);
            }
            println!("{t}");
            if rows.is_empty() {
                eprintln!("no jobs match");
            }
        }
        Jobs::Show { id } => {
            let job = find(conn, id)?;
            let dispatches = outbox::for_job(conn, id).context("failed to read the job's outbox rows")?;
            if json {
                let mut doc = job_json(&job, None);
                doc["outbox"] = dispatches
                    .iter()
                    .map(|r| {
                        serde_json::json!({"id": r.id, "attempt": r.payload.get("attempt"),
                        "created_at": r.created_at, "published_at": r.published_at, "last_error": r.last_error})
                    })
                    .collect();
                return print_json(&doc);
            }
            println!("id           {}", job.id);
            println!("kind         {}", job.kind);
            println!(
                "status       {}{}",
                job.status,
                if job.cancel_requested_at.is_some() { " (cancel requested)" } else { "" }
            );
            println!("attempts     {}/{}", job.attempts, job.max_attempts);
            println!("queue        {} (priority {})", job.queue, job.priority());
            println!("created      {}", time(Some(job.created_at)));
            println!("started      {}", time(job.started_at));
            println!("finished     {}", time(job.finished_at));
            if let Some(nb) = job.not_before {
                println!("not before   {}", time(Some(nb)));
            }
            println!("payload      {}", job.payload);
            if let Some(r) = &job.result {
                println!("result       {r}");
            }
            if let Some(e) = &job.error {
                println!("error        {e}");
            }
            if let Some(p) = &job.progress {
                println!("progress     {p}");
            }
            println!("\n{}", history_table(&job));
            let mut t = table(&["OUTBOX ROW", "ATTEMPT", "CREATED", "PUBLISHED", "LAST ERROR"]);
            for r in &dispatches {
                t.add_row(vec![
                    r.id.to_string(),
                    r.payload.get("attempt").map(|a| a.to_string()).unwrap_or_default(),
                    time(Some(r.created_at)),
                    time(r.published_at),
                    r.last_error.clone().unwrap_or_default(),
                ]);
            }
            println!("\n{t}");
        }
        Jobs::Cancel { id } => {
            let job = find(conn, id)?;
            let outcome = state::cancel(conn, job.tenant_id, id).context("failed to cancel")?;
            let (job, what) = match outcome {
                CancelOutcome::Cancelled(j) => (j, "cancelled".to_string()),
                CancelOutcome::Requested(j) => (
                    j,
                    "cancel requested: the running attempt stops at its next heartbeat, then it is cancelled".into(),
                ),
                CancelOutcome::AlreadyFinished(j) => {
                    bail!("job {id} is already {}; nothing to cancel", j.status)
                }
                CancelOutcome::NotFound => bail!("no job {id} (see `ackbox jobs ls`)"),
            };
            if json {
                return print_json(&job_json(&job, None));
            }
            eprintln!("job {id}: {what}");
        }
        Jobs::Retry { id: None, kind, tenant, queue, since, all, batch, .. } => {
            retry_matching(conn, RetryArgs { kind, tenant, queue, since, all, batch }, json)?
        }
        Jobs::Retry { id: Some(id), .. } => {
            let job = find(conn, id)?;
            // Send the retry where the job's earlier dispatches went.
            let topic = outbox::last_topic(conn, id)
                .context("failed to read the job's outbox rows")?
                .or_else(|| ackbox_db::config::optional("ACKBOX_TOPIC"))
                .unwrap_or_else(|| ackbox_db::config::DEFAULT_TOPIC.to_string());
            match state::retry_failed(conn, job.id, &topic).context("failed to retry")? {
                RetryOutcome::Requeued { job, attempt } => {
                    if json {
                        return print_json(&job_json(&job, None));
                    }
                    eprintln!("job {id} is queued again; its next attempt is {attempt} of {}", job.max_attempts);
                }
                RetryOutcome::NotFailed(j) => {
                    bail!("job {id} is {}; only failed jobs can be retried (cancel it first if it is stuck)", j.status)
                }
                RetryOutcome::NotFound => bail!("no job {id} (see `ackbox jobs ls`)"),
            }
        }
    }
    Ok(())
}

fn find(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<Job> {
    Job::find(conn, id)
        .context("failed to read the job")?
        .with_context(|| format!("no job {id} (see `ackbox jobs ls`)"))
}

/// The job's finished attempts (`jobs.history`), one row each.
fn history_table(job: &Job) -> comfy_table::Table {
    let mut t = table(&["ATTEMPT", "STARTED", "FINISHED", "OUTCOME", "ERROR"]);
    let entries = job.history.as_ref().and_then(|h| h.as_array()).cloned().unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    for e in &entries {
        let error = match (e["error"]["code"].as_str(), e["error"]["message"].as_str()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => String::new(),
        };
        t.add_row(vec![
            text(&e["attempt"]),
            text(&e["started_at"]),
            text(&e["finished_at"]),
            text(&e["outcome"]),
            error,
        ]);
    }
    t
}

fn job_json(j: &Job, tenant: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::to_value(j).unwrap_or_default();
    if let Some(t) = tenant {
        v["tenant"] = t.into();
    }
    v
}

/// `90s`, `30m`, `1h`, `2d`.
fn parse_age(raw: &str) -> Result<chrono::Duration, String> {
    let raw = raw.trim();
    let (n, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: i64 = n.parse().map_err(|_| format!("{raw:?}: expected a number and a unit, e.g. 30m, 1h, 2d"))?;
    match unit {
        "s" => Ok(chrono::Duration::seconds(n)),
        "m" => Ok(chrono::Duration::minutes(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        "d" => Ok(chrono::Duration::days(n)),
        _ => Err(format!("{raw:?}: the unit must be s, m, h or d")),
    }
}

/// The filters of `jobs retry` without an id.
struct RetryArgs {
    kind: Option<String>,
    tenant: Option<String>,
    queue: Option<String>,
    since: Option<chrono::Duration>,
    all: bool,
    batch: i64,
}

/// `jobs retry` by filter: counts the matching failed jobs, then retries them `batch` per transaction until none is
/// left, with a progress bar. Jobs that fail again meanwhile are not retried twice (only failures from before the
/// command started match).
fn retry_matching(conn: &mut PgConnection, args: RetryArgs, json: bool) -> anyhow::Result<()> {
    let RetryArgs { kind, tenant, queue, since, all, batch } = args;
    if kind.is_none() && tenant.is_none() && queue.is_none() && since.is_none() && !all {
        bail!(
            "give a job id, or narrow the retry with --kind, --tenant, --queue or --since, or say --all for every \
             failed job"
        );
    }
    let started = chrono::Utc::now();
    let filter = state::RetryFilter {
        kind,
        tenant,
        queue,
        failed_after: since.map(|s| started - s),
        ..state::RetryFilter::before(started)
    };
    let total = state::count_failed(conn, &filter).context("failed to count the failed jobs")?;
    let topic = ackbox_db::config::optional("ACKBOX_TOPIC").unwrap_or_else(|| ackbox_db::config::DEFAULT_TOPIC.into());
    let bar = if json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(total.max(0) as u64) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} failed jobs queued again")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut retried = 0usize;
    loop {
        let n = state::retry_failed_many(conn, &filter, batch, &topic)
            .with_context(|| format!("failed to retry (after {retried} were queued again)"))?;
        retried += n;
        bar.inc(n as u64);
        if (n as i64) < batch {
            break;
        }
    }
    bar.finish_and_clear();
    if json {
        return print_json(&serde_json::json!({"retried": retried}));
    }
    eprintln!("{retried} failed jobs queued again, each with a fresh dispatch");
    Ok(())
}
