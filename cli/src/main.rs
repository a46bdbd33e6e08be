#![doc = include_str!("../README.md")]

mod config;
mod jobs;
mod keys;
mod kinds;
mod outbox;
mod queues;
mod settings;
mod submit;
mod table;

use anyhow::Context;
use clap::{Parser, Subcommand};
use diesel::{Connection, PgConnection};

#[derive(Parser)]
#[command(name = "ackbox", version, about = "Ackbox operator command line", propagate_version = true)]
struct Cli {
    /// Postgres URL (default: $DATABASE_URL, then DATABASE_URL in .ackbox/local.env).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Print JSON instead of tables and text (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tenants' API keys.
    #[command(subcommand)]
    Keys(keys::Keys),
    /// The outbox: backlog, rows, replays.
    #[command(subcommand)]
    Outbox(outbox::Outbox),
    /// Jobs of every tenant: list, show, cancel, retry.
    #[command(subcommand)]
    Jobs(jobs::Jobs),
    /// Submit a job through the HTTP API (optionally waiting for it with a progress bar).
    Submit(submit::Submit),
    /// Job kinds the API accepts (workers register theirs at start-up).
    #[command(subcommand)]
    Kinds(kinds::Kinds),
    /// Queues: list, pause, resume, create.
    #[command(subcommand)]
    Queues(queues::Queues),
    /// The services' configuration: `config check` validates the current environment for api, relay and worker.
    #[command(subcommand)]
    Config(config::Config),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let json = cli.json;
    match cli.command {
        Command::Submit(args) => submit::run(args, json),
        Command::Keys(cmd) => keys::run(&mut connect(cli.database_url)?, cmd, json),
        Command::Outbox(cmd) => outbox::run(&mut connect(cli.database_url)?, cmd, json),
        Command::Jobs(cmd) => jobs::run(&mut connect(cli.database_url)?, cmd, json),
        Command::Kinds(cmd) => kinds::run(&mut connect(cli.database_url)?, cmd, json),
        Command::Queues(cmd) => queues::run(&mut connect(cli.database_url)?, cmd, json),
        // DATABASE_URL as every other command finds it: the flag, the environment, then .ackbox/local.env.
        Command::Config(cmd) => config::run(cmd, settings::lookup(cli.database_url, "DATABASE_URL"), json),
    }
}

fn connect(flag: Option<String>) -> anyhow::Result<PgConnection> {
    let url = settings::database_url(flag)?;
    PgConnection::establish(&url)
        .with_context(|| "cannot connect to Postgres; is it running (make up) and is DATABASE_URL right?")
}
