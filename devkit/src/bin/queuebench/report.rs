//! The run's figures: pacing reached, time to the last link, billed milliseconds, AWS requests
//! and units, and the cost per million events at us-east-1 prices.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use devkit::ProxiedRequest;
use serde_json::{Value, json};

use crate::account::{self, DynamoAccount, SqsAccount};
use crate::profile::Profile;

/// us-east-1 prices (USD).
const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
const SQS_PER_MILLION: f64 = 0.40;
const DDB_PER_MILLION_WRU: f64 = 0.625;
const DDB_PER_MILLION_RRU: f64 = 0.125;
const MEMORY_GB: f64 = 128.0 / 1024.0;

/// Everything measured in one run.
pub struct Measured {
    pub label: String,
    pub profile: Profile,
    pub events: usize,
    pub rate: u32,
    pub timed_out: bool,
    /// Distinct events whose link reached the channel.
    pub delivered: usize,
    pub deliveries: usize,
    pub first_post: Instant,
    pub last_delivery: Option<Instant>,
    /// Created invitations (201): when, and for whom.
    pub invitations: Vec<(Instant, String)>,
    pub invitation_calls: usize,
    pub token_calls: usize,
    pub other_graph_calls: usize,
    pub webhook: Vec<Duration>,
    pub worker: Vec<Duration>,
    pub webhook_statuses: BTreeMap<u16, usize>,
    pub requests: Vec<ProxiedRequest>,
    pub items: usize,
    pub largest_item: usize,
    pub dead_lettered: usize,
    /// What the pollers (the event source mapping) did.
    pub poller: crate::poller::PollerStats,
    pub notes: Vec<String>,
}

