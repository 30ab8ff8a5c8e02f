//! `coldstart`: measures cold starts the way Lambda causes them, without a cloud.
//!
//! It serves the Lambda Runtime API on loopback, starts a function binary as Lambda would (the
//! same environment variables), and measures per cold start: init (process start to the first
//! `GET /runtime/invocation/next`), the first event's duration, warm events' durations, and
//! peak RSS (`VmHWM`). The same is measured for the `hello` floor. The `webhook` function runs
//! against the Graph emulator, a channel receiver and the AWS emulator, so upstream time is
//! near zero.
//!
//! ```text
//! coldstart --function target/release/webhook --floor target/release/hello \
//!           --aws-endpoint http://127.0.0.1:5000 [--cold 10] [--warm 200] \
//!           [--queue-url URL --table NAME]
//! ```
//!
//! With `--queue-url` and `--table` (an SQS queue and a DynamoDB table in the AWS emulator), a
//! fourth series runs the webhook in queue mode: verify, check the record, enqueue, answer 202.
//! Each `--compare NAME=PATH` adds a series of another webhook build (a baseline commit, another
//! profile), run like the sync-mode series and interleaved with it.
//!
//! ```text
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use devkit::runtime_api::{Invoked, LambdaProcess};
use devkit::{GraphEmulator, GraphSettings, Receiver, events};

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DELIVERY_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One cold start's figures, in microseconds and kilobytes.
#[derive(Debug, Default, Clone)]
struct Run {
    init_us: u128,
    first_us: u128,
    warm_us: Vec<u128>,
    peak_rss_kb: u64,
    /// The function's own account of its init (`start-up timings` and `invite-relay ready`
    /// log lines), in microseconds: configuration, AWS SDK configuration, the rest of start-up
    /// and, within it, the secret read.
    phases: HashMap<&'static str, u128>,
}

/// Reads the phase fields from the function's JSON log lines; `spawned_unix_us` (when the
/// process was started) turns its `started_unix_us` into the time before its own start-up code
/// ran (executable loading, runtime and logging set-up).
fn phases(log: &str, spawned_unix_us: u128) -> HashMap<&'static str, u128> {
    let mut out = HashMap::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for key in [
            "config_us",
            "tls_us",
            "aws_config_us",
            "app_us",
            "secret_read_us",
        ] {
            if let Some(n) = v.get(key).and_then(serde_json::Value::as_u64) {
                out.insert(key, u128::from(n));
            }
        }
        if let Some(n) = v.get("started_unix_us").and_then(serde_json::Value::as_u64) {
            out.insert(
                "before_app_us",
                u128::from(n).saturating_sub(spawned_unix_us),
            );
        }
    }
    out
}

