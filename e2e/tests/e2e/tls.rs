//! Postgres over TLS, verified: the whole chain against a cluster that accepts only TLS connections, with
//! `sslmode=verify-full` and a CA made by the test; and a wrong CA stops each service at start-up, saying why.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ackbox_e2e::{bin_path, Component, Stack};
use ackbox_runtime::listen::{preflight, spawn_events, Event, PreflightError};
use ackbox_runtime::pg_tls::PgTls;
use ackbox_testing::tls_postgres::TlsPostgres;
use ackbox_testing::{wait_for, TestDb};

#[test]
fn the_chain_runs_with_verify_full_and_every_listen_connection_uses_tls() {
    let pg = TlsPostgres::start();
    let db = TestDb::migrated_on(&pg.url("postgres", "postgres"));
    assert!(db.url().contains("sslmode=verify-full"), "{}", db.url());
    let mut stack = Stack::start_on(db, &[]);
    let client = stack.client();
    let job = stack.submit(&client, serde_json::json!({"kind": "echo", "payload": {"over": "tls"}}));
    let id = job["id"].as_str().expect("id");
    let doc = stack.wait_terminal(&client, id, Duration::from_secs(60));
    assert_eq!(doc["status"], "succeeded", "over TLS: {doc}");
    assert_eq!(doc["result"], serde_json::json!({"over": "tls"}));
    // Each service's LISTEN connection (tokio-postgres, not libpq) came up: the cluster refuses plain connections,
    // so it did so over TLS with the CA checked. Before, it used NoTls and degraded to time-outs quietly.
    for component in [Component::Api, Component::Relay, Component::Worker] {
        let path = stack.log_path(component);
        wait_for(&format!("{component:?}'s LISTEN connection"), Duration::from_secs(30), || {
            let log = std::fs::read_to_string(&path).ok()?;
            log.contains("listening for notifications on").then_some(())
        });
        let log = std::fs::read_to_string(&path).expect("log");
        assert!(!log.contains("LISTEN connection:"), "{component:?} lost its LISTEN connection:\n{log}");
    }
    stack.assert_alive();
}

