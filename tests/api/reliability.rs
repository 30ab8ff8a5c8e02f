//! Durability and queue mode against the real DynamoDB and SQS APIs (moto_server).

use std::time::Duration;

use invite_relay::resilience::Deadline;
use invite_relay::worker;
use serde_json::{Value, json};

use crate::helpers::*;

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

#[tokio::test]
async fn a_restarted_function_still_answers_a_repeat_as_a_duplicate() {
    let table = create_table().await;
    let t = spawn_app_with(Options {
        env: vec![("IDEMPOTENCY_TABLE", table.clone())],
        ..Options::default()
    })
    .await;
    let first = t.post(&sample_body()).await;
    assert_eq!(first.status, 200, "{}", first.raw);

    // A new container: nothing in memory, only the table.
    let restarted = build_app(&t.env).await.unwrap();
    let again = answer(
        restarted
            .on_http(to_request(&signed_event(&sample_body().to_string())))
            .await,
    );
    assert_eq!(again.status, 200, "{}", again.raw);
    assert_eq!(again.body["status"], "duplicate");
    assert_eq!(again.body["invitationId"], first.body["invitationId"]);
    assert_eq!(t.graph.invitation_calls().len(), 1);
    assert_eq!(t.slack.received().len(), 1);

    // The record holds progress and a TTL, never the link.
    let items = scan_table(&table).await.join("\n");
    assert!(items.contains("COMPLETED") && items.contains("expiration"));
    assert!(items.contains(first.body["invitationId"].as_str().unwrap()));
    let redeem = t.graph.redeem_urls().pop().unwrap();
    assert!(!items.contains(&redeem) && !items.contains("redeem") && !items.contains(SAMPLE_EMAIL));
}

#[tokio::test]
async fn a_retry_on_another_container_resumes_without_notifying_twice() {
    let table = create_table().await;
    let t = spawn_app_with(Options {
        env: vec![("IDEMPOTENCY_TABLE", table)],
        ..Options::default()
    })
    .await;
    t.slack.fail_next(devkit::ReceiverFault::Status(404));
    t.post(&sample_body())
        .await
        .assert_problem(503, "delivery-failed");
    let other = build_app(&t.env).await.unwrap();
    let b = answer(
        other
            .on_http(to_request(&signed_event(&sample_body().to_string())))
            .await,
    );
    assert_eq!(b.status, 200, "{}", b.raw);
    assert_eq!(
        t.hook.received().len(),
        1,
        "the webhook channel already had it"
    );
    assert_eq!(t.slack.delivered().len(), 1);
    assert_eq!(t.graph.created().len(), 2, "a fresh link for the same user");
}

#[tokio::test]
async fn queue_mode_enqueues_then_the_worker_invites_and_delivers() {
    let table = create_table().await;
    let (queue, dlq) = create_queues(6).await;
    let env = vec![
        ("IDEMPOTENCY_TABLE", table),
        ("PROCESSING_MODE", "queue".to_owned()),
        ("QUEUE_URL", queue.clone()),
        ("DEAD_LETTER_QUEUE_URL", dlq.clone()),
    ];
    let t = spawn_app_with(Options {
        env,
        ..Options::default()
    })
    .await;
    let a = t.post(&sample_body()).await;
    assert_eq!(a.status, 202, "{}", a.raw);
    assert_eq!(
        a.body,
        json!({"status": "queued", "eventId": "evt_01JD2K7Q9Z3X4Y5W6V7U8T9S0R"})
    );
    assert!(
        t.graph.invitation_calls().is_empty(),
        "the webhook does not call Graph in queue mode"
    );

    let worker_app = build_app(&t.env).await.unwrap();
    let (event, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 1);
    let body = event["Records"][0]["body"].as_str().unwrap();
    assert!(!body.contains("redeem") && !body.contains("ticket"));
    let response = worker::handle(&worker_app, event, deadline())
        .await
        .unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    delete_succeeded(&queue, &handles, &response).await;
    assert_eq!(t.graph.created().len(), 1);
    assert_eq!(t.slack.delivered().len(), 1);
    assert_eq!(t.hook.delivered().len(), 1);

    // The CRM retries after completion: answered from the table. The check and the send ran
    // at once, so a copy may be queued: the worker's claim finds it done, and nothing is
    // invited or delivered again.
    let again = t.post(&sample_body()).await;
    assert_eq!(again.body["status"], "duplicate");
    let (copy, handles) = receive_batch(&queue, 10).await;
    if !handles.is_empty() {
        let response = worker::handle(&worker_app, copy, deadline()).await.unwrap();
        assert_eq!(response, json!({"batchItemFailures": []}));
        delete_succeeded(&queue, &handles, &response).await;
    }
    assert_eq!(t.graph.invitation_calls().len(), 1);
    assert_eq!(t.slack.delivered().len(), 1);
    assert_eq!(t.hook.delivered().len(), 1);
}

