//! The CRM presets, each from its real-shaped sample in `events/` to a delivered link; the same
//! sample at another stage is ignored with 200; wrongly authenticated, it gets 401.

use devkit::events;
use serde_json::{Value, json};

use crate::helpers::*;

const HUBSPOT_KEY: &str = "hubspot-api-key-0123456789";
const ZENDESK_SECRET: &str = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA=";
const PIPEDRIVE_AUTH: &str = "invite-relay:pipedrive-password-42";
const DYNAMICS_KEY: &str = "dynamics-webhook-key-0123456789";
const SERVICENOW_SECRET: &str = "whsec_47jku0bGmARDQ6wRV9CJcwVaK2SiGnUNiYUfypGfTC4=";
const JIRA_KEY: &str = "jira-automation-key-0123456789";

/// Every preset enabled, as a user would: by naming it. Pipedrive's email comes from a deal
/// custom field whose key is specific to the account, so its mapping names that key; Jira's
/// README override for a "Guest email" request field is a source of its own.
const RELAY_CONFIG: &str = r#"
[sources.hubspot]
[sources.zendesk]
[sources.dynamics]
[sources.salesforce]
[sources.servicenow]
[sources.jira]

[sources.pipedrive.params]
email_field = "5d2c1e7a9b3f4a6c8e0d2b4f6a8c0e2d4f6a8b0c"
name_field = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"

[sources.jira-guest-email]
preset = "jira"

[sources.jira-guest-email.map]
email = "event.issue.fields.customfield_10050"
"#;

async fn presets_app() -> TestApp {
    let mut secret = serde_json::Map::new();
    for (k, v) in [
        ("hubspot_webhook_key", HUBSPOT_KEY),
        ("zendesk_signing_secret", ZENDESK_SECRET),
        ("pipedrive_basic_auth", PIPEDRIVE_AUTH),
        ("dynamics_webhook_key", DYNAMICS_KEY),
        ("servicenow_signing_secret", SERVICENOW_SECRET),
        ("jira_webhook_key", JIRA_KEY),
    ] {
        secret.insert(k.into(), v.into());
    }
    spawn_app_with(Options {
        secret,
        env: vec![("RELAY_CONFIG", RELAY_CONFIG.into())],
        ..Options::default()
    })
    .await
}

/// The event's body as JSON, to change.
fn body_of(event: &Value) -> Value {
    serde_json::from_slice(&events::event_body(event)).unwrap()
}

/// Authenticates `event` the way its CRM does, with the right (`good`) or a wrong credential.
fn authenticate(crm: &str, event: &mut Value, good: bool) {
    let body = events::event_body(event);
    match crm {
        "hubspot" => events::set_event_header(
            event,
            "x-invite-relay-key",
            if good {
                HUBSPOT_KEY
            } else {
                "hubspot-api-key-9876543210"
            },
        ),
        "zendesk" => {
            let secret = if good {
                ZENDESK_SECRET
            } else {
                "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
            };
            for (k, v) in events::zendesk_headers(secret, &body, events::now()) {
                events::set_event_header(event, k, &v);
            }
        }
        "pipedrive" => {
            let auth = if good {
                PIPEDRIVE_AUTH
            } else {
                "invite-relay:pipedrive-password-43"
            };
            for (k, v) in events::basic_header(auth) {
                events::set_event_header(event, k, &v);
            }
        }
        "dynamics" => {
            event["rawQueryString"] = format!(
                "code={}",
                if good {
                    DYNAMICS_KEY
                } else {
                    "not-the-key-0000"
                }
            )
            .into()
        }
        // The business rule's Standard Webhooks signature.
        "servicenow" => events::sign_event(
            event,
            if good {
                SERVICENOW_SECRET
            } else {
                "whsec_dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
            },
        ),
        // The automation rule's hidden header.
        "jira" => events::set_event_header(
            event,
            "x-invite-relay-key",
            if good {
                JIRA_KEY
            } else {
                "jira-automation-key-9876543210"
            },
        ),
        _ => unreachable!(),
    }
}

