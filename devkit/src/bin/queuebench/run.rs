//! One run: the emulators and the AWS resources, the function processes, the pollers, the
//! burst, the wait for the last link, and the measurements.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use devkit::runtime_api::LambdaProcess;
use devkit::{FaultProxy, GraphEmulator, GraphSettings, Receiver};
use serde_json::{Value, json};

use crate::Args;
use crate::aws::{self, Aws, Resources};
use crate::burst;
use crate::poller::{self, Mapping, PollerStats};
use crate::report::Measured;

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DELIVERY_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// The emulators and what the run created in the AWS emulator.
struct Stage {
    graph: GraphEmulator,
    receiver: Receiver,
    proxy: FaultProxy,
    moto: Aws,
    resources: Resources,
    run: String,
}

async fn stage(a: &Args) -> Result<Stage, String> {
    let graph = GraphEmulator::start(GraphSettings::default(), 0)
        .await
        .map_err(|e| format!("Graph emulator: {e}"))?;
    graph.set_latency(a.profile.graph);
    let receiver = Receiver::start(0, None)
        .await
        .map_err(|e| format!("receiver: {e}"))?;
    receiver.set_latency(a.profile.channel);
    // DynamoDB's writes one at a time (conditional writes atomic, as on the real service);
    // reads and SQS at once, so neither a long poll nor a read waits behind the table's writes.
    let writes = [
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
    ]
    .map(|op| format!("DynamoDB_20120810.{op}"));
    let writes: Vec<&str> = writes.iter().map(String::as_str).collect();
    let proxy = FaultProxy::start_serial_only(&a.aws_endpoint, &writes)
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    proxy.set_latency(a.profile.aws);
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() % 1_000_000_000)
    );
    let secret = json!({
        "graph_client_secret": graph.settings().client_secret,
        "webhook_signing_secret": WEBHOOK_SECRET,
        "delivery_webhook_url": format!("{}/hooks/queuebench", receiver.url),
        "delivery_signing_secret": DELIVERY_SECRET,
    });
    let moto = Aws::new(&a.aws_endpoint);
    let resources = aws::create(&moto, &run, a.visibility, a.max_receives, &secret).await?;
    Ok(Stage {
        graph,
        receiver,
        proxy,
        moto,
        resources,
        run,
    })
}

/// The functions' environment, as Lambda and the template set it (queue mode).
fn environment(a: &Args, s: &Stage, function: &str) -> Vec<(String, String)> {
    let settings = s.graph.settings();
    let r = &s.resources;
    let mut env: Vec<(&str, String)> = vec![
        ("AWS_LAMBDA_FUNCTION_NAME", function.into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        ("RUST_LOG", "warn".into()),
        ("AWS_REGION", aws::REGION.into()),
        ("AWS_ACCESS_KEY_ID", "bench".into()),
        ("AWS_SECRET_ACCESS_KEY", "bench".into()),
        ("AWS_ENDPOINT_URL", s.proxy.url.clone()),
        // Names the function in its AWS requests' user agent, so the proxy's record tells the
        // webhook's requests from the worker's.
        ("AWS_SDK_UA_APP_ID", function.into()),
        ("RELAY_SECRET_ID", r.secret_id.clone()),
        ("GRAPH_TENANT_ID", settings.tenant_id.clone()),
        ("GRAPH_CLIENT_ID", settings.client_id.clone()),
        ("GRAPH_LOGIN_URL", s.graph.url.clone()),
        ("GRAPH_API_URL", s.graph.url.clone()),
        (
            "INVITE_REDIRECT_URL",
            "https://myapps.microsoft.com/?tenantid=7b8f2c1e-0d4a-4e6b-9c3f-5a1d2e3f4a5b".into(),
        ),
        ("DELIVERY_ALLOW_PRIVATE_NETWORKS", "true".into()),
        ("INVITE_RATE_PER_MINUTE", a.rate.to_string()),
        ("OUTBOUND_TIMEOUT_MS", "5000".into()),
        ("PROCESSING_MODE", "queue".into()),
        ("QUEUE_URL", r.queue_url.clone()),
        ("IDEMPOTENCY_TABLE", r.table.clone()),
        ("DEAD_LETTER_QUEUE_URL", r.dead_letter_url.clone()),
        ("MAX_RECEIVES", a.max_receives.to_string()),
    ];
    env.retain(|(k, _)| function == "worker" || *k != "DEAD_LETTER_QUEUE_URL");
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

async fn start_many(
    binary: &str,
    env: &[(String, String)],
    n: usize,
) -> Result<Vec<Arc<LambdaProcess>>, String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Arc::new(LambdaProcess::start(binary, env).await?));
    }
    Ok(out)
}

/// Each distinct event of this run whose link reached the channel, with its first arrival.
fn delivered(receiver: &Receiver, run: &str) -> (HashMap<String, Instant>, usize) {
    let prefix = burst::event_prefix(run);
    let mut first: HashMap<String, Instant> = HashMap::new();
    let mut deliveries = 0;
    for r in receiver.delivered() {
        let v = r.json();
        let data = &v["data"];
        let Some(id) = data["eventId"].as_str() else {
            continue;
        };
        if !id.starts_with(&prefix) || data["inviteRedeemUrl"].as_str().is_none() {
            continue;
        }
        deliveries += 1;
        let t = first.entry(id.to_owned()).or_insert(r.arrived);
        *t = (*t).min(r.arrived);
    }
    (first, deliveries)
}

