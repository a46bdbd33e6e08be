//! `make chaos`: fault injection with a checker, after Jepsen's total-queue checker.
//!
//! A load generator submits `effect` jobs at a steady rate through the API and records every outcome: 202 with an id,
//! a refusal (status code), or unknown (timeout or connection error). Every submit carries a unique
//! Idempotency-Key, so an unknown outcome can be resolved afterwards: if the key names a job, the submit happened
//! ("recovered"). Meanwhile a scenario injects faults. Then the stack is healed, drained, and checked:
//!
//! - **lost**: a 202 whose job is not in the database;
//! - **unexpected**: a job in the database that no submit (202 or recovered) accounts for; a refused submit that
//!   created a job counts here, except a 503, whose COMMIT may have landed as the database went away (the api
//!   documents it: retry with the same Idempotency-Key), which counts as recovered;
//! - **duplicate effects**: jobs with more than one `job_effects` row (the handler records one per execution, in
//!   the transaction of its success);
//! - **stuck**: jobs (a 202's or a recovered one) not terminal after the drain; **unpublished**: outbox rows never
//!   delivered;
//! - **server errors**: any 5xx other than 503 (503 is the documented answer while Postgres is down).
//!
//! Duplicate deliveries are allowed and reported: extra dispatches (outbox rows beyond one per job) and extra
//! attempts (attempts beyond one per job).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rand::{Rng, SeedableRng};

use crate::{Component, Stack};

/// Leases, rescue and group timeouts short enough for faults to heal within a run.
pub const FAST_RECOVERY: &[(&str, &str)] = &[
    ("ACKBOX_LEASE_MS", "1500"),
    // At most a third of the lease (refused otherwise).
    ("ACKBOX_HEARTBEAT_MS", "500"),
    ("ACKBOX_RESCUE_INTERVAL_MS", "200"),
    ("ACKBOX_DISPATCH_TIMEOUT_MS", "5000"),
    ("ACKBOX_WORKER_CONCURRENCY", "16"),
    // At most the concurrency (refused otherwise).
    ("ACKBOX_WORKER_BATCH", "16"),
    ("ACKBOX_WORKER_SESSION_TIMEOUT_MS", "6000"),
    ("ACKBOX_RELAY_DELIVERY_TIMEOUT_MS", "3000"),
    ("ACKBOX_DB_CONNECT_TIMEOUT_MS", "1000"),
    // Producer idempotence stays on (the default), as in production: the broker scenarios run with it.
];

/// The faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// SIGKILL the relay several times at random points.
    RelayKill,
    /// SIGKILL the worker in the middle of jobs.
    WorkerKill,
    /// SIGKILL the api in the middle of requests.
    ApiKill,
    /// SIGSTOP the worker past its lease, then SIGCONT it.
    WorkerPause,
    /// Restart Postgres with `-m immediate` (the whole local cluster: run alone, never beside other tests).
    PostgresRestart,
    /// Stop the broker for 60 s (SIGSTOP: unreachable, every request times out, longer than the relay's delivery
    /// timeout and the worker's session), then let it go on (SIGCONT). The local broker: run alone.
    BrokerOutage,
    /// Kill the broker (SIGKILL) and start it again after 30 s, with the relay's producer idempotent throughout.
    BrokerRestart,
    /// Scale workers 1→3→1 in a loop.
    RebalanceStorm,
    /// One SIGKILL of each process (the smoke run inside `make test`).
    Smoke,
}

impl Scenario {
    /// Every scenario `make chaos` runs, in order.
    pub const ALL: [Scenario; 8] = [
        Scenario::RelayKill,
        Scenario::WorkerKill,
        Scenario::ApiKill,
        Scenario::WorkerPause,
        Scenario::RebalanceStorm,
        Scenario::BrokerOutage,
        Scenario::BrokerRestart,
        Scenario::PostgresRestart,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::RelayKill => "relay-kill",
            Scenario::WorkerKill => "worker-kill",
            Scenario::ApiKill => "api-kill",
            Scenario::WorkerPause => "worker-pause",
            Scenario::PostgresRestart => "postgres-restart",
            Scenario::BrokerOutage => "broker-outage",
            Scenario::BrokerRestart => "broker-restart",
            Scenario::RebalanceStorm => "rebalance-storm",
            Scenario::Smoke => "smoke",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().chain([Scenario::Smoke]).find(|s| s.name() == name)
    }
}

