//! The operator's command line.
//!
//! ```text
//! invite-relay render --event FILE [--config FILE] [--source NAME] [--out DIR]
//! invite-relay pending [--days N] [--resend] [--show-emails]
//! invite-relay sweep
//! invite-relay link revoke|issue (--email EMAIL | --event SOURCE/EVENT_ID)
//! ```
//!
//! `render` shows every channel's message for an event, in every language each channel speaks,
//! exactly as it would be sent (with a sample invitation link): the configuration is
//! `--config` or `RELAY_CONFIG`, the event a request body or a Lambda HTTP event from
//! `events/`. Files go to `--out`, or to standard output.
//!
//! `pending` lists the guests whose invitation is still pending, one JSON line each, and with
//! `--resend` sends those pending for `--days` (default `FOLLOW_UP_AFTER_DAYS`, 7) a fresh link
//! through the channels their first link went to — what the worker's scheduled follow-up does.
//! It reads the functions' own environment (secret, Graph, `IDEMPOTENCY_TABLE`, AWS settings).
//! Addresses are printed only with `--show-emails`.
//!
//! `sweep` runs the worker's scheduled sweep once, now (redemptions, expiries, reminders due,
//! deletions due, for the guests the relay tracks) and prints the counts per action.
//!
//! `link revoke` revokes the managed links of an event, or every managed link of the guest
//! with that address (their page then says the link no longer works); `link issue` revokes
//! the guest's links and sends a fresh one through the channels the first went to.

use std::process::ExitCode;

use invite_relay::config::env::Env;
use invite_relay::config::load_relay;
use invite_relay::delivery::preview::{Sample, render_all};
use invite_relay::domain::{DisplayName, InviteeEmail};

const USAGE: &str = "usage:
  invite-relay render --event FILE [--config FILE] [--source NAME] [--out DIR]
  invite-relay doctor [--json]
  invite-relay status (EMAIL | SOURCE/EVENT_ID) [--json] [--show-emails]
  invite-relay resend SOURCE/EVENT_ID
  invite-relay dlq list [--json] [--show-emails]
  invite-relay dlq redrive [--reason R] [--older-than DURATION] [--json]
  invite-relay dlq drop SOURCE/EVENT_ID
  invite-relay bulk FILE.csv [--out RESULT.csv] [--dry-run] [--source NAME] [--json] [--show-emails]
  invite-relay pending [--days N] [--resend] [--show-emails]
  invite-relay sweep
  invite-relay link revoke|issue (--email EMAIL | --event SOURCE/EVENT_ID)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if command == "render" {
        return finish(run(rest).map(|()| ExitCode::SUCCESS));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let done = |r: Result<(), String>| r.map(|()| ExitCode::SUCCESS);
    finish(runtime.block_on(async {
        match command.as_str() {
            "doctor" => invite_relay::ops::doctor::run(rest).await,
            "status" => invite_relay::ops::status::run(rest).await,
            "resend" => invite_relay::ops::status::resend(rest).await,
            "dlq" => invite_relay::ops::dlq::run(rest).await,
            "bulk" => invite_relay::ops::bulk::run(rest).await,
            "pending" => done(pending(rest).await),
            "sweep" => done(sweep(rest).await),
            "link" => done(link(rest).await),
            _ => Err(USAGE.into()),
        }
    }))
}

