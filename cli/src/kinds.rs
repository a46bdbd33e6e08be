//! `ackbox kinds ...`: the job kinds the API accepts. Workers register theirs when they start; registering by hand
//! is for scripts that run the API without a worker (the bench's accept test, schemathesis).

use anyhow::{bail, Context};
use clap::Subcommand;
use diesel::PgConnection;

use ackbox_db::models::job_kind;

/// Kind commands.
#[derive(Subcommand)]
pub enum Kinds {
    /// Register kinds, as a worker that runs them would (the API then accepts them).
    Register {
        /// The kinds: 1 to 128 of letters, digits, `_`, `-`, `.` or `:` each.
        #[arg(required = true)]
        kinds: Vec<String>,
    },
    /// List the registered kinds.
    List,
}

/// Runs a kinds command.
pub fn run(conn: &mut PgConnection, cmd: Kinds, json: bool) -> anyhow::Result<()> {
    match cmd {
        Kinds::Register { kinds } => {
            if let Some(bad) = kinds.iter().find(|k| !job_kind::valid_kind(k)) {
                bail!(
                    "kind {bad:?} is not valid: use 1 to {} letters, digits, '_', '-', '.' or ':'",
                    job_kind::MAX_KIND_LEN
                );
            }
            job_kind::register(conn, &kinds).context("failed to register the kinds")?;
            if json {
                println!("{}", serde_json::json!({ "registered": kinds }));
            } else {
                eprintln!("registered: {}", kinds.join(", "));
            }
        }
        Kinds::List => {
            let all = job_kind::all(conn).context("failed to read the kinds")?;
            if json {
                println!("{}", serde_json::json!(all));
            } else {
                for k in all {
                    println!("{k}");
                }
            }
        }
    }
    Ok(())
}
