//! `invite-relay bulk FILE.csv`: invitations from a CSV file through the webhook's pipeline.
//!
//! Each row becomes the generic source's event (`presets/generic.toml`: type
//! `partner.signed`, the invitee, owner, redirect, route attributes and channels) and takes the
//! webhook's way after its signature check: the source's mapping and filter, the plan's
//! checks, routing, the idempotency record, then an invitation now (sync mode, one row after
//! another under the deployment's invitation pacing) or a message on the queue (queue mode).
//! A row's event id is its `eventId` (or `id`) cell, else a hash of what the row says, so
//! running the same file again does nothing twice.
//!
//! The result file (`--out`, default `FILE.result.csv`, or `FILE.dry-run.csv` for a dry run)
//! has one line per row — its line number, event id, masked address, status, invitation id,
//! channels and reason — and never a link. A row that can't be read fails on its own; a file
//! without a usable header stops before anything is sent.

mod access;
mod header;
mod report;
mod sheet;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use access::{Denials, Resources};
use header::Column;
use report::{Progress, ResultFile, RowResult, Status, Summary, shown_email};
use sheet::{Entry, Row, RowEvent, Sheet};

use crate::App;
use crate::app::Rehearsal;
use crate::config::{Config, Mode, Role};
use crate::inbound::Source;
use crate::resilience::Deadline;

const USAGE: &str = "usage: invite-relay bulk FILE.csv [--out RESULT.csv] [--dry-run] \
                     [--source NAME] [--json] [--show-emails]";

/// Time one row may take: a pacing slot at the slowest invitation rate (one a minute) and the
/// row's own calls. A row's claim lasts as long, should the command be stopped mid-row.
const ROW_BUDGET: Duration = Duration::from_secs(120);

/// Exit status of a run in which some rows failed (each is in the result file).
const ROWS_FAILED: u8 = 3;

/// The command's options.
#[derive(Debug, Default)]
struct Args {
    file: PathBuf,
    out: Option<PathBuf>,
    dry_run: bool,
    source: String,
    json: bool,
    show_emails: bool,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        source: "generic".into(),
        ..Args::default()
    };
    let mut file = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| USAGE.to_owned());
        match a.as_str() {
            "--dry-run" => parsed.dry_run = true,
            "--json" => parsed.json = true,
            "--show-emails" => parsed.show_emails = true,
            "--out" => parsed.out = Some(value()?.into()),
            "--source" => parsed.source = value()?,
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"));
            }
            path if file.is_none() => file = Some(PathBuf::from(path)),
            _ => return Err(USAGE.into()),
        }
    }
    parsed.file = file.ok_or(USAGE)?;
    Ok(parsed)
}

/// Where the result goes: `--out`, else beside the input (`FILE.result.csv`, or
/// `FILE.dry-run.csv` for a dry run, so a rehearsal never replaces a run's result).
fn result_path(args: &Args) -> PathBuf {
    args.out.clone().unwrap_or_else(|| {
        let ext = if args.dry_run {
            "dry-run.csv"
        } else {
            "result.csv"
        };
        args.file.with_extension(ext)
    })
}

/// Runs the `bulk` command with its arguments (after the command's name).
///
/// # Errors
/// A message for the operator when the command can't run: no usable header, a source that
/// isn't enabled, the deployment's settings, a permission the operator's credentials lack.
pub async fn run(args: &[String]) -> Result<ExitCode, String> {
    let args = parse_args(args)?;
    let name = args.file.display().to_string();
    let data = std::fs::read(&args.file).map_err(|e| format!("{name}: {e}"))?;
    let sheet = sheet::read(&data).map_err(|e| format!("{name}: {e}; nothing was sent"))?;
    let out = result_path(&args);
    if same_file(&out, &args.file) {
        return Err("--out names the input file; choose another result file".into());
    }
    let denials = Denials::default();
    denials.install();
    let app = App::from_env(Role::Webhook)
        .await
        .map_err(|e| startup_error(&e.to_string()))?;
    let source = app.config().sources.get(&args.source).ok_or_else(|| {
        let enabled: Vec<&str> = app.config().sources.keys().map(String::as_str).collect();
        format!(
            "no source named {:?} is enabled in this deployment (enabled: {}); nothing was sent",
            args.source,
            enabled.join(", ")
        )
    })?;
    let mut summary = Summary {
        file: name,
        result: out.display().to_string(),
        source: source.name.clone(),
        mode: mode_name(app.config().processing.mode),
        dry_run: args.dry_run,
        notes: column_notes(&sheet),
        ..Summary::default()
    };
    let mut result = ResultFile::create(&out)?;
    let run = RunContext {
        app: &app,
        source,
        args: &args,
        denials: &denials,
        resources: resources(app.config()),
    };
    run_rows(&run, &sheet, &mut result, &mut summary).await?;
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_table());
    }
    if let Some(why) = summary.stopped {
        return Err(format!(
            "{why}; run the file again once granted (rows done are not repeated)"
        ));
    }
    Ok(match summary.counts.get(&Status::Failed) {
        Some(_) => ExitCode::from(ROWS_FAILED),
        None => ExitCode::SUCCESS,
    })
}

