//! `ackbox outbox ...`: what the relay has and has not delivered.

use ackbox_db::models::consumer_lag;
use ackbox_db::outbox::{self, ListFilter};
use anyhow::{bail, Context};
use clap::Subcommand;
use diesel::PgConnection;
use uuid::Uuid;

use crate::table::{age, pairs, print_json, table, time};

/// Outbox commands.
#[derive(Subcommand)]
pub enum Outbox {
    /// Backlog, oldest undelivered age, publish rate over the last minute, undelivered rows by attempts, and
    /// consumer lag.
    Stats,
    /// Rows, newest first, as an aligned table.
    Ls {
        /// Only rows not yet delivered.
        #[arg(long, conflicts_with = "failed")]
        unpublished: bool,
        /// Only undelivered rows whose last delivery failed.
        #[arg(long)]
        failed: bool,
        /// Only dead rows: refused by the broker for good (too large, invalid), never retried; their jobs failed
        /// with `undeliverable`.
        #[arg(long, conflicts_with_all = ["unpublished", "failed"])]
        dead: bool,
        /// Only rows of this job.
        #[arg(long, value_name = "JOB_ID")]
        job: Option<Uuid>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
    /// One row, with its envelope and headers pretty-printed.
    Show {
        /// Row id (see `ackbox outbox ls`).
        id: i64,
    },
    /// Re-publishes a row by inserting a copy as a new row (history is never edited). Safe at any time: workers
    /// claim conditionally, so a replay of a finished job changes nothing.
    Replay {
        /// Row id (see `ackbox outbox ls`).
        id: i64,
    },
}

/// Runs an outbox command.
pub fn run(conn: &mut PgConnection, cmd: Outbox, json: bool) -> anyhow::Result<()> {
    match cmd {
        Outbox::Stats => {
            let stats = outbox::stats(conn).context("failed to read outbox stats")?;
            let lag = consumer_lag::current(conn, consumer_lag::FRESH).context("failed to read consumer lag")?;
            if json {
                return print_json(&serde_json::json!({"outbox": stats, "consumer_lag": lag}));
            }
            let t = pairs(vec![
                ("backlog (undelivered rows)".into(), stats.unpublished.to_string()),
                ("  of which failing".into(), stats.failing.to_string()),
                ("oldest undelivered".into(), age(stats.oldest_unpublished_age_secs)),
                (
                    "published, last minute".into(),
                    format!("{} ({:.1}/s)", stats.published_last_minute, stats.published_last_minute as f64 / 60.0),
                ),
            ]);
            println!("{t}");
            if !stats.unpublished_by_attempts.is_empty() {
                let mut t = table(&["DELIVERY ATTEMPTS", "UNDELIVERED ROWS"]);
                for (attempts, rows) in &stats.unpublished_by_attempts {
                    t.add_row(vec![attempts.to_string(), rows.to_string()]);
                }
                println!("\n{t}");
            }
            if lag.is_empty() {
                println!("\nconsumer lag: no worker has reported in the last {} s", consumer_lag::FRESH.as_secs());
            } else {
                let mut t = table(&["GROUP", "TOPIC", "PARTITION", "LAG", "REPORTED"]);
                for r in &lag {
                    t.add_row(vec![
                        r.group_id.clone(),
                        r.topic.clone(),
                        r.partition.to_string(),
                        r.lag.to_string(),
                        time(Some(r.reported_at)),
                    ]);
                }
                println!("\n{t}");
            }
        }
        Outbox::Ls { unpublished, failed, dead, job, limit } => {
            let rows = outbox::list(conn, &ListFilter { unpublished, failed, dead, job, limit })
                .context("failed to list outbox rows")?;
            if json {
                return print_json(&rows.iter().map(row_json).collect::<Vec<_>>());
            }
            let mut t = table(&["ID", "JOB", "TOPIC", "ATTEMPTS", "CREATED", "STATE"]);
            for r in &rows {
                let state = match (&r.published_at, &r.last_error) {
                    (Some(p), _) => format!("published {}", time(Some(*p))),
                    (None, e) if r.dead_at.is_some() => {
                        format!("dead since {}: {}", time(r.dead_at), e.as_deref().unwrap_or("refused"))
                    }
                    (None, Some(e)) => format!("failing, next try {}: {e}", time(Some(r.available_at))),
                    (None, None) if r.available_at > chrono::Utc::now() => {
                        format!("due {}", time(Some(r.available_at)))
                    }
                    (None, None) => "waiting for the relay".to_string(),
                };
                t.add_row(vec![
                    r.id.to_string(),
                    r.aggregate_id.to_string(),
                    r.topic.clone(),
                    r.attempts.to_string(),
                    time(Some(r.created_at)),
                    state,
                ]);
            }
            println!("{t}");
            if rows.is_empty() {
                eprintln!("no rows match");
            }
        }
        Outbox::Show { id } => {
            let Some(r) = outbox::find(conn, id).context("failed to read the row")? else {
                bail!("no outbox row {id} (rows are deleted after the relay's retention; see `ackbox outbox ls`)");
            };
            if json {
                return print_json(&row_json(&r));
            }
            println!("id           {}", r.id);
            println!("job          {}", r.aggregate_id);
            println!("topic        {}", r.topic);
            println!("key          {}", r.key);
            println!("created      {}", time(Some(r.created_at)));
            println!("available    {}", time(Some(r.available_at)));
            println!("published    {}", if r.published_at.is_some() { time(r.published_at) } else { "no".into() });
            println!("attempts     {}", r.attempts);
            if let Some(e) = &r.last_error {
                println!("last error   {e}");
            }
            println!("headers\n{}", indent(&serde_json::to_string_pretty(&r.headers)?));
            println!("envelope\n{}", indent(&serde_json::to_string_pretty(&r.payload)?));
        }
        Outbox::Replay { id } => {
            let Some(r) = outbox::replay(conn, id).context("failed to insert the replay")? else {
                bail!("no outbox row {id} to replay (see `ackbox outbox ls`)");
            };
            if json {
                return print_json(&row_json(&r));
            }
            println!("{}", r.id);
            eprintln!(
                "row {id} queued again as row {} (job {}); the relay publishes it on its next round",
                r.id, r.aggregate_id
            );
        }
    }
    Ok(())
}

fn row_json(r: &ackbox_db::models::OutboxMessage) -> serde_json::Value {
    serde_json::json!({
        "id": r.id, "job_id": r.aggregate_id, "topic": r.topic, "key": r.key, "payload": r.payload,
        "headers": r.headers, "created_at": r.created_at, "available_at": r.available_at,
        "published_at": r.published_at, "attempts": r.attempts, "last_error": r.last_error, "dead_at": r.dead_at,
    })
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}
