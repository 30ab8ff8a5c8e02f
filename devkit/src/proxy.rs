//! A pass-through HTTP proxy with injected failures: it forwards every request to an upstream
//! (the local AWS emulator) unchanged, except that the next requests whose path starts with a
//! given prefix can be answered with an error status and an AWS error type instead. Tests use
//! it to show how the function's AWS calls behave on throttling, 5xx and rejections while the
//! rest of the traffic reaches the real emulator.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

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

    async fn listen(upstream: &str, serial: bool) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            faults: Mutex::default(),
            seen: Mutex::default(),
            serial: serial.then(tokio::sync::Mutex::default),
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
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        s.operations.lock().unwrap().push(target.to_owned());
    }
    let fault = {
        let mut faults = s.faults.lock().unwrap();
        let i = faults.iter().position(|f| path.starts_with(&f.path_prefix));
        i.and_then(|i| faults.remove(i))
    };
    if let Some(f) = fault {
        s.seen.lock().unwrap().push((path, f.status));
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
    let _one_at_a_time = match &s.serial {
        Some(m) => Some(m.lock().await),
        None => None,
    };
    let target = format!(
        "{}{}",
        s.upstream,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = s.client.request(method, target).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            s.seen.lock().unwrap().push((path, status.as_u16()));
            let mut out = HeaderMap::new();
            for (k, v) in resp.headers() {
                if k != "content-length" && k != "transfer-encoding" && k != "connection" {
                    out.insert(k, v.clone());
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            (status, out, bytes).into_response()
        }
        Err(_) => {
            s.seen.lock().unwrap().push((path, 502));
            StatusCode::BAD_GATEWAY.into_response()
        }
    }
}
