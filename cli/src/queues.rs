//! `ackbox queues ...`: the queues jobs belong to. Pausing a queue stops workers from claiming its queued jobs
//! (running ones finish); resuming it lets the relay's rescuer dispatch them again at its next pass.

use anyhow::{bail, Context};
use clap::Subcommand;
use diesel::PgConnection;

use ackbox_db::models::queue::{self, Change};

use crate::table::{print_json, table, time};

/// Queue commands.
#[derive(Subcommand)]
pub enum Queues {
    /// List the queues with their queued and running jobs and whether they are paused.
    #[command(alias = "list")]
    Ls,
    /// Pause a queue: its queued jobs are no longer claimed (they stay queued); running ones finish.
    Pause {
        /// The queue.
        name: String,
    },
    /// Resume a paused queue: its jobs are claimed again, the ones skipped meanwhile dispatched at the relay's next
    /// rescuer pass.
    Resume {
        /// The queue.
        name: String,
    },
    /// Create a queue (workers create the queues they serve when they start), so jobs may name it.
    Create {
        /// The queue: 1 to 128 letters, digits, `_`, `-`, `.` or `:`.
        name: String,
    },
}

/// Runs a queues command.
pub fn run(conn: &mut PgConnection, cmd: Queues, json: bool) -> anyhow::Result<()> {
    match cmd {
        Queues::Ls => {
            let rows = queue::list(conn).context("failed to read the queues")?;
            if json {
                return print_json(&rows);
            }
            let mut t = table(&["queue", "state", "queued", "running"]);
            for r in rows {
                let state = r.paused_at.map_or("running".to_string(), |at| format!("paused since {}", time(Some(at))));
                t.add_row(vec![r.name, state, r.queued.to_string(), r.running.to_string()]);
            }
            println!("{t}");
        }
        Queues::Pause { name } => report(queue::pause(conn, &name).context("failed to pause")?, &name, "paused", json)?,
        Queues::Resume { name } => {
            report(queue::resume(conn, &name).context("failed to resume")?, &name, "resumed", json)?
        }
        Queues::Create { name } => {
            if !queue::valid_name(&name) {
                bail!("queue {name:?} is not valid: use 1 to 128 letters, digits, '_', '-', '.' or ':'");
            }
            let created = queue::ensure(conn, std::slice::from_ref(&name)).context("failed to create")? > 0;
            if json {
                println!("{}", serde_json::json!({ "queue": name, "created": created }));
            } else {
                eprintln!("{}", if created { format!("created {name}") } else { format!("{name} already exists") });
            }
        }
    }
    Ok(())
}

/// Says what a pause or resume did; an unknown queue is an error (exit 1).
fn report(change: Change, name: &str, done: &str, json: bool) -> anyhow::Result<()> {
    if change == Change::Unknown {
        bail!("no queue {name:?} (ackbox queues ls lists them)");
    }
    let changed = change == Change::Changed;
    if json {
        println!("{}", serde_json::json!({ "queue": name, "state": done, "changed": changed }));
    } else if changed {
        eprintln!("{name} {done}");
    } else {
        eprintln!("{name} was already {done}");
    }
    Ok(())
}
