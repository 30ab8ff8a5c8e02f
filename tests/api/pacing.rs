//! Tenant-wide pacing and breaker on the idempotency table (moto), deferral instead of sleeping
//! in the worker, and one event's channels delivered at once.

use std::time::{Duration, Instant};

use invite_relay::resilience::Deadline;
use invite_relay::store::{Cells, DynamoStore, Slot, interval_and_tolerance};
use serde_json::{Value, json};

use crate::helpers::*;

fn event(id: &str, email: &str) -> Value {
    let mut b = sample_body();
    b["id"] = id.into();
    b["invitee"]["email"] = email.into();
    b
}

/// A queue-mode relay on a fresh table and queues (`max_receive` receives before the
/// dead-letter queue), with `extra` settings, reaching AWS through `aws` when given; and the
/// invitation queue's URL.
async fn queue_app(
    max_receive: u32,
    extra: &[(&'static str, &str)],
    aws: Option<&str>,
) -> (TestApp, String) {
    let table = create_table().await;
    let (queue, dlq) = create_queues(max_receive).await;
    let mut env = vec![
        ("IDEMPOTENCY_TABLE", table),
        ("PROCESSING_MODE", "queue".to_owned()),
        ("QUEUE_URL", queue.clone()),
        ("DEAD_LETTER_QUEUE_URL", dlq),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let t = spawn_app_with(Options {
        env,
        aws_endpoint: aws.map(str::to_owned),
        ..Options::default()
    })
    .await;
    (t, queue)
}

/// Three stores on one fresh table, as three containers would have, through a proxy that
/// forwards one request at a time: DynamoDB makes each conditional write atomic, and the
/// emulator needs its requests in a row for that.
async fn racing_stores() -> (Vec<DynamoStore>, devkit::FaultProxy) {
    let table = create_table().await;
    let proxy = devkit::FaultProxy::start_serial(&aws_endpoint())
        .await
        .unwrap();
    let sdk = sdk_config()
        .await
        .into_builder()
        .endpoint_url(&proxy.url)
        .build();
    let stores = (0..3)
        .map(|_| {
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            DynamoStore::new(client, table.clone(), Duration::from_secs(3600))
        })
        .collect();
    (stores, proxy)
}

#[tokio::test]
async fn three_racing_workers_never_take_more_slots_than_the_rate() {
    let (stores, _proxy) = racing_stores().await;
    let rate = 120;
    let (interval, tolerance) = interval_and_tolerance(rate);
    let start = Instant::now();
    let run_for = Duration::from_secs(4);
    // Spawned all at once (collected), so the three really race.
    let workers: Vec<_> = stores
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut taken = Vec::new();
                while start.elapsed() < run_for {
                    if store.take_slot(interval, tolerance).await.unwrap() == Slot::Taken {
                        taken.push(start.elapsed());
                    }
                }
                taken
            })
        })
        .collect();
    let mut taken: Vec<Duration> = Vec::new();
    for w in workers {
        taken.extend(w.await.unwrap());
    }
    taken.sort();
    let elapsed = start.elapsed().as_millis() as u64;
    // GCRA's bound for this run's length, whatever the machine's speed: the burst, then one
    // slot per interval.
    let most = 1 + (elapsed + tolerance) / interval;
    assert!(
        taken.len() as u64 <= most,
        "{} slots in {elapsed} ms, at most {most} allowed",
        taken.len()
    );
    assert!(
        taken.len() as u64 >= rate / 10,
        "the burst was admitted: {}",
        taken.len()
    );
    // Past the burst, consecutive slots are an interval apart at least (the table's clock is
    // each caller's: allow the time one call takes).
    let burst = (rate / 10) as usize;
    for pair in taken[burst..].windows(2) {
        assert!(
            pair[1] + Duration::from_millis(250) >= pair[0] + Duration::from_millis(interval),
            "{pair:?}"
        );
    }
}