/// How a run is shaped.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The faults.
    pub scenario: Scenario,
    /// Seed of every random choice (fault timing), so a run can be repeated.
    pub seed: u64,
    /// Submissions per second.
    pub rate: u32,
    /// How long submissions go on.
    pub load: Duration,
    /// Longest wait for the drain after healing.
    pub drain_deadline: Duration,
}

/// What one submit came to.
#[derive(Clone, Debug)]
enum Outcome {
    Accepted(uuid::Uuid),
    Refused(u16),
    Unknown(String),
}

/// The checker's verdict on one run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Submits sent.
    pub submitted: usize,
    /// 202s.
    pub accepted: usize,
    /// Refusals by status (e.g. 503 while Postgres was down).
    pub refused: std::collections::BTreeMap<u16, usize>,
    /// Submits whose outcome was unknown (timeout, connection error).
    pub unknown: usize,
    /// Of those, submits that turned out to have created a job.
    pub recovered: usize,
    /// Why outcomes were unknown (the first few).
    pub unknown_samples: Vec<String>,
    /// 202s whose job is not in the database (an id handed out and then lost).
    pub lost: usize,
    /// Jobs nobody submitted (as far as the client knows).
    pub unexpected: usize,
    /// Jobs whose effect was recorded more than once.
    pub duplicate_effects: usize,
    /// Jobs not terminal after the drain.
    pub stuck: usize,
    /// Outbox rows never delivered after the drain.
    pub unpublished: i64,
    /// Outbox rows beyond one per job (re-dispatches by the rescuer or a retry).
    pub extra_dispatches: i64,
    /// Attempts beyond one per job (redelivery after a crash, lease loss or retry).
    pub extra_attempts: i64,
    /// 503s to a submit whose job exists all the same (the database went away during its COMMIT); counted in
    /// `recovered`, since retrying with the same Idempotency-Key returns the job.
    pub committed_503: usize,
    /// 5xx answers other than 503.
    pub server_errors: usize,
    /// Slowest 503 answer seen, in ms (the api must fail fast while Postgres is down).
    pub slowest_503_ms: u64,
    /// Seconds from the end of the load to a fully drained stack.
    pub drain_seconds: f64,
    /// What the scenario did, in order.
    pub faults: Vec<String>,
}

impl Report {
    /// True when jobs were accepted, and nothing was lost, nothing unexpected appeared, nothing took effect twice, nothing is stuck and no
    /// request failed with a server error.
    pub fn passed(&self) -> bool {
        // A run that accepted nothing proves nothing.
        self.accepted > 0
            && self.lost == 0
            && self.unexpected == 0
            && self.duplicate_effects == 0
            && self.stuck == 0
            && self.unpublished == 0
            && self.server_errors == 0
    }
}

/// The api's current base URL (it moves when the api is restarted on a fresh port).
type SharedUrl = Arc<RwLock<String>>;

/// Runs one scenario end to end and returns the checker's report.
pub fn run(plan: &Plan) -> Report {
    let mut stack = Stack::start_with(FAST_RECOVERY);
    let url: SharedUrl = Arc::new(RwLock::new(stack.api_url.clone()));
    let outcomes: Arc<Mutex<Vec<(String, Outcome)>>> = Arc::default();
    let slowest_503 = Arc::new(Mutex::new(Duration::ZERO));
    let server_errors = Arc::new(Mutex::new(0usize));
    let done = Arc::new(AtomicBool::new(false));

    let generator = {
        let (url, outcomes, key, slowest_503, server_errors, done) = (
            url.clone(),
            outcomes.clone(),
            stack.key.clone(),
            slowest_503.clone(),
            server_errors.clone(),
            done.clone(),
        );
        let (rate, load) = (plan.rate, plan.load);
        std::thread::spawn(move || generate(&url, &key, rate, load, &outcomes, &slowest_503, &server_errors, &done))
    };

    let mut rng = rand::rngs::StdRng::seed_from_u64(plan.seed);
    let mut faults = Vec::new();
    inject(plan, &mut stack, &url, &mut rng, &mut faults, &done);
    generator.join().expect("load generator");
    let load_ended = Instant::now();

    heal(&mut stack, &url, &mut faults);
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(|p| p.into_inner()));
    let accepted: Vec<uuid::Uuid> =
        outcomes.iter().filter_map(|(_, o)| if let Outcome::Accepted(id) = o { Some(*id) } else { None }).collect();
    let drained = ackbox_testing::poll_until(plan.drain_deadline, || drained(&mut stack.db.conn(), &accepted));
    let drain_seconds = load_ended.elapsed().as_secs_f64();
    if !drained {
        faults.push(format!("drain did not finish within {:?}", plan.drain_deadline));
    }

    let mut report = check(&mut stack.db.conn(), &outcomes);
    report.scenario = plan.scenario.name().into();
    report.seed = plan.seed;
    report.server_errors = *server_errors.lock().unwrap_or_else(|p| p.into_inner());
    report.slowest_503_ms = slowest_503.lock().unwrap_or_else(|p| p.into_inner()).as_millis() as u64;
    report.drain_seconds = (drain_seconds * 10.0).round() / 10.0;
    report.faults = faults;
    report
}

