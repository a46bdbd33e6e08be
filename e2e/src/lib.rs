#![doc = include_str!("../README.md")]

//! End-to-end harness: starts the real `ackbox-api`, `ackbox-relay` and `ackbox-worker` binaries as child processes
//! against a database of their own (cloned from the migrated template) and a topic and consumer group of their own.
//!
//! The binaries are taken from the same target directory as the test executable; `make test` builds them first
//! (`cargo build --bins`). Each process logs to `target/e2e-logs/<database>-<name>.log`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod chaos;
pub mod otlp;

use ackbox_runtime::kafka::KafkaConfig;
use ackbox_testing::{fresh_topic, unique_topic, TestDb};

/// The three components.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// `ackbox-api`
    Api,
    /// `ackbox-relay`
    Relay,
    /// `ackbox-worker`
    Worker,
}

impl Component {
    /// The least-privilege Postgres role the component connects as (migrations/…_roles).
    pub fn role(self) -> &'static str {
        match self {
            Component::Api => "ackbox_api",
            Component::Relay => "ackbox_relay",
            Component::Worker => "ackbox_worker",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Component::Api => "ackbox-api",
            Component::Relay => "ackbox-relay",
            Component::Worker => "ackbox-worker",
        }
    }
}

/// Where cargo put the binaries: next to the `deps/` folder holding a test executable, or beside a binary of this
/// crate (`ackbox-chaos`).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`; `make test` does)",
        path.display()
    );
    path
}

/// The repository's root (this crate sits in `e2e/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// A running stack.
pub struct Stack {
    /// The stack's database.
    pub db: TestDb,
    /// The stack's topic.
    pub kafka: KafkaConfig,
    /// Base URL of the api, e.g. `http://127.0.0.1:41234`.
    pub api_url: String,
    /// An API key of the stack's tenant.
    pub key: String,
    group: String,
    log_dir: PathBuf,
    env: Vec<(String, String)>,
    children: Vec<(Component, Child)>,
    /// The static-membership name (`ACKBOX_WORKER_INSTANCE_ID`) given to each worker process, by pid.
    worker_names: Vec<(u32, String)>,
    /// Processes sent SIGTERM that have not been seen to exit yet.
    terminating: Vec<u32>,
}

