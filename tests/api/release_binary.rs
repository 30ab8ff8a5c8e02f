//! The hostile battery through the deployable build: the release `webhook` binary (with its
//! `panic = "abort"` profile) runs against a loopback Lambda Runtime API, and every event shape
//! that could stop a process is answered with a 4xx problem, after which the same process still
//! answers, and still remembers the events it completed (in sync mode without a table, a crash
//! would wipe those records and let a captured signed request invite again).

use std::time::Duration;

use devkit::runtime_api::{Invoked, LambdaProcess};
use devkit::{GraphEmulator, GraphSettings, Receiver, events};
use serde_json::{Value, json};

use crate::helpers::*;

/// A Salesforce org id of the forged messages below: public knowledge (every Web-to-Lead form
/// prints it as the hidden `oid` field), so it must never be enough on its own.
const SALESFORCE_ORG: &str = "00D5e000000ABCD";
/// The Outbound Message endpoint's URL key (`?key=`), which a forger does not know.
const SALESFORCE_URL_KEY: &str = "sf-url-key-4d1e0f6b2a9c8e7d5f3a1b0c9e8d7f6a";

/// The release `webhook` binary: `INVITE_RELAY_RELEASE_WEBHOOK` when the test command built it,
/// else built here (`cargo build --release`).
fn release_webhook() -> String {
    if let Ok(path) = std::env::var("INVITE_RELAY_RELEASE_WEBHOOK") {
        return path;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "--bin", "webhook"])
        .current_dir(root)
        .status()
        .expect("run cargo build --release");
    assert!(
        status.success(),
        "cargo build --release --bin webhook failed"
    );
    format!("{root}/target/release/webhook")
}

struct Deployment {
    function: LambdaProcess,
    graph: GraphEmulator,
    _receiver: Receiver,
}

async fn deploy() -> Deployment {
    let graph = GraphEmulator::start(GraphSettings::default(), 0)
        .await
        .unwrap();
    let receiver = Receiver::start(0, None).await.unwrap();
    let settings = graph.settings().clone();
    let secret_id = format!("invite-relay-release-{}", uuid_like());
    let secret = json!({
        "graph_client_secret": settings.client_secret,
        "webhook_signing_secret": WEBHOOK_SECRET,
        "slack_webhook_url": format!("{}/slack/T0/B0/release", receiver.url),
        "delivery_webhook_url": format!("{}/hooks/release", receiver.url),
        "delivery_signing_secret": DELIVERY_SECRET,
        "salesforce_organization_id": SALESFORCE_ORG,
        "salesforce_outbound_key": SALESFORCE_URL_KEY,
    });
    aws_sdk_secretsmanager::Client::new(&sdk_config().await)
        .create_secret()
        .name(&secret_id)
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_LAMBDA_FUNCTION_NAME", "webhook".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_ENDPOINT_URL", aws_endpoint()),
        ("RELAY_SECRET_ID", secret_id),
        ("GRAPH_TENANT_ID", settings.tenant_id.clone()),
        ("GRAPH_CLIENT_ID", settings.client_id.clone()),
        ("GRAPH_LOGIN_URL", graph.url.clone()),
        ("GRAPH_API_URL", graph.url.clone()),
        ("INVITE_REDIRECT_URL", DEFAULT_REDIRECT.into()),
        ("DELIVERY_ALLOW_PRIVATE_NETWORKS", "true".into()),
        ("RELAY_CONFIG", "[sources.salesforce-outbound]\n".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let function = LambdaProcess::start(&release_webhook(), &env)
        .await
        .expect("the release webhook starts");
    Deployment {
        function,
        graph,
        _receiver: receiver,
    }
}

