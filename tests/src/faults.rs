//! A fault-injecting HTTP proxy between batchops and the emulator: it answers a fraction of
//! requests with S3's `503 SlowDown`, a `500 InternalError`, DynamoDB's throttling, or a
//! connection cut mid-answer; forwards a fraction and then cuts the connection, so a write
//! applies and its answer is lost; adds latency; throttles above a fixed request rate; or
//! refuses everything for a while (an outage). It counts what it forwarded, and when, and what
//! it injected, by kind, so a test can compare a job's report with the requests that really
//! reached the store and know that the faults it asked for happened.
//!
//! Point one service at it with `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_DYNAMODB` /
//! `AWS_ENDPOINT_URL_SQS` (or all with `AWS_ENDPOINT_URL`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

/// Which requests the faults apply to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every request.
    #[default]
    All,
    /// S3 task requests only: copies (`x-amz-copy-source`), tagging and ACL writes, deletes of
    /// objects; manifest reads and report writes pass untouched.
    Tasks,
    /// DynamoDB requests only (`x-amz-target: DynamoDB_...`).
    DynamoDb,
    /// SQS requests only (`x-amz-target: AmazonSQS...` or `Action=` queries).
    Sqs,
}

/// What to inject. Fractions are of the requests in scope, drawn independently.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub scope: Scope,
    /// Answered `503 SlowDown` (S3) or `400 ThrottlingException` / `ProvisionedThroughputExceededException` (DynamoDB).
    pub slowdown: f64,
    /// Answered `500 InternalError`.
    pub error500: f64,
    /// The connection is cut: a 200 whose body ends before its announced length.
    pub reset: f64,
    /// Forwarded (the store applies the request), then answered like `reset`: the client cannot
    /// tell a write that applied from one that did not.
    pub lost: f64,
    /// Added before each request in scope is forwarded.
    pub latency: Duration,
    /// Requests in scope above this rate (per second, one second's burst) get `503 SlowDown`.
    pub rate_limit: Option<f64>,
    /// Until then, every request in scope is answered `503 ServiceUnavailable`.
    pub outage_until: Option<Instant>,
}

/// A fault the proxy injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// S3's `SlowDown` or DynamoDB's throttling, drawn or for the rate limit.
    SlowDown,
    Error500,
    Reset,
    Outage,
    /// Forwarded, then the connection cut instead of the answer. (Keep it last: see KINDS.)
    Lost,
}

/// How many kinds of [`Injected`] there are.
const KINDS: usize = Injected::Lost as usize + 1;

/// What the proxy saw.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests in scope forwarded and answered 2xx, by method and path (bucket/key).
    pub succeeded: Mutex<HashMap<(String, String), u64>>,
    /// Requests in scope forwarded whatever the answer, by method and path.
    pub forwarded: Mutex<HashMap<(String, String), u64>>,
    /// When each request in scope was let through to the store; under a rate limit, the
    /// instant it took its token, so no span of them holds more than the rate over the span
    /// plus the burst.
    forwarded_at: Mutex<Vec<Instant>>,
    pub injected: AtomicU64,
    /// By kind (`Injected as usize`).
    injected_by_kind: [AtomicU64; KINDS],
    pub total: AtomicU64,
}

impl Stats {
    /// Distinct paths requested with `method` and answered 2xx.
    pub fn succeeded_paths(&self, method: &str) -> Vec<String> {
        let map = self.succeeded.lock().unwrap();
        let mut paths: Vec<String> = map.keys().filter(|(m, _)| m == method).map(|(_, p)| p.clone()).collect();
        paths.sort();
        paths
    }

    /// Requests with `method` forwarded to paths under `prefix`, in all.
    pub fn forwarded_count(&self, method: &str, prefix: &str) -> u64 {
        let map = self.forwarded.lock().unwrap();
        map.iter().filter(|((m, p), _)| m == method && p.starts_with(prefix)).map(|(_, n)| n).sum()
    }

    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    pub fn injected_of(&self, kind: Injected) -> u64 {
        self.injected_by_kind[kind as usize].load(Ordering::Relaxed)
    }

    /// When the requests in scope forwarded between `from` and `to` were let through, in order.
    pub fn forwarded_at(&self, from: Instant, to: Instant) -> Vec<Instant> {
        let mut at: Vec<Instant> =
            self.forwarded_at.lock().unwrap().iter().copied().filter(|t| (from..=to).contains(t)).collect();
        at.sort();
        at
    }

