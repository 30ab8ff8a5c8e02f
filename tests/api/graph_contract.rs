//! The Graph emulator holds the relay to the documented contract: these requests, each wrong in
//! one documented way, are refused with Graph's error body, so a typo or a wrong type in the
//! relay's requests fails the end-to-end tests instead of passing silently.

use devkit::{GraphEmulator, GraphSettings};
use serde_json::{Value, json};

struct Graph {
    emulator: GraphEmulator,
    http: reqwest::Client,
    token: String,
}

async fn graph() -> Graph {
    let emulator = GraphEmulator::start(GraphSettings::default(), 0)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let s = emulator.settings().clone();
    let t: Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            emulator.url, s.tenant_id
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.as_str()),
            ("scope", format!("{}/.default", emulator.url).as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Graph {
        token: t["access_token"].as_str().unwrap().to_owned(),
        emulator,
        http,
    }
}

impl Graph {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.bearer_auth(&self.token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    async fn invite(&self, body: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}/v1.0/invitations", self.emulator.url))
                .json(&body),
        )
        .await
    }
}

/// Graph's error body: `error.code`, `error.message`, `error.innerError`.
fn assert_graph_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string());
    assert!(body["error"]["innerError"]["request-id"].is_string());
}

fn valid() -> Value {
    json!({"invitedUserEmailAddress": "ada@partner.example",
           "inviteRedirectUrl": "https://myapps.microsoft.com"})
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = valid();
    f(&mut v);
    v
}

#[tokio::test]
async fn invitation_bodies_off_the_documented_shape_are_refused() {
    let g = graph().await;
    assert_eq!(g.invite(valid()).await.0, 201);
    let sponsor = |id: &str| json!({"id": id});
    let guid = "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6";
    let cases = [
        (
            "a misspelt property",
            with(|v| v["invitedUserEmail"] = "x@y.example".into()),
        ),
        (
            "a boolean as a string",
            with(|v| v["sendInvitationMessage"] = "false".into()),
        ),
        (
            "no redirect",
            with(|v| {
                v.as_object_mut().unwrap().remove("inviteRedirectUrl");
            }),
        ),
        (
            "a forbidden character",
            with(|v| v["invitedUserEmailAddress"] = "ada+x@partner.example".into()),
        ),
        (
            "six sponsors",
            with(|v| v["invitedUserSponsors"] = json!(vec![sponsor(guid); 6])),
        ),
        (
            "a sponsor by email",
            with(|v| v["invitedUserSponsors"] = json!([{"id": "grace@contoso.example"}])),
        ),
        (
            "a sponsor as a string",
            with(|v| v["invitedUserSponsors"] = json!([guid])),
        ),
        (
            "invitedUser without a reset",
            with(|v| v["invitedUser"] = json!({"id": guid})),
        ),
        (
            "a reset without invitedUser",
            with(|v| v["resetRedemption"] = true.into()),
        ),
        (
            "an unknown message property",
            with(|v| v["invitedUserMessageInfo"] = json!({"language": "de"})),
        ),
        (
            "a CC without emailAddress",
            with(|v| {
                v["invitedUserMessageInfo"] = json!({"ccRecipients": ["grace@contoso.example"]})
            }),
        ),
        (
            "userType neither Guest nor Member",
            with(|v| v["invitedUserType"] = "Partner".into()),
        ),
    ];
    for (what, body) in cases {
        let (status, resp) = g.invite(body).await;
        assert_eq!(status, 400, "{what}: {resp}");
        assert_graph_error(&resp, "BadRequest");
    }
    // A reset for an address that isn't on the user.
    let id = g
        .emulator
        .seed_user("bob@partner.example", "Guest", Some("Accepted"), 1);
    let (status, resp) = g
        .invite(with(|v| {
            v["resetRedemption"] = true.into();
            v["invitedUser"] = json!({"id": id});
        }))
        .await;
    assert_eq!(status, 400);
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("doesn't match")
    );
}

#[tokio::test]
async fn user_queries_and_member_references_follow_the_documented_forms() {
    let g = graph().await;
    let users = format!("{}/v1.0/users", g.emulator.url);
    let get = |filter: &str, advanced: bool| {
        let mut params = vec![("$filter", filter)];
        if advanced {
            params.push(("$count", "true"));
        }
        let url = url::Url::parse_with_params(&users, params).unwrap();
        let r = g.http.get(url);
        if advanced {
            r.header("ConsistencyLevel", "eventual")
        } else {
            r
        }
    };
    let documented = invite_relay::graph::existing_user_filter("o'neil@partner.example");
    assert_eq!(g.send(get(&documented, true)).await.0, 200);
    let (status, body) = g.send(get(&documented, false)).await;
    assert_eq!(status, 400, "any() needs the advanced query parameters");
    assert_graph_error(&body, "Request_UnsupportedQuery");
    // Unescaped quotes, or another shape, are not the documented query.
    let unescaped = documented.replace("o''neil", "o'neil");
    let (status, body) = g.send(get(&unescaped, true)).await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest");
    assert_eq!(g.send(get("mail eq 'a@b.example'", true)).await.0, 400);

    let group = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b";
    g.emulator.add_group(group);
    let user = g
        .emulator
        .seed_user("ada@partner.example", "Guest", None, 0);
    let refs = format!("{}/v1.0/groups/{group}/members/$ref", g.emulator.url);
    let add = |body: Value| g.http.post(&refs).json(&body);
    let (status, body) = g.send(add(json!({"@odata.id": user}))).await;
    assert_eq!(status, 400, "the reference is a directoryObjects URL");
    assert_graph_error(&body, "Request_BadRequest");
    let good = json!({"@odata.id": format!("{}/v1.0/directoryObjects/{user}", g.emulator.url)});
    assert_eq!(g.send(add(good.clone())).await.0, 204);
    let (status, body) = g.send(add(good)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exist")
    );
    let (status, body) = g
        .send(
            g.http
                .post(format!("{}/v1.0/groups/00000000-0000-0000-0000-000000000000/members/$ref", g.emulator.url))
                .json(&json!({"@odata.id": format!("{}/v1.0/directoryObjects/{user}", g.emulator.url)})),
        )
        .await;
    assert_eq!(status, 404);
    assert_graph_error(&body, "Request_ResourceNotFound");
}
