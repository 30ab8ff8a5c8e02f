//! Every channel end to end through the real handler: branded email through SES (the AWS
//! emulator), a Teams Workflows Adaptive Card, Slack Block Kit and the signed webhook, each
//! with the structure its service requires, the link, a hostile name escaped, and retries on
//! 429/5xx; plus routing rules and their refusals.

use devkit::{FaultProxy, ReceiverFault};
use serde_json::{Value, json};

use crate::helpers::*;

const HOSTILE: &str =
    r#"<img src=x onerror=alert(1)> "Ada" & [Co](https://evil.example) <!channel>"#;
const SES_PATH: &str = "/v2/email/outbound-emails";

/// All four channels declared, branded, with the owner copied on email.
fn four_channels(extra: &str) -> String {
    format!(
        r#"
[brand]
name = "Contoso"
support_email = "partners@contoso.example"

[channels.email]
from = "Contoso Partners <partners@contoso.example>"
reply_to = ["partners@contoso.example"]
cc_owner = true
cc_domains = ["contoso.example"]

[channels.slack]

[channels.teams]

[channels.crm-hook]
kind = "webhook"
{extra}
"#
    )
}

async fn app_with(relay_config: String, aws_endpoint: Option<String>) -> TestApp {
    verify_ses_identity("contoso.example").await;
    spawn_app_with(Options {
        env: vec![("RELAY_CONFIG", relay_config)],
        teams: true,
        aws_endpoint,
        ..Options::default()
    })
    .await
}

/// A generic event for a fresh invitee (SES's sent mail is shared by every test).
fn event_for(email: &str) -> Value {
    let mut b = sample_body();
    b["id"] = format!("evt_{}", uuid_like()).into();
    b["invitee"]["email"] = email.into();
    b["invitee"]["displayName"] = HOSTILE.into();
    b["invitee"]["company"] = "Fabrikam <Ltd> & Sons".into();
    b["owner"] = json!({"email": "grace@contoso.example"});
    b.as_object_mut().unwrap().remove("delivery");
    b
}

fn fresh_email() -> String {
    format!("ada.{}@partner.example", uuid_like().replace('-', ""))
}

#[tokio::test]
async fn email_goes_through_ses_branded_escaped_with_owner_in_cc() {
    let t = app_with(four_channels(""), None).await;
    let email = fresh_email();
    let mut b = event_for(&email);
    b["delivery"] = json!({"channels": ["email"]});
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["delivered"], json!(["email"]));

    let sent = sent_emails(&email).await;
    assert_eq!(sent.len(), 1, "one email for {email}");
    let m = &sent[0];
    assert_eq!(m.source, "Contoso Partners <partners@contoso.example>");
    assert_eq!(m.to, vec![email.clone()]);
    assert_eq!(m.cc, vec!["grace@contoso.example".to_owned()]);
    assert!(
        m.subject.starts_with("Contoso invites you"),
        "{}",
        m.subject
    );

    // The link, HTML-escaped where it stands in an attribute or text (`&` → `&amp;`).
    let redeem = t.graph.redeem_urls().pop().unwrap();
    let mut escaped = String::new();
    invite_relay::delivery::templates::escape_html(&redeem, &mut escaped);
    assert!(
        m.html.contains(&format!("href=\"{escaped}\"")),
        "{}",
        m.html
    );
    // The hostile name and company are text, not markup.
    assert!(!m.html.contains("<img") && !m.html.contains("<Ltd>"));
    assert!(
        m.html
            .contains("&lt;img src=x onerror=alert(1)&gt; &quot;Ada&quot; &amp;")
    );
    assert!(m.html.contains("Fabrikam &lt;Ltd&gt; &amp; Sons"));
    assert!(m.html.contains("mailto:partners@contoso.example"));
    assert!(t.slack.received().is_empty() && t.teams.received().is_empty());
    t.assert_logs_clean(&[&email, "grace@contoso.example"]);
}

#[tokio::test]
async fn email_language_follows_the_invitee_with_a_fallback() {
    let t = app_with(four_channels(""), None).await;
    for (lang, subject) in [
        ("de-AT", "Einladung von Contoso"),
        ("ja", "Contoso invites you"),
    ] {
        let email = fresh_email();
        let mut b = event_for(&email);
        b["invitee"]["language"] = lang.into();
        b["delivery"] = json!({"channels": ["email"]});
        assert_eq!(t.post(&b).await.status, 200);
        let sent = sent_emails(&email).await;
        assert!(
            sent[0].subject.starts_with(subject),
            "{lang}: {}",
            sent[0].subject
        );
    }
}

