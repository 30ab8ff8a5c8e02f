//! The per-event work of the webhook function, in process, without the network: decode the
//! Lambda event, verify the signature, parse and map the body, validate, build the Graph request
//! body, and render the Slack message from its template.
//!
//! `cargo bench --bench hot_path` (a short run: `-- --sample-count 3 --sample-size 3`).

use devkit::events;
use invite_relay::config::Config;
use invite_relay::delivery::{ChannelKind, Message, Rendered, render};
use invite_relay::domain::{
    DisplayName, EventDetails, Invitation, InvitationRequest, InviteeEmail, UserType,
};
use invite_relay::inbound::{self, Interpretation, signature::Signed};
use secrecy::SecretString;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() {
    divan::main();
}

fn config() -> Config {
    let env = [
        ("RELAY_SECRET_ID", "bench"),
        ("GRAPH_TENANT_ID", "contoso.onmicrosoft.com"),
        ("GRAPH_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
        (
            "INVITE_REDIRECT_URL",
            "https://myapps.microsoft.com/?tenantid=7b8f2c1e-0d4a-4e6b-9c3f-5a1d2e3f4a5b",
        ),
    ];
    Config::from_lookup(|k| {
        env.iter()
            .find(|(ek, _)| *ek == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
}

fn signed_event() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/function-url-generic.json"
    );
    let mut e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    events::sign_event(&mut e, SECRET);
    e.to_string()
}

#[divan::bench]
fn hot_path(bencher: divan::Bencher) {
    let config = config();
    let source = &config.sources["generic"];
    let keys = [source.scheme.key(&SecretString::from(SECRET)).unwrap()];
    let event = signed_event();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let invitation = Invitation {
        id: "9071bfde-35e0-47d2-a582-d244ab1b4af6".into(),
        invited_user_id: "cbb896f9-8306-49d0-b56b-b8e39cd28825".into(),
        status: "PendingAcceptance".into(),
        redeem_url: SecretString::from(
            "https://login.microsoftonline.com/redeem?rd=https%3a%2f%2finvitations.microsoft.com%2fredeem%2f%3fticket%3dx",
        ),
    };
    bencher.bench_local(|| {
        let payload: serde_json::Value = serde_json::from_str(divan::black_box(&event)).unwrap();
        let req = inbound::lambda::to_request(payload, None).unwrap();
        let body = inbound::http::checked_body(&req, config.inbound.max_body_bytes, source.format)
            .unwrap();
        let uri = req.uri().to_string();
        let signed = Signed {
            headers: req.headers(),
            body,
            method: "POST",
            uri: &uri,
            now_unix: now,
            key_name: None,
        };
        source.scheme.verify(&keys, &signed).unwrap();
        let parsed = inbound::json::parse(body).unwrap();
        let Ok(Interpretation::Invite(ev)) = source.interpret(&parsed) else {
            panic!("sample invites")
        };
        let request = InvitationRequest::new(
            InviteeEmail::parse(&ev.email).unwrap(),
            ev.display_name.as_deref().and_then(DisplayName::parse),
            UserType::Guest,
            config
                .invitees
                .redirect
                .choose(ev.redirect_url.as_deref())
                .unwrap(),
        );
        let graph_body = serde_json::to_vec(&request).unwrap();
        let msg = Message {
            source: &source.name,
            event_id: &ev.event_id,
            email: &request.invited_user_email_address,
            display_name: request.invited_user_display_name.as_ref(),
            details: &EventDetails {
                event_type: ev.event_type.clone(),
                company: ev.company.clone(),
                language: ev.language.clone(),
                owner_email: ev.owner_email.clone(),
                owner_id: None,
                fields: ev.fields.clone(),
            },
            invitation: &invitation,
        };
        let Ok(Rendered::Json(slack)) = render(
            "slack",
            ChannelKind::Slack,
            &config.delivery.templates,
            &msg,
        ) else {
            panic!("slack renders")
        };
        let slack = slack.to_string();
        (graph_body.len(), slack.len())
    });
}