/// Workers racing for a busy pace each take their own run of cells in one write: no cell is
/// shared, runs are an interval apart, and once a worker has seen the pace ahead of now none of
/// its writes is refused for a value another worker moved on in the meantime.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn racing_workers_take_their_own_cells_in_one_write_each() {
    let (stores, proxy) = racing_stores().await;
    let (interval, tolerance) = interval_and_tolerance(30);
    let horizon = 880_000;
    // The pace is busy: its next cell is ahead of now.
    let head = stores[0]
        .take_cells(3, interval, tolerance, horizon)
        .await
        .unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(3));
    let workers: Vec<_> = stores
        .into_iter()
        .map(|store| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut runs = Vec::new();
                for _ in 0..4 {
                    match store.take_cells(5, interval, tolerance, horizon).await {
                        Ok(Cells::Taken { first, count }) => runs.push((first, count)),
                        other => panic!("{other:?}"),
                    }
                }
                runs
            })
        })
        .collect();
    let mut runs = vec![match head {
        Cells::Taken { first, count } => (first, count),
        other => panic!("{other:?}"),
    }];
    for w in workers {
        runs.extend(w.await.unwrap());
    }
    let mut cells: Vec<u64> = runs
        .iter()
        .flat_map(|&(first, count)| (0..count).map(move |i| first + i * interval))
        .collect();
    cells.sort_unstable();
    assert_eq!(
        cells.len(),
        3 + 3 * 4 * 5,
        "every request got all its cells: {runs:?}"
    );
    for pair in cells.windows(2) {
        assert!(
            pair[1] >= pair[0] + interval,
            "cells {pair:?} crowd each other"
        );
    }
    let refused = proxy
        .requests()
        .iter()
        .filter(|r| r.dynamodb_body.contains("pace#invitations"))
        .filter(|r| r.error_type.contains("ConditionalCheckFailed"))
        .count();
    // At most one per worker that had not yet seen the pace (it tries an idle one first).
    assert!(refused <= 2, "{refused} pace writes refused");
}

#[tokio::test]
async fn a_worker_without_a_slot_defers_its_message_instead_of_sleeping() {
    let (t, queue) = queue_app(4, &[("INVITE_RATE_PER_MINUTE", "1")], None).await;
    for (id, email) in [
        ("evt_first", "ada@partner.example"),
        ("evt_second", "grace@partner.example"),
    ] {
        assert_eq!(t.post(&event(id, email)).await.status, 202);
    }
    let worker = build_app(&t.env).await.unwrap();
    let (batch, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 2);
    let started = Instant::now();
    let response =
        invite_relay::worker::handle(&worker, batch, Deadline::after(Duration::from_secs(25)))
            .await
            .unwrap();
    // One invitation a minute: the second waits ~60 s, which the worker must not sleep.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        response,
        json!({"batchItemFailures": []}),
        "deferred, not failed"
    );
    delete_succeeded(&queue, &handles, &response).await;
    assert_eq!(t.graph.invitation_calls().len(), 1);

    // The deferred copy is on the queue, delayed: nothing to receive now.
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let a = attrs.attributes().unwrap();
    let delayed = &a[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed];
    assert_eq!(delayed, "1");
    assert!(receive_batch(&queue, 10).await.1.is_empty());
}

#[tokio::test]
async fn a_breaker_opened_in_one_container_pauses_the_others() {
    let table = create_table().await;
    let t = spawn_app_with(Options {
        env: vec![("IDEMPOTENCY_TABLE", table)],
        ..Options::default()
    })
    .await;
    let other = build_app(&t.env).await.unwrap();
    t.graph.fail_next_invitation(devkit::Fault::Status {
        status: 403,
        code: "Forbidden",
        retry_after: None,
    });
    let first = t.post(&event("evt_blocked", "ada@partner.example")).await;
    assert_eq!(first.status, 422, "{}", first.raw);
    let calls = t.graph.invitation_calls().len();

    let request = to_request(&signed_event(
        &event("evt_elsewhere", "grace@partner.example").to_string(),
    ));
    let answer = answer(other.on_http(request).await);
    answer.assert_problem(503, "upstream-unavailable");
    assert!(
        answer.raw.contains("paused for the tenant"),
        "{}",
        answer.raw
    );
    assert!(answer.retry_after.is_some());
    assert_eq!(
        t.graph.invitation_calls().len(),
        calls,
        "the other container never called Graph"
    );
}

#[tokio::test]
async fn one_events_channels_are_delivered_at_once() {
    let t = spawn_app().await;
    // Each channel answers after 1.2 s (inside the 2 s timeout): one after the other, the
    // second would arrive 1.2 s after the first.
    t.slack
        .fail_next(devkit::ReceiverFault::Delay(Duration::from_millis(1200)));
    t.hook
        .fail_next(devkit::ReceiverFault::Delay(Duration::from_millis(1200)));
    let a = t.post(&sample_body()).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let (slack, hook) = (t.slack.received(), t.hook.received());
    assert_eq!((slack.len(), hook.len()), (1, 1));
    let apart = if slack[0].arrived > hook[0].arrived {
        slack[0].arrived - hook[0].arrived
    } else {
        hook[0].arrived - slack[0].arrived
    };
    assert!(apart < Duration::from_millis(1000), "sent {apart:?} apart");
}

