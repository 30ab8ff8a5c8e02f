//! Signing the sample Lambda events in `events/` at send time: a Standard Webhooks signature
//! is only valid for five minutes, so stored signatures would always be stale.

use base64::Engine;
use serde_json::Value;

/// The headers of a fresh Standard Webhooks signature over `body`.
pub fn standard_webhooks_headers(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    standard_webhooks_headers_with(secret, &id, now(), body)
}

/// The same with a chosen id and timestamp (replays, stale and future timestamps in tests).
pub fn standard_webhooks_headers_with(
    secret: &str,
    id: &str,
    ts: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let wh = standardwebhooks::Webhook::new(secret).expect("whsec_ secret");
    let sig = wh.sign(id, ts, body).expect("UTF-8 body");
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig),
    ]
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The raw body bytes of a Lambda HTTP event (API Gateway v1/v2, Function URL), decoding
/// base64 when `isBase64Encoded` is set.
pub fn event_body(event: &Value) -> Vec<u8> {
    let body = event.get("body").and_then(Value::as_str).unwrap_or("");
    if event
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64 body")
    } else {
        body.as_bytes().to_vec()
    }
}

/// Replaces the body of a Lambda HTTP event (kept as text, `isBase64Encoded: false`).
pub fn set_event_body(event: &mut Value, body: &str) {
    event["body"] = Value::String(body.to_owned());
    event["isBase64Encoded"] = Value::Bool(false);
}

/// Sets (or replaces) a header in a Lambda HTTP event, in `headers` and, for REST API (v1)
/// events, `multiValueHeaders`.
pub fn set_event_header(event: &mut Value, name: &str, value: &str) {
    if let Some(h) = event.get_mut("headers").and_then(Value::as_object_mut) {
        h.retain(|k, _| !k.eq_ignore_ascii_case(name));
        h.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    if let Some(h) = event
        .get_mut("multiValueHeaders")
        .and_then(Value::as_object_mut)
    {
        h.retain(|k, _| !k.eq_ignore_ascii_case(name));
        h.insert(
            name.to_owned(),
            Value::Array(vec![Value::String(value.to_owned())]),
        );
    }
}

/// Signs a Lambda HTTP event's body now, with `secret`.
pub fn sign_event(event: &mut Value, secret: &str) {
    let body = event_body(event);
    for (k, v) in standard_webhooks_headers(secret, &body) {
        set_event_header(event, k, &v);
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// HubSpot v3 headers for `method` + `uri` + `body` at `ts_ms` (milliseconds).
pub fn hubspot_v3_headers(
    secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    ts_ms: i64,
) -> Vec<(&'static str, String)> {
    let ts = ts_ms.to_string();
    let tag = hmac_sha256(
        secret.as_bytes(),
        &[method.as_bytes(), uri.as_bytes(), body, ts.as_bytes()],
    );
    vec![
        (
            "x-hubspot-signature-v3",
            base64::engine::general_purpose::STANDARD.encode(tag),
        ),
        ("x-hubspot-request-timestamp", ts),
    ]
}

/// Zendesk headers: base64 HMAC of body + timestamp, timestamp as RFC 3339 at `unix` seconds.
pub fn zendesk_headers(secret: &str, body: &[u8], unix: i64) -> Vec<(&'static str, String)> {
    let ts = time::OffsetDateTime::from_unix_timestamp(unix)
        .expect("valid time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formattable");
    let tag = hmac_sha256(secret.as_bytes(), &[body, ts.as_bytes()]);
    vec![
        (
            "x-zendesk-webhook-signature",
            base64::engine::general_purpose::STANDARD.encode(tag),
        ),
        ("x-zendesk-webhook-signature-timestamp", ts),
        (
            "x-zendesk-webhook-invocation-id",
            format!("{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000),
        ),
    ]
}

/// GitHub-style `X-Hub-Signature-256` header.
pub fn hub_signature_headers(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-hub-signature-256",
            format!(
                "sha256={}",
                hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
            ),
        ),
        ("x-github-delivery", uuid::Uuid::new_v4().to_string()),
    ]
}

/// `Authorization: Basic` for `user:password`.
pub fn basic_header(user_password: &str) -> Vec<(&'static str, String)> {
    vec![(
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        ),
    )]
}

/// `Authorization: Bearer`.
pub fn bearer_header(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}