/// Waits until every event's link arrived, or the timeout.
async fn wait_for_links(receiver: &Receiver, run: &str, n: usize, deadline: Instant) -> bool {
    loop {
        if delivered(receiver, run).0.len() >= n {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The running pollers.
struct Pollers {
    stop: Arc<AtomicBool>,
    busy: Vec<Arc<AtomicBool>>,
    stats: Arc<std::sync::Mutex<PollerStats>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_pollers(a: &Args, s: &Stage, workers: &[Arc<LambdaProcess>]) -> Pollers {
    let mapping = Mapping {
        queue_url: s.resources.queue_url.clone(),
        queue_arn: s.resources.queue_arn.clone(),
        batch_size: a.batch_size,
        wait_seconds: a.wait_seconds,
        function_timeout: Duration::from_secs(30),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let through_proxy = Aws::new(&s.proxy.url);
    let stats = Arc::default();
    let mut busy = Vec::new();
    let mut tasks = Vec::new();
    for w in workers {
        let b = Arc::new(AtomicBool::new(false));
        busy.push(b.clone());
        tasks.push(tokio::spawn(poller::run(
            through_proxy.clone(),
            w.clone(),
            mapping.clone(),
            stop.clone(),
            b,
            Arc::clone(&stats),
        )));
    }
    Pollers {
        stop,
        busy,
        stats,
        tasks,
    }
}

/// Lets the batches in flight finish (their deletes included), at most `limit`.
async fn settle(p: &Pollers, limit: Duration) {
    let until = Instant::now() + limit;
    while p.busy.iter().any(|b| b.load(Ordering::Relaxed)) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(a: &Args) -> Result<Measured, String> {
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(&a.event_file)
            .map_err(|e| format!("{}: {e} (run from the repository root)", a.event_file))?,
    )
    .map_err(|e| e.to_string())?;
    let s = stage(a).await?;
    let webhooks = start_many(&a.webhook, &environment(a, &s, "webhook"), a.webhooks).await?;
    let workers = start_many(&a.worker, &environment(a, &s, "worker"), a.workers).await?;
    eprintln!(
        "queuebench [{}]: {} events, {} webhook and {} worker instances, {}",
        a.label,
        a.events,
        a.webhooks,
        a.workers,
        a.profile.describe()
    );
    let deadline = Instant::now() + Duration::from_secs(a.timeout_s);
    let pollers = start_pollers(a, &s, &workers);
    let burst = burst::post_all(&webhooks, &sample, &s.run, a.events, WEBHOOK_SECRET).await;
    let done = wait_for_links(&s.receiver, &s.run, a.events, deadline).await;
    settle(&pollers, Duration::from_secs(40)).await;
    let poller = pollers.stats.lock().unwrap().clone();
    let measured = measure(a, &s, &burst, &webhooks, &workers, !done).await;
    pollers.stop.store(true, Ordering::Relaxed);
    for t in pollers.tasks {
        t.abort();
        let _ = t.await;
    }
    for f in webhooks.into_iter().chain(workers) {
        if let Ok(f) = Arc::try_unwrap(f) {
            f.stop().await;
        }
    }
    let mut measured = measured?;
    measured
        .notes
        .extend(poller.errors.iter().take(5).map(|e| format!("poller: {e}")));
    measured.poller = poller;
    Ok(measured)
}

async fn measure(
    a: &Args,
    s: &Stage,
    b: &burst::Burst,
    webhooks: &[Arc<LambdaProcess>],
    workers: &[Arc<LambdaProcess>],
    timed_out: bool,
) -> Result<Measured, String> {
    let requests = s.proxy.requests();
    let (links, deliveries) = delivered(&s.receiver, &s.run);
    let calls = s.graph.invitation_calls();
    let invitations = calls
        .iter()
        .filter(|c| c.status == 201)
        .map(|c| {
            let email = c.body["invitedUserEmailAddress"].as_str().unwrap_or("");
            (c.at, email.to_ascii_lowercase())
        })
        .collect();
    let items = aws::scan(&s.moto, &s.resources.table).await?;
    let dlq = s
        .moto
        .sqs(
            "GetQueueAttributes",
            json!({"QueueUrl": s.resources.dead_letter_url, "AttributeNames": ["ApproximateNumberOfMessages"]}),
        )
        .await?;
    let mut notes: Vec<String> = b.errors.iter().map(|e| format!("webhook: {e}")).collect();
    notes.truncate(5);
    Ok(Measured {
        label: a.label.clone(),
        profile: a.profile.clone(),
        events: a.events,
        rate: a.rate,
        timed_out,
        delivered: links.len(),
        deliveries,
        first_post: b.first_post.unwrap_or_else(Instant::now),
        last_delivery: links.values().max().copied(),
        invitations,
        invitation_calls: calls.len(),
        token_calls: s.graph.token_calls().len(),
        other_graph_calls: s.graph.user_queries().len()
            + s.graph.user_calls().len()
            + s.graph.group_calls().len(),
        webhook: webhooks.iter().flat_map(|w| w.durations()).collect(),
        worker: workers.iter().flat_map(|w| w.durations()).collect(),
        webhook_statuses: b.statuses.clone(),
        requests,
        items: items.len(),
        largest_item: items.iter().map(aws::item_size).max().unwrap_or(0),
        poller: PollerStats::default(),
        dead_lettered: dlq["Attributes"]["ApproximateNumberOfMessages"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        notes,
    })
}