/// What every row of a run reads.
struct RunContext<'a> {
    app: &'a App,
    source: &'a Source,
    args: &'a Args,
    denials: &'a Denials,
    resources: Resources,
}

/// Every row in order, each line written as soon as it is known; stops at an access denial
/// (every following row would meet it too).
async fn run_rows(
    run: &RunContext<'_>,
    sheet: &Sheet,
    result: &mut ResultFile,
    summary: &mut Summary,
) -> Result<(), String> {
    let mut progress = Progress::new(sheet.rows.len());
    let mut seen: HashMap<String, RowResult> = HashMap::new();
    let mut unapplied = false;
    for row in &sheet.rows {
        let mut r = one_row(run.app, run.source, row, run.args, &seen).await;
        let denied = run.denials.take();
        if let Some(denied) = &denied {
            r.reason = access::explain(denied, &run.resources);
            r.status = Status::Failed;
        }
        if let Entry::Event(e) = &row.entry {
            unapplied |= !e.unapplied.is_empty();
            if r.status != Status::Failed && !seen.contains_key(&e.event_id) {
                seen.insert(e.event_id.clone(), r.clone());
            }
        }
        result.write(&r)?;
        progress.tick(&r);
        summary.add(&r);
        if denied.is_some() {
            summary.stopped = Some(format!("stopped at line {}: {}", row.line, r.reason));
            break;
        }
    }
    progress.finish();
    if unapplied {
        summary.notes.push(
            "sendEmail and customizedMessageBody are read but not applied: Microsoft sends no \
             email (unless a row's channels name the deployment's Microsoft email channel); the \
             link goes through the deployment's channels and templates"
                .into(),
        );
    }
    Ok(())
}

/// What one row comes to.
async fn one_row(
    app: &App,
    source: &Source,
    row: &Row,
    args: &Args,
    seen: &HashMap<String, RowResult>,
) -> RowResult {
    let shown = |email: &str| shown_email(email, args.show_emails);
    let event = match &row.entry {
        Entry::Bad { email, reason } => {
            return RowResult::failed(row.line, "", shown(email.as_deref().unwrap_or("")), reason);
        }
        Entry::Example => {
            let mut r = RowResult::new(row.line, "", String::new(), Status::Skipped);
            r.note("the template's example row");
            return r;
        }
        Entry::Event(e) => e,
    };
    let email = shown(&event.email);
    if let Some(first) = seen.get(&event.event_id) {
        let mut r = RowResult::new(row.line, &event.event_id, email, Status::Duplicate);
        r.invitation_id.clone_from(&first.invitation_id);
        r.channels.clone_from(&first.channels);
        r.note(&format!("the same event as row {}", first.row));
        return r;
    }
    let mut r = if args.dry_run {
        rehearse(app, source, row.line, event, email).await
    } else {
        match accept_paced(app, source, &event.body).await {
            Ok(o) => RowResult::outcome(row.line, email, &o),
            Err(p) => RowResult::refused(row.line, &event.event_id, email, &p),
        }
    };
    if !event.unapplied.is_empty() && r.status != Status::Failed {
        r.note(&format!(
            "{} not applied (the deployment's channels deliver the link)",
            event.unapplied.join(" and ")
        ));
    }
    r
}

