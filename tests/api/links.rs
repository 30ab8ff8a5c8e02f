//! Managed links end to end through the real handler: the link a channel delivers, its page
//! (GET: no side effect), Accept (POST: a fresh redeem link, one re-invitation, the owner told
//! once), and every way it can't be used.

use std::time::Duration;

use invite_relay::links::{LinkKeys, Sealed, new_token};
use invite_relay::resilience::Deadline;
use invite_relay::store::{DynamoStore, EventKey, LinkRecord, LinkState, Store};
use serde_json::Value;

use crate::helpers::*;

pub const LINK_KEY: &str = "link-key-0123456789abcdef0123456789abcdef";
pub const BASE: &str = "https://partners.contoso.example/";

pub fn config() -> String {
    r#"
[brand]
name = "Contoso"
support_email = "partners@contoso.example"

[channels.slack]
link = "managed"

[channels.webhook]

[[routes]]
channels = ["slack", "webhook"]

[[routes]]
on = ["invitation.opened"]
channels = ["webhook"]
"#
    .into()
}

pub async fn links_app(extra_env: Vec<(&'static str, String)>) -> TestApp {
    let mut secret = serde_json::Map::new();
    secret.insert("link_key".into(), LINK_KEY.into());
    let mut env = vec![
        ("RELAY_CONFIG", config()),
        ("LINK_BASE_URL", BASE.to_owned()),
    ];
    env.extend(extra_env);
    spawn_app_with(Options {
        secret,
        env,
        ..Options::default()
    })
    .await
}

/// The managed link in the Slack message of the `n`th delivery.
pub fn managed_link(t: &TestApp, n: usize) -> String {
    let body = &t.slack.delivered()[n].body;
    let start = body.find(BASE).expect("a managed link in the message");
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_/:.".contains(*c))
        .collect()
}

pub fn token_of(link: &str) -> String {
    link.rsplit('/').next().unwrap().to_owned()
}

/// A Function URL request for the page.
pub fn page_event(method: &str, token: &str, ip: &str, form: Option<&str>) -> Value {
    let mut e = load_event("function-url-generic.json");
    let path = format!("/i/{token}");
    e["rawPath"] = path.clone().into();
    e["requestContext"]["http"]["path"] = path.into();
    e["requestContext"]["http"]["method"] = method.into();
    e["requestContext"]["http"]["sourceIp"] = ip.into();
    let h = e["headers"].as_object_mut().unwrap();
    h.retain(|k, _| !k.starts_with("webhook-") && k != "content-length");
    match form {
        Some(f) => {
            h.insert(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            );
            e["body"] = f.into();
        }
        None => {
            h.remove("content-type");
            e.as_object_mut().unwrap().remove("body");
        }
    }
    e
}

pub struct Page {
    pub status: u16,
    pub headers: Value,
    pub html: String,
}

impl Page {
    pub fn nonce(&self) -> String {
        let at = self.html.find("name=\"nonce\" value=\"").expect("a form") + 20;
        self.html[at..].split('"').next().unwrap().to_owned()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers[name].as_str().unwrap_or("")
    }
}

pub async fn call(t: &TestApp, event: Value) -> Page {
    let r = t.app.on_lambda_event(event, None).await;
    Page {
        status: r["statusCode"].as_u64().unwrap() as u16,
        headers: r["headers"].clone(),
        html: r["body"].as_str().unwrap_or("").to_owned(),
    }
}

fn invitations(t: &TestApp) -> usize {
    t.graph.invitation_calls().len()
}

fn opened(t: &TestApp) -> Vec<Value> {
    t.hook
        .delivered()
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .filter(|b| b["type"] == "invitation.opened")
        .collect()
}

#[tokio::test]
async fn a_managed_link_is_delivered_shown_and_accepted_once() {
    let table = create_table().await;
    let t = links_app(vec![("IDEMPOTENCY_TABLE", table.clone())]).await;
    let a = t.post(&sample_body()).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    let first_redeem = t.graph.redeem_urls()[0].clone();
    // Slack gets the managed link, never Graph's; the direct webhook keeps Graph's.
    let link = managed_link(&t, 0);
    assert!(!t.slack.delivered()[0].body.contains(&first_redeem));
    assert!(
        t.hook.delivered()[0]
            .body
            .contains(&first_redeem.replace('&', "\\u0026"))
            || t.hook.delivered()[0].body.contains(&first_redeem)
    );
    let token = token_of(&link);
    assert_eq!(token.len(), 43);
    // The table holds neither the token nor the address.
    let items = scan_table(&table).await.join("\n");
    assert!(!items.contains(&token));
    assert!(!items.contains(SAMPLE_EMAIL));

    // GET: the page, twice, with nothing happening.
    let page = call(&t, page_event("GET", &token, "198.51.100.7", None)).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(
        page.header("content-security-policy")
            .contains("default-src 'none'")
    );
    assert!(
        page.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    assert!(page.html.contains("Contoso invites you"));
    assert!(page.html.contains("Ada Lovelace"));
    assert!(page.html.contains("a•••@partner.example"), "{}", page.html);
    assert!(!page.html.contains(SAMPLE_EMAIL));
    assert!(!page.html.contains("<script"));
    call(&t, page_event("GET", &token, "198.51.100.7", None)).await;
    assert_eq!(
        invitations(&t),
        1,
        "a GET (a mail scanner's prefetch) consumes nothing"
    );
    assert!(opened(&t).is_empty());

    // POST with the page's nonce: a fresh redeem link for the same guest, and the owner told.
    let nonce = page.nonce();
    let accepted = call(
        &t,
        page_event(
            "POST",
            &token,
            "198.51.100.7",
            Some(&format!("nonce={nonce}")),
        ),
    )
    .await;
    assert_eq!(accepted.status, 303, "{}", accepted.html);
    assert_eq!(invitations(&t), 2, "one re-invitation");
    let fresh = t.graph.redeem_urls()[1].clone();
    assert_eq!(accepted.header("location"), fresh);
    assert_ne!(fresh, first_redeem);
    assert_eq!(accepted.header("referrer-policy"), "no-referrer");
    assert!(accepted.html.is_empty(), "the link only in Location");
    let reinvite = &t.graph.invitation_calls()[1].body;
    assert_eq!(reinvite["invitedUserEmailAddress"], SAMPLE_EMAIL);
    assert_eq!(reinvite["sendInvitationMessage"], false);
    let guest = t.graph.user(SAMPLE_EMAIL).unwrap().id;
    assert_eq!(
        t.graph.invitation_calls()[1].status,
        201,
        "re-invited the same address"
    );
    assert_eq!(guest, a.body["invitedUserId"], "the same guest account");
    let o = opened(&t);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0]["data"]["eventId"], sample_body()["id"]);
    assert!(!o[0].to_string().contains("redeem"));

    // Again (the partner closed the tab): a new redeem link, but the owner isn't told twice.
    let again = call(
        &t,
        page_event(
            "POST",
            &token,
            "198.51.100.7",
            Some(&format!("nonce={nonce}")),
        ),
    )
    .await;
    assert_eq!(again.status, 303);
    assert_eq!(opened(&t).len(), 1);
    let logs = t.logs.text();
    assert!(!logs.contains(&token), "no token in logs");
    for url in t.graph.redeem_urls() {
        assert!(!logs.contains(&url), "no redeem link in logs");
    }
    t.assert_logs_clean(&[SAMPLE_EMAIL]);
}