impl Stack {
    /// Starts api, relay and worker and returns once the api is listening.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`Stack::start`], with extra environment for every process (e.g. a short lease).
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::start_on(TestDb::new(), env)
    }

    /// Like [`Stack::start_with`], on a database the test made (on another cluster, say: each process connects to it
    /// as its own role, with the database URL's query, TLS settings included).
    pub fn start_on(db: TestDb, env: &[(&str, &str)]) -> Self {
        let kafka = fresh_topic("e2e", 3);
        let log_dir = bin_path("ackbox-api").parent().expect("dir").join("../e2e-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let key = {
            let mut conn = db.conn();
            let tenant = ackbox_db::models::tenant::ensure_tenant(&mut conn, "e2e").expect("tenant");
            ackbox_db::models::tenant::create_key(&mut conn, tenant.id).expect("key").1
        };
        let mut stack = Stack {
            db,
            kafka,
            key,
            api_url: String::new(),
            group: unique_topic("e2e-group"),
            log_dir,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            children: Vec::new(),
            worker_names: Vec::new(),
            terminating: Vec::new(),
        };
        stack.spawn(Component::Relay);
        stack.spawn(Component::Worker);
        stack.spawn(Component::Api);
        stack.wait_for_kinds();
        stack
    }

    /// Waits until the worker has registered its kinds (the API refuses unregistered kinds).
    pub fn wait_for_kinds(&self) {
        ackbox_testing::wait_for("the worker to register its kinds", Duration::from_secs(60), || {
            let kinds = ackbox_db::models::job_kind::all(&mut self.db.conn()).ok()?;
            kinds.iter().any(|k| k == "effect").then_some(())
        });
    }

    /// Starts (another instance of) a component.
    pub fn spawn(&mut self, component: Component) {
        self.spawn_with(component, &[]);
    }

    /// The static-membership name for a new worker: the lowest-numbered one no running worker holds, so a worker
    /// started after one was killed takes the dead one's name, as a restarted pod or container would.
    fn free_worker_name(&self) -> String {
        let taken = self.names_of_live_workers();
        (1..).map(|n| format!("{}-worker-{n}", self.group)).find(|name| !taken.contains(name)).expect("a free name")
    }

    /// The names of the worker processes still in `children`.
    fn names_of_live_workers(&self) -> Vec<String> {
        let live: Vec<u32> = self.children.iter().map(|(_, c)| c.id()).collect();
        self.worker_names.iter().filter(|(pid, _)| live.contains(pid)).map(|(_, n)| n.clone()).collect()
    }

    /// The log file of `component` (every instance of it appends there).
    pub fn log_path(&self, component: Component) -> PathBuf {
        self.log_dir.join(format!("{}-{}.log", self.db.name(), component.binary()))
    }

    /// The static-membership names of the running workers.
    pub fn worker_names(&mut self) -> Vec<String> {
        self.reap_exited();
        self.names_of_live_workers()
    }

    /// Starts a component with extra environment on top of the stack's (e.g. its own consumer group).
    pub fn spawn_with(&mut self, component: Component, extra: &[(&str, &str)]) {
        self.spawn_program(component, bin_path(component.binary()), extra);
    }

    /// Starts the worker binary of `examples/<example>.rs` of the worker crate (built by `cargo test`), as a worker
    /// of this stack with extra environment (its own topic and group, say). Its log goes to the worker log.
    pub fn spawn_example_worker(&mut self, example: &str, extra: &[(&str, &str)]) {
        self.spawn_program(Component::Worker, bin_path(&format!("examples/{example}")), extra);
    }

    fn spawn_program(&mut self, component: Component, program: PathBuf, extra: &[(&str, &str)]) {
        let log_path = self.log_path(component);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("log file");
        let mut cmd = Command::new(program);
        let name = (component == Component::Worker).then(|| self.free_worker_name());
        if let Some(name) = &name {
            cmd.env("ACKBOX_WORKER_INSTANCE_ID", name);
        }
        // Each process connects as its own least-privilege role, as in production: a missing grant fails the tests.
        cmd.env("DATABASE_URL", self.db.url_as(component.role()))
            .env("KAFKA_BROKERS", &self.kafka.brokers)
            .env("ACKBOX_TOPIC", &self.kafka.topic)
            .env("ACKBOX_AUTO_MIGRATE", "false")
            .env("ACKBOX_DB_POOL_SIZE", "4")
            .env("RUST_LOG", "info")
            .env("ACKBOX_TOPIC_PARTITIONS", "3")
            .env("ACKBOX_WORKER_GROUP", &self.group)
            .env("ACKBOX_RETRY_BASE_MS", "20")
            .env("ACKBOX_RETRY_MAX_MS", "100")
            .env("ACKBOX_BIND", "127.0.0.1:0")
            .env("ACKBOX_HTTP_WORKERS", "2")
            // Tests run in parallel: every ops endpoint takes a free port.
            .env("ACKBOX_RELAY_OPS_BIND", "127.0.0.1:0")
            .env("ACKBOX_API_OPS_BIND", "127.0.0.1:0")
            .env("ACKBOX_WORKER_OPS_BIND", "127.0.0.1:0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stderr(log)
            .stdout(if component == Component::Api { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", component.binary()));
        if component == Component::Api {
            // The api prints exactly one line on stdout: the address it bound.
            let stdout = child.stdout.take().expect("api stdout");
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).expect("read the api's address");
            let addr = line
                .trim()
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("api did not report its address (got {line:?}); see {}", log_path.display()));
            self.api_url = addr.to_string();
        }
        if let Some(name) = name {
            self.worker_names.push((child.id(), name));
        }
        self.children.push((component, child));
    }

    /// The ops endpoint (`http://addr`, serving `/metrics`) of the first instance of `component`, read from the
    /// line it logs at start-up ("ops endpoints on http://…"): every instance binds a free port.
    pub fn ops_url(&self, component: Component) -> String {
        let path = self.log_path(component);
        ackbox_testing::wait_for("the ops endpoint's address in the log", Duration::from_secs(30), || {
            let log = std::fs::read_to_string(&path).ok()?;
            let rest = log.split("ops endpoints on ").nth(1)?;
            Some(rest.split_whitespace().next()?.to_string())
        })
    }

    /// A blocking HTTP client with a sane timeout that authenticates as the stack's tenant.
    pub fn client(&self) -> reqwest::blocking::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let auth = format!("Bearer {}", self.key).parse().expect("header value");
        headers.insert(reqwest::header::AUTHORIZATION, auth);
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .default_headers(headers)
            .build()
            .expect("http client")
    }

    /// `path` on the api.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.api_url, path)
    }

    /// Polls job `id` until it is succeeded, failed or cancelled (panicking after `deadline`), and returns its status
    /// document.
    pub fn wait_terminal(&self, client: &reqwest::blocking::Client, id: &str, deadline: Duration) -> serde_json::Value {
        ackbox_testing::wait_for(&format!("job {id} to finish"), deadline, || {
            let doc: serde_json::Value =
                client.get(self.url(&format!("/v1/jobs/{id}"))).send().expect("GET").json().expect("json");
            matches!(doc["status"].as_str(), Some("succeeded" | "failed" | "cancelled")).then_some(doc)
        })
    }

    /// Submits a job over HTTP and returns the 202's body.
    pub fn submit(&self, client: &reqwest::blocking::Client, body: serde_json::Value) -> serde_json::Value {
        let resp = client.post(self.url("/v1/jobs")).json(&body).send().expect("POST /v1/jobs");
        assert_eq!(resp.status().as_u16(), 202, "POST {body}");
        resp.json().expect("202 body")
    }

    /// Sends `signal` (e.g. `KILL`, `STOP`, `CONT`) to the `nth` running instance of `component`. A killed process is
    /// reaped and forgotten.
    pub fn signal(&mut self, component: Component, nth: usize, signal: &str) {
        let idx = self
            .children
            .iter()
            .enumerate()
            .filter(|(_, (c, _))| *c == component)
            .map(|(i, _)| i)
            .nth(nth)
            .unwrap_or_else(|| panic!("no instance {nth} of {component:?}"));
        let pid = self.children[idx].1.id().to_string();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
        if signal == "KILL" {
            let (_, mut child) = self.children.remove(idx);
            let _ = child.wait();
        } else if signal == "TERM" {
            self.terminating.push(self.children[idx].1.id());
        }
    }

    /// How many instances of `component` are running (or stopped, but not exited).
    pub fn count(&mut self, component: Component) -> usize {
        self.reap_exited();
        self.children.iter().filter(|(c, _)| *c == component).count()
    }

    /// Forgets instances that have exited (after a SIGTERM, say).
    pub fn reap_exited(&mut self) {
        self.children.retain_mut(|(_, child)| !matches!(child.try_wait(), Ok(Some(_))));
    }

    /// Waits (up to `deadline`) for every instance sent SIGTERM to exit, then forgets them; returns whether they all
    /// did.
    pub fn wait_exited(&mut self, deadline: Duration) -> bool {
        let end = std::time::Instant::now() + deadline;
        loop {
            self.reap_exited();
            let live: Vec<u32> = self.children.iter().map(|(_, c)| c.id()).collect();
            self.terminating.retain(|pid| live.contains(pid));
            if self.terminating.is_empty() {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts the local Postgres cluster with `-m immediate` (a crash, as far as Postgres is concerned). It affects
    /// every database on the machine: only `make chaos`, which runs alone, uses it. Returns whether both steps
    /// worked.
    pub fn restart_postgres_immediately() -> bool {
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok()).max_by_key(|v| v.parse::<u32>().unwrap_or(0))
            })
            .unwrap_or_else(|| "15".into());
        let ctl = |args: &[&str]| {
            Command::new("pg_ctlcluster").arg("--skip-systemctl-redirect").arg(&version).arg("main").args(args).status()
        };
        let stopped = ctl(&["stop", "-m", "immediate"]).is_ok_and(|s| s.success());
        std::thread::sleep(Duration::from_secs(3));
        let started = ctl(&["start"]).is_ok_and(|s| s.success());
        stopped && started
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to the local broker the stack script started.
    pub fn signal_broker(signal: &str) {
        let pidfile = repo_root().join(".ackbox/run/broker.pid");
        if let Ok(pid) = std::fs::read_to_string(pidfile) {
            let _ = Command::new("kill").args([&format!("-{signal}"), pid.trim()]).status();
        }
    }

    /// Starts the local broker again (`deploy/local/stack.sh deps`).
    pub fn start_broker() {
        let _ = Command::new(repo_root().join("deploy/local/stack.sh")).arg("deps").stdout(Stdio::null()).status();
    }

    /// Asserts that every component is still running (none crashed during the test).
    pub fn assert_alive(&mut self) {
        for (component, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{} exited with {status}; see {}", component.binary(), self.log_dir.display());
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            // A stopped process must be continued to die promptly.
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
