//! The report as text.

use std::fmt::Write as _;

use crate::report::{Figures, Measured, cost};

fn list(map: &std::collections::BTreeMap<String, usize>, n: f64) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {:.2} ({v})", *v as f64 / n))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a (no added latency)".into()
    }
}

pub fn render(m: &Measured) -> String {
    let f = m.figures();
    let mut out = String::new();
    let _ = writeln!(out, "== queue mode: {} ==", m.label);
    let _ = writeln!(out, "{}", m.profile.describe());
    let _ = writeln!(
        out,
        "events: {} posted (webhook answers {:?}), {} delivered to the channel ({} deliveries){}{}",
        m.events,
        m.webhook_statuses,
        m.delivered,
        m.deliveries,
        if m.timed_out { " -- TIMED OUT" } else { "" },
        if m.dead_lettered > 0 {
            format!(", {} on the dead-letter queue", m.dead_lettered)
        } else {
            String::new()
        },
    );
    let p = &m.poller;
    let _ = writeln!(
        out,
        "event source mapping: {} batches, {} messages ({:.2} per batch), {} returned as batch item failures, {} failed invocations, {} refused deletes",
        p.batches,
        p.messages,
        p.messages as f64 / p.batches.max(1) as f64,
        p.returned,
        p.failed_invocations,
        p.refused_deletes
    );
    pacing(&mut out, m, &f);
    lambda(&mut out, m, &f);
    aws(&mut out, m, &f);
    costs(&mut out, m, &f);
    for note in &m.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

fn pacing(out: &mut String, m: &Measured, f: &Figures) {
    let _ = writeln!(
        out,
        "invitations: max {} in any 60 s window (configured {}/min); {} created in {} calls, {} duplicates; Graph token calls {}, other Graph calls {}",
        f.max_per_minute,
        m.rate,
        m.invitations.len(),
        m.invitation_calls,
        f.duplicates,
        m.token_calls,
        m.other_graph_calls
    );
    let _ = writeln!(
        out,
        "first webhook POST to last delivered link: {}",
        f.elapsed
            .map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64()))
    );
}

fn lambda(out: &mut String, m: &Measured, f: &Figures) {
    let n = m.events.max(1) as f64;
    let callers = crate::account::by_caller(&m.requests);
    let emulator = |who: &str| {
        callers
            .get(who)
            .map_or(0.0, |a| a.emulator_time.as_secs_f64() * 1000.0 / n)
    };
    for (name, d, per) in [
        ("webhook", &m.webhook, f.webhook_ms_per_event),
        ("worker", &m.worker, f.worker_ms_per_event),
    ] {
        let mut v = d.clone();
        v.sort_unstable();
        let p = |q: f64| {
            v.get(((v.len().max(1) as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let _ = writeln!(
            out,
            "{name}: {} invocations ({:.2} per event), billed {per:.1} ms per event (less the AWS emulator's own answer time: ~{:.1} ms); duration p50 {:.1} ms, p95 {:.1} ms",
            d.len(),
            d.len() as f64 / n,
            (per - emulator(name)).max(0.0),
            p(0.5),
            p(0.95)
        );
    }
    let _ = writeln!(
        out,
        "worker chain of dependent upstream calls: invitation -> channel {:.0} ms (token -> invitation -> channel, a cold container: {:.0} ms); billed worker ms per event / chain = {}",
        f.chain_warm_ms,
        f.chain_cold_ms,
        ratio(f.worker_ms_per_event, f.chain_warm_ms)
    );
    let _ = writeln!(
        out,
        "webhook: billed ms per event / (its DynamoDB check + SQS send, as measured = {:.1} ms) = {}",
        f.webhook_floor_ms,
        ratio(f.webhook_ms_per_event, f.webhook_floor_ms)
    );
}

fn aws(out: &mut String, m: &Measured, f: &Figures) {
    let n = m.events.max(1) as f64;
    let _ = writeln!(
        out,
        "SQS: {:.2} requests per event ({:.2} billed per 64 KB), of which {} empty receives; per event (total): {}",
        f.sqs.requests as f64 / n,
        f.sqs.billed as f64 / n,
        f.sqs.empty_receives,
        list(&f.sqs.by_operation, n)
    );
    let _ = writeln!(
        out,
        "DynamoDB: {:.2} WRU and {:.2} RRU per event ({} refused conditional writes, {} writes to tracking-index counted as 1 WRU more); per event (total): {}",
        f.ddb.wru / n,
        f.ddb.rru / n,
        f.ddb.failed_conditions,
        f.ddb.index_writes,
        list(&f.ddb.by_operation, n)
    );
    for (who, a) in crate::account::by_caller(&m.requests) {
        let own = if who == "mapping" {
            String::new()
        } else {
            format!(
                "; the AWS emulator's own answer time {:.1} ms per event",
                a.emulator_time.as_secs_f64() * 1000.0 / n
            )
        };
        let _ = writeln!(out, "  by {who}: {}{own}", list(&a.by_operation, n));
    }
    let _ = writeln!(
        out,
        "table: {} items at the end, largest {} bytes ({})",
        m.items,
        m.largest_item,
        if m.largest_item < 1024 {
            "every write under 1 KB: 1 WRU"
        } else {
            "LARGER than 1 KB: writes of it cost more than 1 WRU, not counted"
        }
    );
}

fn costs(out: &mut String, m: &Measured, f: &Figures) {
    let c = cost(m, f);
    let total = c["total"];
    let share = |k: &str| {
        format!(
            "{k} ${:.3} ({:.0} %)",
            c[k],
            if total > 0.0 {
                c[k] / total * 100.0
            } else {
                0.0
            }
        )
    };
    let _ = writeln!(
        out,
        "cost per million events (us-east-1, arm64 128 MB): {}; total ${total:.3}",
        [
            "lambda_webhook_compute",
            "lambda_webhook_requests",
            "lambda_worker_compute",
            "lambda_worker_requests",
            "sqs",
            "dynamodb_writes",
            "dynamodb_reads",
        ]
        .map(share)
        .join(", ")
    );
}
