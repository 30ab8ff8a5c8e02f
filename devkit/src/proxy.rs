//! A pass-through HTTP proxy with injected failures: it forwards every request to an upstream
//! (the local AWS emulator) unchanged, except that the next requests whose path starts with a
//! given prefix can be answered with an error status and an AWS error type instead. Tests use
//! it to show how the function's AWS calls behave on throttling, 5xx and rejections while the
//! rest of the traffic reaches the real emulator.
//!
//! It can also add latency to every forwarded request ([`FaultProxy::set_latency`], none by
//! default) and keeps an account of each request ([`FaultProxy::requests`]: operation, sizes,
//! whether a DynamoDB read asked for `ConsistentRead`) for cost estimates.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::latency::{Jitter, Latency};

/// One request as forwarded (or answered with an injected failure).
#[derive(Debug, Clone)]
pub struct ProxiedRequest {
    /// `X-Amz-Target` (e.g. `DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`), else the
    /// query protocol's `Action` form field, else empty.
    pub operation: String,
    pub path: String,
    pub status: u16,
    /// A JSON body with `"ConsistentRead": true` (a strongly consistent DynamoDB read).
    pub consistent_read: bool,
    pub request_bytes: usize,
    pub response_bytes: usize,
    /// For an error answer: its AWS error type (`x-amzn-ErrorType`, else the JSON body's
    /// `__type`), e.g. `…#ConditionalCheckFailedException`; empty otherwise.
    pub error_type: String,
    /// `x-amz-user-agent`, else `user-agent` (an AWS SDK names the application there when
    /// `AWS_SDK_UA_APP_ID` is set: `app/{id}`).
    pub user_agent: String,
    /// How long the upstream took to answer (after any added latency and the wait for a
    /// serial proxy's turn).
    pub upstream: std::time::Duration,
    /// When the proxy received it (before any added latency).
    pub received: std::time::Instant,
    /// From receipt to answer: added latency, a serial proxy's wait and the upstream's
    /// answer — how long the caller waited on it.
    pub took: std::time::Duration,
    /// The request body of DynamoDB operations (for accounting: which attributes a write
    /// sets); empty for other services.
    pub dynamodb_body: String,
}

/// One injected failure.
#[derive(Debug, Clone)]
pub struct ProxyFault {
    pub path_prefix: String,
    pub status: u16,
    /// The AWS error type (`x-amzn-ErrorType`), e.g. `TooManyRequestsException`.
    pub error_type: String,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    faults: Mutex<VecDeque<ProxyFault>>,
    /// (path, status answered) of every request.
    seen: Mutex<Vec<(String, u16)>>,
    /// Held while a request is forwarded, when requests go one at a time.
    serial: Option<tokio::sync::Mutex<()>>,
    /// Only requests whose `X-Amz-Target` starts with this go one at a time (all when `None`).
    serial_only: Option<Vec<String>>,
    latency: Mutex<Latency>,
    jitter: Jitter,
    requests: Mutex<Vec<ProxiedRequest>>,
    /// The operation of every request that names one (`X-Amz-Target`, e.g.
    /// `DynamoDB_20120810.PutItem`), in order.
    operations: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub url: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        Self::listen(upstream, false).await
    }

    /// A proxy that forwards one request at a time. The AWS emulator serves requests on
    /// threads without making a conditional write atomic against another at the same moment
    /// (DynamoDB does): tests of racing conditional writes go through this.
    pub async fn start_serial(upstream: &str) -> std::io::Result<Self> {
        Self::listen(upstream, true).await
    }

    /// A proxy that forwards one at a time only the requests whose `X-Amz-Target` starts with
    /// one of `target_prefixes` (e.g. DynamoDB's writes), the others at once: an SQS long poll
    /// or a read then doesn't wait behind the table's conditional writes.
    pub async fn start_serial_only(
        upstream: &str,
        target_prefixes: &[&str],
    ) -> std::io::Result<Self> {
        let prefixes = target_prefixes.iter().map(|p| (*p).to_owned()).collect();
        let proxy = Self::listen_with(upstream, true, Some(prefixes)).await?;
        Ok(proxy)
    }

    async fn listen(upstream: &str, serial: bool) -> std::io::Result<Self> {
        Self::listen_with(upstream, serial, None).await
    }

    async fn listen_with(
        upstream: &str,
        serial: bool,
        serial_only: Option<Vec<String>>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            faults: Mutex::default(),
            seen: Mutex::default(),
            serial: serial.then(tokio::sync::Mutex::default),
            serial_only,
            latency: Mutex::default(),
            jitter: Jitter::default(),
            requests: Mutex::default(),
            operations: Mutex::default(),
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, shared })
    }

    /// Answers the next request under `path_prefix` with `status` and `error_type`.
    pub fn fail_next(&self, path_prefix: &str, status: u16, error_type: &str) {
        self.shared.faults.lock().unwrap().push_back(ProxyFault {
            path_prefix: path_prefix.to_owned(),
            status,
            error_type: error_type.to_owned(),
        });
    }

    /// Adds latency to every request from now on, before it is forwarded (and before a serial
    /// proxy's turn is taken, so only the forwarding itself goes one at a time).
    pub fn set_latency(&self, latency: Latency) {
        *self.shared.latency.lock().unwrap() = latency;
    }

    /// Every request so far, in the order answered.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The operations requested so far (`X-Amz-Target` values), in order.
    pub fn operations(&self) -> Vec<String> {
        self.shared.operations.lock().unwrap().clone()
    }

    /// The statuses answered to requests under `path_prefix`, in order.
    pub fn statuses(&self, path_prefix: &str) -> Vec<u16> {
        self.shared
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with(path_prefix))
            .map(|(_, s)| *s)
            .collect()
    }
}

