//! The worker function's event handling: SQS batches from the queue (with partial batch
//! failure reporting) and Amazon EventBridge events, both through the same pipeline.
//!
//! The two event shapes are read with small local types (the fields used are few and
//! documented), which keeps the function's dependency tree lean.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::App;
use crate::app::{Deferral, Turn};
use crate::config::Role;
use crate::metrics;
use crate::problem::{Disposition, Problem};
use crate::resilience::Deadline;

/// An SQS event source batch (`Records` from `aws:sqs`).
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    pub message_id: String,
    pub body: String,
    #[serde(default)]
    pub attributes: SqsAttributes,
}

#[derive(Debug, Default, Deserialize)]
pub struct SqsAttributes {
    #[serde(rename = "ApproximateReceiveCount", default)]
    pub approximate_receive_count: Option<String>,
}

/// `ReportBatchItemFailures` answer: the messages to return to the queue.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// The worker could not handle the invocation; Lambda retries it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WorkerError(pub String);

/// Handles one worker invocation: an SQS batch or an EventBridge event.
///
/// # Errors
/// [`WorkerError`] for an EventBridge event that should be retried, or an unrecognised event.
pub async fn handle(app: &App, event: Value, deadline: Deadline) -> Result<Value, WorkerError> {
    let is_sqs = event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs");
    if is_sqs {
        let batch: SqsEvent =
            serde_json::from_value(event).map_err(|_| WorkerError("malformed SQS event".into()))?;
        let response = handle_sqs(app, batch, deadline).await;
        return serde_json::to_value(response)
            .map_err(|_| WorkerError("response serialisation".into()));
    }
    if event.get("source").and_then(Value::as_str) == Some("aws.events")
        && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
    {
        return app
            .metrics()
            .measure(Role::Worker, sweep(app, deadline))
            .await;
    }
    if event.get("detail-type").is_some() && event.get("detail").is_some() {
        let handled = handle_eventbridge(app, &event, deadline);
        return app.metrics().measure(Role::Worker, handled).await;
    }
    Err(WorkerError(
        "unrecognised event: expected an SQS batch or an EventBridge event".into(),
    ))
}

/// Processes a batch: the tenant's pace decides which messages run now (their invitation
/// cells taken for the whole batch in one write) and which go back to the queue delayed until
/// their reserved cell is due. Those that run go at once, each under its own claim, copies of
/// one event one after another (one metrics line each). Failures that a later attempt can fix
/// go back to the queue, others (and retryable ones on their last receive) are parked on the
/// dead-letter queue with their reason.
pub async fn handle_sqs(app: &App, batch: SqsEvent, deadline: Deadline) -> BatchResponse {
    let held: Vec<Option<u64>> = batch
        .records
        .iter()
        .map(|r| queued(r).and_then(|q| q.cell))
        .collect();
    let turns = app.pace_batch(&held).await;
    // Delays count from this moment, not from when the copies are sent after the runs.
    let decided = Instant::now();
    let mut now = Vec::new();
    let mut later = Vec::new();
    for (record, turn) in batch.records.into_iter().zip(turns) {
        match turn {
            Turn::Now(cell) => now.push((record, cell)),
            Turn::Later { delay, cell } => later.push((record, decided + delay, cell)),
        }
    }
    let runs = by_event(now).into_iter().map(|copies| async move {
        let mut out = Vec::with_capacity(copies.len());
        for (position, (record, cell)) in copies {
            let after = app
                .metrics()
                .measure(Role::Worker, handle_record(app, &record, deadline, cell))
                .await;
            out.push((position, record, after));
        }
        out
    });
    let mut handled: Vec<_> = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    handled.sort_by_key(|(position, ..)| *position);
    let mut failures = Vec::new();
    for (_, record, after) in handled {
        match after {
            After::Done => {}
            After::Return => failures.push(record.message_id),
            After::Paced(wait) => later.push((record, Instant::now() + wait, None)),
        }
    }
    failures.extend(defer(app, later).await);
    BatchResponse {
        batch_item_failures: failures
            .into_iter()
            .map(|item_identifier| BatchItemFailure { item_identifier })
            .collect(),
    }
}

fn queued(record: &SqsRecord) -> Option<crate::queue::QueuedEvent> {
    serde_json::from_str(&record.body).ok()
}

/// A message to run now, with the cell it holds.
type Runnable = (SqsRecord, Option<u64>);
/// Copies of one event, each with its position in the batch.
type Copies = Vec<(usize, Runnable)>;

