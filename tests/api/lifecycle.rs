//! The invitation lifecycle through the real handler: existing-user policies (with the
//! documented query), sponsors, groups with the replication delay, and Member gating — against
//! the Graph emulator, which checks every request's shape.

use invite_relay::app::FollowUpAction;
use serde_json::{Value, json};

use crate::helpers::*;

const GROUP_ALL: &str = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b";
const GROUP_EMEA: &str = "7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const SPONSOR: &str = "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6";

async fn app(relay_config: &str) -> TestApp {
    spawn_app_with(Options {
        env: vec![("RELAY_CONFIG", relay_config.to_owned())],
        ..Options::default()
    })
    .await
}

fn event(id: &str) -> Value {
    let mut b = sample_body();
    b["id"] = id.into();
    b
}

#[tokio::test]
async fn members_of_the_tenant_are_never_invited_and_the_query_is_the_documented_one() {
    let t = app("[invitations]\nexisting_users = \"skip\"\n").await;
    let id = t.graph.seed_user(SAMPLE_EMAIL, "Member", None, 0);
    let a = t.post(&event("evt_member")).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["status"], "exists");
    assert_eq!(a.body["existing"], "member");
    assert_eq!(a.body["invitedUserId"], id.as_str());
    assert!(t.graph.invitation_calls().is_empty());
    assert!(t.slack.received().is_empty() && t.hook.received().is_empty());

    let q = &t.graph.user_queries()[0];
    assert_eq!(
        q.filter,
        format!(
            "userPrincipalName eq '{e}' or mail eq '{e}' or proxyAddresses/any(x:x eq 'SMTP:{e}') or otherMails/any(x:x eq '{e}')",
            e = SAMPLE_EMAIL
        )
    );
    // Supported by default: no advanced query parameters, so the answer is strongly
    // consistent (a guest invited a moment ago is found).
    assert_eq!(q.consistency_level, None);
    assert_eq!(q.count, None);
    assert_eq!(q.status, 200);
    // A repeat is a duplicate of the completed event, not a second lookup.
    assert_eq!(
        t.post(&event("evt_member")).await.body["status"],
        "duplicate"
    );
    assert_eq!(t.graph.user_queries().len(), 1);
    t.assert_logs_clean(&[SAMPLE_EMAIL]);
}

#[tokio::test]
async fn quotes_in_addresses_are_escaped_in_the_query() {
    let t = app("[invitations]\nexisting_users = \"skip\"\n").await;
    let email = "o'brien@partner.example";
    t.graph
        .seed_user(email, "Guest", Some("PendingAcceptance"), 3);
    let mut b = event("evt_quote");
    b["invitee"]["email"] = email.into();
    let a = t.post(&b).await;
    assert_eq!(a.body["status"], "exists", "{}", a.raw);
    assert_eq!(a.body["existing"], "guest");
    assert!(
        t.graph.user_queries()[0]
            .filter
            .contains("'o''brien@partner.example'")
    );
}

#[tokio::test]
async fn reinvite_gives_a_pending_guest_a_fresh_link_but_not_a_redeemed_one() {
    let t = app("[invitations]\nexisting_users = \"reinvite\"\n").await;
    let pending = t
        .graph
        .seed_user(SAMPLE_EMAIL, "Guest", Some("PendingAcceptance"), 10);
    let a = t.post(&event("evt_pending")).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    assert_eq!(a.body["invitedUserId"], pending.as_str(), "the same guest");
    assert_eq!(t.slack.delivered().len(), 1);

    t.graph
        .seed_user("bob@partner.example", "Guest", Some("Accepted"), 30);
    let mut b = event("evt_redeemed");
    b["invitee"]["email"] = "bob@partner.example".into();
    let a = t.post(&b).await;
    assert_eq!(a.body["status"], "exists");
    assert_eq!(a.body["existing"], "redeemed");
    assert_eq!(t.graph.invitation_calls().len(), 1);
}