    fn note(&self, kind: Injected) {
        self.injected.fetch_add(1, Ordering::Relaxed);
        self.injected_by_kind[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// The most instants of `at` (in order) within any span of `window`.
pub fn most_within(at: &[Instant], window: Duration) -> usize {
    let mut first = 0;
    let mut most = 0;
    for (last, t) in at.iter().enumerate() {
        while t.duration_since(at[first]) > window {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

struct Shared {
    backend: String,
    http: reqwest::Client,
    faults: Mutex<Faults>,
    stats: Arc<Stats>,
    bucket: Mutex<(f64, Instant)>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    pub url: String,
    pub stats: Arc<Stats>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy in front of `backend` (such as `http://127.0.0.1:5000`).
    pub async fn start(backend: &str, faults: Faults) -> Result<FaultProxy> {
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            backend: backend.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder().pool_max_idle_per_host(64).build()?,
            faults: Mutex::new(faults),
            stats: stats.clone(),
            bucket: Mutex::new((0.0, Instant::now())),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().fallback(proxy).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FaultProxy { url, stats, shared, task })
    }

    /// Changes the faults from now on.
    pub fn set(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }
}

fn in_scope(scope: Scope, method: &Method, path: &str, query: &str, headers: &HeaderMap) -> bool {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match scope {
        Scope::All => true,
        Scope::DynamoDb => target.starts_with("DynamoDB_"),
        Scope::Sqs => target.starts_with("AmazonSQS") || query.contains("Action="),
        Scope::Tasks => {
            let object = path.trim_start_matches('/').contains('/');
            let write = headers.contains_key("x-amz-copy-source") || query.contains("tagging") || query.contains("acl");
            object && !target.starts_with("DynamoDB_") && ((method == Method::PUT && write) || method == Method::DELETE)
        }
    }
}

/// Draws the fault for one request in scope (none: `None`), and says when the request was
/// let through: under a rate limit, read under the bucket's lock (see `Stats::forwarded_at`).
fn draw(shared: &Shared, f: &Faults) -> (Instant, Option<Injected>) {
    let mut now = Instant::now();
    if f.outage_until.is_some_and(|t| now < t) {
        return (now, Some(Injected::Outage));
    }
    if let Some(rate) = f.rate_limit {
        let mut b = shared.bucket.lock().unwrap();
        now = Instant::now();
        b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(rate.max(1.0));
        b.1 = now;
        if b.0 < 1.0 {
            return (now, Some(Injected::SlowDown));
        }
        b.0 -= 1.0;
    }
    let x: f64 = rand::random();
    let injected = if x < f.slowdown {
        Some(Injected::SlowDown)
    } else if x < f.slowdown + f.error500 {
        Some(Injected::Error500)
    } else if x < f.slowdown + f.error500 + f.reset {
        Some(Injected::Reset)
    } else if x < f.slowdown + f.error500 + f.reset + f.lost {
        Some(Injected::Lost)
    } else {
        None
    };
    (now, injected)
}

fn answer(injected: Injected, dynamodb: bool) -> Response {
    let xml = |status: StatusCode, code: &str, message: &str| {
        Response::builder()
            .status(status)
            .header("content-type", "application/xml")
            .body(Body::from(format!("<Error><Code>{code}</Code><Message>{message}</Message></Error>")))
            .unwrap()
    };
    let json = |status: StatusCode, code: &str| {
        Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .body(Body::from(format!(
                "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{code}\",\"message\":\"injected\"}}"
            )))
            .unwrap()
    };
    match injected {
        Injected::SlowDown if dynamodb => json(StatusCode::BAD_REQUEST, "ProvisionedThroughputExceededException"),
        Injected::SlowDown => xml(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate."),
        Injected::Error500 if dynamodb => json(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        Injected::Error500 => {
            xml(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "We encountered an internal error.")
        }
        Injected::Outage => xml(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "injected outage"),
        Injected::Reset | Injected::Lost => Response::builder()
            .status(StatusCode::OK)
            .header("content-length", "4096")
            .body(Body::from_stream(futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("connection cut by the fault proxy"))
            })))
            .unwrap(),
    }
}

async fn proxy(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    shared.stats.total.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let faults = shared.faults.lock().unwrap().clone();
    let scoped = in_scope(faults.scope, &parts.method, &path, &query, &parts.headers);
    let dynamodb =
        parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("DynamoDB_"));
    let mut lost = false;
    if scoped {
        if !faults.latency.is_zero() {
            tokio::time::sleep(faults.latency).await;
        }
        let (at, injected) = draw(&shared, &faults);
        match injected {
            Some(Injected::Lost) => lost = true,
            Some(injected) => {
                shared.stats.note(injected);
                return answer(injected, dynamodb);
            }
            None => {}
        }
        shared.stats.forwarded_at.lock().unwrap().push(at);
    }
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return Response::builder().status(400).body(Body::from(e.to_string())).unwrap(),
    };
    let url = if query.is_empty() {
        format!("{}{path}", shared.backend)
    } else {
        format!("{}{path}?{query}", shared.backend)
    };
    let mut forward = shared.http.request(parts.method.clone(), url).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let key = (parts.method.to_string(), path);
    if scoped {
        *shared.stats.forwarded.lock().unwrap().entry(key.clone()).or_default() += 1;
    }
    let reply = match forward.send().await {
        Ok(r) => r,
        Err(e) => return Response::builder().status(502).body(Body::from(e.to_string())).unwrap(),
    };
    let status = reply.status();
    if scoped && status.is_success() {
        *shared.stats.succeeded.lock().unwrap().entry(key).or_default() += 1;
    }
    if lost {
        // The store has done what was asked and answered; the client never learns what.
        let _ = reply.bytes().await;
        shared.stats.note(Injected::Lost);
        return answer(Injected::Lost, dynamodb);
    }
    let mut out = Response::builder().status(status);
    for (name, value) in reply.headers() {
        if name != "transfer-encoding" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let bytes = reply.bytes().await.unwrap_or_default();
    out.body(Body::from(bytes)).unwrap()
}
