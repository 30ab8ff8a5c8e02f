//! Every refusal is problem+json with the documented status, and nothing reaches Graph.

use devkit::events;
use serde_json::{Value, json};

use crate::helpers::*;

async fn assert_refused_without_graph(
    t: &TestApp,
    event: &Value,
    status: u16,
    kind: &str,
) -> Answer {
    let a = t.send_event(event).await;
    a.assert_problem(status, kind);
    assert!(
        t.graph.invitation_calls().is_empty(),
        "{kind}: no invitation may be attempted"
    );
    assert!(
        t.slack.received().is_empty() && t.hook.received().is_empty(),
        "{kind}: nothing delivered"
    );
    a
}

#[tokio::test]
async fn bad_signatures_get_401_and_nothing_else_happens() {
    let t = spawn_app().await;
    let body = sample_body().to_string();

    let mut wrong_key = signed_event(&body);
    events::set_event_body(&mut wrong_key, &body);
    for (k, v) in
        events::standard_webhooks_headers("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", body.as_bytes())
    {
        events::set_event_header(&mut wrong_key, k, &v);
    }
    let mut tampered = signed_event(&body);
    events::set_event_body(&mut tampered, &body.replace("Ada", "Eve"));
    let mut unsigned = load_event("function-url-generic.json");
    for h in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        unsigned["headers"].as_object_mut().unwrap().remove(h);
    }
    let stale = with_headers(
        &body,
        events::standard_webhooks_headers_with(
            WEBHOOK_SECRET,
            "msg_old",
            events::now() - 301,
            body.as_bytes(),
        ),
    );
    let future = with_headers(
        &body,
        events::standard_webhooks_headers_with(
            WEBHOOK_SECRET,
            "msg_new",
            events::now() + 301,
            body.as_bytes(),
        ),
    );
    let stored = load_event("function-url-generic.json");

    for (name, event) in [
        ("wrong key", wrong_key),
        ("tampered body", tampered),
        ("unsigned", unsigned),
        ("stale", stale),
        ("future", future),
        ("stored sample signature", stored),
    ] {
        let a = t.send_event(&event).await;
        a.assert_problem(401, "signature");
        assert_eq!(a.body["detail"], "signature verification failed", "{name}");
    }
    assert!(t.graph.invitation_calls().is_empty() && t.graph.token_calls().is_empty());
    assert!(t.slack.received().is_empty() && t.hook.received().is_empty());
}

fn with_headers(body: &str, headers: Vec<(&'static str, String)>) -> Value {
    let mut e = load_event("function-url-generic.json");
    events::set_event_body(&mut e, body);
    for (k, v) in headers {
        events::set_event_header(&mut e, k, &v);
    }
    e
}

#[tokio::test]
async fn malformed_json_is_400_without_echo() {
    let t = spawn_app().await;
    for body in [
        r#"{"id": "evt_1", "invitee": {"email": "ada@partner.example""#,
        r#"{"id":"a","id":"b"}"#,
        "[1,2",
        "not json",
    ] {
        let a =
            assert_refused_without_graph(&t, &signed_event(body), 400, "malformed-request").await;
        assert!(!a.raw.contains("evt_1"));
    }
}

#[tokio::test]
async fn forbidden_email_characters_are_422_naming_the_rule() {
    let t = spawn_app().await;
    for (email, rule) in [
        ("ada+crm@partner.example", "'+'"),
        ("ada;x@partner.example", "';'"),
        (".ada@partner.example", "'.' or '-'"),
        ("ada@partner", "domain"),
    ] {
        let mut b = sample_body();
        b["invitee"]["email"] = email.into();
        let a =
            assert_refused_without_graph(&t, &signed_event(&b.to_string()), 422, "invalid-invitee")
                .await;
        let detail = a.body["detail"].as_str().unwrap();
        assert!(detail.contains(rule), "{email}: {detail}");
        assert!(!a.raw.contains(email));
        assert_eq!(a.body["field"], "email");
    }
    t.assert_logs_clean(&["ada+crm@partner.example", "ada;x@partner.example"]);
}

#[tokio::test]
async fn redirect_off_the_allowlist_is_422() {
    let t = spawn_app().await;
    for url in [
        "https://evil.example/phish",
        "http://portal.partner.example/",
        "javascript:alert(1)",
        "https://user:pw@portal.partner.example/",
    ] {
        let mut b = sample_body();
        b["redirectUrl"] = url.into();
        let a = assert_refused_without_graph(
            &t,
            &signed_event(&b.to_string()),
            422,
            "redirect-not-allowed",
        )
        .await;
        assert_eq!(a.body["field"], "redirectUrl");
    }
}

#[tokio::test]
async fn unmappable_events_are_422_naming_the_field() {
    let t = spawn_app().await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"id": "evt_1", "type": "partner.signed", "invitee": {}}),
            "invitee.email",
        ),
        (
            json!({"type": "partner.signed", "invitee": {"email": SAMPLE_EMAIL}}),
            "id",
        ),
        (
            json!({"id": "evt_1", "invitee": {"email": SAMPLE_EMAIL}}),
            "type",
        ),
    ];
    for (body, field) in cases {
        let a = assert_refused_without_graph(
            &t,
            &signed_event(&body.to_string()),
            422,
            "unprocessable-event",
        )
        .await;
        assert_eq!(a.body["field"], field, "{}", a.raw);
    }
    // Present but of the wrong type: a malformed request, naming the field.
    let wrong: Vec<(Value, &str)> = vec![
        (
            json!({"id": "evt_1", "type": "partner.signed", "invitee": {"email": ["x"]}}),
            "invitee.email",
        ),
        (
            json!({"id": {"x": 1}, "type": "partner.signed", "invitee": {"email": SAMPLE_EMAIL}}),
            "id",
        ),
    ];
    for (body, field) in wrong {
        let a = assert_refused_without_graph(
            &t,
            &signed_event(&body.to_string()),
            400,
            "malformed-request",
        )
        .await;
        assert_eq!(a.body["field"], field, "{}", a.raw);
    }
}

