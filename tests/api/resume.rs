//! Resuming an event an earlier attempt left unfinished, and a rotated client secret, across
//! every Graph call the pipeline makes: the behaviour the pipeline's structure must not hide.

use std::time::Duration;

use invite_relay::resilience::Deadline;
use invite_relay::store::DynamoStore;
use serde_json::{Value, json};

use crate::helpers::*;

const GROUP: &str = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const ROTATED: &str = "rotated-client-secret-value";

/// Entra accepts only a new client secret, Secrets Manager holds it, the cached token is gone.
async fn rotate_client_secret(t: &TestApp) {
    t.graph.set_client_secrets(&[ROTATED]);
    t.graph.revoke_tokens();
    let sm = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let current: Value = serde_json::from_str(
        sm.get_secret_value()
            .secret_id(&t.secret_id)
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap(),
    )
    .unwrap();
    let mut next = current.clone();
    next["graph_client_secret"] = json!(ROTATED);
    sm.put_secret_value()
        .secret_id(&t.secret_id)
        .secret_string(next.to_string())
        .send()
        .await
        .unwrap();
}

fn store(table: &str, sdk: &aws_config::SdkConfig) -> DynamoStore {
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        table.to_owned(),
        Duration::from_secs(3600),
    )
}

/// An attempt dies after every channel got the link (here while adding the guest to a group).
/// The sender's retry must finish what it left: the groups, the invitee pointer (which the
/// follow-up needs) and the completion (which answers replays) — without inviting or
/// delivering again. The secret was rotated meanwhile, so the group addition also shows that
/// a refused credential is recovered on that call.
#[tokio::test]
async fn a_retry_finishes_an_attempt_that_died_after_its_last_delivery() {
    let table = create_table().await;
    let t = spawn_app_with(Options {
        env: vec![
            ("IDEMPOTENCY_TABLE", table.clone()),
            (
                "RELAY_CONFIG",
                format!("[invitations]\ngroups = [\"{GROUP}\"]\n"),
            ),
        ],
        ..Options::default()
    })
    .await;
    t.graph.add_group(GROUP);
    t.graph.delay_next_group_add(Duration::from_secs(3));
    let event = signed_event(&sample_body().to_string());

    let attempt = t
        .app
        .on_http_until(to_request(&event), Deadline::after(Duration::from_secs(4)));
    let adding = async {
        while t.graph.group_requests() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        _ = attempt => panic!("the attempt should still be adding the guest to the group"),
        () = adding => {} // the invocation dies here
    }
    assert_eq!(t.slack.delivered().len(), 1);
    assert_eq!(t.hook.delivered().len(), 1);
    let user_id = t.graph.user(SAMPLE_EMAIL).expect("invited").id;
    let sdk = sdk_config().await;
    assert!(
        store(&table, &sdk)
            .invitee(&user_id)
            .await
            .unwrap()
            .is_none(),
        "the attempt died before writing its pointers"
    );

    rotate_client_secret(&t).await;
    // The lock ends with the dead invocation's time; then the sender retries the same delivery.
    tokio::time::sleep(Duration::from_millis(4_800)).await;
    let a = t.send_event(&event).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    let groups = a.body["groups"].as_array().cloned().unwrap_or_default();
    assert_eq!(groups.len(), 1, "the retry joins the groups: {}", a.raw);
    assert!(
        ["added", "already-member"].contains(&groups[0]["status"].as_str().unwrap_or("")),
        "{}",
        a.raw
    );
    assert!(t.graph.group_members(GROUP).contains(&user_id));
    assert_eq!(t.graph.created().len(), 1, "not invited again");
    assert_eq!(t.slack.delivered().len(), 1, "not delivered again");
    assert_eq!(t.hook.delivered().len(), 1, "not delivered again");

    let pointer = store(&table, &sdk).invitee(&user_id).await.unwrap();
    let pointer = pointer.expect("the follow-up finds the guest's event");
    assert_eq!(pointer.channels, vec!["slack", "webhook"]);
    let replay = t.send_event(&event).await;
    assert_eq!(replay.body["status"], "duplicate", "{}", replay.raw);
    assert_eq!(t.graph.created().len(), 1, "a replay invites nobody");
}

/// After a rotation, the first Graph call of an event is the existing-user query: it re-reads
/// the secret and goes on.
#[tokio::test]
async fn the_existing_user_query_recovers_from_a_rotated_secret() {
    let t = spawn_app_with(Options {
        env: vec![(
            "RELAY_CONFIG",
            "[invitations]\nexisting_users = \"reinvite\"\n".into(),
        )],
        ..Options::default()
    })
    .await;
    assert_eq!(t.post(&sample_body()).await.status, 200);
    rotate_client_secret(&t).await;
    let mut b = sample_body();
    b["id"] = "evt_after_rotation".into();
    b["invitee"]["email"] = "grace@partner.example".into();
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["status"], "invited");
    assert_eq!(t.graph.user_queries().last().unwrap().status, 200);
}

/// After a rotation, the first Graph call is the owner's lookup for the sponsor: the sponsor
/// is still set.
#[tokio::test]
async fn the_sponsor_lookup_recovers_from_a_rotated_secret() {
    let t = spawn_app_with(Options {
        env: vec![
            (
                "RELAY_CONFIG",
                "[invitations]\nsponsor_owner = true\n".into(),
            ),
            ("TENANT_VERIFIED_DOMAINS", "contoso.example".into()),
        ],
        ..Options::default()
    })
    .await;
    let owner = t
        .graph
        .seed_user("grace@contoso.example", "Member", None, 0);
    assert_eq!(t.post(&sample_body()).await.status, 200);
    rotate_client_secret(&t).await;
    let mut b = sample_body();
    b["id"] = "evt_after_rotation".into();
    b["invitee"]["email"] = "bob@partner.example".into();
    b["owner"] = json!({"email": "grace@contoso.example"});
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let call = t.graph.invitation_calls().last().unwrap().body.clone();
    assert_eq!(
        call["invitedUserSponsors"],
        json!([{"id": owner}]),
        "the owner is the sponsor: {call}"
    );
}

/// After a rotation, the follow-up's first Graph call is the pending-guest listing.
#[tokio::test]
async fn the_pending_listing_recovers_from_a_rotated_secret() {
    let t = spawn_app().await;
    assert_eq!(t.post(&sample_body()).await.status, 200);
    rotate_client_secret(&t).await;
    let listed = t
        .app
        .follow_up(7, false, Deadline::after(Duration::from_secs(10)))
        .await
        .expect("the listing re-reads the secret");
    assert_eq!(listed.len(), 1);
}
