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

/// Verifies a sending identity (a domain) in the emulator's SES, as `aws sesv2
/// create-email-identity` does; idempotent.
pub async fn verify_ses_identity(domain: &str) {
    let ses = aws_sdk_sesv2::Client::new(&sdk_config().await);
    let _ = ses
        .create_email_identity()
        .email_identity(domain)
        .send()
        .await;
}

/// One email the emulator's SES accepted: sender, recipients, subject and HTML body.
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub source: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub html: String,
}

/// The emails SES accepted for `to` (read from the emulator's state).
pub async fn sent_emails(to: &str) -> Vec<SentEmail> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", aws_endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| SentEmail {
            source: m["source"].as_str().unwrap_or_default().to_owned(),
            to: list(&m["destinations"]["ToAddresses"]),
            cc: list(&m["destinations"]["CcAddresses"]),
            subject: m["subject"].as_str().unwrap_or_default().to_owned(),
            html: m["body"].as_str().unwrap_or_default().to_owned(),
        })
        .filter(|m| m.to.iter().any(|t| t == to))
        .collect()
}

/// SDK configuration pointing at the AWS emulator through the standard endpoint setting, sending
/// over the function's own HTTP client as in production.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let http = invite_relay::aws::default_client(std::time::Duration::from_secs(8))
        .expect("TLS configuration");
    invite_relay::aws::loader(http)
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
#[derive(Default)]
pub struct Options {
    pub secret: serde_json::Map<String, Value>,
    pub env: Vec<(&'static str, String)>,
    /// Put the Teams receiver's URL in the secret as `teams_webhook_url`.
    pub teams: bool,
    /// Where the app's AWS clients go instead of the emulator (a fault proxy in front of it).
    pub aws_endpoint: Option<String>,
}

/// The app under test and everything around it (the parts are reachable through `Deref`).
pub struct TestApp {
    pub app: App,
    parts: TestParts,
}

impl std::ops::Deref for TestApp {
    type Target = TestParts;
    fn deref(&self) -> &TestParts {
        &self.parts
    }
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
    let teams = Receiver::start(0, None).await.unwrap();
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
    if opts.teams {
        secret.insert(
            "teams_webhook_url".into(),
            format!(
                "{}/workflows/a1b2c3/triggers/manual/paths/invoke?sig=SiGsecret",
                teams.url
            )
            .into(),
        );
    }
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