#[tokio::test]
async fn email_retries_throttling_and_5xx_then_sends_once() {
    let proxy = FaultProxy::start(&aws_endpoint()).await.unwrap();
    let t = app_with(four_channels(""), Some(proxy.url.clone())).await;
    proxy.fail_next(SES_PATH, 429, "TooManyRequestsException");
    proxy.fail_next(SES_PATH, 503, "ServiceUnavailable");
    let email = fresh_email();
    let mut b = event_for(&email);
    b["delivery"] = json!({"channels": ["email"]});
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(proxy.statuses(SES_PATH), vec![429, 503, 200]);
    assert_eq!(sent_emails(&email).await.len(), 1);
}

#[tokio::test]
async fn email_rejection_is_permanent_and_not_retried() {
    let proxy = FaultProxy::start(&aws_endpoint()).await.unwrap();
    let t = app_with(four_channels(""), Some(proxy.url.clone())).await;
    proxy.fail_next(SES_PATH, 400, "MessageRejected");
    let email = fresh_email();
    let mut b = event_for(&email);
    b["delivery"] = json!({"channels": ["email", "slack"]});
    let a = t.post(&b).await;
    a.assert_problem(503, "delivery-failed");
    assert_eq!(a.body["delivered"], json!(["slack"]));
    assert_eq!(a.body["failed"][0]["channel"], "email");
    assert!(
        a.body["failed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("SES MessageRejected"),
        "{}",
        a.raw
    );
    assert_eq!(proxy.statuses(SES_PATH), vec![400], "not retried");
    assert!(sent_emails(&email).await.is_empty());
    t.assert_logs_clean(&[&email]);
}

#[tokio::test]
async fn teams_gets_an_adaptive_card_with_escaped_text_and_a_button() {
    let t = app_with(four_channels(""), None).await;
    let email = fresh_email();
    let mut b = event_for(&email);
    b["delivery"] = json!({"channels": ["teams"]});
    // Workflows throttles (429) and fails (502) before accepting.
    t.teams.fail_next(ReceiverFault::Status(429));
    t.teams.fail_next(ReceiverFault::Status(502));
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["delivered"], json!(["teams"]));

    let got = t.teams.received();
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429, 502, 200]
    );
    let r = &got[2];
    assert_eq!(r.path, "/workflows/a1b2c3/triggers/manual/paths/invoke");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let m = r.json();
    assert_eq!(m["type"], "message");
    let att = &m["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(att["contentUrl"].is_null());
    let card = &att["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    let body = card["body"].as_array().unwrap();
    assert!(
        body.iter()
            .all(|b| b["type"] == "TextBlock" && b["wrap"] == true)
    );
    let text = body[1]["text"].as_str().unwrap();
    assert!(
        text.contains(r"\[Co\]\(https\:\/\/evil\.example\)"),
        "{text}"
    );
    assert!(!text.contains("[Co](") && text.contains(r"Fabrikam \<Ltd\> \& Sons"));
    let action = &card["actions"][0];
    assert_eq!(action["type"], "Action.OpenUrl");
    assert_eq!(action["title"], "Accept the invitation");
    assert_eq!(action["url"], t.graph.redeem_urls().pop().unwrap().as_str());
    t.assert_logs_clean(&[&email]);
}

#[tokio::test]
async fn slack_gets_block_kit_with_escaped_mrkdwn_and_retries_5xx() {
    let t = app_with(four_channels(""), None).await;
    let email = fresh_email();
    let mut b = event_for(&email);
    b["delivery"] = json!({"channels": ["slack"]});
    t.slack.fail_next(ReceiverFault::Status(429));
    t.slack.fail_next(ReceiverFault::Status(500));
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let got = t.slack.received();
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429, 500, 200]
    );
    let m = got[2].json();
    let blocks = m["blocks"].as_array().unwrap();
    assert_eq!(
        blocks
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["section", "actions", "context"]
    );
    let section = blocks[0]["text"]["text"].as_str().unwrap();
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert!(section.contains("&lt;!channel&gt;") && !section.contains("<!channel>"));
    assert!(
        section.contains("Fabrikam &lt;Ltd&gt; &amp; Sons"),
        "{section}"
    );
    let button = &blocks[1]["elements"][0];
    assert_eq!(button["type"], "button");
    assert_eq!(button["text"]["type"], "plain_text");
    assert_eq!(button["url"], t.graph.redeem_urls().pop().unwrap().as_str());
    assert!(
        m["text"].as_str().unwrap().contains("&lt;img"),
        "fallback text escaped too"
    );
}

