//! A guest's whole life after the invitation, end to end through the handler and the worker:
//! properties and provenance, redemption and expiry found by the sweep, offboarding, sponsors
//! following the CRM owner, and the lifecycle events on the signed webhook.

use std::time::Duration;

use devkit::receiver::Received;
use invite_relay::resilience::Deadline;
use serde_json::{Value, json};

use crate::helpers::*;

const PARTNERS: &str = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const REDEEMED_ONLY: &str = "6b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
const OWNER_A: &str = "0a0a0a0a-1111-4222-8333-444455556666";
const OWNER_B: &str = "0b0b0b0b-1111-4222-8333-444455556666";
const DESK: &str = "0c0c0c0c-1111-4222-8333-444455556666";

/// The whole configuration the lifecycle uses: groups now and after redemption, the owner as
/// sponsor beside a configured one, provenance slots, offboarding, and a route for the
/// lifecycle events to the signed webhook and Slack.
fn config(offboarding: &str) -> String {
    format!(
        r#"
[invitations]
groups = ["{PARTNERS}"]
after_redemption_groups = ["{REDEEMED_ONLY}"]
sponsor_owner = true
sponsors = ["{DESK}"]

[invitations.provenance]
source = "extensionAttribute1"
record_id = "extensionAttribute2"
event_id = "extensionAttribute3"
contract_end = "extensionAttribute4"

[offboarding]
{offboarding}

[[routes]]
channels = ["slack", "webhook"]

[[routes]]
name = "lifecycle"
on = ["invitation.redeemed", "invitation.expired", "invitation.failed", "guest.updated", "guest.offboarded"]
channels = ["webhook", "slack"]
"#
    )
}

async fn life_app(offboarding: &str, table: Option<String>) -> TestApp {
    let mut env = vec![("RELAY_CONFIG", config(offboarding))];
    if let Some(t) = table {
        env.push(("IDEMPOTENCY_TABLE", t));
    }
    let t = spawn_app_with(Options {
        env,
        ..Options::default()
    })
    .await;
    t.graph.add_group(PARTNERS);
    t.graph.add_group(REDEEMED_ONLY);
    t
}

/// A partner signed: the generic event with profile, record and owner.
fn signed(id: &str, owner: &str) -> Value {
    let mut b = sample_body();
    b["id"] = id.into();
    b.as_object_mut().unwrap().remove("delivery");
    b["invitee"]["givenName"] = "Ada".into();
    b["invitee"]["surname"] = "Lovelace".into();
    b["invitee"]["company"] = "Fabrikam".into();
    b["invitee"]["jobTitle"] = "Partner engineer".into();
    b["invitee"]["usageLocation"] = "GB".into();
    b["record"] = json!({"id": "deal-4711"});
    b["contractEnd"] = "2027-12-31".into();
    b["owner"] = json!({"id": owner});
    b
}

fn ended(id: &str) -> Value {
    json!({"id": id, "type": "partner.offboarded", "invitee": {"email": SAMPLE_EMAIL}})
}

async fn sweep(t: &TestApp) -> Value {
    let scheduled = load_event("eventbridge-scheduled-follow-up.json");
    invite_relay::worker::handle(&t.app, scheduled, Deadline::after(Duration::from_secs(20)))
        .await
        .unwrap()
}

fn verify(r: &Received) -> Value {
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
        .expect("lifecycle events are signed like the links");
    serde_json::from_str(&r.body).unwrap()
}

/// The lifecycle events the webhook received, of one type, verified.
fn events_of(t: &TestApp, kind: &str) -> Vec<Value> {
    t.hook
        .delivered()
        .iter()
        .map(verify)
        .filter(|b| b["type"] == kind)
        .collect()
}

fn patches(t: &TestApp) -> usize {
    t.graph
        .user_calls()
        .iter()
        .filter(|c| c.method == "PATCH")
        .count()
}

