//! `invite-relay status EMAIL|SOURCE/EVENT_ID`: the event's recorded steps and channel
//! outcomes, what the relay remembers of the guest, and the guest as Graph has it now (state
//! and since when, groups, sponsors) — one command per support question. `invite-relay resend
//! SOURCE/EVENT_ID` sends a fresh link through the event's channels.

use std::process::ExitCode;

use super::{Flags, event_key};
use crate::app::{LinkTarget, StatusReport};
use crate::config::Role;
use crate::resilience::Deadline;

const BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

fn target(arg: &str) -> Result<LinkTarget, String> {
    if arg.contains('@') && !arg.contains('/') {
        return Ok(LinkTarget::Email(arg.trim().to_owned()));
    }
    event_key(arg)
        .map(LinkTarget::Event)
        .ok_or_else(|| format!("{arg:?} is neither an address nor SOURCE/EVENT_ID"))
}

async fn app() -> Result<crate::App, String> {
    let app = crate::App::from_env(Role::Webhook)
        .await
        .map_err(|e| e.to_string())?;
    if app.config().store.table.is_none() {
        return Err("IDEMPOTENCY_TABLE is required: the relay's records are kept there".into());
    }
    Ok(app)
}

/// Runs `status`.
///
/// # Errors
/// A bad command line, nothing known of the target, or a dependency that can't be read.
pub async fn run(args: &[String]) -> Result<ExitCode, String> {
    let flags = Flags::parse(args, &[], &["json", "show-emails"])?;
    let [arg] = flags.positional.as_slice() else {
        return Err(
            "usage: invite-relay status (EMAIL | SOURCE/EVENT_ID) [--json] [--show-emails]".into(),
        );
    };
    let target = target(arg)?;
    let report = app()
        .await?
        .status(&target, flags.on("show-emails"), Deadline::after(BUDGET))
        .await
        .map_err(|p| format!("{}: {}", p.kind.slug(), p.detail))?;
    if flags.on("json") {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human report.
pub fn render(r: &StatusReport) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<18} {v}\n"));
    if let Some(e) = &r.event {
        line("event", format!("{} ({})", e.key, e.record));
        line(
            "invitation",
            e.invitation_id.clone().unwrap_or_else(|| "—".into()),
        );
        line("delivered to", list(&e.delivered));
        line("steps", list(&e.steps));
    }
    if let Some(k) = &r.relay {
        line("relay state", k.state.to_owned());
        line("invited by", k.invited_by.clone());
        line("link channels", list(&k.channels));
        line("groups added", list(&k.groups));
        if let Some((what, at)) = k.tracking {
            let word = if what == "deleting" { "due" } else { "since" };
            line("sweep watches", format!("{what} ({word} {})", when(at)));
        }
    }
    match &r.guest {
        Some(g) => {
            line("guest", g.id.clone());
            if let Some(m) = &g.mail {
                line("address", m.clone());
            }
            line("type", g.user_type.clone().unwrap_or_default());
            line(
                "state",
                format!(
                    "{} (since {})",
                    g.external_user_state.as_deref().unwrap_or("—"),
                    g.external_user_state_change_date_time
                        .as_deref()
                        .unwrap_or("—")
                ),
            );
            line(
                "sign-in",
                if g.account_enabled == Some(false) {
                    "blocked"
                } else {
                    "enabled"
                }
                .into(),
            );
            let groups: Vec<String> = g
                .groups
                .iter()
                .map(|x| format!("{} ({})", x.display_name.as_deref().unwrap_or("?"), x.id))
                .collect();
            line("member of", list(&groups));
            line("sponsors", list(&g.sponsors));
        }
        None => line(
            "guest",
            "not in the directory (deleted, or never invited)".into(),
        ),
    }
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "—".into()
    } else {
        v.join(", ")
    }
}

fn when(epoch: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(epoch).unwrap_or(0))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| epoch.to_string())
}

/// Runs `resend SOURCE/EVENT_ID`.
///
/// # Errors
/// A bad command line, no completed invitation, a guest who accepted or is gone, or a
/// dependency that can't be reached.
pub async fn resend(args: &[String]) -> Result<ExitCode, String> {
    let flags = Flags::parse(args, &[], &["json"])?;
    let [arg] = flags.positional.as_slice() else {
        return Err("usage: invite-relay resend SOURCE/EVENT_ID".into());
    };
    let key = event_key(arg).ok_or_else(|| format!("{arg:?} is not SOURCE/EVENT_ID"))?;
    let outcome = app()
        .await?
        .resend(&key, Deadline::after(BUDGET))
        .await
        .map_err(|p| format!("{}: {}", p.kind.slug(), p.detail))?;
    println!("{}", outcome.to_json());
    Ok(ExitCode::SUCCESS)
}
