//! Test support: the AWS emulator (moto_server), the Graph emulator, channel receivers, the app
//! under test built exactly as the Lambda binary builds it, and a log capture that every test
//! checks for leaked secrets when it ends.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use devkit::events;
use devkit::{GraphEmulator, GraphSettings, Receiver};
use invite_relay::config::Config;
use invite_relay::{App, telemetry};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const DELIVERY_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const DEFAULT_REDIRECT: &str =
    "https://myapps.microsoft.com/?tenantid=7b8f2c1e-0d4a-4e6b-9c3f-5a1d2e3f4a5b";
pub const SAMPLE_EMAIL: &str = "ada@partner.example";

/// The AWS emulator's endpoint: `INVITE_RELAY_TEST_AWS_ENDPOINT` when the test command started
/// one, else a `moto_server` this process starts (and stops when it exits).
pub fn aws_endpoint() -> String {
    if let Ok(url) = std::env::var("INVITE_RELAY_TEST_AWS_ENDPOINT") {
        return url;
    }
    static MOTO: OnceLock<String> = OnceLock::new();
    MOTO.get_or_init(start_moto).clone()
}

fn start_moto() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill $m",
        parent = std::process::id()
    );
    // The watchdog outlives every test and stops moto_server when this process is gone, so
    // it is deliberately never waited for.
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .spawn()
        .expect("start moto_server (pip install 'moto[server]')");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}

/// SDK configuration pointing at the AWS emulator through the standard endpoint setting.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(aws_endpoint())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

/// Log lines written by the code under test, in the production JSON format.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}

/// How to build the app under test.
pub struct Options {
    pub secret: serde_json::Map<String, Value>,
    pub env: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            secret: serde_json::Map::new(),
            env: Vec::new(),
        }
    }
}

