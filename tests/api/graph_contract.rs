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
    // The existing-user query's lambdas over otherMails and proxyAddresses are supported by
    // default (aad-advanced-queries; the Entra "onboard external users" article queries
    // otherMails/any without the header), and with the advanced parameters too.
    let documented = invite_relay::graph::existing_user_filter("o'neil@partner.example");
    assert_eq!(g.send(get(&documented, true)).await.0, 200);
    assert_eq!(g.send(get(&documented, false)).await.0, 200);
    // `ne`, `not` and `endsWith` are advanced-only.
    for advanced_only in [
        "externalUserState ne 'Accepted'",
        "endsWith(mail,'@partner.example')",
    ] {
        let (status, body) = g.send(get(advanced_only, false)).await;
        assert_eq!(status, 400, "{advanced_only}");
        assert_graph_error(&body, "Request_UnsupportedQuery");
    }
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

#[tokio::test]
async fn user_listings_page_as_graph_pages() {
    let g = graph().await;
    for i in 0..250 {
        g.emulator.seed_user(
            &format!("pending{i:03}@partner.example"),
            "Guest",
            Some("PendingAcceptance"),
            3,
        );
    }
    let list = |top: Option<&str>| {
        let mut params = vec![("$filter", "externalUserState eq 'PendingAcceptance'")];
        if let Some(t) = top {
            params.push(("$top", t));
        }
        url::Url::parse_with_params(&format!("{}/v1.0/users", g.emulator.url), params).unwrap()
    };
    // Default page 100, then the whole nextLink until it is gone.
    let mut seen = std::collections::HashSet::new();
    let mut url = list(None);
    let mut pages = 0;
    loop {
        let (status, body) = g.send(g.http.get(url.clone())).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.get("@odata.count").is_none(),
            "no count without the header"
        );
        let page = body["value"].as_array().unwrap();
        assert!(page.len() <= 100);
        for u in page {
            assert!(
                seen.insert(u["id"].as_str().unwrap().to_owned()),
                "repeated"
            );
        }
        pages += 1;
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = url::Url::parse(next).unwrap(),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (250, 3));
    assert_eq!(g.send(g.http.get(list(Some("999")))).await.0, 200);
    for bad in ["1000", "0", "x"] {
        let (status, body) = g.send(g.http.get(list(Some(bad)))).await;
        assert_eq!(status, 400, "$top={bad}");
        assert_graph_error(&body, "Request_BadRequest");
    }
}

/// The client assertion: the two documented (alg, thumbprint) pairs are accepted, the pairing
/// of RS256 with a SHA-256 thumbprint that no Microsoft page describes is refused.
#[tokio::test]
async fn client_assertions_use_a_documented_pair() {
    use base64::Engine as _;
    let g = graph().await;
    let fixture = |n: &str| {
        std::fs::read_to_string(format!(
            "{}/devkit/fixtures/{n}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let (cert, key, public) = (
        fixture("test-app-cert.pem"),
        fixture("test-app-key.pem"),
        fixture("test-app-pubkey.pem"),
    );
    let s256 = g.emulator.register_certificate(&cert, &public);
    let der = pem::parse(&cert).unwrap();
    // The legacy `x5t`: base64url of the certificate's SHA-1 thumbprint.
    let settings = g.emulator.settings().clone();
    let endpoint = format!(
        "{}/{}/oauth2/v2.0/token",
        g.emulator.url, settings.tenant_id
    );
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).unwrap();
    let assertion = |alg: jsonwebtoken::Algorithm, s256: Option<&str>, sha1: Option<String>| {
        let mut h = jsonwebtoken::Header::new(alg);
        h.x5t_s256 = s256.map(str::to_owned);
        h.x5t = sha1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"aud": endpoint, "iss": settings.client_id, "sub": settings.client_id,
            "jti": crate::helpers::uuid_like(), "nbf": now, "iat": now, "exp": now + 600});
        jsonwebtoken::encode(&h, &claims, &encoding).unwrap()
    };
    let sha1 = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha1::Sha1 as sha1::Digest>::digest(der.contents()));
    let token = |jwt: String| {
        g.http.post(&endpoint).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", settings.client_id.as_str()),
            ("scope", &format!("{}/.default", g.emulator.url)),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", jwt.as_str()),
        ])
    };
    use jsonwebtoken::Algorithm::{PS256, RS256};
    assert_eq!(
        g.send(token(assertion(PS256, Some(&s256), None))).await.0,
        200,
        "PS256 + x5t#S256"
    );
    assert_eq!(
        g.send(token(assertion(RS256, None, Some(sha1.clone()))))
            .await
            .0,
        200,
        "RS256 + x5t"
    );
    for (what, jwt) in [
        ("RS256 + x5t#S256", assertion(RS256, Some(&s256), None)),
        ("PS256 + x5t", assertion(PS256, None, Some(sha1.clone()))),
        (
            "both thumbprints",
            assertion(PS256, Some(&s256), Some(sha1.clone())),
        ),
    ] {
        let (status, body) = g.send(token(jwt)).await;
        assert_eq!(status, 401, "{what}: {body}");
    }
}