#[tokio::test]
async fn webhook_is_signed_with_a_stable_id_and_retried_on_5xx() {
    let t = app_with(four_channels(""), None).await;
    let email = fresh_email();
    let mut b = event_for(&email);
    b["delivery"] = json!({"channels": ["crm-hook"]});
    b["attributes"] = json!({"region": "emea", "pipeline": "partners"});
    t.hook.fail_next(ReceiverFault::Status(503));
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let got = t.hook.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "same id on retry"
    );
    let mut h = http::HeaderMap::new();
    for (k, v) in &got[1].headers {
        h.insert(
            http::HeaderName::try_from(k.as_str()).unwrap(),
            http::HeaderValue::try_from(v.as_str()).unwrap(),
        );
    }
    standardwebhooks::Webhook::new(DELIVERY_SECRET)
        .unwrap()
        .verify(got[1].body.as_bytes(), &h)
        .expect("signature verifies");
    let w = got[1].json();
    assert_eq!(w["channel"], "crm-hook");
    assert_eq!(
        w["data"]["displayName"], HOSTILE,
        "JSON carries the name as data"
    );
    assert_eq!(w["data"]["company"], "Fabrikam <Ltd> & Sons");
    assert_eq!(w["data"]["ownerEmail"], "grace@contoso.example");
    assert_eq!(
        w["data"]["fields"],
        json!({"region": "emea", "pipeline": "partners"})
    );
    assert_eq!(
        w["data"]["inviteRedeemUrl"],
        t.graph.redeem_urls().pop().unwrap().as_str()
    );
}

const ROUTES: &str = r#"
[[routes]]
name = "emea-partners"
when = "fields.region == 'emea' and fields.pipeline == 'partners'"
channels = ["teams", "email"]

[[routes]]
name = "partners"
when = "fields.pipeline == 'partners'"
channels = ["slack", "crm-hook"]
"#;

#[tokio::test]
async fn routes_choose_channels_from_event_fields() {
    let t = app_with(four_channels(ROUTES), None).await;

    let email = fresh_email();
    let mut b = event_for(&email);
    b["attributes"] = json!({"region": "emea", "pipeline": "partners"});
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["delivered"], json!(["teams", "email"]));
    assert_eq!(t.teams.delivered().len(), 1);
    assert_eq!(sent_emails(&email).await.len(), 1);
    assert!(t.slack.received().is_empty() && t.hook.received().is_empty());

    let mut b = event_for(&fresh_email());
    b["attributes"] = json!({"region": "amer", "pipeline": "partners"});
    let a = t.post(&b).await;
    assert_eq!(a.body["delivered"], json!(["slack", "crm-hook"]));
    assert_eq!(t.slack.delivered().len(), 1);
    assert_eq!(t.teams.delivered().len(), 1, "Teams not notified again");

    // The record keeps the per-channel outcome: a repeat answers which channels got the link.
    let again = t.post(&b).await;
    assert_eq!(again.body["status"], "duplicate");
    assert_eq!(again.body["delivered"], json!(["crm-hook", "slack"]));
}

#[tokio::test]
async fn no_matching_route_is_refused_before_inviting() {
    let t = app_with(four_channels(ROUTES), None).await;
    let mut b = event_for(&fresh_email());
    b["attributes"] = json!({"pipeline": "direct"});
    let a = t.post(&b).await;
    a.assert_problem(422, "no-route");
    assert!(t.graph.invitation_calls().is_empty(), "nothing half-done");
}

#[tokio::test]
async fn event_channel_choices_and_owner_copies_are_checked_before_inviting() {
    let t = app_with(four_channels(""), None).await;
    let mut b = event_for(&fresh_email());
    b["delivery"] = json!({"channels": ["pager"]});
    let a = t.post(&b).await;
    a.assert_problem(422, "unprocessable-event");
    assert_eq!(a.body["field"], "delivery.channels");

    // The link is only copied inside the organisation.
    let mut b = event_for(&fresh_email());
    b["owner"] = json!({"email": "mallory@elsewhere.example"});
    b["delivery"] = json!({"channels": ["email"]});
    let a = t.post(&b).await;
    a.assert_problem(422, "unprocessable-event");
    assert_eq!(a.body["field"], "ownerEmail");
    assert!(!a.raw.contains("mallory"));
    assert!(t.graph.invitation_calls().is_empty());
}