/// The app under test and everything around it.
pub struct TestApp {
    pub app: App,
    pub graph: GraphEmulator,
    pub slack: Receiver,
    pub hook: Receiver,
    pub logs: LogCapture,
    pub secret_id: String,
    pub secret_values: Vec<String>,
    _log_guard: tracing::subscriber::DefaultGuard,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn try_spawn_app_with(opts: Options) -> (Result<App, String>, TestParts) {
    let logs = LogCapture::default();
    let guard = tracing::subscriber::set_default(telemetry::subscriber(
        logs.clone(),
        telemetry::filter_from(Some("debug"), None),
    ));
    let graph = GraphEmulator::start(GraphSettings::default(), 0)
        .await
        .unwrap();
    let slack = Receiver::start(0, None).await.unwrap();
    let hook = Receiver::start(0, None).await.unwrap();
    let settings = graph.settings().clone();

    let mut secret = serde_json::Map::new();
    secret.insert(
        "graph_client_secret".into(),
        settings.client_secret.clone().into(),
    );
    secret.insert("webhook_signing_secret".into(), WEBHOOK_SECRET.into());
    secret.insert(
        "slack_webhook_url".into(),
        format!("{}/slack/T0001/B0001/XyZsecretPart", slack.url).into(),
    );
    secret.insert(
        "delivery_webhook_url".into(),
        format!("{}/hooks/invitations", hook.url).into(),
    );
    secret.insert("delivery_signing_secret".into(), DELIVERY_SECRET.into());
    for (k, v) in opts.secret {
        secret.insert(k, v);
    }
    let secret_values: Vec<String> = secret
        .values()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let sdk = sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret_id = format!("invite-relay-test-{}", uuid_like());
    sm.create_secret()
        .name(&secret_id)
        .secret_string(Value::Object(secret).to_string())
        .send()
        .await
        .expect("create secret in moto");

    let mut env: Vec<(&str, String)> = vec![
        ("RELAY_SECRET_ID", secret_id.clone()),
        ("GRAPH_TENANT_ID", settings.tenant_id.clone()),
        ("GRAPH_CLIENT_ID", settings.client_id.clone()),
        ("GRAPH_LOGIN_URL", graph.url.clone()),
        ("GRAPH_API_URL", graph.url.clone()),
        ("INVITE_REDIRECT_URL", DEFAULT_REDIRECT.into()),
        (
            "INVITE_REDIRECT_ALLOWLIST",
            "https://portal.partner.example".into(),
        ),
        ("DELIVERY_ALLOW_PRIVATE_NETWORKS", "true".into()),
        ("OUTBOUND_TIMEOUT_MS", "2000".into()),
    ];
    for (k, v) in opts.env {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    }
    let app = match Config::from_lookup(|k| {
        env.iter().find(|(ek, _)| *ek == k).map(|(_, v)| v.clone())
    }) {
        Ok(config) => App::new(config, &sdk).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    (
        app,
        TestParts {
            graph,
            slack,
            hook,
            logs,
            secret_id,
            secret_values,
            guard,
        },
    )
}

pub struct TestParts {
    pub graph: GraphEmulator,
    pub slack: Receiver,
    pub hook: Receiver,
    pub logs: LogCapture,
    pub secret_id: String,
    pub secret_values: Vec<String>,
    guard: tracing::subscriber::DefaultGuard,
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let (app, p) = try_spawn_app_with(opts).await;
    TestApp {
        app: app.expect("app starts"),
        graph: p.graph,
        slack: p.slack,
        hook: p.hook,
        logs: p.logs,
        secret_id: p.secret_id,
        secret_values: p.secret_values,
        _log_guard: p.guard,
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Lambda event from `events/`.
pub fn load_event(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The generic sample body, as a JSON value to modify.
pub fn sample_body() -> Value {
    let event = load_event("function-url-generic.json");
    serde_json::from_slice(&events::event_body(&event)).unwrap()
}

/// Parses a Lambda event with lambda_http's own parser, as the runtime does.
pub fn to_request(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("lambda_http parses the event")
}

/// A Function URL event carrying `body`, freshly signed with the generic source's key.
pub fn signed_event(body: &str) -> Value {
    let mut event = load_event("function-url-generic.json");
    events::set_event_body(&mut event, body);
    events::sign_event(&mut event, WEBHOOK_SECRET);
    event
}

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub raw: String,
}

impl TestApp {
    pub async fn send_event(&self, event: &Value) -> Answer {
        answer(self.app.handle(to_request(event)).await)
    }

    /// Sends `body` signed, with an explicit deadline for the invocation.
    pub async fn post_until(
        &self,
        body: &Value,
        deadline: invite_relay::resilience::Deadline,
    ) -> Answer {
        answer(
            self.app
                .handle_until(to_request(&signed_event(&body.to_string())), deadline)
                .await,
        )
    }

    /// Sends `body` signed, through a Function URL event.
    pub async fn post(&self, body: &Value) -> Answer {
        self.send_event(&signed_event(&body.to_string())).await
    }

    /// Every value that must never appear in logs, with what it is: secrets, tokens, redeem
    /// URLs (and their tickets), the invitee emails used by the test.
    pub fn forbidden_in_logs(&self, emails: &[&str]) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = self
            .secret_values
            .iter()
            .map(|s| ("a secret value", s.clone()))
            .collect();
        v.extend(
            self.graph
                .issued_tokens()
                .into_iter()
                .map(|t| ("an access token", t)),
        );
        for url in self.graph.redeem_urls() {
            let ticket = url
                .split("ticket%3d")
                .nth(1)
                .and_then(|t| t.split("%26").next())
                .unwrap_or("")
                .to_owned();
            v.push(("a redeem URL", url));
            v.push(("a redeem ticket", ticket));
        }
        v.extend(emails.iter().map(|e| ("an invitee email", (*e).to_owned())));
        v.retain(|(_, s)| s.len() >= 6);
        v
    }

    /// Fails when any log line carries a forbidden value, a bearer token or a redeem ticket.
    pub fn assert_logs_clean(&self, emails: &[&str]) {
        let text = self.logs.text();
        assert!(!text.is_empty(), "the code under test logged nothing");
        for (what, needle) in self.forbidden_in_logs(emails) {
            if let Some(line) = text.lines().find(|l| l.contains(&needle)) {
                let message = serde_json::from_str::<Value>(line)
                    .map(|l| l["message"].to_string())
                    .unwrap_or_default();
                panic!("log output leaks {what} (in the line with message {message})");
            }
        }
        for marker in [
            "eyJ",
            "ticket=",
            "ticket%3d",
            "whsec_",
            "emulator-client-secret",
        ] {
            assert!(
                !text
                    .to_ascii_lowercase()
                    .contains(&marker.to_ascii_lowercase()),
                "log output contains {marker}"
            );
        }
        for line in text.lines() {
            assert!(
                serde_json::from_str::<Value>(line).is_ok(),
                "log line is not JSON: {line}"
            );
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_logs_clean(&[SAMPLE_EMAIL]);
        }
    }
}

pub fn answer(resp: Response<Body>) -> Answer {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let raw = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        body,
        raw,
    }
}

impl Answer {
    /// Asserts an RFC 9457 problem of `status` and type slug `kind`.
    pub fn assert_problem(&self, status: u16, kind: &str) {
        assert_eq!(self.status, status, "body: {}", self.raw);
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(
            self.body["type"],
            format!("urn:invite-relay:problem:{kind}"),
            "body: {}",
            self.raw
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        assert!(
            !self.raw.contains(SAMPLE_EMAIL),
            "a problem echoes the email"
        );
        assert!(
            !self.raw.contains("ticket"),
            "a problem carries a redeem URL"
        );
    }
}
