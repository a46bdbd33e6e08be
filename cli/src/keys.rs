//! `ackbox keys ...`: tenants' API keys.

use anyhow::{bail, Context};
use clap::Subcommand;
use diesel::PgConnection;

use crate::table::{table, time};

/// Key commands.
#[derive(Subcommand)]
pub enum Keys {
    /// Create a key for a tenant (created if missing) and print it once.
    Create {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
        /// Make the tenant an admin: its keys open the dashboard (every tenant's jobs, the outbox, lag).
        #[arg(long)]
        admin: bool,
        /// Store the key held by this environment variable (a bootstrap key from a Secret) instead of making one.
        /// Idempotent: the same key again changes nothing, so a bootstrap Job can run on every deploy. The key is
        /// never printed.
        #[arg(long, value_name = "VAR")]
        key_from_env: Option<String>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by id or prefix; refused at once by every API process.
    Revoke {
        /// The key's id or prefix (see `keys list`).
        key: String,
    },
}

/// Runs a keys command.
pub fn run(conn: &mut PgConnection, cmd: Keys, json: bool) -> anyhow::Result<()> {
    match cmd {
        Keys::Create { tenant, admin, key_from_env: Some(var) } => {
            let key = std::env::var(&var).with_context(|| format!("--key-from-env {var}: the variable is not set"))?;
            if tenant.trim().is_empty() || tenant.len() > 128 {
                bail!("--tenant must be 1 to 128 characters");
            }
            let t = ackbox_db::models::tenant::ensure_tenant(conn, &tenant).context("failed to create the tenant")?;
            if admin {
                ackbox_db::models::tenant::set_admin(conn, t.id, true).context("failed to make the tenant admin")?;
            }
            let done = ackbox_db::models::tenant::import_key(conn, t.id, key.trim())
                .with_context(|| format!("failed to store the key from {var}"))?;
            let what = match done {
                ackbox_db::models::tenant::Imported::Created => "stored",
                ackbox_db::models::tenant::Imported::AlreadyPresent => "already present",
            };
            if json {
                println!("{}", serde_json::json!({"tenant": t.name, "admin": admin, "result": what}));
            } else {
                eprintln!("key from {var} for tenant {}: {what}", t.name);
            }
        }
        Keys::Create { tenant, admin, key_from_env: None } => {
            if tenant.trim().is_empty() || tenant.len() > 128 {
                bail!("--tenant must be 1 to 128 characters");
            }
            let t = ackbox_db::models::tenant::ensure_tenant(conn, &tenant).context("failed to create the tenant")?;
            if admin {
                ackbox_db::models::tenant::set_admin(conn, t.id, true).context("failed to make the tenant admin")?;
            }
            let (row, key) = ackbox_db::models::tenant::create_key(conn, t.id).context("failed to create the key")?;
            if json {
                println!("{}", serde_json::json!({"id": row.id, "tenant": t.name, "prefix": row.prefix, "key": key}));
            } else {
                println!("{key}");
                eprintln!("key {} for tenant {} created; it is shown only this once", row.prefix, t.name);
            }
        }
        Keys::List => {
            let keys = ackbox_db::models::tenant::list_keys(conn).context("failed to list keys")?;
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|(k, t, admin)| {
                        serde_json::json!({"id": k.id, "tenant": t, "admin": admin, "prefix": k.prefix,
                                           "created_at": k.created_at, "revoked_at": k.revoked_at})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                let mut tbl = table(&["ID", "TENANT", "ADMIN", "PREFIX", "CREATED", "REVOKED"]);
                for (k, t, admin) in keys {
                    let admin = if admin { "yes" } else { "" }.to_string();
                    tbl.add_row(vec![
                        k.id.to_string(),
                        t,
                        admin,
                        k.prefix.clone(),
                        time(Some(k.created_at)),
                        time(k.revoked_at),
                    ]);
                }
                println!("{tbl}");
            }
        }
        Keys::Revoke { key } => {
            if !ackbox_db::models::tenant::revoke_key(conn, &key).context("failed to revoke")? {
                bail!("no live key with id or prefix {key:?} (see `ackbox keys list`)");
            }
            eprintln!("revoked {key}");
        }
    }
    Ok(())
}
