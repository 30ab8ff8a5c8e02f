//! CloudWatch metrics as Embedded Metric Format (EMF) lines: one JSON object per event (a
//! webhook request, a queue record, an EventBridge event, a sweep run), written on its own
//! line to stdout, which CloudWatch Logs turns into metrics without an API call.
//!
//! The document follows the EMF specification
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! an `_aws` member with `Timestamp` (epoch milliseconds) and `CloudWatchMetrics`, an array of
//! metric directives `{Namespace, Dimensions: [[keys]], Metrics: [{Name, Unit}]}`; each metric
//! and each dimension is a member of the root object, a number or an array of at most 100
//! numbers, and a directive names at most 100 metrics.
//!
//! While an event is handled, [`Metrics::measure`] keeps a tally in a task-local scope: the
//! Graph client adds its calls' latencies, the delivery step each channel's outcome, the
//! circuit breaker its openings. Outside a scope (the operator's commands, tests of single
//! components) recording does nothing.
//!
//! The line carries counts, durations, channel names, problem slugs and the source's name:
//! never an address, a redeem URL, a token or an event's body.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::Role;
use crate::problem::ProblemKind;

/// The namespace when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "InviteRelay";

/// The one dimension: which function emitted the line. Each metric name and dimension value
/// pair is a metric CloudWatch bills for, so the set stays this small.
pub const DIMENSION: &str = "Function";

/// The EMF limits: metrics per directive, values per metric.
const MAX_METRICS: usize = 100;
const MAX_VALUES: usize = 100;

tokio::task_local! {
    static CURRENT: RefCell<Tally>;
}

/// What one event came to, as counted while it was handled.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    source: Option<String>,
    invitations: u64,
    delivered: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
    refused: BTreeMap<&'static str, u64>,
    parked: BTreeMap<&'static str, u64>,
    breaker_opened: u64,
    graph_ms: Vec<f64>,
}

/// Where the lines go, and under which namespace.
pub struct Metrics {
    namespace: String,
    writer: BoxMakeWriter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Lines to stdout, where Lambda hands them to CloudWatch Logs.
    pub fn stdout(namespace: impl Into<String>) -> Self {
        Self::to_writer(namespace, std::io::stdout)
    }