/// A batch's events run at once, each under its own claim; two copies of one event in the
/// batch run one after the other, so the second is a duplicate.
#[tokio::test]
async fn a_batchs_events_are_handled_at_once_and_copies_of_one_in_turn() {
    let (t, queue) = queue_app(6, &[], None).await;
    let mut bodies = Vec::new();
    for i in 0..3 {
        let mut body = sample_body();
        body["id"] = format!("evt_batch_{i}").into();
        body["invitee"]["email"] = format!("batch{i}@partner.example").into();
        body["delivery"] = serde_json::json!({"channels": ["webhook"]});
        bodies.push(body);
    }
    for body in bodies.iter().chain(std::iter::once(&bodies[0])) {
        assert_eq!(t.post(body).await.status, 202);
    }
    // Each delivery answers after 1.2 s: one event after another, they would arrive 1.2 s apart.
    for _ in 0..4 {
        t.hook
            .fail_next(devkit::ReceiverFault::Delay(Duration::from_millis(1200)));
    }
    let (event, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 4, "the three events and a copy in one batch");
    let worker_app = build_app(&t.env).await.unwrap();
    let response = invite_relay::worker::handle(
        &worker_app,
        event,
        invite_relay::resilience::Deadline::after(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{response}"
    );
    let hook = t.hook.received();
    assert_eq!(hook.len(), 3, "the copy is a duplicate: nothing sent twice");
    assert_eq!(t.graph.created().len(), 3);
    let first = hook.iter().map(|r| r.arrived).min().unwrap();
    let last = hook.iter().map(|r| r.arrived).max().unwrap();
    assert!(
        last - first < Duration::from_millis(1000),
        "sent {:?} apart",
        last - first
    );
}

/// Writes to the tenant's pace item, in the requests the proxy saw.
fn pace_writes(proxy: &devkit::FaultProxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| {
            r.operation.ends_with("UpdateItem") && r.dynamodb_body.contains("pace#invitations")
        })
        .count()
}

/// Queue mode: the webhook's duplicate check and its send to the queue are in flight at once,
/// so it is billed for the slower of the two, not their sum.
#[tokio::test]
async fn the_webhooks_check_and_send_are_in_flight_at_once() {
    let proxy = devkit::FaultProxy::start(&aws_endpoint()).await.unwrap();
    let (t, _) = queue_app(6, &[], Some(&proxy.url)).await;
    proxy.set_latency(devkit::Latency::fixed(Duration::from_millis(400)));
    assert_eq!(
        t.post(&event("evt_both", "both@partner.example"))
            .await
            .status,
        202
    );
    let requests = proxy.requests();
    let find = |op: &str| {
        requests
            .iter()
            .find(|r| r.operation.ends_with(op))
            .unwrap_or_else(|| panic!("no {op}"))
    };
    let (check, send) = (find("GetItem"), find("SendMessage"));
    assert!(
        !check.consistent_read,
        "a courtesy check: eventually consistent"
    );
    // One after the other, the second would reach AWS only once the first was answered, at
    // least the added 400 ms after it arrived.
    let (a, b) = if check.received <= send.received {
        (check, send)
    } else {
        (send, check)
    };
    assert!(
        b.received < a.received + a.took,
        "the second arrived {:?} after the first, which took {:?}",
        b.received - a.received,
        a.took
    );
}

