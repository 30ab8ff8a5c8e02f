//! A signed generic event becomes exactly one invitation whose link reaches every channel.

use devkit::receiver::Received;
use serde_json::{Value, json};

use crate::helpers::*;

fn verify_outbound_signature(r: &Received) {
    let mut h = http::HeaderMap::new();
    for (k, v) in &r.headers {
        h.insert(
            http::HeaderName::try_from(k.as_str()).unwrap(),
            http::HeaderValue::try_from(v.as_str()).unwrap(),
        );
    }
    standardwebhooks::Webhook::new(DELIVERY_SECRET)
        .unwrap()
        .verify(r.body.as_bytes(), &h)
        .expect("outbound webhook signature verifies");
}

#[tokio::test]
async fn signed_generic_event_invites_once_and_delivers_everywhere() {
    let t = spawn_app().await;

    let a = t
        .send_event(&signed_event_from_file("function-url-generic.json"))
        .await;

    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["status"], "invited");
    assert_eq!(a.body["eventId"], "evt_01JD2K7Q9Z3X4Y5W6V7U8T9S0R");
    assert_eq!(a.body["delivered"], json!(["slack", "webhook"]));

    // Exactly one invitation, with the mapped fields and no Microsoft email.
    let calls = t.graph.invitation_calls();
    assert_eq!(calls.len(), 1);
    let body = &calls[0].body;
    assert_eq!(body["invitedUserEmailAddress"], SAMPLE_EMAIL);
    assert_eq!(body["invitedUserDisplayName"], "Ada Lovelace");
    assert_eq!(body["invitedUserType"], "Guest");
    assert_eq!(body["inviteRedirectUrl"], DEFAULT_REDIRECT);
    assert_eq!(body["sendInvitationMessage"], false);
    assert_eq!(
        body.as_object().unwrap().len(),
        5,
        "no other properties: {body}"
    );

    // Authenticated with a client-credentials token issued for {graph}/.default.
    let tokens = t.graph.token_calls();
    assert_eq!(tokens.len(), 1);
    let form = &tokens[0].form;
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], t.graph.settings().client_id);
    assert_eq!(form["scope"], format!("{}/.default", t.graph.url));
    assert_eq!(tokens[0].tenant, t.graph.settings().tenant_id);
    let issued = t.graph.issued_tokens();
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {}", issued[0]).as_str())
    );
    assert_eq!(a.body["invitedUserId"].as_str().map(str::len), Some(36));

    // The redeem link reaches Slack (Block Kit button) and the signed webhook; never the caller.
    let redeem = t.graph.redeem_urls().pop().unwrap();
    assert!(!a.raw.contains(&redeem) && !a.raw.contains("redeem"));
    let slack = t.slack.delivered();
    assert_eq!(slack.len(), 1);
    assert_eq!(slack[0].path, "/slack/T0001/B0001/XyZsecretPart");
    let s = slack[0].json();
    assert!(s["text"].as_str().unwrap().contains("Ada Lovelace"));
    let button = s["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["type"] == "button")
        .expect("a button");
    assert_eq!(button["url"], redeem.as_str());
    let section = &s["blocks"][0]["text"];
    assert_eq!(section["type"], "mrkdwn");
    assert!(section["text"].as_str().unwrap().contains("Ada Lovelace"));

    let hooks = t.hook.delivered();
    assert_eq!(hooks.len(), 1);
    verify_outbound_signature(&hooks[0]);
    let w = hooks[0].json();
    assert_eq!(w["type"], "invitation.created");
    assert_eq!(w["data"]["eventId"], "evt_01JD2K7Q9Z3X4Y5W6V7U8T9S0R");
    assert_eq!(w["data"]["email"], SAMPLE_EMAIL);
    assert_eq!(w["data"]["displayName"], "Ada Lovelace");
    assert_eq!(w["data"]["invitationId"], a.body["invitationId"]);
    assert_eq!(w["data"]["invitedUserId"], a.body["invitedUserId"]);
    assert_eq!(w["data"]["inviteRedeemUrl"], redeem.as_str());
    assert!(hooks[0].header("webhook-id").unwrap().starts_with("msg_"));
}

fn signed_event_from_file(name: &str) -> Value {
    let mut e = load_event(name);
    devkit::events::sign_event(&mut e, WEBHOOK_SECRET);
    e
}