#[tokio::test]
async fn transient_failures_return_to_the_queue_and_permanent_ones_are_parked_with_a_reason() {
    let table = create_table().await;
    let (queue, dlq) = create_queues(6).await;
    let env = vec![
        ("IDEMPOTENCY_TABLE", table),
        ("PROCESSING_MODE", "queue".to_owned()),
        ("QUEUE_URL", queue.clone()),
        ("DEAD_LETTER_QUEUE_URL", dlq.clone()),
        ("MAX_RECEIVES", "3".to_owned()),
    ];
    let t = spawn_app_with(Options {
        env,
        ..Options::default()
    })
    .await;
    let mut permanent = sample_body();
    permanent["id"] = "evt_permanent".into();
    let mut transient = sample_body();
    transient["id"] = "evt_transient".into();
    transient["invitee"]["email"] = "grace@partner.example".into();
    let worker_app = build_app(&t.env).await.unwrap();

    // One event at a time (a batch's events run concurrently, so which reaches Graph first is
    // not fixed): Graph refuses the first for good, then throttles the second.
    assert_eq!(t.post(&permanent).await.status, 202);
    t.graph.fail_next_invitation(devkit::Fault::Status {
        status: 400,
        code: "BadRequest",
        retry_after: None,
    });
    let (event, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 1);
    let response = worker::handle(&worker_app, event, Deadline::after(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "a permanent refusal does not return to the queue"
    );
    delete_succeeded(&queue, &handles, &response).await;
    let parked = drain_with_reasons(&dlq).await;
    assert_eq!(parked.len(), 1);
    assert!(parked[0].0.contains("evt_permanent"));
    assert_eq!(
        parked[0].1.as_deref(),
        Some("graph-rejected: Microsoft Graph refused the invitation (BadRequest)")
    );
    assert!(!parked[0].0.contains("redeem"));

    assert_eq!(t.post(&transient).await.status, 202);
    for _ in 0..20 {
        t.graph.fail_next_invitation(devkit::Fault::Status {
            status: 429,
            code: "TooManyRequests",
            retry_after: Some(30.0),
        });
    }
    let (event, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 1);
    let response = worker::handle(&worker_app, event, Deadline::after(Duration::from_secs(5)))
        .await
        .unwrap();
    let failed = response["batchItemFailures"].as_array().unwrap().len();
    assert_eq!(
        failed, 1,
        "the throttled event returns to the queue: {response}"
    );
    delete_succeeded(&queue, &handles, &response).await;

    // The throttled event keeps failing until its last receive, then is parked with its reason.
    let mut receives = 1;
    while receives < 3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (event, handles) = receive_batch(&queue, 10).await;
        if handles.is_empty() {
            continue;
        }
        receives += 1;
        let response = worker::handle(&worker_app, event, Deadline::after(Duration::from_secs(5)))
            .await
            .unwrap();
        delete_succeeded(&queue, &handles, &response).await;
    }
    let parked = drain_with_reasons(&dlq).await;
    assert_eq!(parked.len(), 1, "parked on its last receive");
    assert!(parked[0].0.contains("evt_transient"));
    assert_eq!(
        parked[0].1.as_deref(),
        Some("upstream-unavailable: Microsoft Graph is throttling; retry later")
    );
    assert!(t.slack.received().is_empty());
    assert!(
        t.logs
            .lines()
            .iter()
            .any(|l| l["alarm"] == "event_dead_lettered")
    );
    t.assert_logs_clean(&[SAMPLE_EMAIL, "grace@partner.example"]);
}