/// Submits `rate` jobs per second for `load` from a pool of threads, never waiting for earlier answers.
#[allow(clippy::too_many_arguments)]
fn generate(
    url: &SharedUrl,
    key: &str,
    rate: u32,
    load: Duration,
    outcomes: &Mutex<Vec<(String, Outcome)>>,
    slowest_503: &Mutex<Duration>,
    server_errors: &Mutex<usize>,
    done: &AtomicBool,
) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let total = (f64::from(rate) * load.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for i in 0..total {
            let due = start + interval * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let (client, base) = (client.clone(), url.read().unwrap_or_else(|p| p.into_inner()).clone());
            scope.spawn(move || {
                let idem = uuid::Uuid::now_v7().to_string();
                let sent = Instant::now();
                let res = client
                    .post(format!("{base}/v1/jobs"))
                    .bearer_auth(key)
                    .header("Idempotency-Key", &idem)
                    .json(&serde_json::json!({"kind": "effect", "payload": {"ms": 20}, "max_attempts": 20}))
                    .send();
                let outcome = match res {
                    Ok(r) if r.status().as_u16() == 202 => match r.json::<serde_json::Value>() {
                        Ok(doc) => match doc["id"].as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()) {
                            Some(id) => Outcome::Accepted(id),
                            None => Outcome::Unknown("202 without an id".into()),
                        },
                        Err(e) => Outcome::Unknown(format!("202 body: {e}")),
                    },
                    Ok(r) => {
                        let code = r.status().as_u16();
                        if code == 503 {
                            let mut s = slowest_503.lock().unwrap_or_else(|p| p.into_inner());
                            *s = (*s).max(sent.elapsed());
                        } else if code >= 500 {
                            *server_errors.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                        }
                        Outcome::Refused(code)
                    }
                    Err(e) => Outcome::Unknown(e.to_string()),
                };
                outcomes.lock().unwrap_or_else(|p| p.into_inner()).push((idem, outcome));
            });
        }
    });
    done.store(true, Ordering::SeqCst);
}

/// A random pause in [lo, hi) ms.
fn pause(rng: &mut rand::rngs::StdRng, lo: u64, hi: u64) {
    std::thread::sleep(Duration::from_millis(rng.gen_range(lo..hi)));
}

