#![doc = include_str!("../README.md")]

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use diesel::{Connection, PgConnection};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[derive(Parser)]
#[command(name = "ackbox-bench", about = "Ackbox benchmark helpers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Insert N queued jobs with their outbox rows in bulk (the drain benchmark's starting point).
    Preload {
        /// Jobs to insert.
        #[arg(long)]
        jobs: i64,
        /// Their kind.
        #[arg(long, default_value = "noop")]
        kind: String,
        /// Outbox topic.
        #[arg(long, default_value = "ackbox.jobs")]
        topic: String,
    },
    /// Submit jobs through the API at a fixed rate (open loop: the rate does not slow down when the server does).
    Openloop {
        /// API base URL.
        #[arg(long)]
        url: String,
        /// API key.
        #[arg(long, env = "ACKBOX_API_KEY")]
        key: String,
        /// Jobs per second.
        #[arg(long)]
        rate: u64,
        /// Seconds to run.
        #[arg(long)]
        seconds: u64,
        /// Also report sent / accepted / refused and POST latency per interval of this many seconds (by send time).
        #[arg(long)]
        every: Option<u64>,
        /// Job kind.
        #[arg(long, default_value = "noop")]
        kind: String,
    },
    /// Raw producer rate against the broker with the relay's settings: the relay's ceiling.
    Produce {
        /// `bootstrap.servers`.
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Topic (created if missing).
        #[arg(long)]
        topic: String,
        /// Messages.
        #[arg(long, default_value_t = 50_000)]
        messages: usize,
        /// Messages in flight per await (the relay's batch).
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Partitions, if the topic has to be created.
        #[arg(long, env = "ACKBOX_TOPIC_PARTITIONS", default_value_t = 6)]
        partitions: i32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Preload { jobs, kind, topic } => preload(jobs, &kind, &topic),
        Command::Openloop { url, key, rate, seconds, every, kind } => {
            openloop(&url, &key, rate, seconds, every, &kind).await
        }
        Command::Produce { brokers, topic, messages, batch, partitions } => {
            produce(&brokers, &topic, messages, batch, partitions).await
        }
    }
}

fn preload(jobs: i64, kind: &str, topic: &str) -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is required")?;
    let mut conn = PgConnection::establish(&url).context("connect")?;
    let start = Instant::now();
    ackbox_db::state::preload(&mut conn, jobs, kind, topic).context("preload")?;
    println!("{{\"preloaded\": {jobs}, \"seconds\": {:.3}}}", start.elapsed().as_secs_f64());
    Ok(())
}

async fn openloop(url: &str, key: &str, rate: u64, seconds: u64, every: Option<u64>, kind: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(120)).build()?;
    let body = serde_json::json!({"kind": kind, "payload": {}});
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        // Open loop: request i leaves at start + i/rate, whether or not earlier ones have been answered.
        let at = start + interval * i as u32;
        tokio::time::sleep_until(at).await;
        let (c, b, u, k) = (client.clone(), body.clone(), format!("{url}/v1/jobs"), key.to_string());
        let sent_at = (at - start).as_secs_f64();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c.post(u).bearer_auth(k).json(&b).send().await;
            (sent_at, r.map(|r| r.status().as_u16()).unwrap_or(0), t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let summary = |rs: &[(f64, u16, f64)]| {
        let mut lat: Vec<f64> = rs.iter().map(|r| r.2).collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
        let refused: Vec<f64> = rs.iter().filter(|r| r.1 == 503).map(|r| r.2).collect();
        let refused_max = refused.iter().copied().fold(0.0, f64::max);
        serde_json::json!({
            "sent": rs.len(),
            "accepted": rs.iter().filter(|r| r.1 == 202).count(),
            "refused_503": refused.len(),
            "failed": rs.iter().filter(|r| r.1 != 202 && r.1 != 503).count(),
            "post_p50_ms": (pct(0.5) * 100.0).round() / 100.0,
            "post_p99_ms": (pct(0.99) * 100.0).round() / 100.0,
            "refused_max_ms": (refused_max * 100.0).round() / 100.0,
        })
    };
    let mut out = summary(&results);
    out["elapsed_s"] = serde_json::json!((elapsed * 100.0).round() / 100.0);
    if let Some(every) = every.filter(|e| *e > 0) {
        let buckets = seconds.div_ceil(every);
        let intervals: Vec<serde_json::Value> = (0..buckets)
            .map(|b| {
                let (from, to) = ((b * every) as f64, ((b + 1) * every) as f64);
                let mut s = summary(&results.iter().copied().filter(|r| r.0 >= from && r.0 < to).collect::<Vec<_>>());
                s["from_s"] = serde_json::json!(from);
                s
            })
            .collect();
        out["intervals"] = serde_json::json!(intervals);
    }
    println!("{out}");
    Ok(())
}

async fn produce(brokers: &str, topic: &str, messages: usize, batch: usize, partitions: i32) -> anyhow::Result<()> {
    let cfg = ackbox_runtime::kafka::KafkaConfig { brokers: brokers.into(), topic: topic.into(), extra: Vec::new() };
    ackbox_runtime::kafka::ensure_topic(&cfg, topic, partitions, 1).await.context("create the benchmark topic")?;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()?;
    let payload = br#"{"v":1,"job_id":"01900000-0000-7000-8000-000000000000","kind":"noop","attempt":1,"enqueued_at":"2026-01-01T00:00:00Z"}"#;
    let start = Instant::now();
    let mut failed = 0usize;
    let mut sent = 0usize;
    while sent < messages {
        let n = batch.min(messages - sent);
        let futs: Vec<_> = (0..n)
            .map(|i| {
                let key = format!("k{}", sent + i);
                let rec = FutureRecord::to(topic).key(&key).payload(&payload[..]);
                producer.send_result(rec).map_err(|(e, _)| e)
            })
            .collect();
        for f in futs {
            match f {
                Ok(d) => failed += usize::from(!matches!(d.await, Ok(Ok(_)))),
                Err(_) => failed += 1,
            }
        }
        sent += n;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"messages\": {messages}, \"failed\": {failed}, \"seconds\": {secs:.3}, \"per_second\": {:.0}}}",
        messages as f64 / secs.max(f64::EPSILON)
    );
    Ok(())
}
