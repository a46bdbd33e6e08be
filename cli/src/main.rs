#![doc = include_str!("../README.md")]

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use diesel::{Connection, PgConnection};

#[derive(Parser)]
#[command(name = "ackbox", version, about = "Ackbox operator command line")]
struct Cli {
    /// Postgres URL (default: $DATABASE_URL, then DATABASE_URL in .ackbox/local.env).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage API keys.
    #[command(subcommand)]
    Keys(Keys),
}

#[derive(Subcommand)]
enum Keys {
    /// Create a key for a tenant (created if missing) and print it once.
    Create {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or prefix; refused at once by every API process.
    Revoke {
        /// The key's id or prefix (see `keys list`).
        key: String,
    },
}

/// `DATABASE_URL` from the flag, the environment, or `.ackbox/local.env`.
fn database_url(flag: Option<String>) -> anyhow::Result<String> {
    if let Some(url) = flag.or_else(|| ackbox_shared::config::optional("DATABASE_URL")) {
        return Ok(url);
    }
    let env = std::fs::read_to_string(".ackbox/local.env").unwrap_or_default();
    env.lines()
        .filter_map(|l| l.strip_prefix("DATABASE_URL="))
        .map(|v| v.trim().to_string())
        .next()
        .context("DATABASE_URL is not set and .ackbox/local.env has none: run `make up`, or pass --database-url")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let url = database_url(cli.database_url)?;
    let mut conn = PgConnection::establish(&url)
        .with_context(|| "cannot connect to Postgres; is it running (make up) and is DATABASE_URL right?")?;
    match cli.command {
        Command::Keys(Keys::Create { tenant, json }) => {
            if tenant.trim().is_empty() || tenant.len() > 128 {
                bail!("--tenant must be 1 to 128 characters");
            }
            let t = ackbox_shared::models::tenant::ensure_tenant(&mut conn, &tenant)
                .context("failed to create the tenant")?;
            let (row, key) =
                ackbox_shared::models::tenant::create_key(&mut conn, t.id).context("failed to create the key")?;
            if json {
                println!("{}", serde_json::json!({"id": row.id, "tenant": t.name, "prefix": row.prefix, "key": key}));
            } else {
                println!("{key}");
                eprintln!("key {} for tenant {} created; it is shown only this once", row.prefix, t.name);
            }
        }
        Command::Keys(Keys::List { json }) => {
            let keys = ackbox_shared::models::tenant::list_keys(&mut conn).context("failed to list keys")?;
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|(k, t)| {
                        serde_json::json!({"id": k.id, "tenant": t, "prefix": k.prefix,
                                           "created_at": k.created_at, "revoked_at": k.revoked_at})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!("{:<36}  {:<20}  {:<12}  {:<20}  REVOKED", "ID", "TENANT", "PREFIX", "CREATED");
                for (k, t) in keys {
                    let revoked = k.revoked_at.map(|r| r.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default();
                    println!(
                        "{:<36}  {:<20}  {:<12}  {:<20}  {revoked}",
                        k.id,
                        t,
                        k.prefix,
                        k.created_at.format("%Y-%m-%d %H:%M:%S")
                    );
                }
            }
        }
        Command::Keys(Keys::Revoke { key }) => {
            if !ackbox_shared::models::tenant::revoke_key(&mut conn, &key).context("failed to revoke")? {
                bail!("no live key with id or prefix {key:?} (see `ackbox keys list`)");
            }
            eprintln!("revoked {key}");
        }
    }
    Ok(())
}