#[tokio::test]
async fn channel_configuration_errors_stop_start_up_with_the_setting_named() {
    let cases = [
        ("[channels.email]\n", "channels.email.from"),
        (
            "[channels.email]\nfrom = \"a@contoso.example\"\ncc_owner = true\n",
            "cc_owner needs cc_domains",
        ),
        ("[channels.pager]\n", "channels.pager.kind"),
        (
            "[channels.slack]\nfrom = \"a@b.example\"\n",
            "only for email",
        ),
        (
            "[channels.slack]\n[[routes]]\nchannels = [\"teams\"]\n",
            "routes[0].channels",
        ),
        (
            "[channels.slack]\n[channels.slack.templates.en]\nbody = \"{{ oops\"\n",
            "channels.slack.templates.en.body",
        ),
        (
            "[channels.email]\nfrom = \"a@contoso.example\"\n[channels.email.templates.en]\nhtml = \"<p>hi</p>\"\n",
            "invitation link",
        ),
        (
            "[channels.teams]\nurl_secret = \"missing_key\"\n",
            "missing_key",
        ),
    ];
    for (config, expect) in cases {
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

/// `invite-relay render` writes every channel's message in every language; the examples in
/// `docs/examples/` are its output for the sample there, so they can't drift from the
/// templates.
#[test]
fn render_command_reproduces_the_documented_examples() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let out = std::env::temp_dir().join(format!("invite-relay-render-{}", uuid_like()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_invite-relay"))
        .args(["render", "--config"])
        .arg(docs.join("relay.toml"))
        .arg("--event")
        .arg(docs.join("event.json"))
        .arg("--out")
        .arg(&out)
        .env_remove("RELAY_CONFIG")
        .status()
        .unwrap();
    assert!(status.success());
    let names = |dir: &std::path::Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !matches!(n.as_str(), "relay.toml" | "event.json" | "event-ended.json"))
            .collect()
    };
    let rendered = names(&out);
    assert_eq!(
        rendered,
        names(&docs),
        "docs/examples lists exactly what render writes"
    );
    for n in [
        "email.en.html",
        "email.de.html",
        "slack.en.json",
        "teams.en.json",
        "webhook.json",
    ] {
        assert!(rendered.contains(n), "{n}");
    }
    for n in &rendered {
        assert_eq!(
            std::fs::read_to_string(out.join(n)).unwrap(),
            std::fs::read_to_string(docs.join(n)).unwrap(),
            "docs/examples/{n} is stale: re-run the command in docs/examples/relay.toml"
        );
    }
    let html = std::fs::read_to_string(out.join("email.en.html")).unwrap();
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    let _ = std::fs::remove_dir_all(&out);

    // A template error is reported with its place, and nothing is written.
    let bad = std::env::temp_dir().join(format!("invite-relay-bad-{}.toml", uuid_like()));
    std::fs::write(
        &bad,
        "[channels.slack]\n[channels.slack.templates.en]\nbody = \"{% if %}\"\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_invite-relay"))
        .args(["render", "--config"])
        .arg(&bad)
        .arg("--event")
        .arg(docs.join("event.json"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("channels.slack.templates.en.body"));
    let _ = std::fs::remove_file(&bad);
}

#[tokio::test]
async fn a_message_that_fails_for_this_event_is_refused_before_inviting() {
    let config = r#"
[channels.slack]
[channels.slack.templates.en]
body = "{% if fields.region == 'emea' %}Welcome, EMEA partner{% endif %}"

[channels.email]
from = "partners@contoso.example"
[channels.email.templates.en]
html = "<p>{% if fields.pipeline == 'partners' %}<a href=\"{{ redeem_url }}\">Join</a>{% endif %}</p>"
"#;
    let t = app_with(config.to_owned(), None).await;
    let mut b = event_for(&fresh_email());
    b["attributes"] = json!({"region": "amer", "pipeline": "partners"});
    b["delivery"] = json!({"channels": ["slack"]});
    let a = t.post(&b).await;
    a.assert_problem(422, "unprocessable-event");
    assert_eq!(a.body["channel"], "slack");
    assert!(a.raw.contains("renders empty"), "{}", a.raw);

    let mut b = event_for(&fresh_email());
    b["attributes"] = json!({"region": "emea", "pipeline": "direct"});
    b["delivery"] = json!({"channels": ["email"]});
    let a = t.post(&b).await;
    a.assert_problem(422, "unprocessable-event");
    assert!(a.raw.contains("without the invitation link"), "{}", a.raw);
    assert!(t.graph.invitation_calls().is_empty(), "nothing invited");
}
