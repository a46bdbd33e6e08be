//! Completion callbacks through the whole stack: a job the real worker runs is POSTed to a real receiver when it
//! ends, and `kill -9` of the api in the middle of that POST loses nothing: another api sends it again, under the
//! same `webhook-id`, once the dead one's claim lapses.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ackbox_client::{Client, JobStatus, SubmitOptions};
use ackbox_e2e::{Component, Stack};
use ackbox_testing::wait_for;
use base64::Engine;
use hmac::{Hmac, Mac};

/// Every request: its headers (names lower-cased) and its body, byte for byte (the signature covers those bytes).
type Got = Arc<Mutex<Vec<(HashMap<String, String>, Vec<u8>)>>>;

/// Reads one HTTP/1.1 request: its headers (names lower-cased) and its body.
fn read_request(stream: &TcpStream) -> Option<(HashMap<String, String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut headers = HashMap::new();
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

/// A receiver that records every request and answers 200, except the first when `hold_first` (left unanswered: the
/// sender is killed meanwhile).
fn receiver(hold_first: bool) -> (String, Got) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let got: Got = Default::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let Some(request) = read_request(&stream) else { continue };
            let first = {
                let mut got = g.lock().expect("lock");
                got.push(request);
                got.len() == 1
            };
            if first && hold_first {
                held.push(stream);
            } else {
                let mut stream = stream;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        }
    });
    (url, got)
}

#[test]
fn kill_9_of_the_api_mid_send_still_delivers_the_callback() {
    let mut stack = Stack::start_with(&[("ACKBOX_CALLBACK_ALLOW_LOOPBACK", "true")]);
    let (url, got) = receiver(true);
    let client = stack.client();
    let doc = stack.submit(&client, serde_json::json!({"kind": "effect", "payload": {}, "callback_url": url}));
    let id = doc["id"].as_str().expect("id").to_string();

    // The worker ran it, and the api is in the middle of the POST: the receiver has the request, and no answer went
    // back.
    wait_for("the first callback attempt", Duration::from_secs(60), || {
        (!got.lock().expect("lock").is_empty()).then_some(())
    });
    stack.signal(Component::Api, 0, "KILL");
    stack.spawn(Component::Api);

    // The new api takes the callback once the dead one's claim lapses (the delivery timeout + 10 s).
    wait_for("the callback to be sent again", Duration::from_secs(90), || {
        (got.lock().expect("lock").len() >= 2).then_some(())
    });
    let got = got.lock().expect("lock").clone();
    assert_eq!(got[0].0["webhook-id"], got[1].0["webhook-id"], "the same delivery, which a receiver can drop");
    for (headers, body) in &got {
        assert!(headers["webhook-signature"].starts_with("v1,"), "{headers:?}");
        let body: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!((body["id"].as_str(), body["status"].as_str()), (Some(id.as_str()), Some("succeeded")), "{body}");
    }
    let doc = wait_for("the document to say delivered", Duration::from_secs(30), || {
        let doc: serde_json::Value =
            client.get(stack.url(&format!("/v1/jobs/{id}"))).send().expect("GET").json().expect("json");
        (doc["callback"]["state"] == "delivered").then_some(doc)
    });
    assert!(doc["callback"]["attempts"].as_i64() >= Some(2), "{doc}");
    stack.assert_alive();
}

#[test]
fn the_client_asks_for_a_callback_and_the_receiver_verifies_it_with_the_tenants_secret() {
    let stack = Stack::start_with(&[("ACKBOX_CALLBACK_ALLOW_LOOPBACK", "true")]);
    let (url, got) = receiver(false);
    let client = Client::new(&stack.api_url, &stack.key).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let opts = SubmitOptions { callback_url: Some(url.clone()), ..Default::default() };
        let job = client.submit_with("echo", serde_json::json!({"n": 1}), &opts).await.expect("submit");
        let callback = job.callback.clone().expect("the document shows the callback");
        assert_eq!((callback.url.as_str(), callback.state.as_str()), (url.as_str(), "waiting"));
        let done = client.wait(job.id, Duration::from_secs(60)).await.expect("wait");
        assert_eq!(done.status, JobStatus::Succeeded);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let delivered = loop {
            let now = client.get(job.id).await.expect("get");
            if now.callback.as_ref().is_some_and(|c| c.state == "delivered") {
                break now;
            }
            assert!(std::time::Instant::now() < deadline, "not delivered: {:?}", now.callback);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(delivered.callback.expect("callback").attempts, 1);

        // The receiver's side: one request, whose signature verifies with the secret the client fetched.
        let secret = client.callback_secret().await.expect("secret");
        let got = got.lock().expect("lock").clone();
        assert_eq!(got.len(), 1, "{got:?}");
        let (headers, body) = &got[0];
        let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).expect("key");
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).expect("key");
        mac.update(format!("{}.{}.", headers["webhook-id"], headers["webhook-timestamp"]).as_bytes());
        mac.update(body);
        let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(headers["webhook-signature"], expected);
        let body: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!((body["status"].as_str(), body["result"]["n"].as_i64()), (Some("succeeded"), Some(1)));
    });
}
