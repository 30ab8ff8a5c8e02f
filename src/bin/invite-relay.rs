//! The operator's command line.
//!
//! ```text
//! invite-relay render --event FILE [--config FILE] [--source NAME] [--out DIR]
//! ```
//!
//! `render` shows every channel's message for an event, in every language each channel speaks,
//! exactly as it would be sent (with a sample invitation link): the configuration is
//! `--config` or `RELAY_CONFIG`, the event a request body or a Lambda HTTP event from
//! `events/`. Files go to `--out`, or to standard output.

use std::process::ExitCode;

use invite_relay::config::load_relay;
use invite_relay::delivery::preview::render_all;

const USAGE: &str =
    "usage: invite-relay render --event FILE [--config FILE] [--source NAME] [--out DIR]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("invite-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let (command, rest) = args.split_first().ok_or(USAGE)?;
    if command != "render" {
        return Err(USAGE.into());
    }
    let mut opts = std::collections::HashMap::new();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let name = flag.strip_prefix("--").ok_or(USAGE)?;
        if !matches!(name, "event" | "config" | "source" | "out") {
            return Err(format!("unknown option --{name}\n{USAGE}"));
        }
        let value = it.next().ok_or(USAGE)?;
        opts.insert(name, value.clone());
    }
    let event_file = opts.get("event").ok_or(USAGE)?;
    let config = opts
        .get("config")
        .cloned()
        .or_else(|| std::env::var("RELAY_CONFIG").ok());
    let tenant_domains: Vec<String> = std::env::var("TENANT_VERIFIED_DOMAINS")
        .unwrap_or_default()
        .split(',')
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect();
    let invite_relay::config::Relay {
        sources, delivery, ..
    } = load_relay(config.as_deref(), &tenant_domains).map_err(|e| e.to_string())?;
    let source_name = opts.get("source").map_or("generic", String::as_str);
    let source = sources
        .get(source_name)
        .ok_or_else(|| format!("no source named {source_name:?} is enabled"))?;
    let raw = std::fs::read(event_file).map_err(|e| format!("{event_file}: {e}"))?;
    let body = lambda_body(&raw).unwrap_or(raw);
    let files = render_all(&delivery, source, &body)?;
    match opts.get("out") {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
            for f in &files {
                let path = std::path::Path::new(dir).join(&f.name);
                std::fs::write(&path, &f.content)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                println!("{}", path.display());
            }
        }
        None => {
            for f in &files {
                println!("==> {} <==\n{}", f.name, f.content);
            }
        }
    }
    Ok(())
}

/// The body of a Lambda HTTP event (Function URL, API Gateway), when `raw` is one.
fn lambda_body(raw: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    v.get("requestContext")?;
    let body = v.get("body")?.as_str()?;
    if v.get("isBase64Encoded")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        base64::engine::general_purpose::STANDARD.decode(body).ok()
    } else {
        Some(body.as_bytes().to_vec())
    }
}