#[tokio::test]
async fn an_accept_without_the_pages_nonce_is_refused() {
    let t = links_app(vec![]).await;
    t.post(&sample_body()).await;
    let token = token_of(&managed_link(&t, 0));
    let mut b = sample_body();
    b["id"] = "evt_other".into();
    b["invitee"]["email"] = "bob@partner.example".into();
    t.post(&b).await;
    let other = token_of(&managed_link(&t, 1));
    let other_nonce = call(&t, page_event("GET", &other, "198.51.100.8", None))
        .await
        .nonce();
    for form in [
        None,
        Some("nonce=".to_owned()),
        Some("nonce=AAAA".to_owned()),
        Some(format!("nonce={other_nonce}")),
    ] {
        let p = call(
            &t,
            page_event("POST", &token, "198.51.100.8", form.as_deref()),
        )
        .await;
        assert_eq!(p.status, 403, "{form:?}");
        assert!(p.html.contains("<form"), "a fresh page to try again");
    }
    assert_eq!(invitations(&t), 2, "no re-invitation");
    for method in ["PUT", "DELETE"] {
        let p = call(&t, page_event(method, &token, "198.51.100.8", None)).await;
        assert_eq!(p.status, 405);
        assert_eq!(p.header("allow"), "GET, POST");
    }
}