fn finish(result: Result<ExitCode, String>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("invite-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(rest: &[String]) -> Result<(), String> {
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
        .or_else(|| Env(|k: &str| std::env::var(k).ok()).relay_config());
    let tenant_domains = Env(|k: &str| std::env::var(k).ok()).tenant_domains();
    let invite_relay::config::Relay {
        sources, delivery, ..
    } = load_relay(config.as_deref(), &tenant_domains).map_err(|e| e.to_string())?;
    let source_name = opts.get("source").map_or("generic", String::as_str);
    let source = sources
        .get(source_name)
        .ok_or_else(|| format!("no source named {source_name:?} is enabled"))?;
    let raw = std::fs::read(event_file).map_err(|e| format!("{event_file}: {e}"))?;
    let body = lambda_body(&raw).unwrap_or(raw);
    let event = source.first_invitation(&body)?;
    let email = InviteeEmail::parse(&event.email).map_err(|e| e.to_string())?;
    let display_name = event.display_name.as_deref().and_then(DisplayName::parse);
    let files = render_all(
        &delivery,
        Sample {
            source: &source.name,
            event_id: &event.event_id,
            email: &email,
            display_name: display_name.as_ref(),
            details: event.details().map_err(str::to_owned)?,
        },
    )?;
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

async fn pending(args: &[String]) -> Result<(), String> {
    let (mut days, mut resend, mut show_emails) = (None, false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--resend" => resend = true,
            "--show-emails" => show_emails = true,
            "--days" => {
                days = Some(
                    it.next()
                        .and_then(|d| d.parse::<u64>().ok())
                        .filter(|d| *d >= 1)
                        .ok_or("--days takes a whole number of days (1 or more)")?,
                );
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let app = invite_relay::App::from_env(invite_relay::config::Role::Webhook)
        .await
        .map_err(|e| e.to_string())?;
    if app.config().store.table.is_none() {
        return Err(
            "IDEMPOTENCY_TABLE is required: follow-ups find each guest's channels there".into(),
        );
    }
    let days = days.unwrap_or(app.config().follow_up.after_days);
    let deadline = invite_relay::resilience::Deadline::after(std::time::Duration::from_secs(900));
    let items = app
        .follow_up(days, resend, deadline)
        .await
        .map_err(|p| format!("{}: {}", p.kind.slug(), p.detail))?;
    for i in &items {
        let mut line = serde_json::to_value(i).map_err(|e| e.to_string())?;
        if show_emails {
            line["mail"] = serde_json::json!(i.mail);
        }
        println!("{line}");
    }
    Ok(())
}

async fn sweep(args: &[String]) -> Result<(), String> {
    if let Some(other) = args.first() {
        return Err(format!("unknown option {other}\n{USAGE}"));
    }
    let app = invite_relay::App::from_env(invite_relay::config::Role::Webhook)
        .await
        .map_err(|e| e.to_string())?;
    if app.config().store.table.is_none() {
        return Err(
            "IDEMPOTENCY_TABLE is required: the sweep reads the tracked guests there".into(),
        );
    }
    let deadline = invite_relay::resilience::Deadline::after(std::time::Duration::from_secs(900));
    let counts = app
        .sweep(deadline)
        .await
        .map_err(|p| format!("{}: {}", p.kind.slug(), p.detail))?;
    println!(
        "{}",
        serde_json::json!({"status": "sweep", "actions": counts})
    );
    Ok(())
}

async fn link(args: &[String]) -> Result<(), String> {
    use invite_relay::app::LinkTarget;
    let usage = || USAGE.to_owned();
    let (action, rest) = args.split_first().ok_or_else(usage)?;
    let target = match rest {
        [flag, value] if flag == "--email" => LinkTarget::Email(value.trim().to_owned()),
        [flag, value] if flag == "--event" => {
            let (source, event_id) = value.split_once('/').ok_or_else(usage)?;
            LinkTarget::Event(invite_relay::store::EventKey {
                source: source.to_owned(),
                event_id: event_id.to_owned(),
            })
        }
        _ => return Err(usage()),
    };
    let app = invite_relay::App::from_env(invite_relay::config::Role::Webhook)
        .await
        .map_err(|e| e.to_string())?;
    let deadline = invite_relay::resilience::Deadline::after(std::time::Duration::from_secs(120));
    match action.as_str() {
        "revoke" => {
            let n = app
                .revoke_links(&target, deadline)
                .await
                .map_err(|p| format!("{}: {}", p.kind.slug(), p.detail))?;
            println!("{}", serde_json::json!({"status": "revoked", "links": n}));
        }
        "issue" => {
            let outcome = app
                .issue_link(&target, deadline)
                .await
                .map_err(|p| format!("{}: {}", p.kind.slug(), p.detail))?;
            println!("{}", outcome.to_json());
        }
        _ => return Err(usage()),
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
