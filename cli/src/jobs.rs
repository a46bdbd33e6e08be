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
    /// Puts a failed job back to queued with a fresh outbox row, in one transaction.
    Retry {
        /// Job id.
        id: Uuid,
    },
}

/// Runs a jobs command.
pub fn run(conn: &mut PgConnection, cmd: Jobs, json: bool) -> anyhow::Result<()> {
    match cmd {
        Jobs::Ls { status, kind, tenant, limit } => {
            let rows = list_all(conn, &AdminFilter { status, kind, tenant, limit }).context("failed to list jobs")?;
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
        Jobs::Retry { id } => {
            let job = find(conn, id)?;
            // Send the retry where the job's earlier dispatches went.
            let topic = outbox::for_job(conn, id)
                .context("failed to read the job's outbox rows")?
                .last()
                .map(|r| r.topic.clone())
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

fn job_json(j: &Job, tenant: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::to_value(j).unwrap_or_default();
    if let Some(t) = tenant {
        v["tenant"] = t.into();
    }
    v
}