#[tokio::test]
async fn reset_resets_the_redemption_of_the_existing_guest() {
    let t = app("[invitations]\nexisting_users = \"reset\"\n").await;
    let id = t
        .graph
        .seed_user(SAMPLE_EMAIL, "Guest", Some("Accepted"), 30);
    let a = t.post(&event("evt_reset")).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["invitedUserId"], id.as_str());
    let call = &t.graph.invitation_calls()[0];
    assert_eq!(call.status, 201);
    assert_eq!(call.body["resetRedemption"], true);
    assert_eq!(call.body["invitedUser"], json!({"id": id}));
    assert_eq!(
        t.graph
            .user(SAMPLE_EMAIL)
            .unwrap()
            .external_user_state
            .as_deref(),
        Some("PendingAcceptance")
    );
    // A new address is invited normally (no reset without a user).
    let mut b = event("evt_new");
    b["invitee"]["email"] = "new@partner.example".into();
    assert_eq!(t.post(&b).await.status, 200);
    assert!(
        t.graph.invitation_calls()[1]
            .body
            .get("resetRedemption")
            .is_none()
    );
}

#[tokio::test]
async fn without_a_policy_nothing_is_looked_up() {
    let t = spawn_app().await;
    assert_eq!(t.post(&sample_body()).await.status, 200);
    assert!(
        t.graph.user_queries().is_empty(),
        "User.Invite.All suffices"
    );
}

#[tokio::test]
async fn the_owner_becomes_a_sponsor_by_email_or_object_id() {
    let t = app(&format!(
        "[invitations]\nsponsor_owner = true\nsponsors = [\"{SPONSOR}\"]\n"
    ))
    .await;
    let grace = t
        .graph
        .seed_user("grace@contoso.example", "Member", None, 0);
    let mut b = event("evt_sponsor_mail");
    b["owner"] = json!({"email": "grace@contoso.example"});
    assert_eq!(t.post(&b).await.status, 200);
    assert_eq!(
        t.graph.invitation_calls()[0].body["invitedUserSponsors"],
        json!([{"id": grace}, {"id": SPONSOR}])
    );

    let owner_id = "2b3c4d5e-6f70-4819-a2b3-c4d5e6f70819";
    let mut b = event("evt_sponsor_id");
    b["invitee"]["email"] = "bob@partner.example".into();
    b["owner"] = json!({"id": owner_id.to_uppercase()});
    let before = t.graph.user_queries().len();
    assert_eq!(t.post(&b).await.status, 200);
    assert_eq!(
        t.graph.invitation_calls()[1].body["invitedUserSponsors"],
        json!([{"id": owner_id}, {"id": SPONSOR}])
    );
    assert_eq!(
        t.graph.user_queries().len(),
        before,
        "an id needs no lookup"
    );

    // An owner unknown to the directory: the invitation goes ahead with the configured sponsor.
    let mut b = event("evt_sponsor_unknown");
    b["invitee"]["email"] = "carol@partner.example".into();
    b["owner"] = json!({"email": "nobody@contoso.example"});
    assert_eq!(t.post(&b).await.status, 200);
    assert_eq!(
        t.graph.invitation_calls()[2].body["invitedUserSponsors"],
        json!([{"id": SPONSOR}])
    );
    assert!(t.logs.text().contains("sponsor_unresolved"));
    t.assert_logs_clean(&["grace@contoso.example", "nobody@contoso.example"]);
}

#[tokio::test]
async fn groups_are_joined_after_delivery_despite_replication_delay() {
    let t = app(&format!(
        "[invitations]\ngroups = [\"{GROUP_ALL}\"]\n\n[[routes]]\nwhen = \"fields.region == 'emea'\"\nchannels = [\"slack\", \"webhook\"]\ngroups = [\"{GROUP_EMEA}\"]\n\n[[routes]]\nchannels = [\"slack\", \"webhook\"]\n"
    ))
    .await;
    t.graph.add_group(GROUP_ALL);
    t.graph.add_group(GROUP_EMEA);
    t.graph.set_replication_lag(2);
    let mut b = event("evt_groups");
    b.as_object_mut().unwrap().remove("delivery");
    b["attributes"] = json!({"region": "emea"});
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let user = a.body["invitedUserId"].as_str().unwrap().to_owned();
    assert_eq!(
        a.body["groups"],
        json!([{"id": GROUP_ALL, "status": "added"}, {"id": GROUP_EMEA, "status": "added"}])
    );
    let calls = t.graph.group_calls();
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.group.as_str(), c.status))
            .collect::<Vec<_>>(),
        [
            (GROUP_ALL, 404),
            (GROUP_ALL, 404),
            (GROUP_ALL, 204),
            (GROUP_EMEA, 204)
        ]
    );
    assert_eq!(
        calls[2].body,
        json!({"@odata.id": format!("{}/v1.0/directoryObjects/{user}", t.graph.url)})
    );
    assert_eq!(t.graph.group_members(GROUP_ALL), vec![user.clone()]);
    assert_eq!(t.graph.group_members(GROUP_EMEA), vec![user]);

    // The same person again (a new event): already a member counts as done.
    let mut b2 = event("evt_groups_again");
    b2.as_object_mut().unwrap().remove("delivery");
    let a = t.post(&b2).await;
    assert_eq!(
        a.body["groups"],
        json!([{"id": GROUP_ALL, "status": "already-member"}])
    );
}