/// The sample moved to a stage that must not invite.
fn other_stage(crm: &str, body: &mut Value) {
    match crm {
        "hubspot" => body["dealstage"] = "appointmentscheduled".into(),
        "zendesk" => body["tags"] = "guest_access_requested vip".into(),
        "pipedrive" => {
            body["data"]["status"] = "lost".into();
            body["previous"]["status"] = "open".into();
        }
        "dynamics" => {
            let attrs = body["InputParameters"][0]["value"]["Attributes"]
                .as_array_mut()
                .unwrap();
            let state = attrs.iter_mut().find(|a| a["key"] == "statecode").unwrap();
            state["value"]["Value"] = 2.into(); // Lost
        }
        "servicenow" => body["approval"] = "rejected".into(),
        "jira" => body["issue"]["fields"]["status"]["name"] = "Waiting for approval".into(),
        _ => unreachable!(),
    }
}

const HTTP_PRESETS: &[(&str, &str)] = &[
    ("hubspot", "hubspot-workflow-deal-won.json"),
    ("zendesk", "zendesk-trigger-partner-tagged.json"),
    ("pipedrive", "pipedrive-deal-won.json"),
    ("dynamics", "dynamics-opportunity-won.json"),
    ("servicenow", "servicenow-request-approved.json"),
    ("jira", "jira-issue-approved.json"),
];

#[tokio::test]
async fn each_crm_sample_becomes_a_delivered_invitation() {
    let t = presets_app().await;
    for (i, (crm, file)) in HTTP_PRESETS.iter().enumerate() {
        let mut event = load_event(file);
        authenticate(crm, &mut event, true);
        let a = t.send_event(&event).await;
        assert_eq!(a.status, 200, "{crm}: {}", a.raw);
        assert_eq!(a.body["status"], "invited", "{crm}: {}", a.raw);
        let call = &t.graph.invitation_calls()[i];
        assert_eq!(call.body["invitedUserEmailAddress"], SAMPLE_EMAIL, "{crm}");
        assert_eq!(call.body["invitedUserDisplayName"], "Ada Lovelace", "{crm}");
        assert_eq!(call.body["sendInvitationMessage"], false);
        let redeem = t.graph.redeem_urls()[i].clone();
        assert!(
            t.slack.delivered()[i].body.contains(&redeem),
            "{crm}: the link reached Slack"
        );
        assert!(
            t.hook.delivered()[i].body.contains(&redeem),
            "{crm}: the link reached the webhook"
        );
    }
}

#[tokio::test]
async fn each_crm_event_at_another_stage_is_ignored_with_200() {
    let t = presets_app().await;
    for (crm, file) in HTTP_PRESETS {
        let mut event = load_event(file);
        let mut body = body_of(&event);
        other_stage(crm, &mut body);
        events::set_event_body(&mut event, &body.to_string());
        authenticate(crm, &mut event, true);
        let a = t.send_event(&event).await;
        assert_eq!(a.status, 200, "{crm}: {}", a.raw);
        assert_eq!(a.body["status"], "ignored", "{crm}: {}", a.raw);
    }
    assert!(t.graph.invitation_calls().is_empty());
}

#[tokio::test]
async fn each_crm_event_wrongly_authenticated_is_401() {
    let t = presets_app().await;
    for (crm, file) in HTTP_PRESETS {
        let mut event = load_event(file);
        authenticate(crm, &mut event, false);
        t.send_event(&event).await.assert_problem(401, "signature");
        // And the sample as stored (no valid credential at all).
        t.send_event(&load_event(file))
            .await
            .assert_problem(401, "signature");
    }
    assert!(t.graph.invitation_calls().is_empty());
}