/// An attempt dies after the link went out and the properties were written (while joining a
/// group); the retry finishes the groups without writing the properties again.
#[tokio::test]
async fn properties_and_provenance_are_written_once_under_retries_and_crashes() {
    let table = create_table().await;
    let t = life_app("enabled = true", Some(table)).await;
    t.graph.delay_next_group_add(Duration::from_secs(3));
    let event = signed_event(&signed("evt_life_1", OWNER_A).to_string());
    let attempt = t
        .app
        .on_http_until(to_request(&event), Deadline::after(Duration::from_secs(4)));
    let adding = async {
        while t.graph.group_requests() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        _ = attempt => panic!("the attempt should still be joining the group"),
        () = adding => {} // the invocation dies here
    }
    assert_eq!(patches(&t), 1, "written before the groups");
    let user = t.graph.user(SAMPLE_EMAIL).unwrap();
    assert_eq!(user.attributes["givenName"], "Ada");
    assert_eq!(user.attributes["surname"], "Lovelace");
    assert_eq!(user.attributes["companyName"], "Fabrikam");
    assert_eq!(user.attributes["jobTitle"], "Partner engineer");
    assert_eq!(user.attributes["usageLocation"], "GB");
    assert_eq!(
        user.attributes["onPremisesExtensionAttributes"],
        json!({"extensionAttribute1": "generic", "extensionAttribute2": "deal-4711",
               "extensionAttribute3": "evt_life_1", "extensionAttribute4": "2027-12-31"})
    );

    tokio::time::sleep(Duration::from_millis(4_800)).await;
    let a = t.send_event(&event).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    assert_eq!(a.body["profile"]["status"], "already-updated", "{}", a.raw);
    assert_eq!(patches(&t), 1, "the retry doesn't write them again");
    assert!(t.graph.group_members(PARTNERS).contains(&user.id));
    // A replay of the completed event writes nothing either.
    let again = t.send_event(&event).await;
    assert_eq!(again.body["status"], "duplicate");
    assert_eq!(patches(&t), 1);
    assert_eq!(t.graph.created().len(), 1);
    t.assert_logs_clean(&[SAMPLE_EMAIL, "Lovelace", "Partner engineer"]);
}

/// Values Graph would refuse are refused before any call, naming the field.
#[tokio::test]
async fn properties_graph_would_refuse_are_refused_before_anything_is_done() {
    let t = life_app("enabled = true", None).await;
    for (field, value) in [
        ("usageLocation", "XX"),
        ("givenName", &"A".repeat(65)),
        ("jobTitle", &"J".repeat(129)),
    ] {
        let mut b = signed(&format!("evt_bad_{field}"), OWNER_A);
        b["invitee"][field] = value.into();
        let a = t.post(&b).await;
        a.assert_problem(422, "unprocessable-event");
        assert_eq!(a.body["field"], format!("profile.{field}"), "{}", a.raw);
    }
    assert!(t.graph.invitation_calls().is_empty());
    assert_eq!(patches(&t), 0);
}

