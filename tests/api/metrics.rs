//! CloudWatch metrics through the real handler: each webhook request and each queue record
//! writes exactly one Embedded Metric Format line, whose counts say what happened (invitation,
//! deliveries per channel, refusals, parked events, the breaker opening, Graph latency) and
//! which never carries the invitee's address or the redeem URL.

use std::time::Duration;

use devkit::{Fault, ReceiverFault, events};
use invite_relay::resilience::Deadline;
use invite_relay::worker;
use serde_json::{Value, json};

use crate::helpers::*;

/// The metrics lines written so far, each checked against the EMF specification's shape:
/// an `_aws` object with a timestamp and one directive, and every metric it names present
/// at the root as a number or an array of at most 100 numbers.
fn emf_lines(t: &TestApp) -> Vec<Value> {
    let text = t.metrics.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each metrics line is one JSON object"))
        .collect();
    for line in &lines {
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "InviteRelay");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert!(line["Function"].is_string());
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        for m in metrics {
            let value = &line[m["Name"].as_str().unwrap()];
            let ok = value.is_number()
                || value.as_array().is_some_and(|a| {
                    !a.is_empty() && a.len() <= 100 && a.iter().all(Value::is_number)
                });
            assert!(ok, "metric {} has no value: {line}", m["Name"]);
        }
    }
    lines
}

/// The one line a single request or record wrote, failing when there is not exactly one.
fn only_line(t: &TestApp) -> Value {
    let lines = emf_lines(t);
    assert_eq!(lines.len(), 1, "one line per event: {lines:?}");
    lines.into_iter().next().unwrap()
}

/// Asserts that no metrics line holds an invitee's address or a redeem URL (or its ticket).
fn assert_no_personal_data(t: &TestApp, emails: &[&str]) {
    let text = t.metrics.text();
    assert!(!text.is_empty());
    for (what, needle) in t.forbidden_in_logs(emails) {
        assert!(!text.contains(&needle), "a metrics line carries {what}");
    }
    assert!(!text.contains('@'), "a metrics line carries an address");
}

#[tokio::test]
async fn an_invited_event_writes_one_line_with_the_invitation_its_deliveries_and_graph_latency() {
    let t = spawn_app().await;
    let a = t.post(&sample_body()).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let delivered: Vec<&str> = a.body["delivered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(delivered.len(), 2, "{}", a.raw);

    let line = only_line(&t);
    assert_eq!(line["Function"], "webhook");
    assert_eq!(line["Source"], "generic");
    assert_eq!(line["Events"], 1);
    assert_eq!(line["InvitationsCreated"], 1);
    assert_eq!(line["DeliveriesSucceeded"], 2);
    assert_eq!(line["DeliveriesFailed"], 0);
    for channel in &delivered {
        assert_eq!(line[format!("Delivered.{channel}")], 1, "{line}");
    }
    assert_eq!(line["Refused"], 0);
    assert_eq!(line["Parked"], 0);
    assert_eq!(line["BreakerOpened"], 0);
    let latencies = line["GraphLatency"].as_array().expect("Graph was called");
    assert!(!latencies.is_empty() && latencies.iter().all(|v| v.as_f64().unwrap() >= 0.0));
    let units: Vec<(&str, &str)> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
        .collect();
    assert!(units.contains(&("GraphLatency", "Milliseconds")));
    assert!(units.contains(&("InvitationsCreated", "Count")));
    assert!(!t.graph.redeem_urls().is_empty());
    assert_no_personal_data(&t, &[SAMPLE_EMAIL]);

    // The CRM's retry is a duplicate: a line of its own, with nothing created or delivered.
    assert_eq!(t.post(&sample_body()).await.body["status"], "duplicate");
    let lines = emf_lines(&t);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["InvitationsCreated"], 0);
    assert_eq!(lines[1]["DeliveriesSucceeded"], 0);
}