#[tokio::test]
async fn a_group_that_fails_is_reported_and_alarmed_without_losing_the_link() {
    let t = app(&format!("[invitations]\ngroups = [\"{GROUP_ALL}\"]\n")).await;
    // The group does not exist: every attempt is 404 until the retries run out.
    let a = t
        .post_until(
            &sample_body(),
            invite_relay::resilience::Deadline::after(std::time::Duration::from_secs(4)),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["status"], "invited");
    assert_eq!(a.body["delivered"], json!(["slack", "webhook"]));
    assert_eq!(a.body["groups"][0]["status"], "failed");
    assert!(t.graph.group_calls().len() > 1, "retried");
    assert!(t.logs.text().contains("group_add_failed"));
    assert_eq!(t.slack.delivered().len(), 1);
}

#[tokio::test]
async fn member_invitations_only_when_allowed() {
    let t = spawn_app_with(Options {
        env: vec![("ALLOW_MEMBER_INVITATIONS", "true".into())],
        ..Options::default()
    })
    .await;
    let mut b = sample_body();
    b["invitee"]["userType"] = "Member".into();
    assert_eq!(t.post(&b).await.status, 200);
    assert_eq!(
        t.graph.invitation_calls()[0].body["invitedUserType"],
        "Member"
    );
    // Without the setting the same event is refused before Graph (see refusals.rs).
}

#[tokio::test]
async fn lifecycle_configuration_errors_stop_start_up() {
    for (config, expect) in [
        (
            "[invitations]\nexisting_users = \"merge\"\n",
            "unknown variant `merge`",
        ),
        (
            "[invitations]\ngroups = [\"sales\"]\n",
            "invitations.groups",
        ),
        (
            "[invitations]\nsponsors = [\"1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6\", \"1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b7\", \"1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b8\", \"1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b9\", \"1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5ba\", \"1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5bb\"]\n",
            "at most 5",
        ),
        (
            "[[routes]]\nchannels = [\"slack\"]\ngroups = [\"x\"]\n",
            "routes[0].groups",
        ),
        // Graph's invitedUserMessageInfo: "Currently only 1 additional recipient is supported."
        (
            "[channels.microsoft]\ncc = [\"a@contoso.example\", \"b@contoso.example\"]\ncc_domains = [\"contoso.example\"]\n",
            "one CC recipient",
        ),
        (
            "[channels.microsoft]\ncc = [\"a@contoso.example\"]\ncc_owner = true\ncc_domains = [\"contoso.example\"]\n",
            "one CC recipient",
        ),
    ] {
        let (app, _parts) = try_spawn_app_with(Options {
            env: vec![("RELAY_CONFIG", config.to_owned())],
            ..Options::default()
        })
        .await;
        let e = app
            .err()
            .unwrap_or_else(|| panic!("{config} should not start"));
        assert!(e.contains(expect), "{config}: {e}");
    }
}

const MICROSOFT: &str = r#"
[channels.microsoft]
cc_owner = true
cc_domains = ["contoso.example"]

[channels.microsoft.templates.en]
message = "Welcome to Contoso's partner workspace, {{ invitee.name or invitee.email }}."

