//! A local stand-in for a delivery channel (a Slack incoming webhook, an outbound webhook
//! endpoint): records every request, answers like the real service, and can fail on command.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::latency::{Jitter, Latency};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status answered.
    pub status: u16,
    /// Answered late on purpose (a `Delay` or `RecordThenStall` fault): the sender had most
    /// likely given up, so it could not know the message arrived.
    pub late: bool,
    /// When the request arrived (before any delay).
    pub arrived: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What to answer the next request with.
#[derive(Debug, Clone)]
pub enum ReceiverFault {
    Status(u16),
    /// Wait, then accept (past the sender's timeout the answer is lost).
    Delay(Duration),
    /// Accept the message, then stall before answering: delivered, but the sender can't know.
    RecordThenStall(Duration),
    /// Answer `302 Found` pointing at this location.
    Redirect(String),
}

type Printer = Arc<dyn Fn(&Received) + Send + Sync>;

struct Shared {
    received: Mutex<Vec<Received>>,
    faults: Mutex<VecDeque<ReceiverFault>>,
    printer: Option<Printer>,
    /// Added before answering every request (none by default).
    latency: Mutex<Latency>,
    jitter: Jitter,
}

/// A running receiver on a loopback port.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Binds `127.0.0.1:port` (0 for any free port). `printer` is called for each request.
    pub async fn start(port: u16, printer: Option<Printer>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            received: Mutex::default(),
            faults: Mutex::default(),
            printer,
            latency: Mutex::default(),
            jitter: Jitter::default(),
        });
        let app = Router::new().fallback(receive).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, shared })
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    /// Adds latency before answering each request from now on (recorded on arrival first).
    pub fn set_latency(&self, latency: Latency) {
        *self.shared.latency.lock().unwrap() = latency;
    }

    pub fn fail_next(&self, fault: ReceiverFault) {
        self.shared.faults.lock().unwrap().push_back(fault);
    }
}

async fn receive(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let arrived = std::time::Instant::now();
    let fault = s.faults.lock().unwrap().pop_front();
    let mut status = 200;
    let (mut late, mut stall, mut location) = (false, None, None);
    match fault {
        Some(ReceiverFault::Redirect(to)) => {
            status = 302;
            location = Some(to);
        }
        Some(ReceiverFault::Status(code)) => status = code,
        Some(ReceiverFault::Delay(d)) => {
            tokio::time::sleep(d).await;
            late = true;
        }
        Some(ReceiverFault::RecordThenStall(d)) => {
            late = true;
            stall = Some(d);
        }
        None => {}
    }
    let r = Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
        late,
        arrived,
    };
    if let Some(p) = &s.printer {
        p(&r);
    }
    s.received.lock().unwrap().push(r);
    let latency = *s.latency.lock().unwrap();
    latency.wait(&s.jitter).await;
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    if let Some(to) = location {
        return (StatusCode::FOUND, [("location", to)], "").into_response();
    }
    // Slack answers a plain "ok"; generic receivers any 2xx.
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (
        code,
        if status == 200 {
            "ok"
        } else {
            "injected failure"
        },
    )
        .into_response()
}
