//! The hostile-input battery: every request below is refused with its documented status, through
//! the real handler, and the Graph emulator records no invitation call for any of them. The
//! positive cases show each signature scheme accepting a correctly signed request.

use base64::Engine;
use devkit::events;
use serde_json::{Value, json};

use crate::helpers::*;

const HUBSPOT_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const ZENDESK_SECRET: &str = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA=";
const HUBSIG_SECRET: &str = "It's a Secret to Everybody";
const BASIC: &str = "pipedrive:correct-horse-battery";
const BEARER: &str = "static-bearer-token-0123456789";
const OWN_DOMAIN: &str = "contoso.com";

/// Sources with every scheme, all mapping the generic format.
const RELAY_CONFIG: &str = r#"
[sources.hubspot-test]
preset = "generic"
scheme = "hubspot-v3"
secrets = ["hubspot_client_secret"]

[sources.zendesk-test]
preset = "generic"
scheme = "zendesk"
secrets = ["zendesk_signing_secret"]

[sources.hubsig-test]
preset = "generic"
scheme = "hub-signature-256"
secrets = ["hubsig_secret"]

[sources.basic-test]
preset = "generic"
scheme = "basic"
secrets = ["basic_credentials"]

[sources.bearer-test]
preset = "generic"
scheme = "bearer"
secrets = ["bearer_token"]
"#;

async fn battery_app() -> TestApp {
    let mut secret = serde_json::Map::new();
    for (k, v) in [
        ("hubspot_client_secret", HUBSPOT_SECRET),
        ("zendesk_signing_secret", ZENDESK_SECRET),
        ("hubsig_secret", HUBSIG_SECRET),
        ("basic_credentials", BASIC),
        ("bearer_token", BEARER),
    ] {
        secret.insert(k.into(), v.into());
    }
    spawn_app_with(Options {
        secret,
        env: vec![
            ("RELAY_CONFIG", RELAY_CONFIG.into()),
            ("TENANT_VERIFIED_DOMAINS", OWN_DOMAIN.into()),
        ],
        ..Options::default()
    })
    .await
}

