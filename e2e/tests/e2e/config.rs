//! Config that explains itself: each binary's `--help` lists every variable with its default and never shows a
//! secret's value; a value that used to be clamped silently is refused; `ackbox config check` validates a whole
//! environment against all three services.

use std::process::Command;

use ackbox_e2e::bin_path;

/// Runs `binary args` with exactly `env` (plus PATH).
fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(bin_path(binary))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("run")
}

#[test]
fn help_lists_each_variable_with_its_default_and_hides_secret_values() {
    let secrets = [
        ("DATABASE_URL", "postgres://ackbox_api:db-password-123@db:5432/ackbox"),
        ("ACKBOX_KAFKA_OPTS", "sasl.username=u,sasl.password=kafka-password-456"),
    ];
    for (binary, expect) in [
        ("ackbox-api", &["ACKBOX_BIND", "ACKBOX_API_OPS_BIND", "ACKBOX_RATE_LIMIT_PER_SEC", "DATABASE_URL"][..]),
        ("ackbox-relay", &["ACKBOX_RELAY_BATCH", "ACKBOX_TOPIC_PARTITIONS", "ACKBOX_KAFKA_OPTS", "KAFKA_BROKERS"][..]),
        ("ackbox-worker", &["ACKBOX_HEARTBEAT_MS", "ACKBOX_WORKER_MAX_CONSUMERS", "ACKBOX_LOG_FORMAT"][..]),
    ] {
        let out = run(binary, &["--help"], &secrets);
        assert!(out.status.success(), "{binary} --help failed");
        let help = String::from_utf8_lossy(&out.stdout);
        for name in expect {
            assert!(help.contains(&format!("[env: {name}")), "{binary} --help does not list {name}:\n{help}");
        }
        assert!(help.contains("[default: "), "{binary} --help shows no defaults");
        assert!(!help.contains("db-password-123") && !help.contains("kafka-password-456"), "{binary} shows a secret");
    }
    // The worker does not create topics, so it does not offer the topic's partitions (one owner: the relay).
    let worker = String::from_utf8_lossy(&run("ackbox-worker", &["--help"], &[]).stdout).to_string();
    assert!(!worker.contains("ACKBOX_TOPIC_PARTITIONS"), "{worker}");
}

#[test]
fn check_config_accepts_a_valid_environment_and_names_each_refused_value() {
    let good = [("DATABASE_URL", "postgres://ackbox@db:5432/ackbox?sslmode=require")];
    let out = run("ackbox", &["config", "check"], &good);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.lines().filter(|l| l.contains(" ok ")).count(), 3, "{text}");
    // The URL from the global flag, as every `ackbox` command takes it, reaches the services' checks.
    let out = run("ackbox", &["--database-url", "postgres://ackbox@db:5432/ackbox", "config", "check"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // One bad value per service, each of a kind that was clamped or raised silently before.
    let bad = [
        ("DATABASE_URL", "postgres://ackbox@db:5432/ackbox"),
        ("ACKBOX_REQUEST_TIMEOUT_SECS", "30"),
        ("ACKBOX_RELAY_MAX_IN_FLIGHT", "9"),
        ("ACKBOX_WORKER_BATCH", "100"),
    ];
    let out = run("ackbox", &["config", "check"], &bad);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a bad environment passed:\n{text}");
    for name in ["ACKBOX_REQUEST_TIMEOUT_SECS", "ACKBOX_RELAY_MAX_IN_FLIGHT", "ACKBOX_WORKER_BATCH"] {
        assert!(text.contains(name), "the report does not name {name}:\n{text}");
    }
    // A rate of 0, a malformed number and a missing CA file are refused by the binary itself, naming the variable.
    for (binary, env, name) in [
        ("ackbox-api", ("ACKBOX_RATE_LIMIT_PER_SEC", "0"), "ACKBOX_RATE_LIMIT_PER_SEC"),
        ("ackbox-worker", ("ACKBOX_LEASE_MS", "soon"), "ACKBOX_LEASE_MS"),
        (
            "ackbox-relay",
            ("DATABASE_URL", "postgres://ackbox@db/ackbox?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            "sslrootcert",
        ),
    ] {
        let mut vars = vec![("DATABASE_URL", "postgres://ackbox@db:5432/ackbox")];
        vars.push(env);
        let out = run(binary, &["check-config"], &vars);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(name), "{binary} with {env:?}: {err}");
    }
}