/// The guest accepts: the sweep reports it once (signed webhook and Slack), joins the
/// after-redemption group, and reminders stop.
#[tokio::test]
async fn redemption_is_reported_once_joins_the_later_groups_and_ends_reminders() {
    let table = create_table().await;
    let t = life_app("enabled = true", Some(table)).await;
    let a = t.post(&signed("evt_life_2", OWNER_A)).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    let user = t.graph.user(SAMPLE_EMAIL).unwrap();
    assert!(t.graph.group_members(PARTNERS).contains(&user.id));
    assert!(
        !t.graph.group_members(REDEEMED_ONLY).contains(&user.id),
        "not before redemption"
    );

    // Still pending, not yet due: nothing happens.
    assert_eq!(sweep(&t).await["actions"], json!({"still-pending": 1}));
    t.graph.set_state_changed(SAMPLE_EMAIL, 10);
    t.graph.accept(SAMPLE_EMAIL);
    let out = sweep(&t).await;
    assert_eq!(out["actions"], json!({"redeemed": 1}), "{out}");
    assert!(t.graph.group_members(REDEEMED_ONLY).contains(&user.id));
    let redeemed = events_of(&t, "invitation.redeemed");
    assert_eq!(redeemed.len(), 1);
    let data = &redeemed[0]["data"];
    assert_eq!(data["invitedUserId"], user.id.as_str());
    assert_eq!(data["eventId"], "evt_life_2");
    assert_eq!(data["groups"], json!([REDEEMED_ONLY]));
    assert!(data["redeemedAt"].as_str().unwrap().starts_with("20"));
    let slack_before = t.slack.delivered().len();
    assert!(
        t.slack
            .delivered()
            .iter()
            .any(|m| m.body.contains("accepted"))
    );

    // The next sweeps don't report it again, nor remind an accepted guest.
    assert_eq!(sweep(&t).await["actions"], json!({}));
    assert_eq!(events_of(&t, "invitation.redeemed").len(), 1);
    assert_eq!(t.slack.delivered().len(), slack_before);
    assert_eq!(t.graph.created().len(), 1, "no reminder");
    for body in t.hook.delivered().iter().map(|r| r.body.clone()) {
        for url in t.graph.redeem_urls() {
            if !body.contains("\"invitation.created\"") {
                assert!(
                    !body.contains(&url),
                    "lifecycle events never carry the link"
                );
            }
        }
    }
    t.assert_logs_clean(&[SAMPLE_EMAIL]);
}

/// A lifecycle policy deleted the pending guest: reported as expired, and the partner's next
/// event invites afresh.
#[tokio::test]
async fn an_expired_pending_guest_is_reported_and_invited_afresh() {
    let t = life_app("enabled = true", None).await;
    t.post(&signed("evt_life_3", OWNER_A)).await;
    let first = t.graph.user(SAMPLE_EMAIL).unwrap().id;
    t.graph.delete_user(SAMPLE_EMAIL);
    assert_eq!(sweep(&t).await["actions"], json!({"expired": 1}));
    let expired = events_of(&t, "invitation.expired");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["data"]["invitedUserId"], first.as_str());
    assert_eq!(
        sweep(&t).await["actions"],
        json!({}),
        "reported once, then untracked"
    );

    let a = t.post(&signed("evt_life_3b", OWNER_A)).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    let second = t.graph.user(SAMPLE_EMAIL).unwrap().id;
    assert_ne!(first, second, "a new guest");
    assert_eq!(t.graph.created().len(), 2);
    assert_eq!(
        sweep(&t).await["actions"],
        json!({"still-pending": 1}),
        "tracked again"
    );
}

/// Every action of the policy, recorded, reported as guest.offboarded; then deletion by the
/// sweep when the grace period ends.
#[tokio::test]
async fn offboarding_removes_groups_blocks_revokes_and_deletes_after_the_grace_period() {
    let table = create_table().await;
    let t = life_app("enabled = true\ndelete_after_days = 0", Some(table)).await;
    t.post(&signed("evt_life_4", OWNER_A)).await;
    let user = t.graph.user(SAMPLE_EMAIL).unwrap();
    assert!(t.graph.group_members(PARTNERS).contains(&user.id));

    let a = t.post(&ended("evt_end_4")).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["status"], "offboarded", "{}", a.raw);
    assert_eq!(
        a.body["actions"],
        json!([
            "groups-removed",
            "sign-in-blocked",
            "sessions-revoked",
            "deletion-scheduled"
        ])
    );
    let after = t.graph.user(SAMPLE_EMAIL).unwrap();
    assert!(!after.account_enabled);
    assert_eq!(after.sessions_revoked, 1);
    assert!(!t.graph.group_members(PARTNERS).contains(&user.id));
    let off = events_of(&t, "guest.offboarded");
    assert_eq!(off.len(), 1);
    assert_eq!(off[0]["data"]["actions"], a.body["actions"]);

    // The same event again: a duplicate, nothing repeated.
    let dup = t.post(&ended("evt_end_4")).await;
    assert_eq!(dup.body["status"], "duplicate", "{}", dup.raw);
    assert_eq!(t.graph.user(SAMPLE_EMAIL).unwrap().sessions_revoked, 1);
    assert_eq!(events_of(&t, "guest.offboarded").len(), 1);

    let out = sweep(&t).await;
    assert_eq!(out["actions"], json!({"deleted": 1}), "{out}");
    assert!(t.graph.is_deleted(&user.id));
    assert_eq!(sweep(&t).await["actions"], json!({}));
    t.assert_logs_clean(&[SAMPLE_EMAIL]);
}