/// Invokes the function and reads its Function URL answer (status, body).
async fn call(d: &mut Deployment, name: &str, event: &Value) -> (u16, Value) {
    let answer = d
        .function
        .invoke(&event.to_string(), Duration::from_secs(20))
        .await;
    assert!(
        d.function.is_running(),
        "{name}: the process ended ({:?}); its last log lines:\n{}",
        d.function.exit_status(),
        tail(&d.function.stdout())
    );
    match answer {
        Ok(Invoked::Response(r)) => {
            let status = r["statusCode"].as_u64().unwrap_or(0) as u16;
            let body = r["body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null);
            (status, body)
        }
        other => panic!("{name}: no HTTP answer: {other:?}"),
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// An event that no key signed (the stranger's view), with `edit` applied.
fn unsigned(edit: impl FnOnce(&mut Value)) -> Value {
    let mut e = load_event("function-url-generic.json");
    edit(&mut e);
    e
}

/// The sample Outbound Message without its URL key (which a forger does not have).
fn salesforce_forgery(body: &str) -> Value {
    let mut e = load_event("salesforce-outbound-message.json");
    e["rawQueryString"] = "".into();
    events::set_event_body(&mut e, body);
    e
}

/// A Salesforce Outbound Message with the org's (public) id, sent by someone else.
fn forged_outbound_message() -> String {
    String::from_utf8(events::event_body(&load_event(
        "salesforce-outbound-message.json",
    )))
    .unwrap()
    .replace("ada@partner.example", "mallory@attacker.example")
}

/// 16,000 attributes on one element: before authentication, a parse of this costs seconds.
fn attribute_bomb() -> String {
    let attrs: String = (0..16_000).map(|i| format!(" a{i}=\"x\"")).collect();
    forged_outbound_message().replace("<ActionId>", &format!("<ActionId{attrs}>"))
}

/// The hostile shapes, each with the status it must be answered with.
fn hostile() -> Vec<(&'static str, u16, Value)> {
    let query = |q: &'static str| {
        unsigned(move |e| {
            e["rawQueryString"] = q.into();
        })
    };
    vec![
        ("query with a double quote", 401, query("x=\"q\"")),
        ("query with a space (a decoded +)", 401, query("x=a b")),
        ("query with < and >", 401, query("x=<script>")),
        ("query with a TAB", 401, query("x=a\tb")),
        ("query with DEL", 401, query("x=a\u{7f}b")),
        (
            "Host that is not URL-valid",
            400,
            unsigned(|e| e["headers"]["host"] = "h example".into()),
        ),
        (
            "Host with a bad port",
            400,
            unsigned(|e| e["headers"]["host"] = "h:99999".into()),
        ),
        (
            "X-Forwarded-Proto that is not a scheme",
            400,
            unsigned(|e| e["headers"]["x-forwarded-proto"] = "ht tp".into()),
        ),
        (
            "path over 64 KiB",
            414,
            unsigned(|e| e["rawPath"] = format!("/webhooks/{}", "a".repeat(70_000)).into()),
        ),
        (
            "query over 64 KiB",
            414,
            unsigned(|e| e["rawQueryString"] = format!("x={}", "a".repeat(70_000)).into()),
        ),
        (
            "raw path without a leading /",
            400,
            unsigned(|e| e["rawPath"] = "webhooks/generic".into()),
        ),
        (
            "isBase64Encoded with invalid base64",
            400,
            unsigned(|e| {
                e["isBase64Encoded"] = true.into();
                e["body"] = "this is not base64 !!".into();
            }),
        ),
        (
            "40,000 headers",
            431,
            unsigned(|e| {
                let h = e["headers"].as_object_mut().unwrap();
                for i in 0..40_000 {
                    h.insert(format!("x-filler-{i}"), "v".into());
                }
            }),
        ),
        (
            "40,000 values in one comma-joined header",
            401,
            unsigned(|e| e["headers"]["accept"] = vec!["a"; 40_000].join(",").into()),
        ),
        ("a correctly signed webhook-timestamp of i64::MIN", 401, {
            let mut e = load_event("function-url-generic.json");
            let body = events::event_body(&e);
            for (k, v) in events::standard_webhooks_headers_with(
                WEBHOOK_SECRET,
                "msg_wraparound",
                i64::MIN,
                &body,
            ) {
                events::set_event_header(&mut e, k, &v);
            }
            e
        }),
        (
            "a forged Outbound Message with the org's public id",
            401,
            salesforce_forgery(&forged_outbound_message()),
        ),
        (
            "a forged Outbound Message with 16,000 attributes",
            401,
            salesforce_forgery(&attribute_bomb()),
        ),
    ]
}

#[tokio::test]
async fn the_release_binary_answers_every_hostile_event_and_keeps_running() {
    let mut d = deploy().await;
    let captured = signed_event(&sample_body().to_string());
    let (status, first) = call(&mut d, "the first signed event", &captured).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "invited");

    for (name, expected, event) in hostile() {
        let (status, body) = call(&mut d, name, &event).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert!(
            body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:invite-relay:problem:")),
            "{name}: not a problem: {body}"
        );
    }

    // The captured request, replayed after all of that: the same process remembers it.
    let (status, again) = call(&mut d, "the captured request replayed", &captured).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["status"], "duplicate", "{again}");
    let created = d.graph.created();
    assert_eq!(created.len(), 1, "one invitation, for the one real event");
    assert_eq!(
        created[0].body["invitedUserEmailAddress"], SAMPLE_EMAIL,
        "nothing forged reached Graph"
    );
    // And a genuine Outbound Message, with the URL key, still goes through.
    let genuine = load_event("salesforce-outbound-message.json");
    assert_eq!(
        genuine["rawQueryString"],
        format!("key={SALESFORCE_URL_KEY}")
    );
    let answer = d
        .function
        .invoke(&genuine.to_string(), Duration::from_secs(20))
        .await
        .unwrap();
    let Invoked::Response(r) = answer else {
        panic!("the genuine message failed: {answer:?}")
    };
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(r["body"].as_str().unwrap().contains("<Ack>true</Ack>"));
    d.function.stop().await;
}
