#![doc = include_str!("../README.md")]

mod admin;
mod error;
mod types;

use std::time::Duration;

use rand::Rng;
use reqwest::{header, Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use uuid::Uuid;

pub use admin::{AdminJob, AdminJobPage, AdminListOptions, RetryFailedFilter};
pub use error::{Error, Problem};
pub use types::{BatchJob, Callback, Job, JobPage, JobStatus, ListOptions, Priority, SubmitOptions};

/// The longest long-poll the API holds a request for (`Prefer: wait=60`).
pub const MAX_WAIT_PER_REQUEST: Duration = Duration::from_secs(60);

/// Defaults of [`ClientBuilder`].
pub mod defaults {
    use std::time::Duration;

    /// Whole-request timeout of ordinary calls (a long-poll gets its wait on top).
    pub const TIMEOUT: Duration = Duration::from_secs(30);
    /// TCP connect timeout.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Retries of a retryable request after the first try.
    pub const RETRIES: u32 = 4;
    /// First retry delay; doubled each time (with full jitter), capped at [`MAX_BACKOFF`].
    pub const BACKOFF: Duration = Duration::from_millis(100);
    /// Longest delay between retries.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
}

/// Builds a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    base_url: String,
    api_key: String,
    timeout: Duration,
    connect_timeout: Duration,
    retries: u32,
    backoff: Duration,
    roots: Vec<Vec<u8>>,
}

impl ClientBuilder {
    /// A client of the API at `base_url` (e.g. `http://127.0.0.1:8080`) with a tenant's API key.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: api_key.into(),
            timeout: defaults::TIMEOUT,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            retries: defaults::RETRIES,
            backoff: defaults::BACKOFF,
            roots: Vec::new(),
        }
    }

    /// Also trusts the CA certificate(s) in `pem` for `https://` (a private CA in front of the api, say), on top of
    /// the built-in web roots. Checked in [`ClientBuilder::build`].
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots.push(pem.into());
        self
    }

    /// Whole-request timeout of ordinary calls (default [`defaults::TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// TCP connect timeout (default [`defaults::CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Retries of a retryable request (default [`defaults::RETRIES`]; 0 turns retrying off).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// First retry delay (default [`defaults::BACKOFF`]).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Builds the client. Fails on an empty key or a base URL that is not `http(s)://…`.
    pub fn build(self) -> Result<Client, Error> {
        let base = self.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!("base URL must start with http:// or https://, got {base:?}")));
        }
        if self.api_key.trim().is_empty() {
            return Err(Error::Config("the API key is empty".into()));
        }
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("ackbox-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.connect_timeout);
        for pem in &self.roots {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("root certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config("root certificate: no PEM certificate in it".into()));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build().map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            key: self.api_key,
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff,
        })
    }
}