/// The largest number of instants within any `window`.
fn max_in_window(mut at: Vec<Instant>, window: Duration) -> usize {
    at.sort_unstable();
    let (mut best, mut lo) = (0, 0);
    for hi in 0..at.len() {
        while at[hi] - at[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Lambda bills each invocation's duration rounded up to the next millisecond.
fn billed_ms(d: &[Duration]) -> u128 {
    d.iter().map(|d| d.as_micros().div_ceil(1000)).sum()
}

fn percentile_ms(d: &[Duration], p: f64) -> f64 {
    let mut v: Vec<Duration> = d.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Derived figures.
pub struct Figures {
    pub max_per_minute: usize,
    pub duplicates: usize,
    pub elapsed: Option<Duration>,
    pub webhook_ms_per_event: f64,
    pub worker_ms_per_event: f64,
    pub sqs: SqsAccount,
    pub ddb: DynamoAccount,
    pub chain_warm_ms: f64,
    pub chain_cold_ms: f64,
    /// The webhook's check plus send per event, as measured.
    pub webhook_floor_ms: f64,
}

impl Measured {
    pub fn figures(&self) -> Figures {
        let n = self.events.max(1) as f64;
        let emails: std::collections::HashSet<&String> =
            self.invitations.iter().map(|(_, e)| e).collect();
        let g = &self.profile.graph;
        let others = self.other_graph_calls as f64 / n;
        let chain_warm_ms =
            others * ms(g.other.base) + ms(g.invitation.base) + ms(self.profile.channel.base);
        Figures {
            max_per_minute: max_in_window(
                self.invitations.iter().map(|(t, _)| *t).collect(),
                Duration::from_secs(60),
            ),
            duplicates: self.invitations.len() - emails.len(),
            elapsed: self.last_delivery.map(|t| t - self.first_post),
            webhook_ms_per_event: billed_ms(&self.webhook) as f64 / n,
            worker_ms_per_event: billed_ms(&self.worker) as f64 / n,
            sqs: account::sqs(&self.requests),
            ddb: account::dynamodb(&self.requests),
            chain_warm_ms,
            chain_cold_ms: ms(g.token.base) + chain_warm_ms,
            webhook_floor_ms: self.webhook_calls_ms(),
        }
    }
}

impl Measured {
    /// The webhook's own DynamoDB check and SQS send per event, as long as each took (the
    /// profile's latency plus the emulator's answer): what its billed time is compared with.
    fn webhook_calls_ms(&self) -> f64 {
        let total: Duration = self
            .requests
            .iter()
            .filter(|r| account::caller(r) == "webhook")
            .filter(|r| r.operation.ends_with(".GetItem") || r.operation.ends_with(".SendMessage"))
            .map(|r| r.took)
            .sum();
        ms(total) / self.events.max(1) as f64
    }
}

/// Cost shares per million events (USD).
pub fn cost(m: &Measured, f: &Figures) -> BTreeMap<&'static str, f64> {
    let n = m.events.max(1) as f64;
    let compute = |ms_per_event: f64| ms_per_event / 1000.0 * MEMORY_GB * LAMBDA_GB_SECOND * 1e6;
    let mut c = BTreeMap::new();
    c.insert("lambda_webhook_compute", compute(f.webhook_ms_per_event));
    c.insert("lambda_worker_compute", compute(f.worker_ms_per_event));
    c.insert(
        "lambda_webhook_requests",
        m.webhook.len() as f64 / n * LAMBDA_PER_MILLION_REQUESTS,
    );
    c.insert(
        "lambda_worker_requests",
        m.worker.len() as f64 / n * LAMBDA_PER_MILLION_REQUESTS,
    );
    c.insert("sqs", f.sqs.billed as f64 / n * SQS_PER_MILLION);
    c.insert("dynamodb_writes", f.ddb.wru / n * DDB_PER_MILLION_WRU);
    c.insert("dynamodb_reads", f.ddb.rru / n * DDB_PER_MILLION_RRU);
    let total = c.values().sum();
    c.insert("total", total);
    c
}

fn ratio(a: f64, b: f64) -> Value {
    if b > 0.0 {
        json!((a / b * 100.0).round() / 100.0)
    } else {
        Value::Null
    }
}

fn per_event(map: &BTreeMap<String, usize>, n: f64) -> Value {
    map.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!(((*v as f64 / n) * 1000.0).round() / 1000.0),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub fn to_json(m: &Measured) -> Value {
    let f = m.figures();
    let n = m.events.max(1) as f64;
    json!({
        "label": m.label,
        "profile": m.profile.to_json(),
        "events": m.events,
        "delivered": m.delivered,
        "deliveries": m.deliveries,
        "timed_out": m.timed_out,
        "dead_lettered": m.dead_lettered,
        "webhook_statuses": m.webhook_statuses,
        "invitations": {
            "configured_per_minute": m.rate,
            "max_in_any_60s": f.max_per_minute,
            "created": m.invitations.len(),
            "calls": m.invitation_calls,
            "duplicates": f.duplicates,
        },
        "poller": {
            "batches": m.poller.batches,
            "messages": m.poller.messages,
            "returned": m.poller.returned,
            "failed_invocations": m.poller.failed_invocations,
            "refused_deletes": m.poller.refused_deletes,
        },
        "graph": {"token_calls": m.token_calls, "other_calls": m.other_graph_calls},
        "first_post_to_last_link_s": f.elapsed.map(|d| d.as_secs_f64()),
        "webhook": lambda_json(&m.webhook, f.webhook_ms_per_event, n),
        "worker": lambda_json(&m.worker, f.worker_ms_per_event, n),
        "sqs": {
            "requests_per_event": f.sqs.requests as f64 / n,
            "billed_requests_per_event": f.sqs.billed as f64 / n,
            "empty_receives": f.sqs.empty_receives,
            "by_operation_per_event": per_event(&f.sqs.by_operation, n),
            "by_operation": f.sqs.by_operation,
        },
        "dynamodb": {
            "wru_per_event": f.ddb.wru / n,
            "rru_per_event": f.ddb.rru / n,
            "failed_conditional_writes": f.ddb.failed_conditions,
            "index_writes": f.ddb.index_writes,
            "by_operation": f.ddb.by_operation,
            "items": m.items,
            "largest_item_bytes": m.largest_item,
        },
        "requests_by_caller": callers_json(m, n),
        "chain_ms": {"warm": f.chain_warm_ms, "with_token": f.chain_cold_ms},
        "worker_ms_per_event_over_chain": ratio(f.worker_ms_per_event, f.chain_warm_ms),
        "webhook_ms_per_event_over_aws_calls": ratio(f.webhook_ms_per_event, f.webhook_floor_ms),
        "cost_per_million_events_usd": cost(m, &f),
        "notes": m.notes,
    })
}

fn callers_json(m: &Measured, n: f64) -> Value {
    account::by_caller(&m.requests)
        .into_iter()
        .map(|(who, a)| {
            let v = json!({
                "per_event": per_event(&a.by_operation, n),
                "aws_emulator_ms_per_event": ms(a.emulator_time) / n,
            });
            (who.to_owned(), v)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn lambda_json(d: &[Duration], per_event: f64, n: f64) -> Value {
    json!({
        "invocations": d.len(),
        "invocations_per_event": d.len() as f64 / n,
        "billed_ms_total": billed_ms(d) as u64,
        "billed_ms_per_event": per_event,
        "duration_p50_ms": percentile_ms(d, 0.5),
        "duration_p95_ms": percentile_ms(d, 0.95),
    })
}
