//! `ackbox-client` against the real api, relay and worker.

use std::time::Duration;

use ackbox_client::{Client, Error, JobStatus, ListOptions, SubmitOptions};
use ackbox_e2e::Stack;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn the_client_submits_waits_reads_results_lists_and_cancels_against_a_running_stack() {
    let stack = Stack::start();
    let client = Client::new(&stack.api_url, &stack.key).expect("client");
    runtime().block_on(async {
        // submit → wait (long-poll) → typed result.
        let job = client.submit("echo", serde_json::json!({"n": 7, "s": "x"})).await.expect("submit");
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(client.get(job.id).await.expect("get right after submit").id, job.id);
        let mut seen = Vec::new();
        let done =
            client.wait_with_progress(job.id, Duration::from_secs(60), |j| seen.push(j.status)).await.expect("wait");
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(seen.last(), Some(&JobStatus::Succeeded), "the callback saw the final document");
        #[derive(serde::Deserialize, PartialEq, Debug)]
        struct Out {
            n: i64,
            s: String,
        }
        assert_eq!(client.result::<Out>(job.id).await.expect("result"), Out { n: 7, s: "x".into() });

        // list with a filter finds it; the page is typed.
        let page = client
            .list(&ListOptions { kind: Some("echo".into()), status: Some(JobStatus::Succeeded), ..Default::default() })
            .await
            .expect("list");
        assert!(page.items.iter().any(|j| j.id == job.id), "listed: {page:?}");
        assert!(page.items.iter().all(|j| j.kind == "echo" && j.status == JobStatus::Succeeded));

        // idempotency key: the same job twice.
        let opts = SubmitOptions { idempotency_key: Some(format!("key-{}", job.id)), ..Default::default() };
        let a = client.submit_with("echo", serde_json::json!({"k": 1}), &opts).await.expect("first");
        let b = client.submit_with("echo", serde_json::json!({"k": 1}), &opts).await.expect("replay");
        assert_eq!(a.id, b.id);

        // typed errors.
        let unknown = client.submit("nobody-runs-this", serde_json::json!({})).await.expect_err("must fail");
        assert!(
            matches!(unknown, Error::Invalid(ref p) if p.status == 422 && p.kind == "/problems/validation"),
            "{unknown:?}"
        );
        let missing = client.get(uuid::Uuid::now_v7()).await.expect_err("must fail");
        assert!(matches!(missing, Error::NotFound(_)), "{missing:?}");
        let bad_key =
            Client::new(&stack.api_url, "ak_not_a_key").expect("client").get(job.id).await.expect_err("must fail");
        assert!(matches!(bad_key, Error::Unauthorized(_)), "{bad_key:?}");

        // a long job: the result is a conflict before success, a short wait times out with the last document,
        // and cancel stops it.
        let slow = client.submit("sleep", serde_json::json!({"ms": 60_000})).await.expect("submit sleep");
        let early = client.result::<serde_json::Value>(slow.id).await.expect_err("must fail");
        assert!(matches!(early, Error::Conflict(_)), "{early:?}");
        match client.wait(slow.id, Duration::from_secs(2)).await {
            Err(Error::WaitTimeout { id, status, job, .. }) => {
                assert_eq!(id, slow.id);
                assert!(!status.is_terminal());
                assert_eq!(job.status, status);
            }
            other => panic!("expected WaitTimeout, got {other:?}"),
        }
        let cancel = client.cancel(slow.id).await.expect("cancel");
        assert!(cancel.status == JobStatus::Cancelled || cancel.cancel_requested, "{cancel:?}");
        let end = client.wait(slow.id, Duration::from_secs(60)).await.expect("wait for the cancel");
        assert_eq!(end.status, JobStatus::Cancelled);
        let again = client.cancel(slow.id).await.expect_err("must fail");
        assert!(matches!(again, Error::Conflict(_)), "cancelling a finished job: {again:?}");
    });
}