#[tokio::test]
async fn api_gateway_http_and_rest_events_and_base64_bodies_route_alike() {
    for file in [
        "apigw-http-generic.json",
        "apigw-rest-generic.json",
        "function-url-generic-base64.json",
    ] {
        let t = spawn_app().await;
        let a = t.send_event(&signed_event_from_file(file)).await;
        assert_eq!(a.status, 200, "{file}: {}", a.raw);
        assert_eq!(a.body["status"], "invited", "{file}");
        assert_eq!(t.graph.created().len(), 1, "{file}");
        assert_eq!(t.slack.delivered().len(), 1, "{file}");
    }
}

#[tokio::test]
async fn repeated_delivery_is_a_duplicate_not_a_second_invitation() {
    let t = spawn_app().await;
    let first = t.post(&sample_body()).await;
    assert_eq!(first.status, 200);
    // A CRM retry: same event, new delivery id and signature.
    let second = t.post(&sample_body()).await;
    assert_eq!(second.status, 200, "{}", second.raw);
    assert_eq!(second.body["status"], "duplicate");
    assert_eq!(second.body["invitationId"], first.body["invitationId"]);
    assert_eq!(second.body["delivered"], json!(["slack", "webhook"]));
    assert_eq!(t.graph.invitation_calls().len(), 1);
    assert_eq!(t.slack.received().len(), 1);
    assert_eq!(t.hook.received().len(), 1);
}

#[tokio::test]
async fn token_is_cached_across_events() {
    let t = spawn_app().await;
    for id in ["evt_a", "evt_b", "evt_c"] {
        let mut b = sample_body();
        b["id"] = id.into();
        assert_eq!(t.post(&b).await.status, 200);
    }
    assert_eq!(t.graph.token_calls().len(), 1);
    assert_eq!(t.graph.created().len(), 3);
}

#[tokio::test]
async fn other_event_types_are_ignored_with_200() {
    let t = spawn_app().await;
    let mut b = sample_body();
    b["type"] = "partner.renewed".into();
    let a = t.post(&b).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        json!({"status": "ignored", "eventId": "evt_01JD2K7Q9Z3X4Y5W6V7U8T9S0R"})
    );
    assert!(t.graph.invitation_calls().is_empty() && t.graph.token_calls().is_empty());
    assert!(t.slack.received().is_empty() && t.hook.received().is_empty());
}

#[tokio::test]
async fn event_types_are_configuration() {
    let t = spawn_app_with(Options {
        env: vec![(
            "RELAY_CONFIG",
            "[sources.generic]\nfilter = \"event.type in ['partner.signed', 'deal.won']\"\n".into(),
        )],
        ..Options::default()
    })
    .await;
    let mut b = sample_body();
    b["type"] = "deal.won".into();
    assert_eq!(t.post(&b).await.body["status"], "invited");
}

#[tokio::test]
async fn minimal_event_uses_defaults_and_every_configured_channel() {
    let t = spawn_app().await;
    let a = t.post(&json!({"id": "evt_min", "type": "partner.signed", "invitee": {"email": "grace@partner.example"}})).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let body = &t.graph.invitation_calls()[0].body;
    assert_eq!(body["inviteRedirectUrl"], DEFAULT_REDIRECT);
    assert_eq!(body["invitedUserType"], "Guest");
    assert!(body.get("invitedUserDisplayName").is_none());
    assert_eq!(a.body["delivered"], json!(["slack", "webhook"]));
    t.assert_logs_clean(&["grace@partner.example"]);
}

#[tokio::test]
async fn event_may_choose_an_allowlisted_redirect_and_one_channel() {
    let t = spawn_app().await;
    let mut b = sample_body();
    b["redirectUrl"] = "https://portal.partner.example/welcome".into();
    b["delivery"] = json!({"channels": ["webhook"]});
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(
        t.graph.invitation_calls()[0].body["inviteRedirectUrl"],
        "https://portal.partner.example/welcome"
    );
    assert_eq!(a.body["delivered"], json!(["webhook"]));
    assert!(t.slack.received().is_empty());
}

#[tokio::test]
async fn hostile_display_name_is_cleaned_and_escaped_for_slack() {
    let t = spawn_app().await;
    let mut b = sample_body();
    b["invitee"]["displayName"] = "<!channel> Eve\n*bold* <https://evil.example|click>".into();
    assert_eq!(t.post(&b).await.status, 200);
    assert_eq!(
        t.graph.invitation_calls()[0].body["invitedUserDisplayName"],
        "<!channel> Eve *bold* <https://evil.example|click>"
    );
    let slack = t.slack.delivered()[0].body.clone();
    assert!(!slack.contains("<!channel>") && !slack.contains("<https://evil.example|click>"));
    assert!(slack.contains("&lt;!channel&gt;"));
}