async fn forward(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    if let Some(target) = target {
        s.operations.lock().unwrap().push(target.to_owned());
    }
    let mut record = ProxiedRequest {
        operation: target.map_or_else(|| form_action(&body), str::to_owned),
        path: path.clone(),
        status: 0,
        consistent_read: consistent_read(&body),
        request_bytes: body.len(),
        response_bytes: 0,
        error_type: String::new(),
        user_agent: ["x-amz-user-agent", "user-agent"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .unwrap_or("")
            .to_owned(),
        upstream: std::time::Duration::ZERO,
        received: std::time::Instant::now(),
        took: std::time::Duration::ZERO,
        dynamodb_body: if target.is_some_and(|t| t.starts_with("DynamoDB")) {
            String::from_utf8_lossy(&body).into_owned()
        } else {
            String::new()
        },
    };
    let fault = {
        let mut faults = s.faults.lock().unwrap();
        let i = faults.iter().position(|f| path.starts_with(&f.path_prefix));
        i.and_then(|i| faults.remove(i))
    };
    if let Some(f) = fault {
        s.seen.lock().unwrap().push((path, f.status));
        record.status = f.status;
        record.error_type.clone_from(&f.error_type);
        s.requests.lock().unwrap().push(record);
        let code = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({"message": "injected by devkit proxy"}).to_string();
        return (
            code,
            [
                ("x-amzn-errortype", f.error_type.as_str()),
                ("content-type", "application/json"),
            ],
            body,
        )
            .into_response();
    }
    let latency = *s.latency.lock().unwrap();
    latency.wait(&s.jitter).await;
    let one_at_a_time = match (&s.serial, &s.serial_only) {
        (Some(_), Some(prefixes)) => {
            target.is_some_and(|t| prefixes.iter().any(|p| t.starts_with(p.as_str())))
        }
        (serial, None) => serial.is_some(),
        (None, Some(_)) => false,
    };
    let _turn = match &s.serial {
        Some(m) if one_at_a_time => Some(m.lock().await),
        _ => None,
    };
    let started = std::time::Instant::now();
    let (status, out, bytes) = send_upstream(&s, method, &uri, &headers, body).await;
    record.upstream = started.elapsed();
    record.took = record.received.elapsed();
    s.seen.lock().unwrap().push((path, status.as_u16()));
    record.status = status.as_u16();
    record.response_bytes = bytes.len();
    if !status.is_success() {
        record.error_type = error_type(&out, &bytes);
    }
    s.requests.lock().unwrap().push(record);
    (status, out, bytes).into_response()
}

/// Forwards one request; a failure to reach the upstream is a `502`.
async fn send_upstream(
    s: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, axum::body::Bytes) {
    let target = format!(
        "{}{}",
        s.upstream,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = s.client.request(method, target).body(body);
    for (k, v) in headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let mut out = HeaderMap::new();
            for (k, v) in resp.headers() {
                if k != "content-length" && k != "transfer-encoding" && k != "connection" {
                    out.insert(k, v.clone());
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            (status, out, bytes)
        }
        Err(_) => (
            StatusCode::BAD_GATEWAY,
            HeaderMap::new(),
            axum::body::Bytes::new(),
        ),
    }
}

fn error_type(headers: &HeaderMap, body: &[u8]) -> String {
    headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()?
                .get("__type")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// The query protocol's `Action` (a form body), or empty.
fn form_action(body: &[u8]) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A JSON request body asking for a strongly consistent read.
fn consistent_read(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("ConsistentRead").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}
