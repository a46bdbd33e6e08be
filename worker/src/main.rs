//! `ackbox-worker`: runs the built-in job kinds. `ackbox-worker migrate` applies pending migrations and exits;
//! `ackbox-worker check-config` checks the configuration; `--help` lists every environment variable it reads.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ackbox_worker::main_with(ackbox_worker::handlers::builtin()).await
}
