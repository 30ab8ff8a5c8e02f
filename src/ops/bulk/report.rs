//! What a bulk run reports: one result line per row (the result file), the progress line on a
//! terminal, and the summary (a table, or JSON). None of it ever holds an invitation link:
//! outcomes don't carry one, and reasons name fields, never values.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::app::Outcome;
use crate::problem::Problem;

/// The result file's columns, in order.
pub(crate) const RESULT_COLUMNS: [&str; 7] = [
    "row",
    "eventId",
    "email",
    "status",
    "invitationId",
    "channels",
    "reason",
];
/// Failed rows the summary table lists (the result file has them all).
const FAILED_SHOWN: usize = 20;
/// Least time between two redraws of the progress line.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What a row came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    Invited,
    Exists,
    Queued,
    Duplicate,
    Ignored,
    Offboarded,
    NothingToDo,
    /// Dry run, sync mode: would be invited and delivered.
    WouldInvite,
    /// Dry run, queue mode: would be enqueued.
    WouldQueue,
    /// The template's example row.
    Skipped,
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Invited => "invited",
            Status::Exists => "exists",
            Status::Queued => "queued",
            Status::Duplicate => "duplicate",
            Status::Ignored => "ignored",
            Status::Offboarded => "offboarded",
            Status::NothingToDo => "nothing-to-do",
            Status::WouldInvite => "would-invite",
            Status::WouldQueue => "would-queue",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

/// One row's line in the result file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RowResult {
    /// The line the row starts on in the file.
    pub row: u64,
    pub event_id: String,
    /// The address as the result shows it (masked unless asked otherwise).
    pub email: String,
    pub status: Status,
    pub invitation_id: String,
    pub channels: Vec<String>,
    pub reason: String,
}

impl RowResult {
    pub fn new(row: u64, event_id: &str, email: String, status: Status) -> Self {
        Self {
            row,
            event_id: event_id.to_owned(),
            email,
            status,
            invitation_id: String::new(),
            channels: Vec::new(),
            reason: String::new(),
        }
    }

    /// A row that failed, with its reason.
    pub fn failed(row: u64, event_id: &str, email: String, reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            ..Self::new(row, event_id, email, Status::Failed)
        }
    }

    /// A row the pipeline refused: the problem's type and detail, and whether running the
    /// file again can help.
    pub fn refused(row: u64, event_id: &str, email: String, p: &Problem) -> Self {
        let mut reason = p.reason();
        if let Some(field) = p.extensions.get("field").and_then(|f| f.as_str()) {
            reason.push_str(&format!(" (field {field})"));
        }
        if p.retryable {
            reason.push_str("; retryable: run the file again later");
        }
        Self::failed(row, event_id, email, reason)
    }

    /// A row the pipeline processed.
    pub fn outcome(row: u64, email: String, o: &Outcome) -> Self {
        let id = |o: &Option<String>| o.clone().unwrap_or_default();
        match o {
            Outcome::Invited {
                event_id,
                invitation_id,
                delivered,
                ..
            } => Self {
                invitation_id: invitation_id.clone(),
                channels: delivered.clone(),
                ..Self::new(row, event_id, email, Status::Invited)
            },
            Outcome::Duplicate {
                event_id,
                invitation_id,
                delivered,
                ..
            } => Self {
                invitation_id: id(invitation_id),
                channels: delivered.clone(),
                reason: "processed before: nothing sent again".into(),
                ..Self::new(row, event_id, email, Status::Duplicate)
            },
            Outcome::Exists { event_id, why, .. } => Self {
                reason: format!(
                    "the guest exists ({}): the existing-user policy does not invite again",
                    serde_json::to_value(why)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
                ..Self::new(row, event_id, email, Status::Exists)
            },
            Outcome::Queued { event_id } => Self::new(row, event_id, email, Status::Queued),
            Outcome::Ignored { event_id } => Self {
                reason: "the source's filter does not take this event".into(),
                ..Self::new(row, event_id, email, Status::Ignored)
            },
            Outcome::Offboarded { event_id, .. } => {
                Self::new(row, event_id, email, Status::Offboarded)
            }
            Outcome::NothingToDo { event_id } => {
                Self::new(row, event_id, email, Status::NothingToDo)
            }
        }
    }

    /// Adds a note to the reason.
    pub fn note(&mut self, note: &str) {
        if !self.reason.is_empty() {
            self.reason.push_str("; ");
        }
        self.reason.push_str(note);
    }
}