/// A new invitation for an offboarded partner cancels the deletion and unblocks sign-in.
#[tokio::test]
async fn a_new_invitation_cancels_a_scheduled_deletion() {
    let t = life_app("enabled = true\ndelete_after_days = 0", None).await;
    t.post(&signed("evt_life_5", OWNER_A)).await;
    t.post(&ended("evt_end_5")).await;
    assert!(!t.graph.user(SAMPLE_EMAIL).unwrap().account_enabled);
    let a = t.post(&signed("evt_life_5b", OWNER_A)).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    let user = t.graph.user(SAMPLE_EMAIL).unwrap();
    assert!(user.account_enabled, "sign-in unblocked");
    let out = sweep(&t).await;
    assert_eq!(out["actions"], json!({"still-pending": 1}), "{out}");
    assert!(!t.graph.is_deleted(&user.id));
}

#[tokio::test]
async fn a_dry_run_reports_what_would_happen_and_changes_nothing() {
    let t = life_app(
        "enabled = true\ndry_run = true\ndelete_after_days = 30",
        None,
    )
    .await;
    t.post(&signed("evt_life_6", OWNER_A)).await;
    let user = t.graph.user(SAMPLE_EMAIL).unwrap();
    let writes = t.graph.user_calls().len();
    let a = t.post(&ended("evt_end_6")).await;
    assert_eq!(a.body["status"], "offboarded", "{}", a.raw);
    assert_eq!(a.body["dryRun"], true);
    assert_eq!(
        a.body["actions"],
        json!([
            "groups-removed",
            "sign-in-blocked",
            "sessions-revoked",
            "deletion-scheduled"
        ])
    );
    let after = t.graph.user(SAMPLE_EMAIL).unwrap();
    assert!(after.account_enabled);
    assert_eq!(after.sessions_revoked, 0);
    assert!(t.graph.group_members(PARTNERS).contains(&user.id));
    let since: Vec<_> = t.graph.user_calls()[writes..]
        .iter()
        .filter(|c| c.method != "GET")
        .cloned()
        .collect();
    assert!(since.is_empty(), "{since:?}");
    assert!(events_of(&t, "guest.offboarded").is_empty());
}

/// A member, or a guest the relay didn't invite, is refused with nothing done; an unknown
/// partner is nothing to do; without a policy, offboarding events are ignored.
#[tokio::test]
async fn offboarding_touches_only_the_relays_guests() {
    let t = life_app("enabled = true", None).await;
    let member = t
        .graph
        .seed_user("grace@contoso.example", "Member", None, 0);
    let stranger = t
        .graph
        .seed_user("carol@elsewhere.example", "Guest", Some("Accepted"), 30);
    for (mail, id) in [
        ("grace@contoso.example", &member),
        ("carol@elsewhere.example", &stranger),
    ] {
        let mut e = ended(&format!("evt_end_{mail}"));
        e["invitee"]["email"] = mail.into();
        let a = t.post(&e).await;
        a.assert_problem(422, "unprocessable-event");
        assert!(
            a.body["detail"]
                .as_str()
                .unwrap()
                .starts_with("offboarding refused"),
            "{}",
            a.raw
        );
        assert!(
            t.graph.user(mail).unwrap().account_enabled,
            "nothing done to {id}"
        );
    }
    assert!(t.graph.user_calls().iter().all(|c| c.method == "GET"));
    let alarms = t
        .logs
        .lines()
        .into_iter()
        .filter(|l| l["alarm"] == "offboard_refused")
        .count();
    assert_eq!(alarms, 2);

    let mut unknown = ended("evt_end_unknown");
    unknown["invitee"]["email"] = "nobody@elsewhere.example".into();
    let a = t.post(&unknown).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["status"], "nothing-to-do", "{}", a.raw);

    let off = spawn_app().await;
    let a = off.post(&ended("evt_end_disabled")).await;
    assert_eq!(a.body["status"], "ignored", "{}", a.raw);
    t.assert_logs_clean(&[
        "grace@contoso.example",
        "carol@elsewhere.example",
        "nobody@elsewhere.example",
    ]);
}