/// The batch's records grouped by event (source and event id; a body that isn't a queued
/// event is a group of its own), each with its position in the batch.
fn by_event(records: Vec<Runnable>) -> Vec<Copies> {
    let mut groups: Vec<(Option<(String, String)>, Copies)> = Vec::new();
    for (position, record) in records.into_iter().enumerate() {
        let key = queued(&record.0).map(|q| (q.source, q.event.event_id));
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, group)) => group.push((position, record)),
            None => groups.push((key, vec![(position, record)])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// What becomes of a message.
enum After {
    Done,
    /// Back to the queue (a batch item failure): a retry can succeed.
    Return,
    /// No invitation slot: sent again, delayed until its turn.
    Paced(std::time::Duration),
}

fn receives(record: &SqsRecord) -> u32 {
    let this: u32 = record
        .attributes
        .approximate_receive_count
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let earlier = serde_json::from_str::<crate::queue::QueuedEvent>(&record.body)
        .map_or(0, |q| q.earlier_receives);
    this + earlier
}

/// One message.
async fn handle_record(
    app: &App,
    record: &SqsRecord,
    deadline: Deadline,
    cell: Option<u64>,
) -> After {
    let receives = receives(record);
    match app.on_queued(&record.body, deadline, cell).await {
        Ok(outcome) => {
            tracing::info!(message_id = %record.message_id, status = outcome.status(), "message processed");
            After::Done
        }
        Err(problem) if problem.paced => After::Paced(std::time::Duration::from_secs(
            problem.retry_after.unwrap_or(1),
        )),
        Err(problem)
            if problem.disposition() == Disposition::Retry
                && receives < app.config().processing.max_receives =>
        {
            tracing::warn!(message_id = %record.message_id, problem = problem.kind.slug(), receives, "message returned to the queue");
            metrics::refused(problem.kind);
            After::Return
        }
        Err(problem) => {
            metrics::refused(problem.kind);
            if park(app, &record.body, &problem, deadline).await {
                After::Done
            } else {
                After::Return
            }
        }
    }
}

/// Sends delayed copies of the messages whose turn is later (their receives so far and their
/// cell carried in them) in one `SendMessageBatch`, each due at its instant, and lets the
/// originals go; the ids of those that could not be sent (they return to the queue).
async fn defer(app: &App, later: Vec<(SqsRecord, Instant, Option<u64>)>) -> Vec<String> {
    if later.is_empty() {
        return Vec::new();
    }
    let sending = Instant::now();
    let delays: Vec<_> = later
        .iter()
        .map(|(_, due, _)| due.saturating_duration_since(sending))
        .collect();
    let copies: Vec<Deferral<'_>> = later
        .iter()
        .zip(&delays)
        .map(|((record, _, cell), delay)| Deferral {
            body: &record.body,
            earlier_receives: receives(record).saturating_sub(1),
            delay: *delay,
            cell: *cell,
        })
        .collect();
    let sent = match app.defer_queued(&copies).await {
        Ok(sent) => sent,
        Err(e) => {
            tracing::warn!(error = %e, "deferring failed; the messages return to the queue");
            vec![false; copies.len()]
        }
    };
    let mut returned = Vec::new();
    for (i, ((record, _, cell), delay)) in later.iter().zip(&delays).enumerate() {
        if sent.get(i).copied().unwrap_or(false) {
            tracing::info!(message_id = %record.message_id, wait_ms = delay.as_millis() as u64, reserved = cell.is_some(), "invitation slot not due: message deferred");
        } else {
            tracing::warn!(message_id = %record.message_id, "deferring failed; the message returns to the queue");
            returned.push(record.message_id.clone());
        }
    }
    returned
}

async fn park(app: &App, body: &str, problem: &Problem, deadline: Deadline) -> bool {
    let parsed: Option<crate::queue::QueuedEvent> = serde_json::from_str(body).ok();
    let (source, event_id) = parsed.as_ref().map_or(("unknown", "unknown"), |q| {
        (q.source.as_str(), q.event.event_id.as_str())
    });
    match app.park(body, problem, source, event_id).await {
        Ok(()) => {
            if let Some(q) = &parsed {
                app.notify_failed(&q.source, &q.event, problem, deadline)
                    .await;
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "parking failed; the message returns to the queue");
            false
        }
    }
}

/// The scheduled sweep over the guests the relay tracks (redeemed, expired, reminders due,
/// deletions due). Answers counts per action (no addresses); a run that could not read the
/// secret or the store is retried by EventBridge.
async fn sweep(app: &App, deadline: Deadline) -> Result<Value, WorkerError> {
    let counts = app
        .sweep(deadline)
        .await
        .map_err(|p| WorkerError(p.reason()))?;
    Ok(json!({"status": "sweep", "actions": counts}))
}

async fn handle_eventbridge(
    app: &App,
    event: &Value,
    deadline: Deadline,
) -> Result<Value, WorkerError> {
    match app.on_eventbridge(event, deadline).await {
        Ok(outcome) => Ok(outcome.to_json()),
        Err(problem) if problem.disposition() == Disposition::Retry => {
            metrics::refused(problem.kind);
            Err(WorkerError(problem.reason()))
        }
        Err(problem) => {
            metrics::refused(problem.kind);
            let body = event.to_string();
            let event_id = event.get("id").and_then(Value::as_str).unwrap_or("unknown");
            app.park(&body, &problem, "eventbridge", event_id)
                .await
                .map_err(|e| WorkerError(e.to_string()))?;
            Ok(json!({"status": "dead-lettered", "reason": problem.kind.slug()}))
        }
    }
}
