//! `ackbox-client` against the real api, relay and worker.

use std::time::Duration;

use ackbox_client::{BatchJob, Client, Error, JobStatus, ListOptions, Priority, SubmitOptions};
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

        // priority: a high and a low job each travel their own lane (topic) through relay and worker.
        for priority in [Priority::High, Priority::Low] {
            let opts = SubmitOptions { priority: Some(priority), ..Default::default() };
            let job = client.submit_with("echo", serde_json::json!({"p": 1}), &opts).await.expect("submit");
            assert_eq!(job.priority, priority);
            let done = client.wait(job.id, Duration::from_secs(60)).await.expect("wait");
            assert_eq!((done.status, done.priority), (JobStatus::Succeeded, priority));
        }

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

        // a batch: every job in order, one transaction; a bad item is Invalid naming its index, and writes nothing.
        let batch = [BatchJob::new("echo", serde_json::json!({"i": 0})), BatchJob::new("noop", serde_json::json!({}))];
        let jobs = client.submit_batch(&batch, Some("batch-key-1")).await.expect("batch");
        assert_eq!(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>(), ["echo", "noop"]);
        let again = client.submit_batch(&batch, Some("batch-key-1")).await.expect("replayed batch");
        assert_eq!(again.iter().map(|j| j.id).collect::<Vec<_>>(), jobs.iter().map(|j| j.id).collect::<Vec<_>>());
        let bad =
            [BatchJob::new("echo", serde_json::json!({})), BatchJob::new("nobody-runs-this", serde_json::json!({}))];
        let refused = client.submit_batch(&bad, None).await.expect_err("must fail");
        assert!(matches!(refused, Error::Invalid(ref p) if p.detail.contains("jobs[1]")), "{refused:?}");

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

/// A TLS-terminating listener in front of `upstream` (as a load balancer would be), with the certificate of `certs`;
/// returns its `https://localhost:port` URL.
async fn tls_front(certs: &ackbox_testing::certs::TestCerts, upstream: String) -> String {
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(&certs.server_cert)
        .expect("server certificate")
        .collect::<Result<_, _>>()
        .expect("PEM");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&certs.server_key).expect("server key");
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let upstream = upstream.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to forward then.
                let Ok(mut tls) = acceptor.accept(sock).await else { return };
                let Ok(mut api) = tokio::net::TcpStream::connect(&upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut api).await;
            });
        }
    });
    format!("https://localhost:{port}")
}

#[test]
fn the_client_speaks_https_by_default_and_checks_the_certificate() {
    let stack = Stack::start();
    let dir = std::env::temp_dir().join(format!("ackbox-client-tls-{}", uuid::Uuid::new_v4().simple()));
    let certs = ackbox_testing::certs::make(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let url = tls_front(&certs, stack.api_url.clone()).await;
        let ca = std::fs::read(&certs.ca).expect("CA");
        let client =
            ackbox_client::ClientBuilder::new(&url, &stack.key).add_root_certificate_pem(ca).build().expect("client");
        let job = client.submit("echo", serde_json::json!({"over": "https"})).await.expect("submit over https");
        let done = client.wait(job.id, Duration::from_secs(60)).await.expect("wait over https");
        assert_eq!(done.status, JobStatus::Succeeded);

        // Without the private CA the certificate is refused: the client does check it.
        let stranger = ackbox_client::ClientBuilder::new(&url, &stack.key).retries(0).build().expect("client");
        let err = stranger.get(job.id).await.expect_err("an unknown CA must be refused");
        assert!(matches!(err, Error::Transport(_)), "{err:?}");
        let other = std::fs::read(&certs.other_ca).expect("other CA");
        let wrong = ackbox_client::ClientBuilder::new(&url, &stack.key)
            .add_root_certificate_pem(other)
            .retries(0)
            .build()
            .expect("client");
        assert!(wrong.get(job.id).await.is_err(), "a CA that did not sign the certificate must be refused");
        let garbage = ackbox_client::ClientBuilder::new(&url, &stack.key).add_root_certificate_pem("not a PEM").build();
        assert!(matches!(garbage, Err(Error::Config(_))), "a root certificate without PEM is a configuration error");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_admin_client_lists_retries_and_cancels_any_tenants_jobs() {
    use ackbox_client::{AdminListOptions, RetryFailedFilter};
    let stack = Stack::start();
    let admin_key = {
        let mut conn = stack.db.conn();
        let ops = ackbox_db::models::tenant::ensure_tenant(&mut conn, "ops").expect("tenant");
        ackbox_db::models::tenant::set_admin(&mut conn, ops.id, true).expect("admin");
        ackbox_db::models::tenant::create_key(&mut conn, ops.id).expect("key").1
    };
    let tenant = Client::new(&stack.api_url, &stack.key).expect("client");
    let admin = Client::new(&stack.api_url, &admin_key).expect("client");
    runtime().block_on(async {
        let opts = SubmitOptions { max_attempts: Some(1), ..Default::default() };
        let failing = tenant.submit_with("fail", serde_json::json!({}), &opts).await.expect("submit");
        assert_eq!(tenant.wait(failing.id, Duration::from_secs(60)).await.expect("wait").status, JobStatus::Failed);
        let later = SubmitOptions { delay: Some(Duration::from_secs(3600)), ..Default::default() };
        let waiting = tenant.submit_with("echo", serde_json::json!({}), &later).await.expect("submit");

        let page = admin
            .admin_jobs(&AdminListOptions { status: Some(JobStatus::Failed), ..Default::default() })
            .await
            .expect("list");
        let listed = page.items.iter().find(|j| j.id == failing.id).expect("listed");
        assert_eq!((listed.tenant.as_deref(), listed.kind.as_str()), (Some("e2e"), "fail"));
        assert!(page.items.iter().all(|j| j.status == JobStatus::Failed));

        let retried = admin.admin_retry(failing.id).await.expect("retry");
        assert_eq!(retried.status, JobStatus::Queued);
        let again = tenant.wait(failing.id, Duration::from_secs(60)).await.expect("wait");
        assert_eq!((again.status, again.attempts), (JobStatus::Failed, 2), "it ran again");
        assert!(matches!(admin.admin_retry(waiting.id).await, Err(Error::Conflict(_))), "not failed");

        assert_eq!(admin.admin_cancel(waiting.id).await.expect("cancel").status, JobStatus::Cancelled);
        assert_eq!(tenant.get(waiting.id).await.expect("get").status, JobStatus::Cancelled);

        let filter = RetryFailedFilter { kind: Some("fail".into()), ..Default::default() };
        assert_eq!(admin.admin_retry_failed(&filter).await.expect("bulk"), 1);
        let unnarrowed = admin.admin_retry_failed(&RetryFailedFilter::default()).await;
        assert!(matches!(unnarrowed, Err(Error::Invalid(_))), "{unnarrowed:?}");

        // The tenant's own key is not an admin key.
        let refused = tenant.admin_jobs(&AdminListOptions::default()).await;
        assert!(matches!(refused, Err(Error::Api { status: 403, .. })), "{refused:?}");
    });
}
