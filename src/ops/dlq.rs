//! `invite-relay dlq`: the events parked on the dead-letter queue — listed (key, source,
//! reason, age; never the link, and the address only with `--show-emails`), sent back through
//! the invitation queue (`redrive`: the idempotency records make a second attempt safe), or
//! dropped.
//!
//! Three kinds of message reach the dead-letter queue: events the worker parked (with `reason`,
//! `source` and `eventId` attributes), messages SQS moved after `maxReceiveCount` receives
//! (no reason: an invocation died; listed as `receives-exhausted`), and EventBridge events the
//! rule could not deliver (`ERROR_CODE` attribute). A redrive turns a parked EventBridge event
//! into a queued event through its source's mapping, so every redriven message takes the queue.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde::Serialize;
use serde_json::Value;

use super::{Flags, aws_failure, event_key};
use crate::config::Config;
use crate::inbound::Interpretation;
use crate::problem::ProblemKind;
use crate::queue::QueuedEvent;

/// The reason of a message SQS moved itself.
const EXHAUSTED: &str = "receives-exhausted";
/// The most messages one command reads.
const MAX_MESSAGES: usize = 10_000;
/// How long a read message stays hidden from others while the command decides.
const HOLD_S: i32 = 60;

/// A dead-lettered message, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Parked {
    pub key: String,
    pub source: String,
    pub reason: String,
    /// The reason's problem type (`graph-rejected`, …) or `receives-exhausted`.
    pub kind: String,
    pub age_seconds: u64,
    pub receives: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip)]
    body: String,
    #[serde(skip)]
    handle: String,
}

/// Runs `dlq list|redrive|drop`.
///
/// # Errors
/// A bad command line, a missing setting, or an AWS call that failed (with what it needs).
pub async fn run(args: &[String]) -> Result<ExitCode, String> {
    let (action, rest) = args
        .split_first()
        .ok_or("usage: invite-relay dlq list|redrive|drop …")?;
    let flags = match action.as_str() {
        "list" => Flags::parse(rest, &[], &["json", "show-emails"])?,
        "redrive" => Flags::parse(rest, &["reason", "older-than"], &["json"])?,
        "drop" => Flags::parse(rest, &[], &["json"])?,
        other => {
            return Err(format!(
                "unknown dlq action {other:?}: list, redrive or drop"
            ));
        }
    };
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let dlq = config
        .processing
        .dead_letter_url
        .clone()
        .ok_or("DEAD_LETTER_QUEUE_URL is required (the DeadLetterQueue output of the stack)")?;
    let sqs = aws_sdk_sqs::Client::new(&super::sdk(&config).await?);
    match action.as_str() {
        "list" => list(&config, &sqs, &dlq, &flags).await,
        "redrive" => redrive(&config, &sqs, &dlq, &flags).await,
        _ => drop_key(&sqs, &dlq, &flags).await,
    }
}

