//! `ackbox submit KIND --payload JSON [--wait]`, or `ackbox submit --file jobs.ndjson` (many jobs, through
//! `POST /v1/jobs/batch` in batches of up to 1000): through the HTTP API, with the client crate.

use std::time::Duration;

use ackbox_client::{BatchJob, Client, Error, Job, JobStatus, SubmitOptions};
use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::table::print_json;

/// `submit` arguments.
#[derive(Args)]
pub struct Submit {
    /// Job kind (registered by some worker).
    #[arg(required_unless_present = "file")]
    pub kind: Option<String>,
    /// Submit every job of this NDJSON file (one `{"kind": ..., "payload": ..., "max_attempts": ...}` per line; `-`
    /// reads standard input) through the batch endpoint, 1000 per request, each request all or nothing. Prints
    /// the ids in file order. With --idempotency-key K, request n uses K-n, so a re-run submits nothing twice.
    #[arg(long, conflicts_with_all = ["kind", "payload", "wait", "max_attempts", "run_at", "delay_ms", "timeout_ms",
                                     "priority", "queue", "callback_url"])]
    pub file: Option<String>,
    /// Payload, as JSON.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// Wait for the job to finish, with a live progress bar, and print the final status.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait with --wait, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Idempotency-Key: submitting again with the same key and payload returns the same job.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Attempts allowed (1..=100; server default 3).
    #[arg(long)]
    pub max_attempts: Option<i32>,
    /// Run at this time (RFC 3339, e.g. 2026-12-01T09:00:00Z), not before.
    #[arg(long, conflicts_with = "delay_ms")]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Run this many milliseconds from now.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// This job's handler timeout in milliseconds (at most 86400000); default: the worker's.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// high, normal or low (default normal): a higher priority is dispatched and claimed first when work waits.
    #[arg(long)]
    pub priority: Option<ackbox_client::Priority>,
    /// The queue (it must exist; default: the kind's queue).
    #[arg(long)]
    pub queue: Option<String>,
    /// POST the job's status document to this URL when it ends (signed with the tenant's secret, Standard Webhooks).
    #[arg(long)]
    pub callback_url: Option<String>,
    /// API base URL (default: $ACKBOX_URL, then .ackbox/local.env).
    #[arg(long)]
    pub url: Option<String>,
    /// API key (default: $ACKBOX_API_KEY, then .ackbox/local.env).
    #[arg(long)]
    pub api_key: Option<String>,
}

/// Runs `submit`. Exits non-zero when the job ends failed or cancelled, so scripts can `&&` on it.
pub fn run(args: Submit, json: bool) -> anyhow::Result<()> {
    if let Some(file) = args.file.clone() {
        return run_file(&file, &args, json);
    }
    let kind = args.kind.clone().context("KIND is required without --file")?;
    let payload: serde_json::Value = serde_json::from_str(&args.payload)
        .with_context(|| format!("--payload is not valid JSON: {}", args.payload))?;
    let (url, key) = crate::settings::api(args.url.clone(), args.api_key.clone())?;
    let client = Client::new(&url, &key).context("bad API settings")?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let opts = SubmitOptions {
            idempotency_key: args.idempotency_key.clone(),
            max_attempts: args.max_attempts,
            run_at: args.run_at,
            delay: args.delay_ms.map(Duration::from_millis),
            timeout: args.timeout_ms.map(Duration::from_millis),
            priority: args.priority,
            queue: args.queue.clone(),
            callback_url: args.callback_url.clone(),
        };
        let job = client.submit_with(&kind, payload, &opts).await.map_err(|e| explain(e, &url))?;
        if !args.wait {
            if json {
                return print_json(&job);
            }
            println!("{}", job.id);
            eprintln!("job {} accepted ({}); follow it with `ackbox jobs show {}`", job.id, job.status, job.id);
            return Ok(());
        }
        let bar = progress_bar(json);
        let done = client.wait_with_progress(job.id, Duration::from_secs(args.timeout), |j| show(&bar, j)).await;
        bar.finish_and_clear();
        let done = match done {
            Ok(done) => done,
            Err(Error::WaitTimeout { job, waited, .. }) => {
                bail!(
                    "job {} is still {} after {:.0?}; it keeps going: check it later with `ackbox jobs show {}`",
                    job.id,
                    job.status,
                    waited,
                    job.id
                )
            }
            Err(e) => return Err(explain(e, &url)),
        };
        if json {
            print_json(&done)?;
        } else {
            println!("{} {}", done.id, done.status);
            if let Some(r) = &done.result {
                println!("{}", serde_json::to_string_pretty(r)?);
            }
            if let Some(e) = &done.error {
                eprintln!("error: {e}");
            }
        }
        match done.status {
            JobStatus::Succeeded => Ok(()),
            s => bail!("job {} ended {s} after {} attempt(s)", done.id, done.attempts),
        }
    })
}

fn progress_bar(hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn show(bar: &ProgressBar, j: &Job) {
    if let Some(p) = j.percent() {
        bar.set_position(p.clamp(0.0, 100.0) as u64);
    }
    let detail = j.progress_message().map(|m| format!(": {m}")).unwrap_or_default();
    bar.set_message(format!("{} (attempt {}/{}){detail}", j.status, j.attempts.max(1), j.max_attempts));
}

/// Turns a client error into a message that says what to do next.
fn explain(e: Error, url: &str) -> anyhow::Error {
    match e {
        Error::Unauthorized(_) => {
            anyhow::anyhow!(
                "the API refused the key: create one with `ackbox keys create --tenant NAME` and pass --api-key"
            )
        }
        Error::Invalid(p) => anyhow::anyhow!("the API refused the job: {p}"),
        Error::Transport(t) if t.is_connect() => {
            anyhow::anyhow!("cannot reach the API at {url}: is it running (`make up`), and is ACKBOX_URL right?")
        }
        other => anyhow::Error::new(other),
    }
}

/// Jobs per batch request (the API's limit).
const BATCH: usize = 1000;

/// `submit --file`: reads every line first (a bad line stops before anything is sent), then submits in batches.
fn run_file(file: &str, args: &Submit, json: bool) -> anyhow::Result<()> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    let mut jobs = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let job: BatchJob = serde_json::from_str(line)
            .with_context(|| format!("{file}:{}: not a job ({{\"kind\": ..., \"payload\": ...}})", n + 1))?;
        jobs.push(job);
    }
    if jobs.is_empty() {
        bail!("{file} holds no jobs");
    }
    let (url, key) = crate::settings::api(args.url.clone(), args.api_key.clone())?;
    let client = Client::new(&url, &key).context("bad API settings")?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(jobs.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} jobs accepted ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut accepted: Vec<Job> = Vec::with_capacity(jobs.len());
    rt.block_on(async {
        for (n, chunk) in jobs.chunks(BATCH).enumerate() {
            let key = args.idempotency_key.as_ref().map(|k| format!("{k}-{n}"));
            let done = client.submit_batch(chunk, key.as_deref()).await.map_err(|e| {
                let first = n * BATCH + 1;
                explain(e, &url).context(format!(
                    "lines {first} to {} were not accepted ({} jobs before them were)",
                    first + chunk.len() - 1,
                    accepted.len()
                ))
            })?;
            bar.inc(done.len() as u64);
            accepted.extend(done);
        }
        anyhow::Ok(())
    })?;
    bar.finish_and_clear();
    if json {
        return print_json(&accepted);
    }
    for job in &accepted {
        println!("{}", job.id);
    }
    eprintln!("{} jobs accepted", accepted.len());
    Ok(())
}
