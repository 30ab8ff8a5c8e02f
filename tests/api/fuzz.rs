//! Property-based fuzzing of the whole request path — Lambda event decoding, limits, signature,
//! strict JSON, mapping and validation — through the real handler. It must never panic, every
//! answer must be a documented status, refusals must be problem+json, and no answer may carry a
//! redeem link.
//!
//! A short run is part of the test command; a long one:
//! `FUZZ_CASES=20000 cargo nextest run --test api fuzz`.

use devkit::events;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::helpers::*;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Arbitrary JSON, biased towards the generic event's field names.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("type".to_owned()),
        Just("invitee".to_owned()),
        Just("email".to_owned()),
        Just("displayName".to_owned()),
        Just("userType".to_owned()),
        Just("redirectUrl".to_owned()),
        Just("delivery".to_owned()),
        Just("channels".to_owned()),
        "[a-zA-Z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!("partner.signed")),
        Just(json!("ada@partner.example")),
        Just(json!("https://myapps.microsoft.com/x")),
        Just(json!("slack")),
        "\\PC{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A generic event whose fields are individually perturbed.
fn near_valid_event() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("evt_f")),
            "\\PC{0,40}".prop_map(Value::String),
            any::<i64>().prop_map(|n| json!(n)),
            json_value()
        ],
        prop_oneof![
            Just(json!("partner.signed")),
            "\\PC{0,20}".prop_map(Value::String),
            json_value()
        ],
        prop_oneof![
            Just(json!("ada@partner.example")),
            "[a-z0-9.+_~-]{0,12}@[a-z0-9.-]{0,12}".prop_map(Value::String),
            "\\PC{0,30}".prop_map(Value::String),
            json_value()
        ],
        prop_oneof![Just(Value::Null), "\\PC{0,300}".prop_map(Value::String)],
        prop_oneof![
            Just(Value::Null),
            Just(json!("https://portal.partner.example/x")),
            "\\PC{0,40}".prop_map(Value::String)
        ],
        prop_oneof![Just(Value::Null), Just(json!(["slack"])), json_value()],
    )
        .prop_map(|(id, ty, email, name, redirect, channels)| {
            json!({"id": id, "type": ty, "invitee": {"email": email, "displayName": name},
                   "redirectUrl": redirect, "delivery": {"channels": channels}})
        })
}

/// What reaches the function: a body, how it is signed, and the HTTP envelope.
#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
}

fn request() -> impl Strategy<Value = (Body, u8, u8, u8, u8)> {
    (
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600).prop_map(Body::Bytes),
            json_value().prop_map(Body::Json),
            near_valid_event().prop_map(Body::Json),
        ],
        0u8..4, // signature: none, valid, valid-then-body-flipped, garbage
        0u8..4, // content type
        0u8..3, // method
        0u8..3, // path
    )
}

fn build(body: &Body, sig: u8, ct: u8, method: u8, path: u8, flip: usize) -> Value {
    let bytes = match body {
        Body::Bytes(b) => b.clone(),
        Body::Json(v) => v.to_string().into_bytes(),
    };
    let mut e = load_event("function-url-generic.json");
    e["headers"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !k.starts_with("webhook-"));
    match std::str::from_utf8(&bytes) {
        Ok(t) => events::set_event_body(&mut e, t),
        Err(_) => {
            use base64::Engine;
            e["body"] = base64::engine::general_purpose::STANDARD
                .encode(&bytes)
                .into();
            e["isBase64Encoded"] = true.into();
        }
    }
    let signable = std::str::from_utf8(&bytes).is_ok();
    match sig {
        1 | 2 if signable => {
            for (k, v) in events::standard_webhooks_headers(WEBHOOK_SECRET, &bytes) {
                events::set_event_header(&mut e, k, &v);
            }
            if sig == 2 && !bytes.is_empty() {
                let mut tampered = bytes.clone();
                let i = flip % tampered.len();
                tampered[i] ^= 0x01;
                use base64::Engine;
                e["body"] = base64::engine::general_purpose::STANDARD
                    .encode(&tampered)
                    .into();
                e["isBase64Encoded"] = true.into();
            }
        }
        3 => {
            events::set_event_header(&mut e, "webhook-id", "msg_fuzz");
            events::set_event_header(&mut e, "webhook-timestamp", &events::now().to_string());
            events::set_event_header(&mut e, "webhook-signature", "v1,AAAA v1, v2,=");
        }
        _ => {}
    }
    let ct = [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "",
    ][ct as usize];
    if ct.is_empty() {
        e["headers"].as_object_mut().unwrap().remove("content-type");
    } else {
        events::set_event_header(&mut e, "content-type", ct);
    }
    e["requestContext"]["http"]["method"] = ["POST", "POST", "GET"][method as usize].into();
    let p = ["/webhooks/generic", "/webhooks/generic", "/webhooks/%2e%2e"][path as usize];
    e["rawPath"] = p.into();
    e
}

#[test]
fn the_request_path_never_panics_and_answers_only_documented_statuses() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(spawn_app());
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &(request(), any::<usize>()),
        |((body, sig, ct, method, path), flip)| {
            let event = build(&body, sig, ct, method, path, flip);
            let a = rt.block_on(t.send_event(&event));
            prop_assert!(
                [200, 400, 401, 404, 405, 409, 413, 415, 422, 503].contains(&a.status),
                "status {} for {event}",
                a.status
            );
            if a.status != 200 {
                prop_assert_eq!(a.content_type.as_str(), "application/problem+json");
            }
            if sig == 2 || sig == 3 {
                prop_assert!(
                    a.status != 200,
                    "a tampered or garbage signature was accepted"
                );
            }
            prop_assert!(!a.raw.contains("ticket"), "an answer carried a redeem link");
            Ok(())
        },
    );
    result.unwrap();
    // Whatever got through was signed: every invitation came from a validly signed event.
    for call in t.graph.invitation_calls() {
        assert_eq!(call.body["sendInvitationMessage"], false);
    }
}
