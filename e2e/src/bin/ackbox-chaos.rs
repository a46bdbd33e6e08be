//! `make chaos`: runs the fault scenarios of `ackbox_e2e::chaos` one after another (they restart Postgres and the
//! broker, so nothing else may run meanwhile), writes a JSON report per scenario and a summary table under
//! `target/chaos/`, and exits non-zero if any scenario lost, duplicated or invented anything.

use std::time::Duration;

use ackbox_e2e::chaos::{self, Plan, Scenario};
use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(name = "ackbox-chaos", about = "Fault injection with a Jepsen-style checker")]
struct Args {
    /// Scenarios to run (default: all): relay-kill, worker-kill, api-kill, worker-pause, rebalance-storm,
    /// broker-outage, broker-restart, postgres-restart; opt-in: smoke.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// Seed of the fault timing (a run with the same seed injects the same faults at the same offsets).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Submissions per second.
    #[arg(long, default_value_t = 40)]
    rate: u32,
    /// Seconds of load per scenario (the broker scenarios stretch to cover their outage).
    #[arg(long, default_value_t = 12)]
    seconds: u64,
    /// Where the reports go.
    #[arg(long, default_value = "target/chaos")]
    out: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenarios: Vec<Scenario> = if args.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenario
            .iter()
            .map(|s| Scenario::parse(s).with_context(|| format!("unknown scenario {s:?} (see --help)")))
            .collect::<anyhow::Result<_>>()?
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let mut reports = Vec::new();
    for scenario in scenarios {
        let load = match scenario {
            Scenario::BrokerOutage => Duration::from_secs(args.seconds.max(70)),
            Scenario::BrokerRestart => Duration::from_secs(args.seconds.max(40)),
            _ => Duration::from_secs(args.seconds),
        };
        let plan = Plan { scenario, seed: args.seed, rate: args.rate, load, drain_deadline: Duration::from_secs(180) };
        eprintln!("==> {} (seed {}, {} jobs/s for {:?})", scenario.name(), plan.seed, plan.rate, plan.load);
        let report = chaos::run(&plan);
        let path = args.out.join(format!("{}.json", scenario.name()));
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("    {}", if report.passed() { "pass" } else { "FAIL" });
        reports.push(report);
    }
    let summary = chaos::summary(&reports);
    let path = args.out.join("summary.md");
    std::fs::write(&path, format!("# make chaos\n\n{summary}"))?;
    println!("{summary}");
    println!("reports: {}", args.out.display());
    if reports.iter().all(chaos::Report::passed) {
        Ok(())
    } else {
        anyhow::bail!("at least one scenario failed its checks (see {})", path.display())
    }
}