/// A guest stamped with the relay's provenance but no longer in its records (older than the
/// records are kept) is still the relay's to offboard.
#[tokio::test]
async fn a_guest_with_the_relays_provenance_can_be_offboarded_without_a_record() {
    let t = life_app("enabled = true", None).await;
    let id = t
        .graph
        .seed_user(SAMPLE_EMAIL, "Guest", Some("Accepted"), 400);
    t.graph.set_attribute(
        SAMPLE_EMAIL,
        "onPremisesExtensionAttributes",
        json!({"extensionAttribute1": "generic"}),
    );
    let a = t.post(&ended("evt_end_7")).await;
    assert_eq!(a.body["status"], "offboarded", "{}", a.raw);
    assert_eq!(a.body["invitedUserId"], id.as_str());
    assert!(!t.graph.user(SAMPLE_EMAIL).unwrap().account_enabled);
}

/// The account changes hands in the CRM: the new owner becomes a sponsor before the previous
/// one is removed; the configured sponsor stays; reported as guest.updated. Also for a guest
/// who redeemed and is not invited again.
#[tokio::test]
async fn sponsors_follow_the_owner() {
    let t = life_app("enabled = true", None).await;
    t.post(&signed("evt_life_8", OWNER_A)).await;
    let user = t.graph.user(SAMPLE_EMAIL).unwrap();
    assert_eq!(user.sponsors, vec![OWNER_A, DESK]);

    let a = t.post(&signed("evt_life_8b", OWNER_B)).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    let sponsors = t.graph.user(SAMPLE_EMAIL).unwrap().sponsors;
    assert!(sponsors.contains(&OWNER_B.to_owned()) && sponsors.contains(&DESK.to_owned()));
    assert!(!sponsors.contains(&OWNER_A.to_owned()), "{sponsors:?}");
    let calls: Vec<_> = t
        .graph
        .user_calls()
        .into_iter()
        .filter(|c| c.path.contains("/sponsors/"))
        .map(|c| c.method)
        .collect();
    assert_eq!(
        calls,
        vec!["POST", "DELETE"],
        "added before the old one is removed"
    );
    let updated = events_of(&t, "guest.updated");
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["data"]["sponsorAdded"], OWNER_B);
    assert_eq!(updated[0]["data"]["sponsorRemoved"], OWNER_A);

    // Same owner again: nothing moves.
    t.post(&signed("evt_life_8c", OWNER_B)).await;
    assert_eq!(events_of(&t, "guest.updated").len(), 1);
}