fn inject(
    plan: &Plan,
    stack: &mut Stack,
    url: &SharedUrl,
    rng: &mut rand::rngs::StdRng,
    faults: &mut Vec<String>,
    done: &AtomicBool,
) {
    let t0 = Instant::now();
    let note =
        |faults: &mut Vec<String>, what: String| faults.push(format!("{:>5.1}s {what}", t0.elapsed().as_secs_f64()));
    pause(rng, 800, 1500); // let some load build up first
    match plan.scenario {
        Scenario::RelayKill => {
            kill_and_restart(stack, url, rng, faults, &note, Component::Relay, 3, (300, 1200), (500, 1500))
        }
        Scenario::WorkerKill => {
            kill_and_restart(stack, url, rng, faults, &note, Component::Worker, 2, (300, 1000), (1000, 2000));
        }
        Scenario::ApiKill => {
            kill_and_restart(stack, url, rng, faults, &note, Component::Api, 2, (200, 800), (800, 1500))
        }
        Scenario::WorkerPause => {
            stack.signal(Component::Worker, 0, "STOP");
            note(faults, "SIGSTOP worker (lease 1.5 s)".into());
            std::thread::sleep(Duration::from_secs(4));
            stack.signal(Component::Worker, 0, "CONT");
            note(faults, "SIGCONT worker".into());
        }
        Scenario::PostgresRestart => {
            let ok = Stack::restart_postgres_immediately();
            note(faults, format!("Postgres restarted with -m immediate ({})", if ok { "ok" } else { "FAILED" }));
        }
        Scenario::BrokerOutage => {
            Stack::signal_broker("STOP");
            note(faults, "broker stopped (SIGSTOP) for 60 s".into());
            std::thread::sleep(Duration::from_secs(60));
            Stack::signal_broker("CONT");
            note(faults, "broker resumed (SIGCONT)".into());
        }
        Scenario::BrokerRestart => {
            Stack::signal_broker("KILL");
            note(faults, "broker killed (SIGKILL) for 30 s".into());
            std::thread::sleep(Duration::from_secs(30));
            Stack::start_broker();
            note(faults, "broker started".into());
        }
        Scenario::RebalanceStorm => {
            while !done.load(Ordering::SeqCst) {
                stack.spawn(Component::Worker);
                stack.spawn(Component::Worker);
                note(faults, "workers 1 → 3".into());
                pause(rng, 1500, 3000);
                stack.signal(Component::Worker, 2, "TERM");
                stack.signal(Component::Worker, 1, "TERM");
                if !stack.wait_exited(Duration::from_secs(40)) {
                    note(faults, "a worker did not exit within 40 s of SIGTERM".into());
                }
                note(faults, "workers 3 → 1 (SIGTERM)".into());
                pause(rng, 1500, 3000);
            }
        }
        Scenario::Smoke => {
            stack.signal(Component::Relay, 0, "KILL");
            note(faults, "SIGKILL relay".into());
            stack.spawn(Component::Relay);
            pause(rng, 500, 1000);
            stack.signal(Component::Worker, 0, "KILL");
            note(faults, "SIGKILL worker".into());
            stack.spawn(Component::Worker);
            pause(rng, 500, 1000);
            stack.signal(Component::Api, 0, "KILL");
            note(faults, "SIGKILL api".into());
            restart(stack, url, Component::Api);
        }
    }
}

/// SIGKILLs `component` `times` times: down for a random time in `down` ms, then up for one in `up` ms.
#[allow(clippy::too_many_arguments)]
fn kill_and_restart(
    stack: &mut Stack,
    url: &SharedUrl,
    rng: &mut rand::rngs::StdRng,
    faults: &mut Vec<String>,
    note: &dyn Fn(&mut Vec<String>, String),
    component: Component,
    times: usize,
    down: (u64, u64),
    up: (u64, u64),
) {
    let name = format!("{component:?}").to_lowercase();
    for _ in 0..times {
        stack.signal(component, 0, "KILL");
        note(faults, format!("SIGKILL {name}"));
        pause(rng, down.0, down.1);
        restart(stack, url, component);
        note(faults, format!("{name} restarted"));
        pause(rng, up.0, up.1);
    }
}

/// Starts another instance of `component`; the api comes back on a new port, which the load generator follows.
fn restart(stack: &mut Stack, url: &SharedUrl, component: Component) {
    if component == Component::Api {
        stack.spawn(Component::Api);
        *url.write().unwrap_or_else(|p| p.into_inner()) = stack.api_url.clone();
    } else {
        stack.spawn(component);
    }
}