#[tokio::test]
async fn revoked_expired_and_unknown_links_say_what_to_do() {
    let table = create_table().await;
    let t = links_app(vec![("IDEMPOTENCY_TABLE", table.clone())]).await;
    t.post(&sample_body()).await;
    let token = token_of(&managed_link(&t, 0));

    let unknown = call(
        &t,
        page_event("GET", &new_token().unwrap(), "198.51.100.9", None),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.html.contains("no longer works"));
    assert!(unknown.html.contains("partners@contoso.example"));
    let malformed = call(&t, page_event("GET", "not-a-token", "198.51.100.9", None)).await;
    assert_eq!(malformed.status, 404);

    // An expired link (written as the relay writes one, with an expiry in the past).
    let keys = LinkKeys::new(LINK_KEY.as_bytes()).unwrap();
    let store = Store::Dynamo(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config().await),
        table,
        Duration::from_secs(3600),
    ));
    let old = new_token().unwrap();
    let hash = keys.hash(&old);
    store
        .put_link(LinkRecord {
            sealed: keys
                .seal(
                    &hash,
                    &Sealed {
                        email: SAMPLE_EMAIL.into(),
                        name: None,
                        language: None,
                    },
                )
                .unwrap(),
            hash,
            event: EventKey {
                source: "generic".into(),
                event_id: "evt_old".into(),
            },
            user_id: t.graph.user(SAMPLE_EMAIL).unwrap().id,
            redirect: "https://myapps.microsoft.com".into(),
            expires_at: devkit::events::now() as u64 - 60,
            state: LinkState::Active,
            opened_at: None,
        })
        .await
        .unwrap();
    let expired = call(&t, page_event("GET", &old, "198.51.100.9", None)).await;
    assert_eq!(expired.status, 410);
    assert!(expired.html.contains("no longer works"));

    // Revoked by the operator: the page says so, and Accept does nothing.
    let page = call(&t, page_event("GET", &token, "198.51.100.9", None)).await;
    let key = EventKey {
        source: "generic".into(),
        event_id: sample_body()["id"].as_str().unwrap().into(),
    };
    let n = t
        .app
        .revoke_links(
            &invite_relay::app::LinkTarget::Event(key),
            Deadline::after(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        call(&t, page_event("GET", &token, "198.51.100.9", None))
            .await
            .status,
        410
    );
    let post = call(
        &t,
        page_event(
            "POST",
            &token,
            "198.51.100.9",
            Some(&format!("nonce={}", page.nonce())),
        ),
    )
    .await;
    assert_eq!(post.status, 410);
    assert_eq!(invitations(&t), 1);
}

#[tokio::test]
async fn a_guest_who_redeemed_is_sent_on_and_a_deleted_one_invited_again() {
    let t = links_app(vec![]).await;
    t.post(&sample_body()).await;
    let token = token_of(&managed_link(&t, 0));
    let nonce = call(&t, page_event("GET", &token, "198.51.100.10", None))
        .await
        .nonce();

    t.graph.accept(SAMPLE_EMAIL);
    let p = call(
        &t,
        page_event(
            "POST",
            &token,
            "198.51.100.10",
            Some(&format!("nonce={nonce}")),
        ),
    )
    .await;
    assert_eq!(p.status, 200);
    assert!(p.html.contains("already accepted"), "{}", p.html);
    assert!(p.html.contains("myapps.microsoft.com"), "{}", p.html);
    assert_eq!(invitations(&t), 1, "no re-invitation for a redeemed guest");

    let first = t.graph.user(SAMPLE_EMAIL).unwrap().id;
    t.graph.delete_user(SAMPLE_EMAIL);
    let p = call(
        &t,
        page_event(
            "POST",
            &token,
            "198.51.100.10",
            Some(&format!("nonce={nonce}")),
        ),
    )
    .await;
    assert_eq!(p.status, 303);
    let again = t.graph.user(SAMPLE_EMAIL).unwrap().id;
    assert_ne!(first, again, "the deleted guest is invited afresh");
}