/// `PATCH /users/{id}` takes only writable `user` properties within their documented lengths
/// (https://learn.microsoft.com/graph/api/user-update: givenName and surname 64, jobTitle 128,
/// usageLocation a two-letter ISO 3166 code, onPremisesExtensionAttributes 1–15 for cloud-only
/// users); `revokeSignInSessions` and sponsors `$ref` take the documented shapes.
#[tokio::test]
async fn user_writes_off_the_documented_shape_are_refused() {
    let g = graph().await;
    let id = g
        .emulator
        .seed_user("ada@partner.example", "Guest", Some("PendingAcceptance"), 0);
    let url = format!("{}/v1.0/users/{id}", g.emulator.url);
    let patch = |body: Value| g.http.patch(&url).json(&body);
    for bad in [
        json!({"mail": "eve@partner.example"}),
        json!({"externalUserState": "Accepted"}),
        json!({"favouriteColour": "blue"}),
        json!({"usageLocation": "gb"}),
        json!({"usageLocation": "GBR"}),
        json!({"givenName": "A".repeat(65)}),
        json!({"jobTitle": "J".repeat(129)}),
        json!({"accountEnabled": "false"}),
        json!({"onPremisesExtensionAttributes": {"extensionAttribute16": "x"}}),
        json!({"onPremisesExtensionAttributes": {"extensionAttribute1": 7}}),
        json!([{"givenName": "Ada"}]),
    ] {
        let (status, body) = g.send(patch(bad.clone())).await;
        assert_eq!(status, 400, "{bad}");
        assert_graph_error(&body, "Request_BadRequest");
    }
    assert!(
        g.emulator
            .user("ada@partner.example")
            .unwrap()
            .attributes
            .is_empty()
    );
    let (status, _) = g
        .send(patch(json!({"givenName": "Ada", "usageLocation": "GB",
            "onPremisesExtensionAttributes": {"extensionAttribute1": "generic"}})))
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        g.emulator.user("ada@partner.example").unwrap().attributes["givenName"],
        "Ada"
    );

    let (status, body) = g
        .send(g.http.post(format!("{url}/revokeSignInSessions")))
        .await;
    assert_eq!((status, &body["value"]), (200, &json!(true)));
    let (status, body) = g
        .send(g.http.post(format!(
            "{}/v1.0/users/00000000-0000-4000-8000-000000000000/revokeSignInSessions",
            g.emulator.url
        )))
        .await;
    assert_eq!(status, 404);
    assert_graph_error(&body, "Request_ResourceNotFound");

    let sponsor = "0b0b0b0b-1111-4222-8333-444455556666";
    for bad in [
        json!({"@odata.id": sponsor}),
        json!({"@odata.id": format!("https://elsewhere.example/v1.0/users/{sponsor}")}),
        json!({"id": sponsor}),
    ] {
        let (status, body) = g
            .send(g.http.post(format!("{url}/sponsors/$ref")).json(&bad))
            .await;
        assert_eq!(status, 400, "{bad}");
        assert_graph_error(&body, "Request_BadRequest");
    }
    let good = json!({"@odata.id": format!("{}/v1.0/users/{sponsor}", g.emulator.url)});
    let (status, _) = g
        .send(g.http.post(format!("{url}/sponsors/$ref")).json(&good))
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        g.emulator.user("ada@partner.example").unwrap().sponsors,
        vec![sponsor]
    );
}