#[tokio::test]
async fn the_worker_takes_salesforce_platform_events_from_eventbridge() {
    let table = create_table().await;
    let (_queue, dlq) = create_queues(6).await;
    let config = r#"
[sources.salesforce-relay]
scheme = "eventbridge"
eventbridge_source = "aws.partner/salesforce.com"
filter = "event['detail-type'] == 'Partner_Signed__e'"

[sources.salesforce-relay.map]
event_id = "event.detail.id"
event_type = "event['detail-type']"
email = "event.detail.payload.Email__c"
display_name = "event.detail.payload.Full_Name__c"
"#;
    let env = vec![
        ("IDEMPOTENCY_TABLE", table),
        ("DEAD_LETTER_QUEUE_URL", dlq.clone()),
        ("RELAY_CONFIG", config.to_owned()),
    ];
    let t = spawn_app_with(Options {
        env,
        ..Options::default()
    })
    .await;
    let event: Value = load_event("eventbridge-salesforce-partner-signed.json");
    let out = worker::handle(&t.app, event.clone(), deadline())
        .await
        .unwrap();
    assert_eq!(out["status"], "invited", "{out}");
    assert_eq!(out["eventId"], "e8a5f0b2-1c3d-4e5f-9a8b-7c6d5e4f3a21");
    assert_eq!(
        t.graph.invitation_calls()[0].body["invitedUserDisplayName"],
        "Ada Lovelace"
    );
    assert_eq!(t.slack.delivered().len(), 1);

    // EventBridge delivers at least once: the repeat is a duplicate.
    let again = worker::handle(&t.app, event.clone(), deadline())
        .await
        .unwrap();
    assert_eq!(again["status"], "duplicate");

    // Another event type is ignored; an event from an unknown bus is parked with its reason.
    let mut other = event.clone();
    other["detail-type"] = "Partner_Renewed__e".into();
    assert_eq!(
        worker::handle(&t.app, other, deadline()).await.unwrap()["status"],
        "ignored"
    );
    let mut stranger = event;
    stranger["source"] = "aws.partner/unknown.example/123".into();
    assert_eq!(
        worker::handle(&t.app, stranger, deadline()).await.unwrap()["status"],
        "dead-lettered"
    );
    let parked = drain_with_reasons(&dlq).await;
    assert_eq!(parked.len(), 1);
    assert!(parked[0].1.as_deref().unwrap().starts_with("not-found:"));

    // The source can't be reached over HTTP.
    let mut http = signed_event(&sample_body().to_string());
    http["rawPath"] = "/webhooks/salesforce-relay".into();
    t.send_event(&http).await.assert_problem(401, "signature");
}

#[tokio::test]
async fn queue_mode_needs_its_queue_and_table_and_the_worker_its_dead_letter_queue() {
    use invite_relay::config::{Config, Role};
    let base = [
        ("RELAY_SECRET_ID", "x"),
        ("GRAPH_TENANT_ID", "contoso.onmicrosoft.com"),
        ("GRAPH_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
        ("INVITE_REDIRECT_URL", "https://myapps.microsoft.com"),
        ("PROCESSING_MODE", "queue"),
    ];
    let config = Config::from_lookup(|k| {
        base.iter()
            .find(|(ek, _)| *ek == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    assert!(
        config
            .require_for(Role::Webhook)
            .unwrap_err()
            .to_string()
            .contains("QUEUE_URL")
    );
    assert!(
        config
            .require_for(Role::Worker)
            .unwrap_err()
            .to_string()
            .contains("IDEMPOTENCY_TABLE")
    );
}

/// An invocation that outlives the queue's visibility timeout: meanwhile the message was
/// received again and, past the queue's `maxReceiveCount`, moved to the dead-letter queue, so
/// the first invocation's delete is refused (`ReceiptHandleIsInvalid`). Like Lambda's poller,
/// the stand-in fails nothing for it; the event was handled once.
#[tokio::test]
async fn a_refused_delete_fails_nothing() {
    let table = create_table().await;
    let (queue, dlq) = create_queues(1).await;
    let t = spawn_app_with(Options {
        env: vec![
            ("IDEMPOTENCY_TABLE", table),
            ("PROCESSING_MODE", "queue".into()),
            ("QUEUE_URL", queue.clone()),
        ],
        ..Options::default()
    })
    .await;
    assert_eq!(t.post(&sample_body()).await.status, 202);
    let worker_app = build_app(&t.env).await.unwrap();
    let (event, stale) = receive_batch(&queue, 10).await;
    let first = worker::handle(&worker_app, event, deadline())
        .await
        .unwrap();
    assert_eq!(first, json!({"batchItemFailures": []}));
    // The visibility timeout (1 s) passes before the poller deletes; the next receive moves the
    // message to the dead-letter queue.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(receive_batch(&queue, 10).await.1.is_empty());
    let refused = delete_succeeded(&queue, &stale, &first).await;
    assert_eq!(refused, 1, "SQS refuses the stale receipt handle");
    assert_eq!(drain_with_reasons(&dlq).await.len(), 1);
    assert_eq!(t.graph.created().len(), 1, "invited once");
    assert_eq!(t.slack.delivered().len(), 1, "delivered once");
}