/// The sample without the invitee's email, and the field the refusal must name (the mapping's
/// path).
fn without_email(crm: &str, body: &mut Value) -> &'static str {
    match crm {
        "servicenow" => {
            body["requested_for"]
                .as_object_mut()
                .unwrap()
                .remove("email");
            "requested_for.email"
        }
        // As when the reporter's profile hides their email.
        "jira" => {
            body["issue"]["fields"]["reporter"]
                .as_object_mut()
                .unwrap()
                .remove("emailAddress");
            "issue.fields.reporter.emailAddress"
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn an_approved_request_without_the_email_is_422_naming_the_field() {
    let t = presets_app().await;
    for (crm, file) in [
        ("servicenow", "servicenow-request-approved.json"),
        ("jira", "jira-issue-approved.json"),
    ] {
        let mut event = load_event(file);
        let mut body = body_of(&event);
        let field = without_email(crm, &mut body);
        events::set_event_body(&mut event, &body.to_string());
        authenticate(crm, &mut event, true);
        let a = t.send_event(&event).await;
        a.assert_problem(422, "unprocessable-event");
        assert_eq!(a.body["field"], field, "{crm}: {}", a.raw);
    }
    // Left out, null or empty: a hidden address is refused the same way.
    for hidden in [Value::Null, json!(""), json!("  ")] {
        let mut event = load_event("jira-issue-approved.json");
        let mut body = body_of(&event);
        body["issue"]["fields"]["reporter"]["emailAddress"] = hidden;
        events::set_event_body(&mut event, &body.to_string());
        authenticate("jira", &mut event, true);
        let a = t.send_event(&event).await;
        a.assert_problem(422, "unprocessable-event");
        assert_eq!(a.body["field"], "issue.fields.reporter.emailAddress");
    }
    assert!(t.graph.invitation_calls().is_empty());
}

#[tokio::test]
async fn jira_takes_the_guest_email_from_a_request_field_when_mapped() {
    let t = presets_app().await;
    let mut event = load_event("jira-issue-approved.json");
    let mut body = body_of(&event);
    without_email("jira", &mut body);
    body["issue"]["fields"]["customfield_10050"] = SAMPLE_EMAIL.into();
    events::set_event_body(&mut event, &body.to_string());
    event["rawPath"] = "/webhooks/jira-guest-email".into();
    event["requestContext"]["http"]["path"] = "/webhooks/jira-guest-email".into();
    authenticate("jira", &mut event, true);
    let a = t.send_event(&event).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    let call = &t.graph.invitation_calls()[0];
    assert_eq!(call.body["invitedUserEmailAddress"], SAMPLE_EMAIL);
    assert_eq!(call.body["invitedUserDisplayName"], "Ada Lovelace");
}

/// Beyond the invitee, what the receiving system learns from a ServiceNow or Jira event: one id
/// per request, the company, the sponsor, and the values routing rules and templates read.
#[tokio::test]
async fn servicenow_and_jira_events_carry_their_request_ids_owner_and_fields() {
    let t = presets_app().await;
    let cases = [
        (
            "servicenow",
            "servicenow-request-approved.json",
            json!({
                "eventId": "9d3f1a2b47e0b21083c2a1f4e6d5c7b8",
                "eventType": "approved",
                "company": "Analytical Engines Ltd",
                "ownerEmail": "charles.babbage@contoso.com",
                "fields": {"number": "RITM0010042", "catalog_item": "Partner portal access"},
            }),
        ),
        (
            "jira",
            "jira-issue-approved.json",
            json!({
                "eventId": "https://contoso.atlassian.net/rest/api/2/issue/10042",
                "eventType": "Approved",
                "company": null,
                "ownerEmail": null,
                "fields": {"issue_key": "PA-17", "project": "PA"},
            }),
        ),
    ];
    for (i, (crm, file, expected)) in cases.iter().enumerate() {
        let mut event = load_event(file);
        authenticate(crm, &mut event, true);
        let a = t.send_event(&event).await;
        assert_eq!(a.body["status"], "invited", "{crm}: {}", a.raw);
        assert_eq!(a.body["eventId"], expected["eventId"], "{crm}");
        let sent: Value = serde_json::from_str(&t.hook.delivered()[i].body).unwrap();
        for (k, v) in expected.as_object().unwrap() {
            assert_eq!(&sent["data"][k], v, "{crm}: {k}");
        }
    }

    // A request the guest opened for themselves has no sponsor to copy.
    let mut event = load_event("servicenow-request-approved.json");
    let mut body = body_of(&event);
    body["sys_id"] = "0a1b2c3d4e5f60718293a4b5c6d7e8f9".into();
    body["opened_by"] = json!({"email": SAMPLE_EMAIL, "name": "Ada Lovelace"});
    events::set_event_body(&mut event, &body.to_string());
    authenticate("servicenow", &mut event, true);
    assert_eq!(t.send_event(&event).await.body["status"], "invited");
    let sent: Value = serde_json::from_str(&t.hook.delivered()[2].body).unwrap();
    assert_eq!(sent["data"]["ownerEmail"], Value::Null);

    // Approved again later (after a rejection or a reset): the same request, not a second
    // invitation.
    let mut again = load_event("servicenow-request-approved.json");
    authenticate("servicenow", &mut again, true);
    assert_eq!(t.send_event(&again).await.body["status"], "duplicate");
    assert_eq!(t.graph.invitation_calls().len(), 3);
}

#[tokio::test]
async fn presets_are_off_until_named() {
    let t = spawn_app().await;
    let mut event = load_event("hubspot-workflow-deal-won.json");
    authenticate("hubspot", &mut event, true);
    t.send_event(&event).await.assert_problem(404, "not-found");
}

#[tokio::test]
async fn the_salesforce_preset_takes_relayed_platform_events() {
    let table = create_table().await;
    let (_q, dlq) = create_queues(5).await;
    let t = spawn_app_with(Options {
        env: vec![
            ("RELAY_CONFIG", "[sources.salesforce]\n".into()),
            ("IDEMPOTENCY_TABLE", table),
            ("DEAD_LETTER_QUEUE_URL", dlq),
        ],
        ..Options::default()
    })
    .await;
    let deadline = invite_relay::resilience::Deadline::after(std::time::Duration::from_secs(5));
    let event = load_event("eventbridge-salesforce-partner-signed.json");
    let out = invite_relay::worker::handle(&t.app, event.clone(), deadline)
        .await
        .unwrap();
    assert_eq!(out["status"], "invited", "{out}");
    assert_eq!(t.slack.delivered().len(), 1);
    let mut other = event;
    other["detail-type"] = "Partner_Renewed__e".into();
    assert_eq!(
        invite_relay::worker::handle(&t.app, other, deadline)
            .await
            .unwrap()["status"],
        "ignored"
    );
}

#[tokio::test]
async fn salesforce_outbound_messages_are_checked_against_the_org_and_acknowledged() {
    let mut secret = serde_json::Map::new();
    secret.insert(
        "salesforce_organization_id".into(),
        "00D5e000000ABCDEAU".into(),
    );
    secret.insert(
        "salesforce_outbound_key".into(),
        "sf-url-key-4d1e0f6b2a9c8e7d5f3a1b0c9e8d7f6a".into(),
    );
    let t = spawn_app_with(Options {
        secret,
        env: vec![("RELAY_CONFIG", "[sources.salesforce-outbound]\n".into())],
        ..Options::default()
    })
    .await;
    let event = load_event("salesforce-outbound-message.json");

    let resp = t.app.on_http(to_request(&event)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/xml; charset=utf-8");
    let a = answer(resp);
    assert!(a.raw.contains("<Ack>true</Ack>"), "{}", a.raw);
    let call = &t.graph.invitation_calls()[0].body;
    assert_eq!(call["invitedUserEmailAddress"], SAMPLE_EMAIL);
    assert_eq!(call["invitedUserDisplayName"], "Ada Lovelace");
    assert_eq!(t.slack.delivered().len(), 1);

    // Salesforce retries the same notification: acknowledged, nothing repeated.
    assert!(
        answer(t.app.on_http(to_request(&event)).await)
            .raw
            .contains("<Ack>true</Ack>")
    );
    assert_eq!(t.graph.invitation_calls().len(), 1);

    // The org id is public: a message carrying it but not the URL key is refused, and so is
    // a wrong key, before anything is parsed.
    let xml = String::from_utf8(events::event_body(&event)).unwrap();
    let forged = xml.replace("ada@partner.example", "mallory@attacker.example");
    for query in [
        "",
        "key=sf-url-key-4d1e0f6b2a9c8e7d5f3a1b0c9e8d7f6b",
        "code=sf-url-key-4d1e0f6b2a9c8e7d5f3a1b0c9e8d7f6a",
    ] {
        let mut e = event.clone();
        e["rawQueryString"] = query.into();
        events::set_event_body(&mut e, &forged);
        t.send_event(&e).await.assert_problem(401, "signature");
    }
    // Another org's message is refused even with the key (a leaked URL alone is not enough);
    // a second notification in one message is its own event.
    let mut other_org = event.clone();
    events::set_event_body(
        &mut other_org,
        &xml.replace("00D5e000000ABCDEAU", "00D5e000000ZZZZEAU"),
    );
    t.send_event(&other_org)
        .await
        .assert_problem(401, "signature");
    let two = xml.replace(
        "  </notifications>",
        "   <Notification><Id>04l5e00000AbCdFAAZ</Id><sObject><sf:Email>grace@partner.example</sf:Email><sf:FirstName>Grace</sf:FirstName><sf:LastName>Hopper</sf:LastName><sf:Partner_Status__c>Prospect</sf:Partner_Status__c></sObject></Notification>\n  </notifications>",
    );
    let mut batch = event;
    events::set_event_body(&mut batch, &two);
    assert!(
        answer(t.app.on_http(to_request(&batch)).await)
            .raw
            .contains("<Ack>true</Ack>")
    );
    assert_eq!(
        t.graph.invitation_calls().len(),
        1,
        "the first is a duplicate, the second not signed yet"
    );
}

/// The messages the Dynamics preset can't use are not passed off as "ignored" when they look
/// like a win: an Update whose body Dataverse cut for size (over 256 KB it removes
/// InputParameters and the images) is refused with 422 naming what is missing, so the step's
/// System Job shows it; a Win message (no Target, no images) is not a message the preset takes.
#[tokio::test]
async fn dynamics_messages_without_the_fields_are_refused_not_ignored() {
    let t = presets_app().await;
    let sample = load_event("dynamics-opportunity-won.json");
    let mut cut = body_of(&sample);
    let o = cut.as_object_mut().unwrap();
    o.remove("InputParameters");
    o.remove("PostEntityImages");
    o.remove("PreEntityImages");
    let mut event = sample.clone();
    events::set_event_body(&mut event, &cut.to_string());
    events::set_event_header(&mut event, "x-ms-dynamics-msg-size-exceeded", "true");
    authenticate("dynamics", &mut event, true);
    let a = t.send_event(&event).await;
    a.assert_problem(422, "unprocessable-event");
    assert_eq!(a.body["field"], "PostEntityImages", "{}", a.raw);

    // A Win step's body, as WinOpportunityRequest defines it: OpportunityClose and Status.
    let mut win = body_of(&sample);
    win["MessageName"] = "Win".into();
    win["InputParameters"] = serde_json::json!([
        {"key": "OpportunityClose", "value": {"__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
            "LogicalName": "opportunityclose", "Attributes": [{"key": "opportunityid", "value": {
                "__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
                "Id": "3b7e1f22-6c4d-f011-877a-000d3a5b8c21", "LogicalName": "opportunity", "Name": null}}]}},
        {"key": "Status", "value": {"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 3}}
    ]);
    win["PostEntityImages"] = serde_json::json!([]);
    let mut event = sample;
    events::set_event_body(&mut event, &win.to_string());
    authenticate("dynamics", &mut event, true);
    let a = t.send_event(&event).await;
    assert_eq!(a.body["status"], "ignored", "{}", a.raw);
    assert!(t.graph.invitation_calls().is_empty());
}
