//! A worker binary with its own job kind (`word_count`), run as a fleet of its own.
//!
//! ```sh
//! # The relay sends word_count jobs to their own topic (and creates it); everything else stays on ackbox.jobs.
//! ACKBOX_KIND_TOPICS=word_count=ackbox.jobs.words ackbox-relay
//! # This fleet consumes that topic in its own group; the built-in workers never see a word_count job.
//! ACKBOX_TOPIC=ackbox.jobs.words ACKBOX_WORKER_GROUP=ackbox-words \
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/ackbox cargo run -p ackbox-worker --example custom_worker
//! curl -s -X POST localhost:8080/v1/jobs -H "$AUTH" -H 'content-type: application/json' \
//!      -d '{"kind":"word_count","payload":{"text":"to be or not to be"}}'
//! ```
//!
//! Every variable of `ackbox-worker` applies (see the crate README). Without the route, a `word_count` job that
//! reaches a built-in worker is not failed: that worker leaves it queued and marks it, and the relay dispatches it
//! again as soon as a worker that runs `word_count` starts. While no worker with the kind runs, the job waits and its
//! status document says why (`waiting_reason`). `e2e/tests/e2e/fleets.rs` runs this example as a second fleet,
//! kills it, and checks that a job submitted meanwhile waits and then runs.

use std::collections::BTreeMap;

use ackbox_worker::{async_trait, Handler, HandlerError, JobContext};

/// Counts words in `{"text": "..."}`; the result is `{"words": n, "top": {"word": count, ...}}`.
struct WordCount;

#[async_trait]
impl Handler for WordCount {
    async fn run(&self, ctx: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        // A bad payload will not get better on retry: fail permanently.
        let text = payload
            .get("text")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| HandlerError::permanent("bad_payload", "word_count needs {\"text\": string}"))?;
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for word in text.split_whitespace() {
            *counts.entry(word).or_default() += 1;
        }
        log::info!("job {} attempt {}: counted {} distinct words", ctx.job_id, ctx.attempt, counts.len());
        Ok(serde_json::json!({ "words": counts.values().sum::<u64>(), "top": counts }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut registry = ackbox_worker::handlers::builtin();
    registry.register("word_count", WordCount);
    ackbox_worker::main_with(registry).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn word_count_counts_and_rejects_bad_payloads() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let ctx = JobContext::new(uuid::Uuid::now_v7(), "word_count", 1, 3, deadline);
        let out = WordCount.run(&ctx, serde_json::json!({"text": "a b a"})).await.expect("counts");
        assert_eq!(out, serde_json::json!({"words": 3, "top": {"a": 2, "b": 1}}));
        let err = WordCount.run(&ctx, serde_json::json!({"txt": 1})).await.expect_err("bad payload");
        assert!(!err.retryable);
        assert_eq!(err.code, "bad_payload");
    }
}