/// An HTTP client for the AWS emulator (plain http on loopback).
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// One Secrets Manager call to the AWS emulator in its JSON protocol. moto does not check
/// signatures; it takes the region from the credential scope.
async fn secrets_manager(
    http: &reqwest::Client,
    endpoint: &str,
    action: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let response = http
        .post(format!("{}/", endpoint.trim_end_matches('/')))
        .header("x-amz-target", format!("secretsmanager.{action}"))
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=bench/20260101/eu-west-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{action}: {status} {text}"));
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn unix_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

fn percentile(v: &mut [u128], p: f64) -> u128 {
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn cold_start(
    binary: &str,
    env: &[(String, String)],
    event: &(dyn Fn(usize) -> String + Sync),
    warm: usize,
) -> Result<Run, String> {
    let spawned_unix_us = unix_us();
    let function = LambdaProcess::start(binary, env).await?;
    let mut durations = Vec::with_capacity(warm + 1);
    for i in 0..=warm {
        let t = Instant::now();
        match function.invoke(&event(i), Duration::from_secs(30)).await? {
            Invoked::Response(_) => durations.push(t.elapsed().as_micros()),
            Invoked::Error(e) => return Err(format!("{binary}: invocation {i} failed: {e}")),
        }
    }
    let peak_rss_kb = function.peak_rss_kb();
    let init_us = function.init.as_micros();
    let log = function.stdout();
    function.stop().await;
    Ok(Run {
        init_us,
        first_us: durations[0],
        warm_us: durations[1..].to_vec(),
        peak_rss_kb,
        phases: phases(&log, spawned_unix_us),
    })
}

struct Summary {
    init_p50: u128,
    first_p50: u128,
    warm_p50: u128,
    warm_p99: u128,
    rss_kb: u64,
}

fn summarise(runs: &[Run]) -> Summary {
    let mut init: Vec<u128> = runs.iter().map(|r| r.init_us).collect();
    let mut first: Vec<u128> = runs.iter().map(|r| r.first_us).collect();
    let mut warm: Vec<u128> = runs.iter().flat_map(|r| r.warm_us.clone()).collect();
    Summary {
        init_p50: percentile(&mut init, 0.5),
        first_p50: percentile(&mut first, 0.5),
        warm_p50: percentile(&mut warm, 0.5),
        warm_p99: percentile(&mut warm, 0.99),
        rss_kb: runs.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0),
    }
}

fn ms(us: u128) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let function = flag("--function").unwrap_or_else(|| "target/release/webhook".into());
    let floor = flag("--floor").unwrap_or_else(|| "target/release/hello".into());
    let aws = flag("--aws-endpoint").expect("--aws-endpoint http://127.0.0.1:PORT (a moto_server)");
    let cold: usize = flag("--cold").and_then(|v| v.parse().ok()).unwrap_or(10);
    let warm: usize = flag("--warm").and_then(|v| v.parse().ok()).unwrap_or(200);

    let graph = GraphEmulator::start(GraphSettings::default(), 0)
        .await
        .expect("Graph emulator");
    let receiver = Receiver::start(0, None).await.expect("receiver");
    let settings = graph.settings().clone();
    let secret_id = format!("invite-relay-bench-{}", std::process::id());
    let secret = serde_json::json!({
        "graph_client_secret": settings.client_secret,
        "webhook_signing_secret": WEBHOOK_SECRET,
        "slack_webhook_url": format!("{}/slack/T0/B0/bench", receiver.url),
        "delivery_webhook_url": format!("{}/hooks/bench", receiver.url),
        "delivery_signing_secret": DELIVERY_SECRET,
    });
    let http = plain_client();
    secrets_manager(
        &http,
        &aws,
        "CreateSecret",
        serde_json::json!({"Name": secret_id, "SecretString": secret.to_string()}),
    )
    .await
    .expect("create the secret in the AWS emulator");

    let base_env = |name: &str| -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_FUNCTION_NAME", name),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            // Warnings only, plus the function's start-up timings line.
            ("RUST_LOG", "warn,invite_relay::startup=info"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("AWS_ENDPOINT_URL", aws.as_str()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let mut webhook_env = base_env("webhook");
    for (k, v) in [
        ("RELAY_SECRET_ID", secret_id.clone()),
        ("GRAPH_TENANT_ID", settings.tenant_id.clone()),
        ("GRAPH_CLIENT_ID", settings.client_id.clone()),
        ("GRAPH_LOGIN_URL", graph.url.clone()),
        ("GRAPH_API_URL", graph.url.clone()),
        (
            "INVITE_REDIRECT_URL",
            "https://myapps.microsoft.com/?tenantid=7b8f2c1e-0d4a-4e6b-9c3f-5a1d2e3f4a5b".into(),
        ),
        ("DELIVERY_ALLOW_PRIVATE_NETWORKS", "true".into()),
        ("INVITE_RATE_PER_MINUTE", "6000".into()),
    ] {
        webhook_env.push((k.to_owned(), v));
    }

    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("events/function-url-generic.json")
            .expect("run from the repository root"),
    )
    .unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let signed = |_: usize| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut e = sample.clone();
        let mut body: serde_json::Value = serde_json::from_slice(&events::event_body(&e)).unwrap();
        body["id"] = format!("evt_bench_{n}").into();
        body["invitee"]["email"] = format!("bench{n}@partner.example").into();
        events::set_event_body(&mut e, &body.to_string());
        events::sign_event(&mut e, WEBHOOK_SECRET);
        e.to_string()
    };
    let hello_event = |_: usize| sample.to_string();

    // The same function, reading its secret on the first event instead of during init.
    let mut lazy_env = webhook_env.clone();
    lazy_env.push(("SECRET_READ_AT_START".into(), "false".into()));

    let mut floor_runs = Vec::new();
    let mut relay_runs = Vec::new();
    let mut lazy_runs = Vec::new();
    let mut queue_runs = Vec::new();
    // Other builds of the webhook (`--compare NAME=PATH`, repeatable), run as the sync-mode
    // series is, interleaved with it: a baseline commit, another profile.
    let compare: Vec<(String, String)> = args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "--compare")
        .filter_map(|(i, _)| {
            args.get(i + 1)?
                .split_once('=')
                .map(|(n, p)| (n.to_owned(), p.to_owned()))
        })
        .collect();
    let mut compare_runs: Vec<Vec<Run>> = compare.iter().map(|_| Vec::new()).collect();
    let queue_env = match (flag("--queue-url"), flag("--table")) {
        (Some(q), Some(t)) => {
            let mut e = webhook_env.clone();
            e.push(("PROCESSING_MODE".into(), "queue".into()));
            e.push(("QUEUE_URL".into(), q));
            e.push(("IDEMPOTENCY_TABLE".into(), t));
            Some(e)
        }
        _ => None,
    };
    for _ in 0..cold {
        // Interleaved, so both see the same machine conditions.
        floor_runs.push(
            cold_start(&floor, &base_env("hello"), &hello_event, warm)
                .await
                .expect("floor run"),
        );
        relay_runs.push(
            cold_start(&function, &webhook_env, &signed, warm)
                .await
                .expect("webhook run"),
        );
        lazy_runs.push(
            cold_start(&function, &lazy_env, &signed, warm)
                .await
                .expect("webhook run (secret read on the first event)"),
        );
        for ((name, path), runs) in compare.iter().zip(compare_runs.iter_mut()) {
            runs.push(
                cold_start(path, &webhook_env, &signed, warm)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
            );
        }
        if let Some(env) = &queue_env {
            queue_runs.push(
                cold_start(&function, env, &signed, warm)
                    .await
                    .expect("webhook run (queue mode)"),
            );
        }
    }
    let f = summarise(&floor_runs);
    let r = summarise(&relay_runs);
    let l = summarise(&lazy_runs);
    let q = (!queue_runs.is_empty()).then(|| summarise(&queue_runs));
    println!(
        "cold starts: {cold} each, warm events per cold start: {warm} (medians over all runs)"
    );
    println!("| | init p50 | first event p50 | warm p50 | warm p99 | peak RSS |");
    println!("|---|---|---|---|---|---|");
    let rows = vec![
        ("hello-world floor", &f),
        ("invite-relay webhook", &r),
        ("invite-relay webhook, SECRET_READ_AT_START=false", &l),
    ];
    let compared: Vec<(String, Summary)> = compare
        .iter()
        .zip(&compare_runs)
        .map(|((n, _), runs)| (format!("invite-relay webhook, {n}"), summarise(runs)))
        .collect();
    let mut rows: Vec<(&str, &Summary)> = rows;
    for (name, s) in &compared {
        rows.push((name.as_str(), s));
    }
    if let Some(q) = &q {
        rows.push((
            "invite-relay webhook, PROCESSING_MODE=queue (enqueue, 202)",
            q,
        ));
    }
    for (name, s) in rows {
        println!(
            "| {name} | {} | {} | {} | {} | {:.1} MB |",
            ms(s.init_p50),
            ms(s.first_p50),
            ms(s.warm_p50),
            ms(s.warm_p99),
            s.rss_kb as f64 / 1024.0
        );
    }
    for (name, s) in [("webhook", &r), ("webhook, secret on first event", &l)] {
        println!(
            "ratios ({name}): init {:.2}x the floor; first event {:.2}x a warm event",
            s.init_p50 as f64 / f.init_p50.max(1) as f64,
            s.first_p50 as f64 / s.warm_p50.max(1) as f64
        );
    }
    let phase = |key: &str| {
        let mut v: Vec<u128> = relay_runs
            .iter()
            .filter_map(|r| r.phases.get(key).copied())
            .collect();
        ms(percentile(&mut v, 0.5))
    };
    println!(
        "webhook init breakdown (p50, from its own log): before its start-up code {}, configuration {}, TLS and root certificates {}, AWS SDK configuration {}, clients and secret {} (secret read {})",
        phase("before_app_us"),
        phase("config_us"),
        phase("tls_us"),
        phase("aws_config_us"),
        phase("app_us"),
        phase("secret_read_us")
    );
    // The function's own work in init: each cold start's init less the time it waited for the
    // secret (its own measurement), against the floor.
    let mut own: Vec<u128> = relay_runs
        .iter()
        .filter_map(|r| {
            r.phases
                .get("secret_read_us")
                .map(|s| r.init_us.saturating_sub(*s))
        })
        .collect();
    let own_p50 = percentile(&mut own, 0.5);
    // How long the AWS emulator itself takes to answer the same GetSecretValue on a new
    // connection, as the function's start-up makes it, so the wait above can be told apart from
    // the function's work.
    let mut answer = Vec::new();
    for i in 0..21 {
        let fresh = plain_client();
        let t = Instant::now();
        secrets_manager(
            &fresh,
            &aws,
            "GetSecretValue",
            serde_json::json!({"SecretId": secret_id}),
        )
        .await
        .expect("read the secret back from the AWS emulator");
        if i > 0 {
            answer.push(t.elapsed().as_micros());
        }
    }
    let answer_p50 = percentile(&mut answer, 0.5);
    println!(
        "the AWS emulator answers GetSecretValue in {} (p50 of 20 calls from this harness, each on a new connection)",
        ms(answer_p50)
    );
    // Two bounds on the function's own init work: less its whole secret read (the call, and
    // its own share in it: connecting, signing, checking the secret), and less only the
    // emulator's answer time.
    println!(
        "webhook init less its whole secret read: {} ({:.2}x the floor); less the emulator's answer time only: {} ({:.2}x the floor)",
        ms(own_p50),
        own_p50 as f64 / f.init_p50.max(1) as f64,
        ms(r.init_p50.saturating_sub(answer_p50)),
        r.init_p50.saturating_sub(answer_p50) as f64 / f.init_p50.max(1) as f64
    );
    println!("graph invitations created: {}", graph.created().len());
}