#[tokio::test]
async fn a_failed_delivery_is_counted_for_its_channel() {
    let t = spawn_app().await;
    t.slack.fail_next(ReceiverFault::Status(404));
    let a = t.post(&sample_body()).await;
    a.assert_problem(503, "delivery-failed");
    let line = only_line(&t);
    assert_eq!(line["InvitationsCreated"], 1);
    assert_eq!(line["DeliveriesFailed"], 1, "{line}");
    assert_eq!(line["DeliveryFailed.slack"], 1, "{line}");
    assert_eq!(line["Refused"], 1);
    assert_eq!(line["Refused.delivery-failed"], 1);
    assert_no_personal_data(&t, &[SAMPLE_EMAIL]);
}

#[tokio::test]
async fn a_refused_request_is_counted_under_its_problem_type() {
    let t = spawn_app().await;
    let mut event = signed_event(&sample_body().to_string());
    events::sign_event(&mut event, DELIVERY_SECRET);
    t.send_event(&event).await.assert_problem(401, "signature");
    let line = only_line(&t);
    assert_eq!(line["Function"], "webhook");
    assert_eq!(line["Refused"], 1);
    assert_eq!(line["Refused.signature"], 1, "{line}");
    assert_eq!(line["InvitationsCreated"], 0);
    assert!(line.get("GraphLatency").is_none(), "Graph was not called");

    // A request the function can't even read as HTTP is refused too, in one line.
    let mut bad = load_event("function-url-generic.json");
    bad["rawPath"] = "webhooks/generic".into();
    answer_from_event(&t.app.on_lambda_event(bad, None).await)
        .assert_problem(400, "malformed-request");
    let lines = emf_lines(&t);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["Refused"], 1);
    assert_eq!(lines[1]["Refused.malformed-request"], 1, "{}", lines[1]);
}

#[tokio::test]
async fn a_parked_queue_record_is_counted_with_its_reason() {
    let (queue, dlq) = create_queues(6).await;
    let t = spawn_app_with(Options {
        env: vec![
            ("PROCESSING_MODE", "queue".to_owned()),
            ("QUEUE_URL", queue.clone()),
            ("DEAD_LETTER_QUEUE_URL", dlq.clone()),
        ],
        ..Options::default()
    })
    .await;
    assert_eq!(t.post(&sample_body()).await.status, 202);
    let queued = only_line(&t);
    assert_eq!(queued["Function"], "webhook");
    assert_eq!(queued["InvitationsCreated"], 0);

    t.graph.fail_next_invitation(Fault::Status {
        status: 400,
        code: "BadRequest",
        retry_after: None,
    });
    let (event, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 1);
    let deadline = Deadline::after(Duration::from_secs(5));
    let response = worker::handle(&t.app, event, deadline).await.unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(drain_with_reasons(&dlq).await.len(), 1);

    let lines = emf_lines(&t);
    assert_eq!(
        lines.len(),
        2,
        "one line for the request, one for the record"
    );
    let record = &lines[1];
    assert_eq!(record["Function"], "worker");
    assert_eq!(record["Source"], "generic");
    assert_eq!(record["Parked"], 1);
    assert_eq!(record["Parked.graph-rejected"], 1, "{record}");
    assert_eq!(record["Refused.graph-rejected"], 1);
    assert_eq!(record["InvitationsCreated"], 0);
    assert!(!record["GraphLatency"].as_array().unwrap().is_empty());
    assert_no_personal_data(&t, &[SAMPLE_EMAIL]);
}

#[tokio::test]
async fn the_breaker_opening_is_counted_once() {
    let t = spawn_app().await;
    t.graph.fail_next_invitation(Fault::Status {
        status: 403,
        code: "Authorization_RequestDenied",
        retry_after: None,
    });
    let deadline = Deadline::after(Duration::from_secs(3));
    t.post_until(&sample_body(), deadline)
        .await
        .assert_problem(422, "graph-rejected");
    let line = only_line(&t);
    assert_eq!(line["BreakerOpened"], 1, "{line}");
    assert_eq!(line["Refused.graph-rejected"], 1);

    // While it is open, events are refused without Graph; it does not open again.
    let mut next = sample_body();
    next["id"] = "evt_next".into();
    t.post(&next)
        .await
        .assert_problem(503, "upstream-unavailable");
    let lines = emf_lines(&t);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["BreakerOpened"], 0);
    assert_eq!(lines[1]["Refused.upstream-unavailable"], 1);
    assert_no_personal_data(&t, &[SAMPLE_EMAIL]);
}
