//! The burst: N signed events from the generic source, POSTed as Function URL events through
//! several webhook instances at once (each one event at a time, as Lambda runs a container).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use devkit::events;
use devkit::runtime_api::{Invoked, LambdaProcess};
use serde_json::Value;

/// How the webhook answered the burst.
#[derive(Debug, Default)]
pub struct Burst {
    pub first_post: Option<Instant>,
    pub last_answer: Option<Instant>,
    /// HTTP status → count (`0` for a failed invocation).
    pub statuses: BTreeMap<u16, usize>,
    pub errors: Vec<String>,
}

/// The start of every event id of the run's burst (the delivered bodies name them).
pub fn event_prefix(run: &str) -> String {
    format!("evt_qb_{run}_")
}

fn event_id(run: &str, i: usize) -> String {
    format!("{}{i}", event_prefix(run))
}

/// Event `i`: the sample Function URL event with its own id and invitee, delivered to the
/// `webhook` channel only, signed now.
fn signed_event(sample: &Value, run: &str, i: usize, secret: &str) -> String {
    let mut e = sample.clone();
    let mut body: Value = serde_json::from_slice(&events::event_body(&e)).unwrap_or_default();
    body["id"] = event_id(run, i).into();
    body["invitee"]["email"] = format!("qb{i}.{run}@partner.example").into();
    body["delivery"] = serde_json::json!({"channels": ["webhook"]});
    events::set_event_body(&mut e, &body.to_string());
    events::sign_event(&mut e, secret);
    e.to_string()
}

/// Posts `n` events spread over `webhooks` (each takes the next event when done with one).
pub async fn post_all(
    webhooks: &[Arc<LambdaProcess>],
    sample: &Value,
    run: &str,
    n: usize,
    secret: &str,
) -> Burst {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in webhooks {
        let (w, next, sample) = (w.clone(), next.clone(), sample.clone());
        let (run, secret) = (run.to_owned(), secret.to_owned());
        tasks.spawn(async move {
            let mut answers = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return answers;
                }
                let event = signed_event(&sample, &run, i, &secret);
                let answer = w.invoke(&event, Duration::from_secs(30)).await;
                answers.push((answer, Instant::now()));
            }
        });
    }
    let mut burst = Burst {
        first_post: Some(started),
        ..Burst::default()
    };
    while let Some(Ok(answers)) = tasks.join_next().await {
        for (answer, at) in answers {
            let status = match answer {
                Ok(Invoked::Response(v)) => v["statusCode"].as_u64().unwrap_or(0) as u16,
                Ok(Invoked::Error(e)) | Err(e) => {
                    burst.errors.push(e);
                    0
                }
            };
            *burst.statuses.entry(status).or_default() += 1;
            burst.last_answer = burst.last_answer.max(Some(at));
        }
    }
    burst
}