    /// Lines to `writer` (a capture in tests).
    pub fn to_writer<W>(namespace: impl Into<String>, writer: W) -> Self
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        Self {
            namespace: namespace.into(),
            writer: BoxMakeWriter::new(writer),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Runs `fut` as one event of `function` and writes its line when it ends. Inside another
    /// event's scope it only runs `fut`: its counts belong to the outer event's line.
    pub async fn measure<F: Future>(&self, function: Role, fut: F) -> F::Output {
        // Boxed: an event's future is deep, and keeping it off the stack keeps this wrapper
        // from doubling its size (one allocation per event).
        let fut = Box::pin(fut);
        if CURRENT.try_with(|_| ()).is_ok() {
            return fut.await;
        }
        let (out, tally) = CURRENT
            .scope(RefCell::new(Tally::default()), async move {
                let out = fut.await;
                (out, CURRENT.with(RefCell::take))
            })
            .await;
        self.write(function, &tally);
        out
    }

    /// Writes `tally`'s line; a failed write loses the line, never the event.
    fn write(&self, function: Role, tally: &Tally) {
        let mut line = document(&self.namespace, function, tally, now_ms()).to_string();
        line.push('\n');
        let _ = std::io::Write::write_all(&mut self.writer.make_writer(), line.as_bytes());
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn record(f: impl FnOnce(&mut Tally)) {
    let _ = CURRENT.try_with(|t| f(&mut t.borrow_mut()));
}

/// The event came from `source` (a configured source's name).
pub(crate) fn source(name: &str) {
    record(|t| t.source = Some(name.to_owned()));
}

/// One Graph request answered (or failed) after `elapsed`.
pub(crate) fn graph_call(elapsed: Duration) {
    record(|t| t.graph_ms.push(elapsed.as_secs_f64() * 1000.0));
}

/// Graph created an invitation.
pub(crate) fn invitation_created() {
    record(|t| t.invitations += 1);
}

/// The link's delivery to `channel` succeeded or failed (after its retries).
pub(crate) fn delivery(channel: &str, succeeded: bool) {
    record(|t| {
        let counts = if succeeded {
            &mut t.delivered
        } else {
            &mut t.failed
        };
        *counts.entry(channel.to_owned()).or_default() += 1;
    });
}

/// The event (or one of a batch) ended in a problem of `kind`.
pub(crate) fn refused(kind: ProblemKind) {
    record(|t| *t.refused.entry(kind.slug()).or_default() += 1);
}

/// The event was parked on the dead-letter queue for a problem of `kind`.
pub(crate) fn parked(kind: ProblemKind) {
    record(|t| *t.parked.entry(kind.slug()).or_default() += 1);
}

/// The Graph circuit breaker opened.
pub(crate) fn breaker_opened() {
    record(|t| t.breaker_opened += 1);
}

/// A metric name part from a configured name: CloudWatch takes ASCII; anything else, and the
/// separator, become `_` so the names stay predictable.
fn name_part(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn total<K>(m: &BTreeMap<K, u64>) -> u64 {
    m.values().sum()
}

fn counts<K: AsRef<str>>(m: &BTreeMap<K, u64>) -> Vec<(&str, u64)> {
    m.iter().map(|(k, n)| (k.as_ref(), *n)).collect()
}

/// The EMF document for one event.
///
/// Totals have fixed names and are always present (a zero is a data point, so alarms see
/// "nothing happened" rather than missing data). The breakdowns (per channel, per problem,
/// per parking reason) are metric names, `Delivered.<channel>`, `DeliveryFailed.<channel>`,
/// `Refused.<slug>`, `Parked.<slug>`, under the same `Function` dimension, not a dimension
/// of their own: an EMF document holds one value per dimension, and one event can reach
/// several channels (or, in a batch, several problems) that must all be counted in its one
/// line. The names are bounded by the configuration's channels and the problem kinds, and a
/// dashboard gathers them with `SEARCH`.
pub fn document(namespace: &str, function: Role, tally: &Tally, timestamp_ms: u64) -> Value {
    let mut root = Map::new();
    let mut defs: Vec<Value> = Vec::new();
    let mut put = |name: String, unit: &str, value: Value| {
        if defs.len() < MAX_METRICS {
            defs.push(json!({"Name": name, "Unit": unit}));
            root.insert(name, value);
        }
    };
    put("Events".into(), "Count", 1.into());
    put(
        "InvitationsCreated".into(),
        "Count",
        tally.invitations.into(),
    );
    put(
        "DeliveriesSucceeded".into(),
        "Count",
        total(&tally.delivered).into(),
    );
    put(
        "DeliveriesFailed".into(),
        "Count",
        total(&tally.failed).into(),
    );
    put("Refused".into(), "Count", total(&tally.refused).into());
    put("Parked".into(), "Count", total(&tally.parked).into());
    put("BreakerOpened".into(), "Count", tally.breaker_opened.into());
    if !tally.graph_ms.is_empty() {
        let values: Vec<f64> = tally.graph_ms.iter().take(MAX_VALUES).copied().collect();
        put("GraphLatency".into(), "Milliseconds", values.into());
    }
    let breakdowns = [
        ("Delivered", counts(&tally.delivered)),
        ("DeliveryFailed", counts(&tally.failed)),
        ("Refused", counts(&tally.refused)),
        ("Parked", counts(&tally.parked)),
    ];
    for (metric, counts) in breakdowns {
        for (key, n) in counts {
            put(format!("{metric}.{}", name_part(key)), "Count", n.into());
        }
    }
    let function = match function {
        Role::Webhook => "webhook",
        Role::Worker => "worker",
    };
    root.insert(DIMENSION.into(), function.into());
    if let Some(source) = &tally.source {
        root.insert("Source".into(), source.clone().into());
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[DIMENSION]],
                "Metrics": defs,
            }],
        }),
    );
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    impl Capture {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    #[test]
    fn the_document_declares_every_metric_it_carries() {
        let mut tally = Tally {
            source: Some("hubspot".into()),
            invitations: 1,
            breaker_opened: 1,
            graph_ms: vec![12.5, 80.0],
            ..Tally::default()
        };
        tally.delivered.insert("slack".into(), 1);
        tally.failed.insert("team room/ü".into(), 2);
        tally.refused.insert("delivery-failed", 1);
        tally.parked.insert("graph-rejected", 1);
        let doc = document("InviteRelay/prod", Role::Worker, &tally, 1_795_341_600_000);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "InviteRelay/prod"
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1_795_341_600_000_u64);
        assert_eq!(doc["Function"], "worker");
        assert_eq!(doc["Source"], "hubspot");
        let defs = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .clone();
        let names: Vec<&str> = defs.iter().map(|d| d["Name"].as_str().unwrap()).collect();
        for (name, value) in [
            ("Events", json!(1)),
            ("InvitationsCreated", json!(1)),
            ("DeliveriesSucceeded", json!(1)),
            ("DeliveriesFailed", json!(2)),
            ("Refused", json!(1)),
            ("Parked", json!(1)),
            ("BreakerOpened", json!(1)),
            ("GraphLatency", json!([12.5, 80.0])),
            ("Delivered.slack", json!(1)),
            ("DeliveryFailed.team_room__", json!(2)),
            ("Refused.delivery-failed", json!(1)),
            ("Parked.graph-rejected", json!(1)),
        ] {
            assert!(names.contains(&name), "{name} is declared");
            assert_eq!(doc[name], value, "{name}");
        }
        assert_eq!(names.len(), 12, "nothing else is declared: {names:?}");
        let units: Vec<&str> = defs.iter().map(|d| d["Unit"].as_str().unwrap()).collect();
        assert_eq!(
            units[names.iter().position(|n| *n == "GraphLatency").unwrap()],
            "Milliseconds"
        );
    }

    #[test]
    fn the_documents_stay_within_the_format_limits() {
        let mut tally = Tally {
            graph_ms: vec![1.0; 250],
            ..Tally::default()
        };
        for i in 0..200 {
            tally.delivered.insert(format!("channel{i}"), 1);
        }
        let doc = document("InviteRelay", Role::Webhook, &tally, 0);
        let defs = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert_eq!(defs.len(), MAX_METRICS);
        assert!(
            defs.iter()
                .all(|d| doc.get(d["Name"].as_str().unwrap()).is_some())
        );
        assert_eq!(doc["GraphLatency"].as_array().unwrap().len(), MAX_VALUES);
        // A quiet event has no latency array at all (an empty one is not a value).
        let quiet = document("InviteRelay", Role::Webhook, &Tally::default(), 0);
        assert!(quiet.get("GraphLatency").is_none());
        assert_eq!(quiet["Events"], 1);
    }

    #[tokio::test]
    async fn one_line_per_event_and_nothing_outside_one() {
        let capture = Capture::default();
        let metrics = Metrics::to_writer("InviteRelay", capture.clone());
        // Outside an event, recording is a no-op.
        invitation_created();
        let answer = metrics
            .measure(Role::Webhook, async {
                invitation_created();
                graph_call(Duration::from_millis(40));
                // A nested measure belongs to the outer event's line.
                metrics
                    .measure(Role::Webhook, async {
                        delivery("slack", true);
                        breaker_opened();
                    })
                    .await;
                refused(ProblemKind::Signature);
                7
            })
            .await;
        assert_eq!(answer, 7);
        metrics
            .measure(Role::Worker, async { parked(ProblemKind::Malformed) })
            .await;
        let lines = capture.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["InvitationsCreated"], 1);
        assert_eq!(lines[0]["Delivered.slack"], 1);
        assert_eq!(lines[0]["BreakerOpened"], 1);
        assert_eq!(lines[0]["Refused.signature"], 1);
        assert!((lines[0]["GraphLatency"][0].as_f64().unwrap() - 40.0).abs() < 0.001);
        assert_eq!(lines[1]["Function"], "worker");
        assert_eq!(lines[1]["Parked.malformed-request"], 1);
        assert_eq!(lines[1]["InvitationsCreated"], 0);
    }
}