/// An Ackbox API client. Cheap to clone (one connection pool shared by the clones).
///
/// Safe requests (GET) are retried on 503 and on connection errors with jittered exponential backoff, honouring
/// `Retry-After`. A submit (POST) is retried only when it carries an idempotency key, so a retry can never create
/// a second job; cancel is never retried.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl Client {
    /// Shorthand for [`ClientBuilder::new`]`(base_url, api_key).build()`.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Result<Self, Error> {
        ClientBuilder::new(base_url, api_key).build()
    }

    /// Submits a job; returns its status document (`queued`) once the job and its dispatch are committed.
    pub async fn submit(&self, kind: &str, payload: serde_json::Value) -> Result<Job, Error> {
        self.submit_with(kind, payload, &SubmitOptions::default()).await
    }

    /// Submits a job with an idempotency key and/or an attempt limit.
    pub async fn submit_with(
        &self,
        kind: &str,
        payload: serde_json::Value,
        opts: &SubmitOptions,
    ) -> Result<Job, Error> {
        let mut body = serde_json::json!({ "kind": kind, "payload": payload });
        if let Some(n) = opts.max_attempts {
            body["max_attempts"] = n.into();
        }
        if let Some(at) = opts.run_at {
            body["run_at"] = at.to_rfc3339().into();
        }
        if let Some(delay) = opts.delay {
            body["delay_ms"] = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).into();
        }
        if let Some(timeout) = opts.timeout {
            body["timeout_ms"] = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).into();
        }
        if let Some(priority) = opts.priority {
            body["priority"] = priority.as_str().into();
        }
        if let Some(queue) = &opts.queue {
            body["queue"] = queue.as_str().into();
        }
        if let Some(url) = &opts.callback_url {
            body["callback_url"] = url.as_str().into();
        }
        let key = opts.idempotency_key.clone();
        let resp = self
            .execute(key.is_some(), || {
                let req = self.request(Method::POST, "/v1/jobs").json(&body);
                match &key {
                    Some(k) => req.header("Idempotency-Key", k),
                    None => req,
                }
            })
            .await?;
        decode(resp).await
    }

    /// Submits up to 1000 jobs at once (`POST /v1/jobs/batch`), all or nothing: returns their status documents in
    /// the order given once every job and its dispatch are committed, in one transaction. An invalid item is
    /// `Error::Invalid` naming its index, and nothing is written. With `idempotency_key` the key stands for the whole
    /// batch (a retry returns the same jobs), and the client retries the POST itself on 503 and connection errors.
    pub async fn submit_batch(&self, jobs: &[BatchJob], idempotency_key: Option<&str>) -> Result<Vec<Job>, Error> {
        let body = serde_json::json!({ "jobs": jobs });
        let resp = self
            .execute(idempotency_key.is_some(), || {
                let req = self.request(Method::POST, "/v1/jobs/batch").json(&body);
                match idempotency_key {
                    Some(k) => req.header("Idempotency-Key", k),
                    None => req,
                }
            })
            .await?;
        decode::<types::BatchAccepted>(resp).await.map(|b| b.jobs)
    }

    /// The job's current status document.
    pub async fn get(&self, id: Uuid) -> Result<Job, Error> {
        let resp = self.execute(true, || self.request(Method::GET, &format!("/v1/jobs/{id}"))).await?;
        decode(resp).await
    }

    /// Waits until the job is terminal or `timeout` has passed, and returns the final status document.
    ///
    /// It long-polls (`Prefer: wait=N`, at most 60 s per request), so a change is seen as soon as the server sees it;
    /// if the server answers without holding the request, it sleeps for the `Retry-After` the server advised. Running
    /// out of time is [`Error::WaitTimeout`], which carries the last document seen.
    pub async fn wait(&self, id: Uuid, timeout: Duration) -> Result<Job, Error> {
        self.wait_with_progress(id, timeout, |_| {}).await
    }

    /// [`Client::wait`], calling `on_change` with every new document seen (for progress bars).
    pub async fn wait_with_progress(
        &self,
        id: Uuid,
        timeout: Duration,
        mut on_change: impl FnMut(&Job),
    ) -> Result<Job, Error> {
        let start = Instant::now();
        let mut job = self.get(id).await?;
        on_change(&job);
        loop {
            if job.status.is_terminal() {
                return Ok(job);
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::WaitTimeout { id, status: job.status, waited: start.elapsed(), job: Box::new(job) });
            }
            let hold = left.min(MAX_WAIT_PER_REQUEST);
            let secs = hold.as_secs();
            if secs == 0 {
                // Less than a second left: the wait header counts whole seconds, so poll once more after a nap.
                tokio::time::sleep(left).await;
                job = self.get(id).await?;
                on_change(&job);
                continue;
            }
            let path = format!("/v1/jobs/{id}");
            let resp = self
                .execute(true, || {
                    self.request(Method::GET, &path)
                        .header("Prefer", format!("wait={secs}"))
                        .timeout(self.timeout + hold)
                })
                .await?;
            let held = resp.headers().contains_key("preference-applied");
            let advised = retry_after(&resp);
            let next: Job = match decode(resp).await {
                Ok(next) => next,
                Err(Error::RateLimited { retry_after, .. }) => {
                    tokio::time::sleep(retry_after.unwrap_or(Duration::from_secs(1)).min(left)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if next != job {
                on_change(&next);
            }
            if !held && !next.status.is_terminal() {
                // The server did not hold the request (an older or proxied API): poll at the pace it advises.
                let pause =
                    advised.or(next.retry_after_seconds.map(Duration::from_secs)).unwrap_or(Duration::from_secs(1));
                tokio::time::sleep(pause.min(timeout.saturating_sub(start.elapsed()))).await;
            }
            job = next;
        }
    }

    /// Cancels the job: a queued job ends `cancelled` at once; a running one is asked to stop (its document shows
    /// `cancel_requested`) and ends `cancelled` when the handler stops. A finished job is [`Error::Conflict`].
    pub async fn cancel(&self, id: Uuid) -> Result<Job, Error> {
        let resp = self.execute(false, || self.request(Method::POST, &format!("/v1/jobs/{id}/cancel"))).await?;
        decode(resp).await
    }

    /// The secret this tenant's completion callbacks are signed with (`whsec_…`, Standard Webhooks): verify a
    /// callback's `webhook-signature` over `"{webhook-id}.{webhook-timestamp}.{body}"` with it.
    pub async fn callback_secret(&self) -> Result<String, Error> {
        #[derive(serde::Deserialize)]
        struct Secret {
            secret: String,
        }
        let resp = self.execute(true, || self.request(Method::GET, "/v1/callbacks/secret")).await?;
        Ok(decode::<Secret>(resp).await?.secret)
    }

    /// One page of the tenant's jobs, newest first.
    pub async fn list(&self, opts: &ListOptions) -> Result<JobPage, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = opts.status {
            query.push(("status", s.as_str().to_string()));
        }
        if let Some(k) = &opts.kind {
            query.push(("kind", k.clone()));
        }
        if let Some(l) = opts.limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(c) = &opts.cursor {
            query.push(("cursor", c.clone()));
        }
        let resp = self.execute(true, || self.request(Method::GET, "/v1/jobs").query(&query)).await?;
        decode(resp).await
    }

    /// The result of a succeeded job, decoded into `T`. Before success it is [`Error::Conflict`].
    pub async fn result<T: DeserializeOwned>(&self, id: Uuid) -> Result<T, Error> {
        let resp = self.execute(true, || self.request(Method::GET, &format!("/v1/jobs/{id}/result"))).await?;
        decode(resp).await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key).timeout(self.timeout)
    }

    /// Sends the request built by `build`, retrying (when `retryable`) on 503 and on transport errors.
    async fn execute(&self, retryable: bool, build: impl Fn() -> RequestBuilder) -> Result<Response, Error> {
        let mut attempt = 0;
        loop {
            let outcome = build().send().await;
            let retry_in = match &outcome {
                Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => Some(retry_after(r)),
                Ok(_) => None,
                Err(e) if e.is_builder() || e.is_decode() => None,
                Err(_) => Some(None),
            };
            match retry_in {
                Some(advised) if retryable && attempt < self.retries => {
                    tokio::time::sleep(advised.unwrap_or_else(|| self.backoff_for(attempt))).await;
                    attempt += 1;
                }
                _ => return outcome.map_err(Error::Transport),
            }
        }
    }

    /// Full-jitter exponential backoff: uniform in [0, min(cap, base × 2^attempt)].
    fn backoff_for(&self, attempt: u32) -> Duration {
        let ceiling = self.backoff.saturating_mul(1 << attempt.min(16)).min(defaults::MAX_BACKOFF);
        ceiling.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }
}

/// `Retry-After` in seconds, if present and sane.
fn retry_after(resp: &Response) -> Option<Duration> {
    let secs: u64 = resp.headers().get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(300)))
}

/// A success body as `T`, or the error the status and problem body stand for.
async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, Error> {
    let status = resp.status();
    let advised = retry_after(&resp);
    let bytes = resp.bytes().await?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| Error::Decode(format!("{e} (HTTP {status})")));
    }
    // The API always sends problem+json; anything else (a proxy's page) still maps to the right variant.
    let problem = serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| Problem {
        status: status.as_u16(),
        title: status.canonical_reason().unwrap_or("error").to_string(),
        ..Problem::default()
    });
    Err(Error::from_status(status.as_u16(), problem, advised))
}
