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