#[tokio::test]
async fn member_invitations_and_unknown_channels_are_refused_before_graph() {
    let t = spawn_app().await;
    let mut b = sample_body();
    b["invitee"]["userType"] = "Member".into();
    let a = assert_refused_without_graph(
        &t,
        &signed_event(&b.to_string()),
        422,
        "unprocessable-event",
    )
    .await;
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("ALLOW_MEMBER_INVITATIONS")
    );

    let mut b = sample_body();
    b["delivery"]["channels"] = json!(["slack", "carrier-pigeon"]);
    assert_refused_without_graph(
        &t,
        &signed_event(&b.to_string()),
        422,
        "unprocessable-event",
    )
    .await;
}

#[tokio::test]
async fn method_size_type_and_route_are_checked_first() {
    let t = spawn_app().await;
    let mut get = signed_event(&sample_body().to_string());
    get["requestContext"]["http"]["method"] = "GET".into();
    let a = assert_refused_without_graph(&t, &get, 405, "method-not-allowed").await;
    assert!(a.raw.contains("POST"));

    let big = json!({"id": "evt_big", "type": "partner.signed", "invitee": {"email": SAMPLE_EMAIL}, "pad": "x".repeat(300 * 1024)});
    assert_refused_without_graph(
        &t,
        &signed_event(&big.to_string()),
        413,
        "payload-too-large",
    )
    .await;

    let mut text = signed_event(&sample_body().to_string());
    events::set_event_header(&mut text, "content-type", "text/plain");
    assert_refused_without_graph(&t, &text, 415, "unsupported-media-type").await;

    let mut other = signed_event(&sample_body().to_string());
    other["rawPath"] = "/webhooks/nonexistent".into();
    assert_refused_without_graph(&t, &other, 404, "not-found").await;
    other["rawPath"] = "/admin".into();
    assert_refused_without_graph(&t, &other, 404, "not-found").await;
}

/// An id, email or type built from a field the event doesn't have refuses the event, naming
/// the field: a constant id would make every later event a "duplicate" of the first.
#[tokio::test]
async fn ids_built_from_missing_fields_refuse_the_event() {
    const ZENDESK_SECRET: &str = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA=";
    let mut secret = serde_json::Map::new();
    secret.insert("zendesk_signing_secret".into(), ZENDESK_SECRET.into());
    let t = spawn_app_with(Options {
        secret,
        env: vec![(
            "RELAY_CONFIG",
            r#"
[sources.zendesk]

[sources.crm]
preset = "generic"
[sources.crm.map]
event_id = "'crm-' ~ event.record.id"
event_type = "event.type"
"#
            .into(),
        )],
        ..Options::default()
    })
    .await;
    let sample = load_event("zendesk-trigger-partner-tagged.json");
    let body: Value = serde_json::from_slice(&events::event_body(&sample)).unwrap();
    for (case, edit) in [
        ("no ticket_id", json!(null)),
        ("an empty placeholder", json!("")),
    ] {
        let mut b = body.clone();
        match edit {
            Value::Null => b.as_object_mut().unwrap().remove("ticket_id"),
            v => b.as_object_mut().unwrap().insert("ticket_id".into(), v),
        };
        let mut e = sample.clone();
        let text = b.to_string();
        events::set_event_body(&mut e, &text);
        for (k, v) in events::zendesk_headers(ZENDESK_SECRET, text.as_bytes(), events::now()) {
            events::set_event_header(&mut e, k, &v);
        }
        let a = assert_refused_without_graph(&t, &e, 422, "unprocessable-event").await;
        assert_eq!(a.body["field"], "ticket_id", "{case}: {}", a.raw);
    }
    // An operator's own mapping, the same way.
    let mut e = signed_event(&sample_body().to_string());
    e["rawPath"] = "/webhooks/crm".into();
    e["requestContext"]["http"]["path"] = "/webhooks/crm".into();
    let a = assert_refused_without_graph(&t, &e, 422, "unprocessable-event").await;
    assert_eq!(a.body["field"], "record.id", "{}", a.raw);
}