async fn list(
    config: &Config,
    sqs: &aws_sdk_sqs::Client,
    dlq: &str,
    flags: &Flags,
) -> Result<ExitCode, String> {
    let mut parked = read_all(sqs, dlq).await?;
    release(sqs, dlq, &parked).await;
    if flags.on("show-emails") {
        for p in &mut parked {
            p.email = email_of(config, &p.body);
        }
    }
    if flags.on("json") {
        for p in &parked {
            println!("{}", serde_json::to_string(p).map_err(|e| e.to_string())?);
        }
    } else {
        print!("{}", table(&parked, flags.on("show-emails")));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(parked: &[Parked], emails: bool) -> String {
    let mut out = format!(
        "{:<40} {:<22} {:>8} {:>8}  {}\n",
        "KEY",
        "REASON",
        "AGE",
        "RECEIVES",
        if emails { "EMAIL" } else { "" }
    );
    for p in parked {
        out.push_str(&format!(
            "{:<40} {:<22} {:>8} {:>8}  {}\n",
            p.key,
            p.kind,
            age(p.age_seconds),
            p.receives,
            p.email.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&format!("{} parked\n", parked.len()));
    out
}

fn age(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Reads `30s`, `15m`, `2h` or `3d`.
fn duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("--older-than {s:?}: a number and a unit (30m, 2h, 3d)"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("--older-than {s:?}: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(n * unit))
}

/// The reasons `--reason` accepts: every problem type and `receives-exhausted`.
fn known_reason(r: &str) -> bool {
    r == EXHAUSTED || ProblemKind::ALL.iter().any(|k| k.slug() == r)
}

async fn redrive(
    config: &Config,
    sqs: &aws_sdk_sqs::Client,
    dlq: &str,
    flags: &Flags,
) -> Result<ExitCode, String> {
    let queue = config
        .processing
        .queue_url
        .clone()
        .ok_or("QUEUE_URL is required: a redrive goes through the invitation queue")?;
    if let Some(r) = flags.value("reason")
        && !known_reason(r)
    {
        let mut known: Vec<&str> = ProblemKind::ALL.iter().map(|k| k.slug()).collect();
        known.push(EXHAUSTED);
        return Err(format!(
            "unknown --reason {r:?}; one of: {}",
            known.join(", ")
        ));
    }
    let older = flags.value("older-than").map(duration).transpose()?;
    let parked = read_all(sqs, dlq).await?;
    let (chosen, kept): (Vec<Parked>, Vec<Parked>) = parked.into_iter().partition(|p| {
        flags.value("reason").is_none_or(|r| p.kind == r)
            && older.is_none_or(|d| p.age_seconds >= d.as_secs())
    });
    release(sqs, dlq, &kept).await;
    let mut sent = 0;
    let mut failed: Vec<Parked> = Vec::new();
    let mut reasons = Vec::new();
    for p in chosen {
        match requeue(config, sqs, &queue, dlq, &p).await {
            Ok(()) => sent += 1,
            Err(e) => {
                reasons.push(format!("{}: {e}", p.key));
                failed.push(p);
            }
        }
    }
    release(sqs, dlq, &failed).await;
    let failed = reasons;
    let summary = serde_json::json!({"status": "redriven", "redriven": sent, "left": kept.len() + failed.len(), "failed": failed});
    if flags.on("json") {
        println!("{summary}");
    } else {
        println!(
            "{sent} sent back through the invitation queue; {} left on the dead-letter queue",
            kept.len() + failed.len()
        );
        for f in &failed {
            println!("  not redriven: {f}");
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sends one parked message back through the queue, then deletes it from the dead-letter
/// queue (a failed delete leaves a copy there; its second run is a duplicate, answered from
/// the idempotency record).
async fn requeue(
    config: &Config,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    dlq: &str,
    p: &Parked,
) -> Result<(), String> {
    let body = queued_body(config, &p.body)?;
    sqs.send_message()
        .queue_url(queue)
        .message_body(body)
        .send()
        .await
        .map_err(|e| aws_failure("sqs:SendMessage", queue, &e))?;
    sqs.delete_message()
        .queue_url(dlq)
        .receipt_handle(&p.handle)
        .send()
        .await
        .map_err(|e| aws_failure("sqs:DeleteMessage", dlq, &e))?;
    Ok(())
}

/// The queue message for a parked body: itself when it is a queued event; a parked EventBridge
/// event interpreted by the source its `source` names.
fn queued_body(config: &Config, body: &str) -> Result<String, String> {
    if serde_json::from_str::<QueuedEvent>(body).is_ok() {
        return Ok(body.to_owned());
    }
    let envelope: Value = serde_json::from_str(body)
        .map_err(|_| "the message is neither a queued event nor an EventBridge event")?;
    let origin = envelope["source"].as_str().unwrap_or_default();
    let source = config
        .eventbridge_source(origin)
        .ok_or("no configured source takes this EventBridge event")?;
    match source.interpret(&envelope).map_err(|e| e.to_string())? {
        Interpretation::Invite(event) => serde_json::to_string(&QueuedEvent {
            v: 1,
            source: source.name.clone(),
            event: *event,
            earlier_receives: 0,
            cell: None,
        })
        .map_err(|e| e.to_string()),
        Interpretation::Ignored { .. } => Err("the source's filter ignores this event".into()),
    }
}

async fn drop_key(sqs: &aws_sdk_sqs::Client, dlq: &str, flags: &Flags) -> Result<ExitCode, String> {
    let [key] = flags.positional.as_slice() else {
        return Err("usage: invite-relay dlq drop SOURCE/EVENT_ID".into());
    };
    if event_key(key).is_none() {
        return Err(format!(
            "{key:?} is not SOURCE/EVENT_ID (as `dlq list` shows it)"
        ));
    }
    let parked = read_all(sqs, dlq).await?;
    let (chosen, kept): (Vec<Parked>, Vec<Parked>) =
        parked.into_iter().partition(|p| &p.key == key);
    release(sqs, dlq, &kept).await;
    if chosen.is_empty() {
        return Err(format!("no parked message has the key {key:?}"));
    }
    for p in &chosen {
        sqs.delete_message()
            .queue_url(dlq)
            .receipt_handle(&p.handle)
            .send()
            .await
            .map_err(|e| aws_failure("sqs:DeleteMessage", dlq, &e))?;
    }
    if flags.on("json") {
        println!(
            "{}",
            serde_json::json!({"status": "dropped", "dropped": chosen.len()})
        );
    } else {
        println!("{} dropped", chosen.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads every message (up to [`MAX_MESSAGES`]), each held for [`HOLD_S`] seconds.
async fn read_all(sqs: &aws_sdk_sqs::Client, dlq: &str) -> Result<Vec<Parked>, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut out = Vec::new();
    while out.len() < MAX_MESSAGES {
        let got = sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .visibility_timeout(HOLD_S)
            .wait_time_seconds(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| aws_failure("sqs:ReceiveMessage", dlq, &e))?;
        let messages = got.messages();
        if messages.is_empty() {
            break;
        }
        out.extend(messages.iter().map(|m| parked(m, now)));
    }
    Ok(out)
}

fn parked(m: &aws_sdk_sqs::types::Message, now_ms: u64) -> Parked {
    let attr = |name: &str| {
        m.message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_owned)
    };
    let system: HashMap<&str, &str> = m
        .attributes()
        .map(|a| a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
        .unwrap_or_default();
    let body = m.body().unwrap_or_default().to_owned();
    let queued: Option<QueuedEvent> = serde_json::from_str(&body).ok();
    let source = attr("source")
        .or_else(|| queued.as_ref().map(|q| q.source.clone()))
        .unwrap_or_else(|| {
            if attr("ERROR_CODE").is_some() {
                "eventbridge".into()
            } else {
                "unknown".into()
            }
        });
    let event_id = attr("eventId")
        .or_else(|| queued.as_ref().map(|q| q.event.event_id.clone()))
        .or_else(|| {
            serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".into());
    let reason = attr("reason")
        .or_else(|| attr("ERROR_CODE").map(|c| format!("eventbridge: {c}")))
        .unwrap_or_else(|| {
            format!("{EXHAUSTED}: the worker did not finish within the queue's receives")
        });
    let kind = reason
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let sent = system
        .get("SentTimestamp")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(now_ms);
    Parked {
        key: format!("{source}/{event_id}"),
        source,
        reason,
        kind,
        age_seconds: now_ms.saturating_sub(sent) / 1000,
        receives: system
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        email: None,
        body,
        handle: m.receipt_handle().unwrap_or_default().to_owned(),
    }
}

/// The invitee's address in a parked body (only for `--show-emails`).
fn email_of(config: &Config, body: &str) -> Option<String> {
    if let Ok(q) = serde_json::from_str::<QueuedEvent>(body) {
        return Some(q.event.email);
    }
    let queued = queued_body(config, body).ok()?;
    serde_json::from_str::<QueuedEvent>(&queued)
        .ok()
        .map(|q| q.event.email)
}

/// Makes held messages visible again at once.
async fn release(sqs: &aws_sdk_sqs::Client, dlq: &str, parked: &[Parked]) {
    for p in parked {
        let _ = sqs
            .change_message_visibility()
            .queue_url(dlq)
            .receipt_handle(&p.handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_reasons() {
        assert_eq!(duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("3d").unwrap(), Duration::from_secs(259_200));
        assert!(duration("3 days").is_err());
        assert!(duration("h").is_err());
        assert!(known_reason("graph-rejected"));
        assert!(known_reason(EXHAUSTED));
        assert!(!known_reason("graph-rejeted"));
    }
}