/// One row through the pipeline. The functions never wait for an invitation slot (the
/// tenant's pace is shared); the command does: it waits for the slot and tries the row again,
/// for as long as the row's budget lasts.
async fn accept_paced(
    app: &App,
    source: &Source,
    body: &serde_json::Value,
) -> Result<crate::app::Outcome, crate::problem::Problem> {
    let deadline = Deadline::after(ROW_BUDGET);
    loop {
        match app.accept_from_operator(source, body, deadline).await {
            Err(p) if p.paced => {
                let wait = std::time::Duration::from_secs(p.retry_after.unwrap_or(1).max(1));
                if wait >= deadline.remaining() {
                    return Err(p);
                }
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// A dry run's row: what the pipeline would do, nothing done.
async fn rehearse(
    app: &App,
    source: &Source,
    line: u64,
    event: &RowEvent,
    email: String,
) -> RowResult {
    match app.rehearse(source, &event.body).await {
        Ok(Rehearsal::Answered(o)) => RowResult::outcome(line, email, &o),
        Ok(Rehearsal::Planned {
            event_id,
            channels,
            groups,
        }) => {
            let status = match app.config().processing.mode {
                Mode::Sync => Status::WouldInvite,
                Mode::Queue => Status::WouldQueue,
            };
            let mut r = RowResult::new(line, &event_id, email, status);
            r.channels = channels;
            if !groups.is_empty() {
                r.note(&format!("groups: {}", groups.join(";")));
            }
            r
        }
        Err(p) => RowResult::refused(line, &event.event_id, email, &p),
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Sync => "sync",
        Mode::Queue => "queue",
    }
}

/// Notes on the header: the columns read as route attributes, and those not read at all.
fn column_notes(sheet: &Sheet) -> Vec<String> {
    let attributes: Vec<&str> = sheet
        .columns
        .iter()
        .filter_map(|c| match c {
            Column::Attribute(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let (read, unread): (Vec<&str>, Vec<&str>) = attributes
        .into_iter()
        .partition(|n| header::attribute_name_ok(n));
    let mut notes = Vec::new();
    if !read.is_empty() {
        notes.push(format!(
            "columns sent as route attributes (attributes.NAME): {}",
            read.join(", ")
        ));
    }
    if !unread.is_empty() {
        notes.push(format!(
            "columns not read (a name of letters, digits, '-' and '_' is needed): {}",
            unread.join(", ")
        ));
    }
    notes
}

/// The deployment's resources, named in a permission message.
fn resources(config: &Config) -> Resources {
    Resources {
        secret: config.secrets.id.clone(),
        table: config.store.table.clone(),
        queue: config.processing.queue_url.clone(),
    }
}

/// A start-up failure; a denied secret read names the permission.
fn startup_error(message: &str) -> String {
    if !access::is_denied(message) {
        return message.to_owned();
    }
    let secret = Config::from_env()
        .map(|c| c.secrets.id)
        .unwrap_or_else(|_| "(RELAY_SECRET_ID)".into());
    format!(
        "AccessDenied: your AWS credentials need {}",
        access::secret_need(&secret)
    )
}

/// Whether two paths name the same file (when both exist), or are spelt the same.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, String> {
        parse_args(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn options_and_the_result_beside_the_input() {
        let a = args(&["partners.csv", "--dry-run", "--json", "--source", "hubspot"]).unwrap();
        assert!(a.dry_run && a.json && !a.show_emails);
        assert_eq!(a.source, "hubspot");
        assert_eq!(result_path(&a), PathBuf::from("partners.dry-run.csv"));
        let a = args(&["dir/partners.csv"]).unwrap();
        assert_eq!(a.source, "generic");
        assert_eq!(result_path(&a), PathBuf::from("dir/partners.result.csv"));
        let a = args(&["p.csv", "--out", "r.csv"]).unwrap();
        assert_eq!(result_path(&a), PathBuf::from("r.csv"));
        assert!(args(&[]).is_err());
        assert!(args(&["a.csv", "b.csv"]).is_err());
        assert!(args(&["a.csv", "--force"]).is_err());
        assert!(args(&["a.csv", "--out"]).is_err());
    }
}