/// Makes sure one of each process runs, whatever the scenario left behind.
fn heal(stack: &mut Stack, url: &SharedUrl, faults: &mut Vec<String>) {
    stack.reap_exited();
    for c in [Component::Relay, Component::Worker, Component::Api] {
        if stack.count(c) == 0 {
            restart(stack, url, c);
            faults.push(format!("heal: {c:?} restarted"));
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn drained(conn: &mut PgConnection, accepted: &[uuid::Uuid]) -> bool {
    let open: Result<Count, _> = diesel::sql_query(
        "SELECT (SELECT count(*) FROM jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled'))
              + (SELECT count(*) FROM outbox WHERE published_at IS NULL)
              + (SELECT count(*) FROM unnest($1::uuid[]) a(id) WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = a.id)) AS n",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(accepted)
    .get_result(conn);
    matches!(open, Ok(Count { n: 0 }))
}

#[derive(QueryableByName)]
struct JobRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    key: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    job_id: uuid::Uuid,
}

fn check(conn: &mut PgConnection, outcomes: &[(String, Outcome)]) -> Report {
    let jobs: Vec<JobRow> = diesel::sql_query("SELECT id, status::text AS status FROM jobs").load(conn).expect("jobs");
    let keys: Vec<KeyRow> =
        diesel::sql_query("SELECT key, job_id FROM idempotency_keys").load(conn).expect("idempotency keys");
    let by_key: std::collections::HashMap<&str, uuid::Uuid> = keys.iter().map(|k| (k.key.as_str(), k.job_id)).collect();
    let terminal: HashSet<uuid::Uuid> = jobs
        .iter()
        .filter(|j| matches!(j.status.as_str(), "succeeded" | "failed" | "cancelled"))
        .map(|j| j.id)
        .collect();
    let existing: HashSet<uuid::Uuid> = jobs.iter().map(|j| j.id).collect();

    let mut r = Report { submitted: outcomes.len(), ..Report::default() };
    let mut accounted = HashSet::new();
    for (idem, outcome) in outcomes {
        match outcome {
            Outcome::Accepted(id) => {
                r.accepted += 1;
                accounted.insert(*id);
                if !existing.contains(id) {
                    r.lost += 1;
                }
            }
            Outcome::Refused(code) => *r.refused.entry(*code).or_default() += 1,
            Outcome::Unknown(why) => {
                r.unknown += 1;
                if r.unknown_samples.len() < 5 {
                    r.unknown_samples.push(why.clone());
                }
                if let Some(id) = by_key.get(idem.as_str()) {
                    r.recovered += 1;
                    accounted.insert(*id);
                }
            }
        }
        if let (Outcome::Refused(code), Some(id)) = (outcome, by_key.get(idem.as_str())) {
            accounted.insert(*id);
            if *code == 503 {
                // The database went away during the submit's COMMIT: the commit may have landed before the
                // connection broke, and the api cannot know. The documented answer (api/README.md) is to retry with
                // the same Idempotency-Key, which finds this job: resolvable, like an unknown outcome.
                r.recovered += 1;
                r.committed_503 += 1;
            } else {
                // Any other refusal must not have created a job.
                r.unexpected += 1;
            }
        }
    }
    r.unexpected += existing.difference(&accounted).count();
    r.stuck = jobs.len() - terminal.len();

    let extra: (i64, i64, i64, i64) = {
        #[derive(QueryableByName)]
        struct Extra {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            dup_effects: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            unpublished: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            extra_dispatches: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            extra_attempts: i64,
        }
        let e: Extra = diesel::sql_query(
            "SELECT (SELECT count(*) FROM (SELECT job_id FROM job_effects GROUP BY job_id HAVING count(*) > 1) d) AS dup_effects,
                    (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished,
                    (SELECT count(*) FROM outbox) - (SELECT count(*) FROM jobs) AS extra_dispatches,
                    (SELECT coalesce(sum(greatest(attempts - 1, 0)), 0)::bigint FROM jobs) AS extra_attempts",
        )
        .get_result(conn)
        .expect("extras");
        (e.dup_effects, e.unpublished, e.extra_dispatches, e.extra_attempts)
    };
    r.duplicate_effects = extra.0 as usize;
    r.unpublished = extra.1;
    r.extra_dispatches = extra.2;
    r.extra_attempts = extra.3;
    r
}

/// The summary table, one line per scenario.
pub fn summary(reports: &[Report]) -> String {
    let mut out = String::from(
        "| scenario | seed | submitted | accepted | refused | unknown | recovered | lost | unexpected | duplicate effects | \
         extra dispatches | extra attempts | stuck | 5xx (not 503) | slowest 503 | drain | verdict |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let refused: Vec<String> = r.refused.iter().map(|(c, n)| format!("{n}×{c}")).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ms | {:.1} s | {} |\n",
            r.scenario,
            r.seed,
            r.submitted,
            r.accepted,
            if refused.is_empty() { "0".into() } else { refused.join(", ") },
            r.unknown,
            if r.committed_503 > 0 {
                format!("{} ({} after a 503)", r.recovered, r.committed_503)
            } else {
                r.recovered.to_string()
            },
            r.lost,
            r.unexpected,
            r.duplicate_effects,
            r.extra_dispatches,
            r.extra_attempts,
            r.stuck,
            r.server_errors,
            r.slowest_503_ms,
            r.drain_seconds,
            if r.passed() { "pass" } else { "**FAIL**" }
        ));
    }
    out
}