[channels.microsoft.templates.de]
message = "Willkommen im Partnerbereich von Contoso, {{ invitee.name or invitee.email }}."

[channels.slack]
"#;

#[tokio::test]
async fn microsoft_sends_its_own_email_when_a_route_asks_for_it() {
    let t = app(MICROSOFT).await;
    let mut b = event("evt_ms_mail");
    b["invitee"]["language"] = "de".into();
    b["owner"] = json!({"email": "grace@contoso.example"});
    b["delivery"] = json!({"channels": ["microsoft", "slack"]});
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["delivered"], json!(["microsoft", "slack"]));
    let body = &t.graph.invitation_calls()[0].body;
    assert_eq!(body["sendInvitationMessage"], true);
    assert_eq!(
        body["invitedUserMessageInfo"],
        json!({
            "messageLanguage": "de",
            "customizedMessageBody": "Willkommen im Partnerbereich von Contoso, Ada Lovelace.",
            "ccRecipients": [{"emailAddress": {"address": "grace@contoso.example"}}]
        })
    );
    assert_eq!(
        t.slack.delivered().len(),
        1,
        "our own channel still gets the link"
    );
    t.assert_logs_clean(&[SAMPLE_EMAIL, "grace@contoso.example"]);
}

#[tokio::test]
async fn microsoft_email_is_sent_once_even_when_a_retry_reinvites() {
    let t = app(MICROSOFT).await;
    t.slack.fail_next(devkit::ReceiverFault::Status(404));
    let mut b = event("evt_ms_retry");
    b["delivery"] = json!({"channels": ["microsoft", "slack"]});
    let a = t.post(&b).await;
    a.assert_problem(503, "delivery-failed");
    assert_eq!(a.body["delivered"], json!(["microsoft"]));
    let again = t.post(&b).await;
    assert_eq!(again.status, 200, "{}", again.raw);
    let calls = t.graph.invitation_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].body["sendInvitationMessage"], true);
    assert_eq!(
        calls[1].body["sendInvitationMessage"], false,
        "no second Microsoft email"
    );
    assert!(calls[1].body.get("invitedUserMessageInfo").is_none());
}