#[tokio::test]
async fn a_failed_channel_is_retried_alone_on_the_next_delivery() {
    let t = spawn_app().await;
    // Slack refuses (404: not retried within the request).
    t.slack.fail_next(devkit::ReceiverFault::Status(404));
    let a = t.post(&sample_body()).await;
    a.assert_problem(503, "delivery-failed");
    assert_eq!(a.body["delivered"], json!(["webhook"]));
    assert_eq!(a.body["failed"][0]["channel"], "slack");
    assert!(a.raw.contains("invitationId"));

    // The CRM retries: a fresh link is created for the same user and only Slack gets it.
    let b = t.post(&sample_body()).await;
    assert_eq!(b.status, 200, "{}", b.raw);
    assert_eq!(b.body["delivered"], json!(["webhook", "slack"]));
    let created = t.graph.created();
    assert_eq!(created.len(), 2);
    assert_eq!(
        t.hook.received().len(),
        1,
        "the webhook is not notified twice"
    );
    assert_eq!(t.slack.delivered().len(), 1);
    let urls = t.graph.redeem_urls();
    assert!(
        t.slack.delivered()[0].body.contains(urls[1].as_str()),
        "Slack gets the fresh link"
    );
    assert_eq!(
        t.graph
            .invitation_calls()
            .iter()
            .map(|c| c.body["invitedUserEmailAddress"].clone())
            .collect::<Vec<_>>(),
        vec![json!(SAMPLE_EMAIL), json!(SAMPLE_EMAIL)]
    );
}

#[tokio::test]
async fn logs_correlate_by_event_id_and_hashed_invitee() {
    let t = spawn_app().await;
    assert_eq!(t.post(&sample_body()).await.status, 200);
    let lines = t.logs.lines();
    let accepted = lines
        .iter()
        .find(|l| l["message"] == "event accepted")
        .expect("an 'event accepted' line");
    assert_eq!(
        event_id_of(accepted),
        Some("evt_01JD2K7Q9Z3X4Y5W6V7U8T9S0R")
    );
    let hash = accepted["invitee"].as_str().unwrap();
    assert_eq!(hash.len(), 16);
    assert!(lines.iter().any(|l| l["message"] == "invitation created"
        && event_id_of(l) == Some("evt_01JD2K7Q9Z3X4Y5W6V7U8T9S0R")));
    assert!(lines.iter().filter(|l| l["message"] == "delivered").count() == 2);
}

/// The event id of the enclosing `event` span of a log line.
fn event_id_of(line: &Value) -> Option<&str> {
    line["spans"]
        .as_array()?
        .iter()
        .find_map(|s| s["event_id"].as_str())
}

/// The README's example: a new field layout is configuration, not code.
#[tokio::test]
async fn a_custom_source_maps_another_layout_without_code() {
    let config = r#"
[sources.crm-flow]
preset = "generic"
secrets = ["crm_flow_signing_secret"]
filter = "event.stage == 'closed-won' and 'partner' in event.tags"

[sources.crm-flow.map]
event_id = "event.dealId"
event_type = "event.stage"
email = "event.contact.email"
display_name = "event.contact.firstName ~ ' ' ~ event.contact.lastName"
"#;
    let key = "whsec_dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";
    let mut secret = serde_json::Map::new();
    secret.insert("crm_flow_signing_secret".into(), key.into());
    let t = spawn_app_with(Options {
        secret,
        env: vec![("RELAY_CONFIG", config.into())],
        ..Options::default()
    })
    .await;

    let send = |body: Value| {
        let mut e = load_event("function-url-generic.json");
        e["rawPath"] = "/webhooks/crm-flow".into();
        devkit::events::set_event_body(&mut e, &body.to_string());
        devkit::events::sign_event(&mut e, key);
        e
    };
    let won = json!({"dealId": 4711, "stage": "closed-won", "tags": ["partner", "emea"],
                     "contact": {"email": SAMPLE_EMAIL, "firstName": "Ada", "lastName": "Lovelace"}});
    let a = t.send_event(&send(won.clone())).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["eventId"], "4711");
    let call = &t.graph.invitation_calls()[0].body;
    assert_eq!(call["invitedUserDisplayName"], "Ada Lovelace");
    assert_eq!(call["invitedUserEmailAddress"], SAMPLE_EMAIL);

    let mut lost = won.clone();
    lost["dealId"] = 4712.into();
    lost["stage"] = "closed-lost".into();
    assert_eq!(t.send_event(&send(lost)).await.body["status"], "ignored");

    // The generic source's key does not open the new source.
    let mut forged = send(won);
    devkit::events::sign_event(&mut forged, WEBHOOK_SECRET);
    t.send_event(&forged).await.assert_problem(401, "signature");
    assert_eq!(t.graph.invitation_calls().len(), 1);
}