/// How an address appears in the result: its first character and its domain, unless the
/// operator asked for addresses.
pub(crate) fn shown_email(email: &str, show: bool) -> String {
    if show {
        return email.to_owned();
    }
    match email.rsplit_once('@') {
        Some((user, domain)) if !user.is_empty() => {
            let first: String = user.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        _ => "***".into(),
    }
}

/// A cell a spreadsheet would read as a formula gets a leading apostrophe (CSV injection).
fn inert(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

/// The result file, written (and flushed) row by row so an interrupted run keeps what it did.
pub(crate) struct ResultFile {
    writer: csv::Writer<std::fs::File>,
}

impl ResultFile {
    /// Creates (or replaces) the file and writes its header.
    ///
    /// # Errors
    /// A message naming the file.
    pub fn create(path: &std::path::Path) -> Result<Self, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let mut writer = csv::Writer::from_path(path).map_err(|e| fail(&e))?;
        writer.write_record(RESULT_COLUMNS).map_err(|e| fail(&e))?;
        writer.flush().map_err(|e| fail(&e))?;
        Ok(Self { writer })
    }

    /// Appends one row's line.
    ///
    /// # Errors
    /// A message when the file can't be written.
    pub fn write(&mut self, r: &RowResult) -> Result<(), String> {
        let record = [
            r.row.to_string(),
            inert(&r.event_id),
            inert(&r.email),
            r.status.name().to_owned(),
            inert(&r.invitation_id),
            inert(&r.channels.join(";")),
            inert(&r.reason),
        ];
        self.writer
            .write_record(&record)
            .and_then(|()| self.writer.flush().map_err(csv::Error::from))
            .map_err(|e| format!("writing the result file: {e}"))
    }
}

/// The one-line progress indicator, drawn on standard error when it is a terminal.
pub(crate) struct Progress {
    on: bool,
    total: usize,
    done: usize,
    failed: usize,
    drawn: Option<Instant>,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        use std::io::IsTerminal as _;
        Self {
            on: std::io::stderr().is_terminal(),
            total,
            done: 0,
            failed: 0,
            drawn: None,
        }
    }

    pub fn tick(&mut self, r: &RowResult) {
        self.done += 1;
        self.failed += usize::from(r.status == Status::Failed);
        let due = self.drawn.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        if self.on && (due || self.done == self.total) {
            let width = self.total.to_string().len();
            eprint!(
                "\r\x1b[2K{:>width$}/{} rows ({}%), {} failed",
                self.done,
                self.total,
                self.done * 100 / self.total.max(1),
                self.failed
            );
            let _ = std::io::stderr().flush();
            self.drawn = Some(Instant::now());
        }
    }

    /// Clears the line before the summary.
    pub fn finish(&self) {
        if self.on && self.drawn.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

/// What a run came to, for the summary.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub file: String,
    pub result: String,
    pub source: String,
    pub mode: &'static str,
    pub dry_run: bool,
    pub counts: BTreeMap<Status, usize>,
    pub failed: Vec<RowResult>,
    pub notes: Vec<String>,
    /// Set when the run stopped before the last row (the reason).
    pub stopped: Option<String>,
}

impl Summary {
    pub fn add(&mut self, r: &RowResult) {
        *self.counts.entry(r.status).or_default() += 1;
        if r.status == Status::Failed {
            self.failed.push(r.clone());
        }
    }

    pub fn rows(&self) -> usize {
        self.counts.values().sum()
    }

    /// The summary as JSON: counts per status and every failed row (line, event id, reason).
    pub fn to_json(&self) -> serde_json::Value {
        let counts: serde_json::Map<String, serde_json::Value> = self
            .counts
            .iter()
            .map(|(s, n)| (s.name().to_owned(), json!(n)))
            .collect();
        let failed: Vec<serde_json::Value> = self
            .failed
            .iter()
            .map(|r| json!({"row": r.row, "eventId": r.event_id, "reason": r.reason}))
            .collect();
        json!({
            "file": self.file,
            "result": self.result,
            "source": self.source,
            "mode": self.mode,
            "dryRun": self.dry_run,
            "rows": self.rows(),
            "counts": counts,
            "failed": failed,
            "notes": self.notes,
            "stopped": self.stopped,
        })
    }

    /// The summary as a table for people.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{}{} → {}\nsource {}, {} mode, {} rows\n\n  {:<14}{:>6}\n",
            if self.dry_run { "DRY RUN: " } else { "" },
            self.file,
            self.result,
            self.source,
            self.mode,
            self.rows(),
            "status",
            "rows"
        );
        for (status, n) in &self.counts {
            out.push_str(&format!("  {:<14}{n:>6}\n", status.name()));
        }
        if !self.failed.is_empty() {
            let shown = self.failed.len().min(FAILED_SHOWN);
            out.push_str(&format!(
                "\nfailed rows ({shown} of {}; every row is in the result file):\n  {:>6}  reason\n",
                self.failed.len(),
                "line"
            ));
            for r in self.failed.iter().take(FAILED_SHOWN) {
                out.push_str(&format!("  {:>6}  {}\n", r.row, r.reason));
            }
        }
        for note in &self.notes {
            out.push_str(&format!("\nnote: {note}\n"));
        }
        if let Some(why) = &self.stopped {
            out.push_str(&format!("\n{why}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_unless_asked_for() {
        assert_eq!(
            shown_email("ada@partner.example", false),
            "a***@partner.example"
        );
        assert_eq!(shown_email("not-an-address", false), "***");
        assert_eq!(
            shown_email("ada@partner.example", true),
            "ada@partner.example"
        );
    }

    #[test]
    fn formulas_are_inert() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("bulk-0a"), "bulk-0a");
    }
}
