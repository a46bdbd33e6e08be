//! `ackbox config check`: validates a whole environment against every service that would run in it.
//!
//! Each service binary knows its own settings (`ackbox-api --help` lists them); `check-config` parses and checks
//! them and exits. This runs `ackbox-api`, `ackbox-relay` and `ackbox-worker check-config` with the current
//! environment (the binaries beside this one, else on `PATH`) and reports each, so one command tells an SRE whether
//! a ConfigMap or an env file would start every service.

use std::path::PathBuf;
use std::process::Command;

use anyhow::bail;
use clap::Subcommand;

/// Config commands.
#[derive(Subcommand)]
pub enum Config {
    /// Check the environment for each service (all three unless --service is given); exit 1 if any would not start.
    Check {
        /// Only these services (api, relay, worker), comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = ["api".to_string(), "relay".into(), "worker".into()])]
        service: Vec<String>,
    },
}

/// The binary of `service`: beside the running `ackbox`, else the name alone (found on `PATH`).
fn binary(service: &str) -> PathBuf {
    let name = format!("ackbox-{service}");
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs a config command. `database_url` (the global flag, else `DATABASE_URL`, else `.ackbox/local.env`'s) is passed
/// on as `DATABASE_URL`.
pub fn run(cmd: Config, database_url: Option<String>, json: bool) -> anyhow::Result<()> {
    let Config::Check { service } = cmd;
    let mut failed = 0;
    let mut report = Vec::new();
    for svc in &service {
        if !["api", "relay", "worker"].contains(&svc.as_str()) {
            bail!("--service: {svc:?} is not one of api, relay, worker");
        }
        let program = binary(svc);
        let mut command = Command::new(&program);
        command.arg("check-config");
        if let Some(url) = &database_url {
            command.env("DATABASE_URL", url);
        }
        let (ok, detail) = match command.output() {
            Ok(out) if out.status.success() => (true, String::from_utf8_lossy(&out.stdout).trim().to_string()),
            Ok(out) => {
                // clap's errors and ours end with the reason; the usage lines after it are noise here.
                let text = String::from_utf8_lossy(&out.stderr);
                let reason: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
                    .collect();
                (false, reason.join(" "))
            }
            Err(e) => (false, format!("cannot run {}: {e}", program.display())),
        };
        failed += usize::from(!ok);
        report.push(serde_json::json!({"service": svc, "valid": ok, "detail": detail}));
        if !json {
            println!("{svc:<7} {} {detail}", if ok { "ok     " } else { "INVALID" });
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(report));
    }
    if failed > 0 {
        bail!("{failed} of {} services would not start with this environment", service.len());
    }
    Ok(())
}
