//! `queuebench`: cost and latency of queue mode under realistic upstream latency, without a
//! cloud.
//!
//! It creates a queue (with its dead-letter queue), a table and a secret in the AWS emulator,
//! puts a latency-adding proxy in front of it (DynamoDB requests one at a time, as the tests
//! do, since the emulator can let two simultaneous conditional writes both succeed), starts
//! several release `webhook` processes in queue mode and several `worker` processes against the
//! loopback Lambda Runtime API, each worker fed by a poller that behaves like Lambda's SQS event
//! source mapping, POSTs a burst of signed events, and runs until every event's link reached the
//! channel. It then reports the invitation rate reached, the time to the last link, billed
//! milliseconds, SQS and DynamoDB requests and units, and the cost per million events.
//!
//! ```text
//! queuebench --webhook target/release/webhook --worker target/release/worker \
//!            --aws-endpoint http://127.0.0.1:5000 [--profile realistic|loopback] \
//!            [--events 200] [--rate 30] [--timeout 1200] [--label NAME] [--json]
//! ```
//!
//! Only the functions' environment variables and the HTTP and Runtime API contracts are used,
//! so the same harness runs older builds of the functions.

mod account;
mod aws;
mod burst;
mod poller;
mod profile;
mod report;
mod run;
mod text;

use profile::Profile;

/// The command line.
pub struct Args {
    pub webhook: String,
    pub worker: String,
    pub aws_endpoint: String,
    pub profile: Profile,
    pub events: usize,
    pub rate: u32,
    pub timeout_s: u64,
    pub webhooks: usize,
    pub workers: usize,
    pub batch_size: u32,
    pub wait_seconds: u32,
    pub visibility: u32,
    pub max_receives: u32,
    pub label: String,
    pub event_file: String,
    pub json: bool,
}

fn parse_args() -> Result<Args, String> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    fn num<T: std::str::FromStr>(v: Option<String>, name: &str, default: T) -> Result<T, String> {
        v.map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{name}: not a number: {v}"))
        })
    }
    let aws_endpoint = flag("--aws-endpoint")
        .or_else(|| std::env::var("MOTO_URL").ok())
        .ok_or("--aws-endpoint http://127.0.0.1:PORT (a moto_server), or MOTO_URL")?;
    let webhook = flag("--webhook").unwrap_or_else(|| "target/release/webhook".into());
    Ok(Args {
        worker: flag("--worker").unwrap_or_else(|| "target/release/worker".into()),
        label: flag("--label").unwrap_or_else(|| webhook.clone()),
        webhook,
        aws_endpoint,
        profile: Profile::named(&flag("--profile").unwrap_or_else(|| "realistic".into()))?,
        events: num(flag("--events"), "--events", 200)?,
        rate: num(flag("--rate"), "--rate", 30)?,
        timeout_s: num(flag("--timeout"), "--timeout", 1200)?,
        webhooks: num(flag("--webhook-instances"), "--webhook-instances", 4)?,
        workers: num(flag("--worker-instances"), "--worker-instances", 3)?,
        batch_size: num(flag("--batch-size"), "--batch-size", 10)?,
        wait_seconds: num(flag("--wait-seconds"), "--wait-seconds", 20)?,
        visibility: num(flag("--visibility"), "--visibility", 180)?,
        max_receives: num(flag("--max-receives"), "--max-receives", 5)?,
        event_file: flag("--event").unwrap_or_else(|| "events/function-url-generic.json".into()),
        json: args.iter().any(|a| a == "--json"),
    })
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("queuebench: {e}");
            std::process::exit(2);
        }
    };
    match run::run(&args).await {
        Ok(measured) => {
            if args.json {
                println!("{}", report::to_json(&measured));
            } else {
                print!("{}", text::render(&measured));
            }
            if measured.timed_out {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("queuebench: {e}");
            std::process::exit(1);
        }
    }
}
