//! The Lambda Runtime API on loopback, and a function binary started against it the way Lambda
//! starts one: tests and the cold-start harness invoke the real (release) binary with
//! real-shaped events, read what it answered, and see whether its process is still alive.
//!
//! Protocol: <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html> — the function
//! polls `GET /2018-06-01/runtime/invocation/next`, answers on `…/{id}/response` or
//! `…/{id}/error`, and reports a failed start on `…/runtime/init/error`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc, oneshot};

/// What the function did with one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked {
    /// `POST …/response`: the function's answer (for an HTTP event, the Function URL / API
    /// Gateway response object).
    Response(serde_json::Value),
    /// `POST …/error`: the invocation failed (the client of a Function URL sees a 502).
    Error(String),
}

struct Invocation {
    id: String,
    body: String,
}

struct Runtime {
    queue: Mutex<mpsc::Receiver<Invocation>>,
    first_next: std::sync::Mutex<Option<Instant>>,
    waiting: std::sync::Mutex<HashMap<String, oneshot::Sender<Invoked>>>,
    init_error: std::sync::Mutex<Option<String>>,
    /// When each invocation in flight was handed out (`/next` answered).
    handed_out: std::sync::Mutex<HashMap<String, Instant>>,
    /// Each finished invocation's duration as Lambda bills it: from handing out the event to
    /// the function's `response` or `error` post.
    durations: std::sync::Mutex<Vec<Duration>>,
}

async fn next(State(rt): State<Arc<Runtime>>) -> Response {
    rt.first_next
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    let Some(inv) = rt.queue.lock().await.recv().await else {
        return (axum::http::StatusCode::GONE, "").into_response();
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30_000;
    let mut h = HeaderMap::new();
    h.insert("lambda-runtime-aws-request-id", inv.id.parse().unwrap());
    rt.handed_out
        .lock()
        .unwrap()
        .insert(inv.id.clone(), Instant::now());
    h.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().unwrap(),
    );
    h.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-west-1:123456789012:function:local"
            .parse()
            .unwrap(),
    );
    h.insert(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0"
            .parse()
            .unwrap(),
    );
    (h, inv.body).into_response()
}

async fn done(
    State(rt): State<Arc<Runtime>>,
    Path((id, kind)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(at) = rt.handed_out.lock().unwrap().remove(&id) {
        rt.durations.lock().unwrap().push(at.elapsed());
    }
    if let Some(tx) = rt.waiting.lock().unwrap().remove(&id) {
        let text = String::from_utf8_lossy(&body).into_owned();
        let _ = tx.send(if kind == "response" {
            serde_json::from_str(&text)
                .map(Invoked::Response)
                .unwrap_or(Invoked::Error(text))
        } else {
            Invoked::Error(text)
        });
    }
    (axum::http::StatusCode::ACCEPTED, "").into_response()
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: String) -> Response {
    *rt.init_error.lock().unwrap() = Some(body);
    (axum::http::StatusCode::ACCEPTED, "").into_response()
}

/// A function process started against a loopback Runtime API.
pub struct LambdaProcess {
    child: tokio::process::Child,
    runtime: Arc<Runtime>,
    events: mpsc::Sender<Invocation>,
    server: tokio::task::JoinHandle<()>,
    stdout: Arc<std::sync::Mutex<String>>,
    /// From the process's start to its first poll for an event.
    pub init: Duration,
    invocations: std::sync::atomic::AtomicUsize,
}

impl LambdaProcess {
    /// Starts `binary` with exactly `env` (plus `AWS_LAMBDA_RUNTIME_API`) and waits until it
    /// polls for its first event.
    ///
    /// # Errors
    /// The function reported an init error, exited, or did not poll within 30 seconds.
    pub async fn start(binary: &str, env: &[(String, String)]) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel(1);
        let rt = Arc::new(Runtime {
            queue: Mutex::new(rx),
            first_next: std::sync::Mutex::new(None),
            waiting: std::sync::Mutex::new(HashMap::new()),
            init_error: std::sync::Mutex::new(None),
            handed_out: std::sync::Mutex::default(),
            durations: std::sync::Mutex::default(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(done))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(rt.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let started = Instant::now();
        let mut child = tokio::process::Command::new(binary)
            .env_clear()
            .envs(env.iter().cloned())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{binary}: {e}"))?;
        // Drained all along (a full pipe would stall the function).
        let stdout = Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            let sink = stdout.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt as _;
                let mut lines = tokio::io::BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let init = loop {
            if let Some(t) = *rt.first_next.lock().unwrap() {
                break t - started;
            }
            if let Some(e) = rt.init_error.lock().unwrap().clone() {
                return Err(format!("{binary} failed to start: {e}"));
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{binary} exited during init: {status}"));
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("{binary} did not start"));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        Ok(Self {
            child,
            runtime: rt,
            events: tx,
            server,
            stdout,
            init,
            invocations: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Sends one event and waits (at most `timeout`) for the function's answer.
    ///
    /// # Errors
    /// The process died or did not answer in time.
    pub async fn invoke(&self, event: &str, timeout: Duration) -> Result<Invoked, String> {
        let n = self
            .invocations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("req-{n}");
        let (done_tx, done_rx) = oneshot::channel();
        self.runtime
            .waiting
            .lock()
            .unwrap()
            .insert(id.clone(), done_tx);
        self.events
            .send(Invocation {
                id,
                body: event.to_owned(),
            })
            .await
            .map_err(|_| "runtime queue closed".to_owned())?;
        tokio::time::timeout(timeout, done_rx)
            .await
            .map_err(|_| "the function did not answer in time (did it exit?)".to_owned())?
            .map_err(|_| "lost".to_owned())
    }

    /// The duration of each finished invocation so far, measured at the Runtime API from
    /// handing out the event to the function posting its response (what Lambda bills).
    pub fn durations(&self) -> Vec<Duration> {
        self.runtime.durations.lock().unwrap().clone()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, once it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The process id (to read `/proc/{pid}/status`).
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Everything the function wrote to stdout so far (its JSON log lines).
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Peak resident set size so far, in kilobytes (`VmHWM`), or 0 when unknown.
    pub fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Stops the process and the Runtime API.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}