#[tokio::test]
async fn sponsors_follow_the_owner_of_a_guest_who_is_not_invited_again() {
    let t = spawn_app_with(Options {
        env: vec![(
            "RELAY_CONFIG",
            config("enabled = true").replace(
                "[invitations]\n",
                "[invitations]\nexisting_users = \"reinvite\"\n",
            ),
        )],
        ..Options::default()
    })
    .await;
    t.graph.add_group(PARTNERS);
    t.post(&signed("evt_life_9", OWNER_A)).await;
    t.graph.accept(SAMPLE_EMAIL);
    let a = t.post(&signed("evt_life_9b", OWNER_B)).await;
    assert_eq!(a.body["status"], "exists", "{}", a.raw);
    assert_eq!(a.body["existing"], "redeemed");
    assert_eq!(t.graph.created().len(), 1, "no new link");
    let sponsors = t.graph.user(SAMPLE_EMAIL).unwrap().sponsors;
    assert_eq!(sponsors, vec![DESK.to_owned(), OWNER_B.to_owned()]);
}

/// An event the worker parks on the dead-letter queue is reported as invitation.failed, with
/// its reason and never a link.
#[tokio::test]
async fn a_parked_event_is_reported_as_failed() {
    let table = create_table().await;
    let (queue, dlq) = create_queues(3).await;
    let mut env = vec![
        ("RELAY_CONFIG", config("enabled = true")),
        ("IDEMPOTENCY_TABLE", table),
        ("PROCESSING_MODE", "queue".to_owned()),
        ("QUEUE_URL", queue.clone()),
        ("DEAD_LETTER_QUEUE_URL", dlq.clone()),
    ];
    env.push(("MAX_RECEIVES", "2".to_owned()));
    let t = spawn_app_with(Options {
        env,
        ..Options::default()
    })
    .await;
    let a = t.post(&signed("evt_life_10", OWNER_A)).await;
    assert_eq!(a.status, 202, "{}", a.raw);
    t.graph.fail_next_invitation(devkit::Fault::Status {
        status: 400,
        code: "BadRequest",
        retry_after: None,
    });
    let (batch, _) = receive_batch(&queue, 1).await;
    let out = invite_relay::worker::handle(&t.app, batch, Deadline::after(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let parked = drain_with_reasons(&dlq).await;
    assert_eq!(parked.len(), 1);
    let failed = events_of(&t, "invitation.failed");
    assert_eq!(failed.len(), 1, "{:?}", t.hook.delivered());
    let data = &failed[0]["data"];
    assert_eq!(data["eventId"], "evt_life_10");
    assert_eq!(data["action"], "invite");
    assert!(
        data["reason"].is_string() && data["detail"].is_string(),
        "{data}"
    );
    assert!(!failed[0].to_string().contains("redeem"));
    assert!(
        t.slack
            .delivered()
            .iter()
            .any(|m| m.body.contains("could not be invited"))
    );
}

/// A redemption report a channel refused doesn't move the guest on: the next sweep sends it to
/// that channel, and only to it.
#[tokio::test]
async fn a_report_a_channel_refused_is_sent_by_the_next_sweep() {
    let t = life_app("enabled = true", None).await;
    t.post(&signed("evt_life_11", OWNER_A)).await;
    t.graph.accept(SAMPLE_EMAIL);
    for _ in 0..100 {
        t.hook.fail_next(devkit::ReceiverFault::Status(500));
    }
    let scheduled = load_event("eventbridge-scheduled-follow-up.json");
    let out =
        invite_relay::worker::handle(&t.app, scheduled, Deadline::after(Duration::from_secs(3)))
            .await
            .unwrap();
    assert_eq!(out["actions"], json!({"failed": 1}), "{out}");
    assert!(events_of(&t, "invitation.redeemed").is_empty());
    let accepted = |t: &TestApp| {
        t.slack
            .delivered()
            .iter()
            .filter(|m| m.body.contains("accepted"))
            .count()
    };
    assert_eq!(accepted(&t), 1, "Slack had it");

    t.hook.clear_faults();
    assert_eq!(sweep(&t).await["actions"], json!({"redeemed": 1}));
    assert_eq!(events_of(&t, "invitation.redeemed").len(), 1);
    assert_eq!(accepted(&t), 1, "not sent to Slack again");
    assert_eq!(sweep(&t).await["actions"], json!({}));
}
