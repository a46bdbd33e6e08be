//! Headless Chromium driven over the Chrome DevTools Protocol, so a test can click the dashboard's buttons and read
//! the page as it changes (`--dump-dom` only shows one moment).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Debian's Chromium (`make test` installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless, without a sandbox (tests run as root), and without anything that reaches the internet.
pub const HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// A headless Chromium with one page, killed (and its profile removed) when dropped.
pub struct Browser {
    child: Child,
    profile: std::path::PathBuf,
    page: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium and opens `url` in its page.
    pub fn open(url: &str) -> Self {
        assert!(std::path::Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: `make test` installs it");
        let profile = std::env::temp_dir().join(format!("ackbox-cdp-{}", uuid::Uuid::now_v7()));
        let mut child = Command::new(CHROMIUM)
            .args(HEADLESS)
            .args(["--remote-debugging-port=0", &format!("--user-data-dir={}", profile.display()), "about:blank"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run chromium");
        // Chromium says where its DevTools endpoint listens on stderr; the rest of stderr is drained meanwhile.
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let endpoint = loop {
            let line = lines.next().expect("chromium exited before its DevTools endpoint was up").expect("stderr");
            if let Some(ws) = line.strip_prefix("DevTools listening on ") {
                break ws.trim().to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        let http = endpoint.replace("ws://", "http://");
        let host = http.split("/devtools").next().expect("host").to_string();
        let targets: serde_json::Value =
            reqwest::blocking::get(format!("{host}/json/list")).expect("targets").json().expect("json");
        let page_ws = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (page, _) = tungstenite::connect(page_ws).expect("connect to the page");
        let mut browser = Self { child, profile, page, next_id: 0 };
        browser.call("Page.enable", serde_json::json!({}));
        browser.call("Page.navigate", serde_json::json!({ "url": url }));
        browser
    }

    /// Sends one command and returns its result (events that arrive meanwhile are skipped).
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params });
        self.page.send(Message::Text(msg.to_string().into())).expect("send");
        loop {
            let Message::Text(text) = self.page.read().expect("read") else { continue };
            let reply: serde_json::Value = serde_json::from_str(&text).expect("json");
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page and returns its value (awaiting a promise); an exception is a failure.
    pub fn eval(&mut self, expression: &str) -> serde_json::Value {
        self.try_eval(expression).unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// [`Browser::eval`], with an exception as an error (the page may still be loading).
    fn try_eval(&mut self, expression: &str) -> Result<serde_json::Value, serde_json::Value> {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        match r.get("exceptionDetails") {
            Some(e) => Err(e.clone()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// Evaluates `expression` until it gives something other than null, false or undefined (at most `within`); an
    /// exception (the page still loading) counts as not yet.
    pub fn wait_for(&mut self, what: &str, expression: &str, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let last = self.try_eval(expression);
            if let Ok(v) = &last {
                if !(v.is_null() || *v == serde_json::Value::Bool(false)) {
                    return v.clone();
                }
            }
            assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what} (last: {last:?})");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element `selector` matches, as a user would (a click event on it).
    pub fn click(&mut self, selector: &str) {
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
            serde_json::Value::String(selector.to_string())
        ));
        assert_eq!(found, serde_json::Value::Bool(true), "nothing to click at {selector}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
