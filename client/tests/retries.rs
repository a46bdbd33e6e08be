//! Retry rules, checked against a tiny HTTP server that answers every request with a fixed status and counts them
//! (the API itself is exercised in e2e/tests/e2e/client.rs; an outage on demand is what this server adds).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ackbox_client::{ClientBuilder, Error, SubmitOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `status` with a problem body to every request; returns its base URL and the request counter.
async fn server(status: u16, extra_header: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                // Read the head and the Content-Length body (small requests only).
                loop {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let body = format!(r#"{{"type":"/problems/x","title":"T","status":{status},"detail":"d"}}"#);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/problem+json\r\n{extra_header}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

fn client(url: &str) -> ackbox_client::Client {
    ClientBuilder::new(url, "ak_test").retries(3).backoff(Duration::from_millis(1)).build().expect("client")
}

#[tokio::test]
async fn safe_requests_are_retried_on_503_then_reported_as_unavailable() {
    let (url, hits) = server(503, "").await;
    let err = client(&url).get(uuid::Uuid::nil()).await.expect_err("must fail");
    assert!(matches!(err, Error::Unavailable(ref p) if p.detail == "d"), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 4, "1 try + 3 retries");
}

#[tokio::test]
async fn a_submit_without_an_idempotency_key_is_never_retried() {
    let (url, hits) = server(503, "").await;
    let err = client(&url).submit("echo", serde_json::json!({})).await.expect_err("must fail");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a retry could create a second job");
}

#[tokio::test]
async fn a_submit_with_an_idempotency_key_is_retried() {
    let (url, hits) = server(503, "retry-after: 0\r\n").await;
    let opts = SubmitOptions { idempotency_key: Some("k1".into()), ..Default::default() };
    let err = client(&url).submit_with("echo", serde_json::json!({}), &opts).await.expect_err("must fail");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn cancel_is_not_retried_and_client_errors_are_not_retried() {
    let (url, hits) = server(503, "").await;
    assert!(matches!(client(&url).cancel(uuid::Uuid::nil()).await, Err(Error::Unavailable(_))));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let (url, hits) = server(404, "").await;
    assert!(matches!(client(&url).get(uuid::Uuid::nil()).await, Err(Error::NotFound(_))));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a 404 is an answer, not an outage");
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let (url, _) = server(429, "retry-after: 7\r\n").await;
    match client(&url).get(uuid::Uuid::nil()).await {
        Err(Error::RateLimited { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn dropped_connections_are_retried_for_safe_requests_and_surface_as_transport_errors() {
    // A server that accepts and hangs up at once: every try fails below HTTP.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    let err = client(&url).list(&Default::default()).await.expect_err("must fail");
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 4, "1 try + 3 retries");

    // Nothing listening at all: refused, reported as a connect error.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let err = client(&format!("http://127.0.0.1:{port}")).get(uuid::Uuid::nil()).await.expect_err("must fail");
    assert!(matches!(err, Error::Transport(ref e) if e.is_connect()), "{err:?}");
}

#[test]
fn bad_settings_are_refused_when_building() {
    assert!(matches!(ClientBuilder::new("127.0.0.1:8080", "k").build(), Err(Error::Config(_))));
    assert!(matches!(ClientBuilder::new("http://127.0.0.1:8080", " ").build(), Err(Error::Config(_))));
}