/// A batch takes its cells in one write; the messages whose cell isn't due go back holding it,
/// together, and when they come back they invite without taking another slot.
#[tokio::test]
async fn deferred_messages_hold_their_cells_and_come_back_together() {
    let proxy = devkit::FaultProxy::start(&aws_endpoint()).await.unwrap();
    // 1.128 s apart, bursts of 6 (interval_and_tolerance(60)).
    let (t, queue) = queue_app(6, &[("INVITE_RATE_PER_MINUTE", "60")], Some(&proxy.url)).await;
    for i in 0..10 {
        let id = format!("evt_cell_{i}");
        let email = format!("cell{i}@partner.example");
        assert_eq!(t.post(&event(&id, &email)).await.status, 202);
    }
    let worker = build_app_at(&t.env, Some(&proxy.url)).await.unwrap();
    let (batch, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 10);
    // The six that run take 3 s (Graph and the channel each answer 1.5 s late), longer than
    // a held cell's grace: the copies' delays count from when their turn was decided, not
    // from when they are sent after the runs, so they still come back in time for their cells.
    let slow = devkit::Latency::fixed(Duration::from_millis(1500));
    t.graph.set_latency(devkit::GraphLatency {
        invitation: slow,
        ..Default::default()
    });
    t.hook.set_latency(slow);
    t.slack.set_latency(slow);
    let before = pace_writes(&proxy);
    let response =
        invite_relay::worker::handle(&worker, batch, Deadline::after(Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    delete_succeeded(&queue, &handles, &response).await;
    assert_eq!(pace_writes(&proxy) - before, 1, "ten cells in one write");
    assert_eq!(t.graph.invitation_calls().len(), 6, "a burst's worth now");
    t.graph.set_latency(devkit::GraphLatency::default());
    t.hook.set_latency(devkit::Latency::ZERO);
    t.slack.set_latency(devkit::Latency::ZERO);

    // The other four come back together once their group is due (about 7 s).
    let mut back = (json!(null), Vec::new());
    for _ in 0..40 {
        back = receive_batch(&queue, 10).await;
        if !back.1.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        back.1.len(),
        4,
        "the deferred copies come back as one group"
    );
    let before = pace_writes(&proxy);
    let response =
        invite_relay::worker::handle(&worker, back.0, Deadline::after(Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(pace_writes(&proxy), before, "their cells were paid for");
    assert_eq!(t.graph.invitation_calls().len(), 10);
    assert_eq!(t.hook.delivered().len(), 10);
}

/// DynamoDB writes, by operation, in the requests the proxy saw.
fn writes(proxy: &devkit::FaultProxy) -> Vec<String> {
    proxy
        .operations()
        .into_iter()
        .filter_map(|t| t.strip_prefix("DynamoDB_20120810.").map(str::to_owned))
        .filter(|op| {
            matches!(
                op.as_str(),
                "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
            )
        })
        .collect()
}

/// What one invitation costs in DynamoDB writes, counted: a change that adds a write shows
/// here. Two channels: the claim, the tenant's invitation slot, the guest's record (nothing
/// follows the delivery here, so it is written first), one per channel delivered (each carries
/// the invitation's ids), the completion. One channel and no
/// later steps: the claim, the slot, the guest's record, and the delivery that completes the
/// event.
#[tokio::test]
async fn the_writes_of_one_invitation_are_counted() {
    let proxy = devkit::FaultProxy::start(&aws_endpoint()).await.unwrap();
    let table = create_table().await;
    let t = spawn_app_with(Options {
        env: vec![("IDEMPOTENCY_TABLE", table.clone())],
        aws_endpoint: Some(proxy.url.clone()),
        ..Options::default()
    })
    .await;
    let before = writes(&proxy).len();
    let a = t.post(&sample_body()).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["delivered"].as_array().unwrap().len(), 2);
    let ops = writes(&proxy)[before..].to_vec();
    assert_eq!(
        ops,
        [
            "PutItem",
            "UpdateItem",
            "PutItem",
            "UpdateItem",
            "UpdateItem",
            "UpdateItem"
        ],
        "6 writes for an invitation delivered to two channels"
    );

    let mut body = sample_body();
    body["id"] = "evt_one_channel".into();
    body["invitee"]["email"] = "solo@partner.example".into();
    body["delivery"] = serde_json::json!({"channels": ["webhook"]});
    let before = writes(&proxy).len();
    let a = t.post(&body).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["delivered"], serde_json::json!(["webhook"]));
    let ops = writes(&proxy)[before..].to_vec();
    assert_eq!(
        ops,
        ["PutItem", "UpdateItem", "PutItem", "UpdateItem"],
        "4 writes for an invitation delivered to one channel"
    );
    // The one write left the event completed, with the invitation's ids: a replay is a
    // duplicate that names them.
    let again = t.post(&body).await;
    assert_eq!(again.body["status"], "duplicate", "{}", again.raw);
    assert_eq!(
        again.body["invitationId"], a.body["invitationId"],
        "{}",
        again.raw
    );
    assert_eq!(t.graph.created().len(), 2);
    assert_eq!(t.hook.delivered().len(), 2, "one per event");
}