#[test]
fn a_wrong_ca_stops_each_service_at_start_up_with_a_message_that_says_so() {
    let pg = TlsPostgres::start();
    let wrong =
        pg.url_with("postgres", "postgres", &format!("sslmode=verify-full&sslrootcert={}", pg.other_ca().display()));
    for binary in ["ackbox-api", "ackbox-relay", "ackbox-worker"] {
        let out = Command::new(bin_path(binary))
            .env("DATABASE_URL", &wrong)
            .env("ACKBOX_AUTO_MIGRATE", "false")
            .env("ACKBOX_BIND", "127.0.0.1:0")
            .env("ACKBOX_RELAY_OPS_BIND", "127.0.0.1:0")
            .env("ACKBOX_WORKER_OPS_BIND", "127.0.0.1:0")
            .env("KAFKA_BROKERS", "127.0.0.1:1")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{binary} started with a wrong CA:\n{stderr}");
        assert!(
            stderr.contains("TLS certificate is refused") && stderr.contains("UnknownIssuer"),
            "{binary} should say the certificate was refused:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_honours_each_sslmode_like_libpq() {
    let pg = tokio::task::spawn_blocking(TlsPostgres::start).await.expect("start");
    let ca = pg.ca().display().to_string();
    let other = pg.other_ca().display().to_string();
    let url = |query: &str| pg.url_with("postgres", "postgres", query);

    // Accepted: the right CA (by name and by chain), and encryption without a check, as libpq does.
    for ok in [
        format!("sslmode=verify-full&sslrootcert={ca}"),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        format!("sslmode=require&sslrootcert={ca}"),
        "sslmode=require".to_string(),
        "sslmode=prefer".to_string(),
    ] {
        preflight(&url(&ok)).await.unwrap_or_else(|e| panic!("{ok}: {e}"));
        let tls = PgTls::from_url(&url(&ok)).expect("settings");
        let (client, conn) = tls.config.connect(tls.connector).await.unwrap_or_else(|e| panic!("{ok}: {e}"));
        tokio::spawn(conn);
        let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await;
        assert!(row.expect("pg_stat_ssl").get::<_, bool>(0), "{ok}: the connection is encrypted");
    }
    // Refused: another CA, in every mode that checks the chain.
    for bad in [
        format!("sslmode=verify-full&sslrootcert={other}"),
        format!("sslmode=verify-ca&sslrootcert={other}"),
        format!("sslmode=require&sslrootcert={other}"),
    ] {
        match preflight(&url(&bad)).await {
            Err(PreflightError::Certificate(msg)) => assert!(msg.contains("UnknownIssuer"), "{bad}: {msg}"),
            other => panic!("{bad}: expected a refused certificate, got {other:?}"),
        }
    }
    // verify-full compares the host name (the certificate names localhost and 127.0.0.1); verify-ca does not.
    let ip_url = format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={ca}", pg.port);
    preflight(&ip_url).await.expect("the IP address is in the certificate");
    let misnamed = |mode: &str| {
        format!(
            "postgres://postgres@db.example:{}/postgres?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}",
            pg.port
        )
    };
    match preflight(&misnamed("verify-full")).await {
        Err(PreflightError::Certificate(msg)) => assert!(msg.contains("not valid for name \"db.example\""), "{msg}"),
        other => panic!("verify-full accepted a certificate for another name: {other:?}"),
    }
    preflight(&misnamed("verify-ca")).await.expect("verify-ca checks the chain only");
    // The cluster refuses plain connections, so the accepted ones above were TLS.
    let plain = PgTls::from_url(&url("sslmode=disable")).expect("settings");
    let err = match plain.config.connect(plain.connector).await {
        Ok(_) => panic!("a plain connection was accepted"),
        Err(e) => format!("{e}: {:?}", std::error::Error::source(&e)),
    };
    assert!(err.contains("no pg_hba.conf entry") || err.contains("no encryption"), "{err}");

    // The listener itself, with verify-full: connects, and hears a NOTIFY sent through libpq with the same URL.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let good = url(&format!("sslmode=verify-full&sslrootcert={ca}"));
    let task = spawn_events(good.clone(), &["ackbox_tls_test"], Arc::new(move |e| sink.lock().expect("lock").push(e)));
    let wait = |what: &'static str, want: Event| {
        let seen = seen.clone();
        async move {
            ackbox_testing::wait_for_async(what, Duration::from_secs(30), || {
                let found = seen.lock().expect("lock").contains(&want);
                async move { found.then_some(()) }
            })
            .await
        }
    };
    wait("the listener to connect", Event::Connected).await;
    tokio::task::spawn_blocking(move || {
        use diesel::Connection;
        let mut conn = diesel::PgConnection::establish(&good).expect("libpq with verify-full");
        diesel::RunQueryDsl::execute(diesel::sql_query("NOTIFY ackbox_tls_test, 'hello'"), &mut conn).expect("NOTIFY");
    })
    .await
    .expect("notify");
    wait("the notification", Event::Notification { channel: "ackbox_tls_test".into(), payload: "hello".into() }).await;
    task.abort();
}

/// A nisshi broker of the test's own whose listener accepts only TLS (nisshi's `--cert`/`--key`) and only clients
/// that authenticate (`--authentication`, SASL SCRAM-SHA-512 as user `ackbox`), on a free port, storing in the
/// certificates' folder (the build has only the sqlite engine); killed on drop.
struct TlsBroker {
    child: std::process::Child,
    port: u16,
}

/// The SCRAM user's password.
const KAFKA_PASSWORD: &str = "kafka-test-secret";

impl TlsBroker {
    fn start(dir: &std::path::Path, certs: &ackbox_testing::certs::TestCerts) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let url = format!("tcp://127.0.0.1:{port}");
        let broker = |extra: &[&std::ffi::OsStr]| {
            let child = Command::new("nisshi")
                .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                // sqlite://PATH is relative to the working directory.
                .current_dir(dir)
                .args(["--storage-engine", "sqlite://nisshi.db", "--silent"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nisshi (make test installs it)");
            wait_for("the test broker's port", Duration::from_secs(30), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
            });
            child
        };
        // `nisshi user create` speaks plain Kafka without credentials: create the user on an open listener first,
        // then serve the same storage with TLS and authentication required.
        let mut open = broker(&[]);
        let created = Command::new("nisshi")
            .args(["user", "create", "--broker", &url, "--mechanism", "scram512", "ackbox", KAFKA_PASSWORD])
            .output()
            .expect("nisshi user create");
        let _ = open.kill();
        let _ = open.wait();
        assert!(created.status.success(), "nisshi user create: {}", String::from_utf8_lossy(&created.stderr));
        let child = broker(&[
            "--authentication".as_ref(),
            "--cert".as_ref(),
            certs.server_cert.as_os_str(),
            "--key".as_ref(),
            certs.server_key.as_os_str(),
        ]);
        Self { child, port }
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ACKBOX_KAFKA_OPTS` for SASL_SSL with SCRAM-SHA-512, trusting `ca`.
fn sasl_ssl(ca: &std::path::Path, password: &str) -> String {
    format!(
        "security.protocol=SASL_SSL,ssl.ca.location={},sasl.mechanism=SCRAM-SHA-512,sasl.username=ackbox,\
         sasl.password={password}",
        ca.display()
    )
}

#[test]
fn relay_and_worker_use_kafka_over_sasl_ssl_and_say_why_a_wrong_ca_or_password_is_refused() {
    let dir = std::env::temp_dir().join(format!("ackbox-tls-kafka-{}", uuid::Uuid::new_v4().simple()));
    let certs = ackbox_testing::certs::make(&dir);
    let broker = TlsBroker::start(&dir, &certs);
    let brokers = format!("127.0.0.1:{}", broker.port);
    let opts = sasl_ssl(&certs.ca, KAFKA_PASSWORD);
    let mut stack = Stack::start_with(&[("KAFKA_BROKERS", &brokers), ("ACKBOX_KAFKA_OPTS", &opts)]);
    let client = stack.client();
    let job = stack.submit(&client, serde_json::json!({"kind": "echo", "payload": {"kafka": "sasl_ssl"}}));
    let id = job["id"].as_str().expect("id");
    let doc = stack.wait_terminal(&client, id, Duration::from_secs(90));
    assert_eq!(doc["status"], "succeeded", "through the TLS broker: {doc}");
    assert_eq!(doc["result"], serde_json::json!({"kafka": "sasl_ssl"}));
    stack.assert_alive();

    // Another relay with a CA that did not sign the broker's certificate, and one with a wrong password: neither
    // gets through, and each says why (not only "timed out"). The secret is never in the log.
    let path = stack.log_path(Component::Relay);
    for (opts, why) in [
        (sasl_ssl(&certs.other_ca, KAFKA_PASSWORD), "certificate verify failed"),
        (sasl_ssl(&certs.ca, "not-the-password"), "SASL SCRAM authentication failed"),
    ] {
        let before = std::fs::read_to_string(&path).unwrap_or_default().len();
        stack.spawn_with(Component::Relay, &[("ACKBOX_KAFKA_OPTS", &opts)]);
        wait_for(&format!("the relay to report {why:?}"), Duration::from_secs(60), || {
            let log = std::fs::read_to_string(&path).ok()?;
            log[before..].contains(why).then_some(())
        });
    }
    let log = std::fs::read_to_string(&path).expect("relay log");
    assert!(!log.contains(KAFKA_PASSWORD) && !log.contains("not-the-password"), "a SASL password was logged");
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}