    let mut env: Vec<(&'static str, String)> = vec![
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
    let metrics = LogCapture::default();
    let app = build_app_at(&env, opts.aws_endpoint.as_deref())
        .await
        .map(|mut app| {
            app.emit_metrics_to(metrics.clone());
            app
        });
    (
        app,
        TestParts {
            graph,
            slack,
            hook,
            teams,
            logs,
            metrics,
            secret_id,
            secret_values,
            env,
            _guard: guard,
        },
    )
}

/// Everything around the app under test: emulators, receivers, captured logs, its secret and
/// the environment it was configured from (for a second instance: a restart, or another
/// container).
pub struct TestParts {
    pub graph: GraphEmulator,
    pub slack: Receiver,
    pub hook: Receiver,
    pub teams: Receiver,
    pub logs: LogCapture,
    /// The app's CloudWatch metrics lines (EMF), one per event.
    pub metrics: LogCapture,
    pub secret_id: String,
    pub secret_values: Vec<String>,
    pub env: Vec<(&'static str, String)>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl TestApp {
    /// Assembles a test app from a started app and its parts.
    pub fn from_parts(app: App, parts: TestParts) -> Self {
        Self { app, parts }
    }
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let (app, parts) = try_spawn_app_with(opts).await;
    TestApp {
        app: app.expect("app starts"),
        parts,
    }
}

/// Builds an App from `env`, exactly as the binaries do (configuration, then start-up).
pub async fn build_app(env: &[(&'static str, String)]) -> Result<App, String> {
    build_app_at(env, None).await
}

/// [`build_app`] with the app's AWS clients pointed at `endpoint` (default: the emulator).
pub async fn build_app_at(
    env: &[(&'static str, String)],
    endpoint: Option<&str>,
) -> Result<App, String> {
    let sdk = match endpoint {
        Some(url) => sdk_config().await.into_builder().endpoint_url(url).build(),
        None => sdk_config().await,
    };
    match Config::from_lookup(|k| env.iter().find(|(ek, _)| *ek == k).map(|(_, v)| v.clone())) {
        Ok(config) => App::new(config, &sdk).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// A DynamoDB idempotency table in the AWS emulator, as the template defines it: TTL on
/// `expiration`, the sparse tracking index.
pub async fn create_table() -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    };
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let name = format!("invite-relay-idempotency-{}", uuid_like());
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("tracking")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("tracking_at")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(invite_relay::store::TRACKING_INDEX)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("tracking")
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("tracking_at")
                        .key_type(KeyType::Range)
                        .build()
                        .unwrap(),
                )
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table in moto");
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expiration")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable TTL");
    name
}

/// Every item of a table, as JSON-ish text (for asserting what is never stored).
pub async fn scan_table(table: &str) -> Vec<String> {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let out = client.scan().table_name(table).send().await.unwrap();
    out.items().iter().map(|i| format!("{i:?}")).collect()
}

/// A processing queue (visibility timeout 1 s) whose redrive policy moves a message to the
/// dead-letter queue after `max_receive` receives. Returns (queue URL, dead-letter queue URL).
pub async fn create_queues(max_receive: u32) -> (String, String) {
    create_queues_with(max_receive, 1, None).await
}

/// [`create_queues`] with the queue's visibility timeout (seconds) and the dead-letter queue's
/// retention (seconds; SQS's default when `None`).
pub async fn create_queues_with(
    max_receive: u32,
    visibility: u32,
    dead_letter_retention: Option<u32>,
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let client = aws_sdk_sqs::Client::new(&sdk_config().await);
    let id = uuid_like();
    let mut dlq = client
        .create_queue()
        .queue_name(format!("invite-relay-dlq-{id}"));
    if let Some(r) = dead_letter_retention {
        dlq = dlq.attributes(QueueAttributeName::MessageRetentionPeriod, r.to_string());
    }
    let dlq = dlq.send().await.unwrap().queue_url().unwrap().to_owned();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive.to_string()}).to_string();
    let queue = client
        .create_queue()
        .queue_name(format!("invite-relay-{id}"))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    (queue, dlq)
}

/// Up to `max` messages as a real-shaped SQS event for the worker, with their receipt handles.
pub async fn receive_batch(queue_url: &str, max: i32) -> (Value, Vec<(String, String)>) {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let client = aws_sdk_sqs::Client::new(&sdk_config().await);
    let out = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let mut records = Vec::new();
    let mut handles = Vec::new();
    for m in out.messages() {
        let id = m.message_id().unwrap().to_owned();
        let count = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .cloned()
            .unwrap_or_else(|| "1".into());
        records.push(serde_json::json!({
            "messageId": id,
            "receiptHandle": m.receipt_handle().unwrap(),
            "body": m.body().unwrap(),
            "attributes": {"ApproximateReceiveCount": count, "SentTimestamp": "1795341600000"},
            "messageAttributes": {},
            "md5OfBody": m.md5_of_body().unwrap_or(""),
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:invite-relay",
            "awsRegion": "eu-west-1"
        }));
        handles.push((id, m.receipt_handle().unwrap().to_owned()));
    }
    (serde_json::json!({"Records": records}), handles)
}

/// Deletes the messages the worker did not report as failed, as Lambda's poller does, and
/// returns how many deletes SQS refused. As for the poller, a refused delete (a receipt handle
/// that expired because the invocation outlived the visibility timeout) fails nothing: the
/// message becomes visible again and is redelivered, and the idempotency record answers it
/// as a duplicate.
pub async fn delete_succeeded(
    queue_url: &str,
    handles: &[(String, String)],
    response: &Value,
) -> usize {
    let client = aws_sdk_sqs::Client::new(&sdk_config().await);
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let mut refused = 0;
    for (id, receipt) in handles {
        if !failed.contains(&id.as_str()) {
            let sent = client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .send()
                .await;
            if let Err(e) = sent {
                let code = e
                    .as_service_error()
                    .and_then(aws_smithy_types::error::metadata::ProvideErrorMetadata::code)
                    .unwrap_or("")
                    .to_owned();
                assert!(
                    matches!(
                        code.as_str(),
                        "ReceiptHandleIsInvalid" | "InvalidParameterValue"
                    ),
                    "DeleteMessage failed for another reason: {e:?}"
                );
                refused += 1;
            }
        }
    }
    refused
}

/// Every message on a queue (dead-letter inspection), with its `reason` attribute.
pub async fn drain_with_reasons(queue_url: &str) -> Vec<(String, Option<String>)> {
    let client = aws_sdk_sqs::Client::new(&sdk_config().await);
    let mut out = Vec::new();
    loop {
        let r = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        if r.messages().is_empty() {
            return out;
        }
        for m in r.messages() {
            let reason = m
                .message_attributes()
                .and_then(|a| a.get("reason"))
                .and_then(|v| v.string_value())
                .map(str::to_owned);
            out.push((m.body().unwrap_or("").to_owned(), reason));
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

pub fn uuid_like() -> String {
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

/// Turns a Lambda event into the handler's request, as the webhook function does.
pub fn to_request(event: &Value) -> Request {
    invite_relay::inbound::lambda::to_request(event.clone(), None)
        .unwrap_or_else(|r| panic!("the event is refused: {}", r.problem.detail))
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
    /// The `Retry-After` header, when the answer has one.
    pub retry_after: Option<String>,
}

impl TestApp {
    /// Invokes the function with a Lambda HTTP event, as the runtime does, and reads its
    /// response object.
    pub async fn send_event(&self, event: &Value) -> Answer {
        answer_from_event(&self.app.on_lambda_event(event.clone(), None).await)
    }

    /// Sends `body` signed, with an explicit deadline for the invocation.
    pub async fn post_until(
        &self,
        body: &Value,
        deadline: invite_relay::resilience::Deadline,
    ) -> Answer {
        answer(
            self.app
                .on_http_until(to_request(&signed_event(&body.to_string())), deadline)
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
        // The metrics lines are log lines too (CloudWatch Logs keeps them).
        let text = self.logs.text() + &self.metrics.text();
        assert!(!text.is_empty(), "the code under test logged nothing");
        for (what, needle) in self.forbidden_in_logs(emails) {
            if let Some(line) = text.lines().find(|l| l.contains(&needle)) {
                let message = serde_json::from_str::<Value>(line)
                    .map(|l| l["message"].to_string())
                    .unwrap_or_default();
                panic!("log output leaks {what} (in the line with message {message})");
            }
        }
        // Case matters: a JWT starts with `eyJ`; the others are fixed spellings.
        for marker in [
            "eyJ",
            "ticket=",
            "ticket%3d",
            "whsec_",
            "emulator-client-secret",
        ] {
            if let Some(line) = text.lines().find(|l| l.contains(marker)) {
                let (target, keys) = serde_json::from_str::<Value>(line)
                    .map(|l| {
                        let keys = l
                            .as_object()
                            .map(|o| o.keys().cloned().collect::<Vec<_>>().join(","))
                            .unwrap_or_default();
                        (l["target"].to_string(), keys)
                    })
                    .unwrap_or_default();
                panic!("log output contains {marker} (in a line from {target} with fields {keys})");
            }
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
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Answer {
        status,
        content_type,
        body,
        raw,
        retry_after,
    }
}

/// Reads a Function URL / API Gateway response object.
pub fn answer_from_event(r: &Value) -> Answer {
    let raw = match (r["body"].as_str(), r["isBase64Encoded"].as_bool()) {
        (Some(b), Some(true)) => {
            use base64::Engine as _;
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .expect("base64 body"),
            )
            .into_owned()
        }
        (Some(b), _) => b.to_owned(),
        (None, _) => String::new(),
    };
    Answer {
        status: r["statusCode"].as_u64().expect("a status code") as u16,
        content_type: r["headers"]["content-type"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
        retry_after: r["headers"]["retry-after"].as_str().map(str::to_owned),
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
            !self.raw.contains("ticket=") && !self.raw.to_ascii_lowercase().contains("ticket%3d"),
            "a problem carries a redeem URL"
        );
    }
}