#[tokio::test]
async fn microsoft_email_without_a_template_uses_microsofts_text() {
    let t = app("[channels.microsoft]\n[channels.slack]\n").await;
    let mut b = event("evt_ms_plain");
    b["delivery"] = json!({"channels": ["microsoft"]});
    assert_eq!(t.post(&b).await.status, 200);
    let body = &t.graph.invitation_calls()[0].body;
    assert_eq!(body["sendInvitationMessage"], true);
    assert_eq!(body["invitedUserMessageInfo"], json!({"ccRecipients": []}));
    assert!(t.slack.received().is_empty());
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/devkit/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn certificate_app(private_key: &str) -> TestApp {
    let mut secret = serde_json::Map::new();
    secret.insert(
        "graph_client_certificate".into(),
        fixture("test-app-cert.pem").into(),
    );
    secret.insert("graph_client_private_key".into(), private_key.into());
    spawn_app_with(Options {
        secret,
        ..Options::default()
    })
    .await
}

fn jwt_part(jwt: &str, i: usize) -> Value {
    use base64::Engine as _;
    let raw = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_certificate_signs_the_client_assertion_the_emulator_verifies() {
    let t = certificate_app(&fixture("test-app-key.pem")).await;
    let thumbprint = t.graph.register_certificate(
        &fixture("test-app-cert.pem"),
        &fixture("test-app-pubkey.pem"),
    );
    let a = t.post(&event("evt_cert")).await;
    assert_eq!(a.status, 200, "{}", a.raw);

    let call = &t.graph.token_calls()[0];
    assert_eq!(call.status, 200);
    assert_eq!(
        call.form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert!(
        !call.form.contains_key("client_secret"),
        "the certificate replaces the secret"
    );
    let jwt = &call.form["client_assertion"];
    let header = jwt_part(jwt, 0);
    // The pair Microsoft's current certificate-credentials page documents.
    assert_eq!(header["alg"], "PS256");
    assert_eq!(header["x5t#S256"], thumbprint.as_str());
    assert!(header.get("x5t").is_none());
    let claims = jwt_part(jwt, 1);
    let settings = t.graph.settings();
    assert_eq!(
        claims["aud"],
        format!("{}/{}/oauth2/v2.0/token", t.graph.url, settings.tenant_id)
    );
    assert_eq!(claims["iss"], settings.client_id.as_str());
    assert_eq!(claims["sub"], settings.client_id.as_str());
    let lifetime = claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap();
    assert!(lifetime > 0 && lifetime <= 600, "short-lived: {lifetime}s");

    // A later token gets a fresh assertion (the emulator refuses a replayed jti).
    t.graph.revoke_tokens();
    let mut b = event("evt_cert_2");
    b["invitee"]["email"] = "bob@partner.example".into();
    assert_eq!(t.post(&b).await.status, 200);
    let calls = t.graph.token_calls();
    assert_eq!(calls.len(), 2);
    assert_ne!(
        jwt_part(&calls[1].form["client_assertion"], 1)["jti"],
        claims["jti"]
    );
    t.assert_logs_clean(&[SAMPLE_EMAIL, "bob@partner.example"]);
    assert!(
        !t.logs.text().contains(jwt.as_str()),
        "the assertion is not logged"
    );
}

#[tokio::test]
async fn a_wrong_key_or_an_unregistered_certificate_is_refused() {
    // Signed with another key than the certificate's.
    let t = certificate_app(&fixture("other-key.pem")).await;
    t.graph.register_certificate(
        &fixture("test-app-cert.pem"),
        &fixture("test-app-pubkey.pem"),
    );
    let a = t.post(&event("evt_wrong_key")).await;
    a.assert_problem(502, "upstream-auth");
    assert!(t.graph.token_calls().iter().all(|c| c.status == 401));
    assert!(t.graph.invitation_calls().is_empty());

    // The right key, but the certificate was never uploaded to the app.
    let t = certificate_app(&fixture("test-app-key.pem")).await;
    let a = t.post(&event("evt_unregistered")).await;
    a.assert_problem(502, "upstream-auth");
    assert!(t.graph.invitation_calls().is_empty());
}

#[tokio::test]
async fn half_a_certificate_stops_start_up() {
    let mut secret = serde_json::Map::new();
    secret.insert(
        "graph_client_certificate".into(),
        fixture("test-app-cert.pem").into(),
    );
    let (app, _parts) = try_spawn_app_with(Options {
        secret,
        ..Options::default()
    })
    .await;
    let e = app.err().unwrap();
    assert!(e.contains("graph_client_private_key"), "{e}");
    assert!(!e.contains("BEGIN"), "no key material in errors");
}

/// Two partners invited through the relay, one pending long enough for a reminder; a guest the
/// relay never invited; all in a DynamoDB table.
async fn follow_up_app() -> TestApp {
    let table = create_table().await;
    let t = spawn_app_with(Options {
        env: vec![("IDEMPOTENCY_TABLE", table)],
        ..Options::default()
    })
    .await;
    let mut a = event("evt_follow_a");
    a["invitee"]["email"] = "ada@partner.example".into();
    assert_eq!(t.post(&a).await.status, 200);
    let mut b = event("evt_follow_b");
    b["invitee"]["email"] = "bob@partner.example".into();
    b["delivery"] = json!({"channels": ["slack"]});
    assert_eq!(t.post(&b).await.status, 200);
    t.graph.set_state_changed("ada@partner.example", 10);
    t.graph.set_state_changed("bob@partner.example", 2);
    t.graph.seed_user(
        "carol@elsewhere.example",
        "Guest",
        Some("PendingAcceptance"),
        30,
    );
    t.graph.seed_user("dave@contoso.example", "Member", None, 0);
    t
}

#[tokio::test]
async fn the_scheduled_sweep_resends_a_fresh_link_through_the_original_channels_once() {
    let t = follow_up_app().await;
    let scheduled = load_event("eventbridge-scheduled-follow-up.json");
    let deadline = invite_relay::resilience::Deadline::after(std::time::Duration::from_secs(20));
    let out = invite_relay::worker::handle(&t.app, scheduled.clone(), deadline)
        .await
        .unwrap();
    // Only the two guests the relay invited are read; Carol (pending, not the relay's) isn't.
    assert_eq!(
        out,
        json!({"status": "sweep", "actions": {"still-pending": 1, "reminded": 1}})
    );
    let reads: Vec<_> = t
        .graph
        .user_calls()
        .into_iter()
        .filter(|c| c.method == "GET")
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    // Ada's first link went to Slack and the webhook: the reminder does too, with a new link.
    let urls = t.graph.redeem_urls();
    assert_eq!(urls.len(), 3);
    let slack = t.slack.delivered();
    assert_eq!(slack.len(), 3, "two first links and one reminder");
    assert!(slack[2].body.contains(urls[2].as_str()));
    let hooks = t.hook.delivered();
    assert_eq!(hooks.len(), 2);
    assert!(hooks[1].body.contains(urls[2].as_str()));
    assert_ne!(hooks[0].header("webhook-id"), hooks[1].header("webhook-id"));
    let reinvite = &t.graph.invitation_calls()[2].body;
    assert_eq!(reinvite["invitedUserEmailAddress"], "ada@partner.example");
    assert_eq!(reinvite["sendInvitationMessage"], false);

    // The schedule runs again the same period: nobody is reminded twice.
    let again = invite_relay::worker::handle(&t.app, scheduled, deadline)
        .await
        .unwrap();
    assert_eq!(again["actions"], json!({"still-pending": 2}));
    assert_eq!(t.slack.delivered().len(), 3);
    assert_eq!(t.graph.invitation_calls().len(), 3);
    t.assert_logs_clean(&[
        "ada@partner.example",
        "bob@partner.example",
        "carol@elsewhere.example",
    ]);
}

/// Past one page of pending guests (Graph pages at 999 at most), the operator's listing
/// follows `@odata.nextLink` and sees every one.
#[tokio::test]
async fn the_pending_listing_reads_every_page_of_pending_guests() {
    let t = follow_up_app().await;
    for i in 0..1000 {
        t.graph.seed_user(
            &format!("waiting{i:04}@elsewhere.example"),
            "Guest",
            Some("PendingAcceptance"),
            30,
        );
    }
    let deadline = invite_relay::resilience::Deadline::after(std::time::Duration::from_secs(60));
    let listed = t.app.follow_up(7, false, deadline).await.unwrap();
    assert_eq!(listed.len(), 1003);
    let count = |a: FollowUpAction| listed.iter().filter(|i| i.action == a).count();
    assert_eq!(count(FollowUpAction::NoRecord), 1001);
    assert_eq!(count(FollowUpAction::Due), 1);
    assert_eq!(count(FollowUpAction::NotDue), 1);
    let pages = t
        .graph
        .user_queries()
        .into_iter()
        .filter(|q| q.filter.starts_with("externalUserState"))
        .count();
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn the_pending_command_lists_guests_for_an_operator() {
    let t = follow_up_app().await;
    // The emulators run in this process: the command runs beside them, not blocking them.
    let run = |args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_invite-relay"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", aws_endpoint())
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .envs(t.env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(args);
        async move {
            let o = cmd.output().await.unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        }
    };
    let listed = run(&["pending", "--days", "7"]).await;
    let lines: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{listed}");
    let ada = lines
        .iter()
        .find(|l| l["action"] == "due")
        .expect("Ada is due");
    assert_eq!(ada["daysPending"], 10);
    assert_eq!(ada["channels"], json!(["slack", "webhook"]));
    assert!(!listed.contains('@'), "no addresses without --show-emails");
    assert_eq!(t.graph.invitation_calls().len(), 2, "listing sends nothing");

    let shown = run(&["pending", "--days", "7", "--show-emails"]).await;
    assert!(shown.contains("ada@partner.example"));

    // One sweep by hand: what the worker's schedule runs.
    t.graph.accept("bob@partner.example");
    let swept: Value = serde_json::from_str(run(&["sweep"]).await.trim()).unwrap();
    assert_eq!(
        swept,
        json!({"status": "sweep", "actions": {"redeemed": 1, "reminded": 1}})
    );
    assert_eq!(t.graph.invitation_calls().len(), 3, "Ada reminded, Bob not");
}