#[tokio::test]
async fn guessing_and_repeated_accepts_are_rate_limited() {
    let t = links_app(vec![
        ("LINK_REQUESTS_PER_IP_PER_MINUTE", "5".into()),
        ("LINK_ACCEPTS_PER_HOUR", "2".into()),
    ])
    .await;
    t.post(&sample_body()).await;
    let token = token_of(&managed_link(&t, 0));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let guess = new_token().unwrap();
        statuses.push(
            call(&t, page_event("GET", &guess, "192.0.2.66", None))
                .await
                .status,
        );
    }
    assert_eq!(statuses, vec![404, 404, 404, 404, 404, 429]);
    // The real token from that address is limited too; from another it works.
    assert_eq!(
        call(&t, page_event("GET", &token, "192.0.2.66", None))
            .await
            .status,
        429
    );
    let page = call(&t, page_event("GET", &token, "192.0.2.67", None)).await;
    assert_eq!(page.status, 200);
    let form = format!("nonce={}", page.nonce());
    let mut accepts = Vec::new();
    for i in 0..3 {
        let ip = format!("192.0.2.{}", 100 + i);
        accepts.push(
            call(&t, page_event("POST", &token, &ip, Some(&form)))
                .await
                .status,
        );
    }
    assert_eq!(
        accepts,
        vec![303, 303, 429],
        "per link, whatever the address"
    );
    assert_eq!(invitations(&t), 3);
    assert!(
        t.logs
            .lines()
            .iter()
            .any(|l| l["alarm"] == "link_rate_limited")
    );
}

#[tokio::test]
async fn managed_links_fail_closed_without_their_settings() {
    let (app, _parts) = try_spawn_app_with(Options {
        env: vec![("RELAY_CONFIG", config())],
        ..Options::default()
    })
    .await;
    assert!(app.err().unwrap().contains("LINK_BASE_URL"));
    let (app, _parts) = try_spawn_app_with(Options {
        env: vec![("RELAY_CONFIG", config()), ("LINK_BASE_URL", BASE.into())],
        ..Options::default()
    })
    .await;
    assert!(app.err().unwrap().contains("link_key"));
    let (app, _parts) = try_spawn_app_with(Options {
        env: vec![
            ("RELAY_CONFIG", config()),
            ("LINK_BASE_URL", "http://partners.contoso.example/".into()),
        ],
        ..Options::default()
    })
    .await;
    assert!(app.err().unwrap().contains("LINK_BASE_URL"));
}

/// `link issue`: the guest's links are revoked and a fresh one goes out through the same
/// channels (a new invitation for the same guest).
#[tokio::test]
async fn a_new_link_can_be_issued_and_the_old_one_ends() {
    let table = create_table().await;
    let t = links_app(vec![("IDEMPOTENCY_TABLE", table)]).await;
    t.post(&sample_body()).await;
    let old = token_of(&managed_link(&t, 0));
    let deadline = Deadline::after(Duration::from_secs(10));
    let target = invite_relay::app::LinkTarget::Email(SAMPLE_EMAIL.into());
    let outcome = t.app.issue_link(&target, deadline).await.unwrap();
    assert_eq!(outcome.status(), "invited", "{:?}", outcome.to_json());
    assert_eq!(t.slack.delivered().len(), 2);
    let new = token_of(&managed_link(&t, 1));
    assert_ne!(old, new);
    assert_eq!(
        call(&t, page_event("GET", &old, "198.51.100.20", None))
            .await
            .status,
        410
    );
    assert_eq!(
        call(&t, page_event("GET", &new, "198.51.100.20", None))
            .await
            .status,
        200
    );
    assert_eq!(invitations(&t), 2, "one new invitation for the same guest");
    let revoked = t.app.revoke_links(&target, deadline).await.unwrap();
    assert_eq!(revoked, 1, "only the new one was still active");
    assert_eq!(
        call(&t, page_event("GET", &new, "198.51.100.20", None))
            .await
            .status,
        410
    );
}