/// A Function URL event to `/webhooks/{source}` with `body` and exactly `headers` for auth.
fn event_for(source: &str, body: &[u8], headers: Vec<(&'static str, String)>) -> Value {
    let mut e = load_event("function-url-generic.json");
    let path = format!("/webhooks/{source}");
    e["rawPath"] = path.clone().into();
    e["requestContext"]["http"]["path"] = path.into();
    match std::str::from_utf8(body) {
        Ok(text) => events::set_event_body(&mut e, text),
        Err(_) => {
            e["body"] = base64::engine::general_purpose::STANDARD
                .encode(body)
                .into();
            e["isBase64Encoded"] = true.into();
        }
    }
    let h = e["headers"].as_object_mut().unwrap();
    h.retain(|k, _| !k.starts_with("webhook-"));
    for (k, v) in headers {
        events::set_event_header(&mut e, k, &v);
    }
    e
}

fn host() -> String {
    load_event("function-url-generic.json")["headers"]["host"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn std_signed(body: &str) -> Value {
    event_for(
        "generic",
        body.as_bytes(),
        events::standard_webhooks_headers(WEBHOOK_SECRET, body.as_bytes()),
    )
}

fn std_at(body: &str, skew: i64) -> Value {
    let h = events::standard_webhooks_headers_with(
        WEBHOOK_SECRET,
        "msg_skew",
        events::now() + skew,
        body.as_bytes(),
    );
    event_for("generic", body.as_bytes(), h)
}

fn with_body(f: impl FnOnce(&mut Value)) -> String {
    let mut b = sample_body();
    f(&mut b);
    b.to_string()
}

fn set_header(mut e: Value, k: &str, v: &str) -> Value {
    events::set_event_header(&mut e, k, v);
    e
}

fn method(mut e: Value, m: &str) -> Value {
    e["requestContext"]["http"]["method"] = m.into();
    e
}

fn path(mut e: Value, p: &str) -> Value {
    e["rawPath"] = p.into();
    e["requestContext"]["http"]["path"] = p.into();
    e
}

fn hubspot(body: &str, ts_ms: i64) -> Value {
    let uri = format!("https://{}/webhooks/hubspot-test", host());
    event_for(
        "hubspot-test",
        body.as_bytes(),
        events::hubspot_v3_headers(HUBSPOT_SECRET, "POST", &uri, body.as_bytes(), ts_ms),
    )
}

fn cases() -> Vec<(&'static str, u16, Value)> {
    let body = sample_body().to_string();
    let good_sig = events::standard_webhooks_headers(WEBHOOK_SECRET, body.as_bytes());
    let sig_of = |name: &str| good_sig.iter().find(|(k, _)| *k == name).unwrap().1.clone();
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let now = events::now();
    vec![
        // Authenticity: Standard Webhooks
        (
            "no signature headers",
            401,
            event_for("generic", body.as_bytes(), vec![]),
        ),
        (
            "wrong key",
            401,
            event_for(
                "generic",
                body.as_bytes(),
                events::standard_webhooks_headers(DELIVERY_SECRET, body.as_bytes()),
            ),
        ),
        ("tampered body", 401, {
            let mut e = std_signed(&body);
            events::set_event_body(&mut e, &body.replace("Ada", "Eve"));
            e
        }),
        (
            "truncated signature",
            401,
            set_header(
                std_signed(&body),
                "webhook-signature",
                &sig_of("webhook-signature")[..20],
            ),
        ),
        (
            "bare v1,",
            401,
            set_header(std_signed(&body), "webhook-signature", "v1,"),
        ),
        (
            "v2 prefix",
            401,
            set_header(
                std_signed(&body),
                "webhook-signature",
                &sig_of("webhook-signature").replace("v1,", "v2,"),
            ),
        ),
        ("stale timestamp -301s", 401, std_at(&body, -301)),
        // The cases are built before they run, so "future" keeps a few seconds of margin here; the
        // scheme unit tests check ±301 s at one instant.
        ("future timestamp +305s", 401, std_at(&body, 305)),
        (
            "timestamp not a number",
            401,
            set_header(std_signed(&body), "webhook-timestamp", "yesterday"),
        ),
        (
            "signature of another message id",
            401,
            set_header(std_signed(&body), "webhook-id", "msg_other"),
        ),
        (
            "svix headers, wrong key",
            401,
            event_for(
                "generic",
                body.as_bytes(),
                events::standard_webhooks_headers(DELIVERY_SECRET, body.as_bytes())
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            if k == "webhook-id" {
                                "svix-id"
                            } else if k == "webhook-timestamp" {
                                "svix-timestamp"
                            } else {
                                "svix-signature"
                            },
                            v,
                        )
                    })
                    .collect(),
            ),
        ),
        (
            "stored sample signature",
            401,
            load_event("function-url-generic.json"),
        ),
        // Authenticity: the other schemes
        (
            "hubspot v2 signature",
            401,
            event_for(
                "hubspot-test",
                body.as_bytes(),
                vec![
                    ("x-hubspot-signature", "0".repeat(64)),
                    ("x-hubspot-signature-version", "v2".into()),
                ],
            ),
        ),
        ("hubspot stale", 401, hubspot(&body, (now - 301) * 1000)),
        ("hubspot future", 401, hubspot(&body, (now + 305) * 1000)),
        (
            "hubspot signed for another URI",
            401,
            event_for(
                "hubspot-test",
                body.as_bytes(),
                events::hubspot_v3_headers(
                    HUBSPOT_SECRET,
                    "POST",
                    "https://elsewhere.example/webhooks/hubspot-test",
                    body.as_bytes(),
                    now * 1000,
                ),
            ),
        ),
        ("zendesk timestamp-first order", 401, {
            // Signed as Zendesk's webhooks page describes (timestamp, then body): the
            // published vector shows Zendesk actually signs body, then timestamp.
            use hmac::Mac;
            let mut h = events::zendesk_headers(ZENDESK_SECRET, body.as_bytes(), now);
            let mut mac =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(ZENDESK_SECRET.as_bytes()).unwrap();
            mac.update(h[1].1.as_bytes());
            mac.update(body.as_bytes());
            h[0].1 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            event_for("zendesk-test", body.as_bytes(), h)
        }),
        (
            "zendesk stale",
            401,
            event_for(
                "zendesk-test",
                body.as_bytes(),
                events::zendesk_headers(ZENDESK_SECRET, body.as_bytes(), now - 301),
            ),
        ),
        (
            "hub signature without sha256=",
            401,
            event_for(
                "hubsig-test",
                body.as_bytes(),
                vec![(
                    "x-hub-signature-256",
                    events::hub_signature_headers(HUBSIG_SECRET, body.as_bytes())[0]
                        .1
                        .trim_start_matches("sha256=")
                        .to_owned(),
                )],
            ),
        ),
        (
            "hub signature of another body",
            401,
            event_for(
                "hubsig-test",
                body.as_bytes(),
                events::hub_signature_headers(HUBSIG_SECRET, b"{}"),
            ),
        ),
        (
            "basic wrong password",
            401,
            event_for(
                "basic-test",
                body.as_bytes(),
                events::basic_header("pipedrive:wrong-horse-battery"),
            ),
        ),
        (
            "basic credentials as bearer",
            401,
            event_for("basic-test", body.as_bytes(), events::bearer_header(BASIC)),
        ),
        (
            "bearer missing",
            401,
            event_for("bearer-test", body.as_bytes(), vec![]),
        ),
        (
            "bearer prefix of the token",
            401,
            event_for(
                "bearer-test",
                body.as_bytes(),
                events::bearer_header(&BEARER[..10]),
            ),
        ),
        // Method, size, type, route
        ("GET", 405, method(std_signed(&body), "GET")),
        ("PUT", 405, method(std_signed(&body), "PUT")),
        (
            "300 KiB body",
            413,
            std_signed(&json!({"pad": "x".repeat(300 * 1024)}).to_string()),
        ),
        (
            "text/plain",
            415,
            set_header(std_signed(&body), "content-type", "text/plain"),
        ),
        (
            "application/xml",
            415,
            set_header(std_signed(&body), "content-type", "application/xml"),
        ),
        (
            "form encoded",
            415,
            set_header(
                std_signed(&body),
                "content-type",
                "application/x-www-form-urlencoded",
            ),
        ),
        (
            "unknown source",
            404,
            path(std_signed(&body), "/webhooks/salesforce-unknown"),
        ),
        (
            "path traversal",
            404,
            path(std_signed(&body), "/webhooks/../admin"),
        ),
        (
            "extra path segment",
            404,
            path(std_signed(&body), "/webhooks/generic/extra"),
        ),
        // Malformed (correctly signed)
        ("empty body", 400, std_signed("")),
        ("truncated JSON", 400, std_signed(&body[..body.len() / 2])),
        (
            "duplicate keys",
            400,
            std_signed(
                r#"{"id":"evt_dup","id":"evt_dup2","type":"partner.signed","invitee":{"email":"ada@partner.example"}}"#,
            ),
        ),
        (
            "nesting 40 deep",
            400,
            std_signed(&format!(r#"{{"id":"evt_deep","x":{deep}}}"#)),
        ),
        ("not JSON", 400, std_signed("id=evt_1&type=partner.signed")),
        (
            "lone surrogate",
            400,
            std_signed(
                r#"{"id":"evt_1","type":"partner.signed","invitee":{"email":"\ud800@x.io"}}"#,
            ),
        ),
        (
            "non-UTF-8 body (hub signature)",
            400,
            event_for(
                "hubsig-test",
                b"{\"id\":\"\xff\xfe\"}",
                events::hub_signature_headers(HUBSIG_SECRET, b"{\"id\":\"\xff\xfe\"}"),
            ),
        ),
        (
            "non-UTF-8 body (Standard Webhooks, correctly signed)",
            400,
            {
                let body = b"{\"id\":\"\xff\xfe\"}";
                let key =
                    invite_relay::standard_webhooks::WebhookKey::parse(WEBHOOK_SECRET).unwrap();
                let ts = events::now();
                event_for(
                    "generic",
                    body,
                    vec![
                        ("webhook-id", "msg_binary".to_owned()),
                        ("webhook-timestamp", ts.to_string()),
                        ("webhook-signature", key.sign("msg_binary", ts, body)),
                    ],
                )
            },
        ),
        (
            "webhook-timestamp of i64::MIN, correctly signed (never expires if it wraps)",
            401,
            event_for(
                "generic",
                sample_body().to_string().as_bytes(),
                events::standard_webhooks_headers_with(
                    WEBHOOK_SECRET,
                    "msg_wrap",
                    i64::MIN,
                    sample_body().to_string().as_bytes(),
                ),
            ),
        ),
        (
            "event id with a right-to-left override (shown reversed in chat)",
            422,
            std_signed(&with_body(|b| b["id"] = "evt_\u{202E}1gp.exe".into())),
        ),
        (
            "event type with a tag character",
            422,
            std_signed(&with_body(|b| b["type"] = "partner.signed\u{E0041}".into())),
        ),
        (
            "id is an object",
            400,
            std_signed(&with_body(|b| b["id"] = json!({"$gt": ""}))),
        ),
        (
            "email is a number",
            400,
            std_signed(&with_body(|b| b["invitee"]["email"] = json!(42))),
        ),
        (
            "channels is an object",
            400,
            std_signed(&with_body(|b| {
                b["delivery"]["channels"] = json!({"slack": true})
            })),
        ),
        // Unprocessable
        ("top-level array", 422, std_signed("[1,2,3]")),
        (
            "missing email",
            422,
            std_signed(&with_body(|b| b["invitee"] = json!({}))),
        ),
        (
            "missing id",
            422,
            std_signed(&with_body(|b| {
                b.as_object_mut().unwrap().remove("id");
            })),
        ),
        (
            "missing type",
            422,
            std_signed(&with_body(|b| {
                b.as_object_mut().unwrap().remove("type");
            })),
        ),
        (
            "event id too long",
            422,
            std_signed(&with_body(|b| b["id"] = "e".repeat(300).into())),
        ),
        (
            "event id with control characters",
            422,
            std_signed(&with_body(|b| b["id"] = "evt\u{0007}\u{001b}[2J".into())),
        ),
        (
            "plus-addressed email",
            422,
            std_signed(&with_body(|b| {
                b["invitee"]["email"] = "ada+crm@partner.example".into()
            })),
        ),
        (
            "quoted local part",
            422,
            std_signed(&with_body(|b| {
                b["invitee"]["email"] = "\"<script>\"@partner.example".into()
            })),
        ),
        (
            "header injection in email",
            422,
            std_signed(&with_body(|b| {
                b["invitee"]["email"] = "ada@partner.example\r\nBcc: eve@evil.example".into()
            })),
        ),
        (
            "internationalised email",
            422,
            std_signed(&with_body(|b| {
                b["invitee"]["email"] = "ada@bücher.example".into()
            })),
        ),
        (
            "tenant's own domain",
            422,
            std_signed(&with_body(|b| {
                b["invitee"]["email"] = format!("insider@{OWN_DOMAIN}").into()
            })),
        ),
        (
            "redirect javascript:",
            422,
            std_signed(&with_body(|b| {
                b["redirectUrl"] = "javascript:alert(document.cookie)".into()
            })),
        ),
        (
            "redirect http",
            422,
            std_signed(&with_body(|b| {
                b["redirectUrl"] = "http://myapps.microsoft.com/".into()
            })),
        ),
        (
            "redirect off the allowlist",
            422,
            std_signed(&with_body(|b| {
                b["redirectUrl"] = "https://login.evil.example/".into()
            })),
        ),
        (
            "redirect with credentials",
            422,
            std_signed(&with_body(|b| {
                b["redirectUrl"] = "https://user:pass@myapps.microsoft.com/".into()
            })),
        ),
        (
            "Member without opt-in",
            422,
            std_signed(&with_body(|b| b["invitee"]["userType"] = "Member".into())),
        ),
        (
            "unknown user type",
            422,
            std_signed(&with_body(|b| b["invitee"]["userType"] = "Admin".into())),
        ),
        (
            "unknown channel",
            422,
            std_signed(&with_body(|b| b["delivery"]["channels"] = json!(["fax"]))),
        ),
    ]
}

#[tokio::test]
async fn hostile_requests_are_refused_and_never_reach_graph() {
    let t = battery_app().await;
    let cases = cases();
    assert!(cases.len() >= 40, "the battery has {} cases", cases.len());
    let mut failures = Vec::new();
    for (name, expect, event) in &cases {
        let before = t.graph.invitation_calls().len();
        let a = t.send_event(event).await;
        if a.status != *expect || a.content_type != "application/problem+json" {
            failures.push(format!(
                "{name}: expected {expect}, got {} {}",
                a.status, a.raw
            ));
            continue;
        }
        assert_eq!(
            t.graph.invitation_calls().len(),
            before,
            "{name}: reached Graph"
        );
        assert!(
            a.body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:invite-relay:problem:"),
            "{name}"
        );
        assert!(
            !a.raw.contains("ada@partner.example") && !a.raw.contains("Lovelace"),
            "{name}: the answer echoes the body"
        );
        if *expect == 401 {
            assert_eq!(a.body["detail"], "signature verification failed", "{name}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(t.graph.invitation_calls().is_empty() && t.graph.token_calls().is_empty());
    assert!(t.slack.received().is_empty() && t.hook.received().is_empty());
    t.assert_logs_clean(&[
        "ada+crm@partner.example",
        "eve@evil.example",
        "insider@contoso.com",
        "ada@bücher.example",
    ]);
}

#[tokio::test]
async fn every_scheme_accepts_a_correctly_signed_request() {
    let t = battery_app().await;
    let now = events::now();
    let uri = format!("https://{}/webhooks/hubspot-test", host());
    let body = |id: &str| with_body(|b| b["id"] = id.into());
    let (b1, b2, b3, b4, b5) = (
        body("evt_hs"),
        body("evt_zd"),
        body("evt_gh"),
        body("evt_pd"),
        body("evt_br"),
    );
    let svix_body = body("evt_svix");
    let svix: Vec<(&'static str, String)> =
        events::standard_webhooks_headers(WEBHOOK_SECRET, svix_body.as_bytes())
            .into_iter()
            .map(|(k, v)| (k.replacen("webhook-", "svix-", 1).leak() as &'static str, v))
            .collect();
    let accepted = [
        (
            "hubspot v3",
            event_for(
                "hubspot-test",
                b1.as_bytes(),
                events::hubspot_v3_headers(HUBSPOT_SECRET, "POST", &uri, b1.as_bytes(), now * 1000),
            ),
        ),
        (
            "zendesk",
            event_for(
                "zendesk-test",
                b2.as_bytes(),
                events::zendesk_headers(ZENDESK_SECRET, b2.as_bytes(), now),
            ),
        ),
        (
            "hub signature",
            event_for(
                "hubsig-test",
                b3.as_bytes(),
                events::hub_signature_headers(HUBSIG_SECRET, b3.as_bytes()),
            ),
        ),
        (
            "basic",
            event_for("basic-test", b4.as_bytes(), events::basic_header(BASIC)),
        ),
        (
            "bearer",
            event_for("bearer-test", b5.as_bytes(), events::bearer_header(BEARER)),
        ),
        (
            "svix headers",
            event_for("generic", svix_body.as_bytes(), svix),
        ),
    ];
    for (name, event) in accepted {
        let a = t.send_event(&event).await;
        assert_eq!(a.status, 200, "{name}: {}", a.raw);
        assert_eq!(a.body["status"], "invited", "{name}");
    }
    assert_eq!(t.graph.created().len(), 6);
}

#[tokio::test]
async fn a_replayed_delivery_is_a_duplicate_without_reprocessing() {
    let t = battery_app().await;
    let event = std_signed(&sample_body().to_string());
    assert_eq!(t.send_event(&event).await.status, 200);
    let again = t.send_event(&event).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["status"], "duplicate");
    assert_eq!(t.graph.invitation_calls().len(), 1);
    assert_eq!(
        t.slack.delivered().len(),
        1,
        "answered from the event's record: nothing delivered again"
    );
}
