//! Every failure of the pipeline as the problem it is answered with: adapters return their own
//! classified errors, and only here do they become `Problem`s.

use std::time::Duration;

use serde_json::json;

use crate::delivery::DeliveryError;
use crate::domain::Invitation;
use crate::graph::{GraphError, whole_seconds_up};
use crate::inbound::MapError;
use crate::problem::{Problem, ProblemKind};
use crate::resilience::{Paused, Transient};
use crate::secrets::SecretError;
use crate::store::StoreError;

/// A retry after this long usually finds a passing fault gone (Graph's own guidance for 5xx
/// without `Retry-After`; also a secret or queue that could not be reached).
const TRANSIENT_RETRY_SECS: u64 = 30;
/// The idempotency table recovers from throttling quickly.
const STORE_RETRY_SECS: u64 = 10;
/// Another invocation holds the event's lock: it ends within a function timeout.
const IN_PROGRESS_RETRY_SECS: u64 = 30;
/// A channel that refused for good: an operator has to act, so no quick retries.
const REFUSED_DELIVERY_RETRY_SECS: u64 = 300;

/// Why an invitation attempt did not produce an invitation.
#[derive(Debug)]
pub(crate) enum InviteError {
    Graph(GraphError),
    Paused(Paused),
}

impl Transient for InviteError {
    fn is_transient(&self) -> bool {
        matches!(self, InviteError::Graph(e) if e.is_transient())
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            InviteError::Graph(e) => e.retry_after(),
            InviteError::Paused(_) => None,
        }
    }
}

/// A body the source's mapping can't use. A value of the wrong type is a malformed request
/// (400); a missing or unusable one is an event we can't process (422).
pub(crate) fn unprocessable(e: MapError) -> Problem {
    let field = match &e {
        MapError::Missing(f) | MapError::WrongType(f, _) | MapError::Invalid(f, _) => {
            Some(f.clone())
        }
        MapError::Filter(_) => None,
    };
    let kind = match &e {
        MapError::WrongType(..) => ProblemKind::Malformed,
        _ => ProblemKind::Unprocessable,
    };
    let p = Problem::new(kind, e.to_string());
    match field {
        Some(f) => p.with("field", f),
        None => p,
    }
}

pub(crate) fn secret_unavailable(e: SecretError) -> Problem {
    tracing::error!(error = %e, "secret unavailable");
    Problem::new(
        ProblemKind::UpstreamUnavailable,
        "configuration secret unavailable; retry later",
    )
    .retry_after(TRANSIENT_RETRY_SECS)
}

pub(crate) fn store_unavailable(e: StoreError) -> Problem {
    tracing::error!(error = %e, "idempotency store unavailable");
    Problem::new(
        ProblemKind::UpstreamUnavailable,
        "idempotency store unavailable; retry later",
    )
    .retry_after(STORE_RETRY_SECS)
}

pub(crate) fn queue_unavailable() -> Problem {
    Problem::new(
        ProblemKind::UpstreamUnavailable,
        "the event could not be queued; retry later",
    )
    .retry_after(TRANSIENT_RETRY_SECS)
}

pub(crate) fn in_progress() -> Problem {
    Problem::new(
        ProblemKind::InProgress,
        "this event is being processed; retry later",
    )
    .retry_after(IN_PROGRESS_RETRY_SECS)
}

/// The existing-user query (or another directory read) failed: a refusal (usually a missing
/// `User.Read.All`) or Graph being unavailable.
pub(crate) fn lookup_problem(e: GraphError) -> Problem {
    match e {
        GraphError::Rejected { status, code } => Problem::new(
            ProblemKind::UpstreamAuth,
            "Graph refused the existing-user query; the app needs User.Read.All for existing_users policies",
        )
        .with("graphStatus", status)
        .with("graphCode", code)
        .retryable(true),
        other => invite_problem(InviteError::Graph(other)),
    }
}

fn seconds_or_default(d: Option<Duration>) -> u64 {
    d.map_or(TRANSIENT_RETRY_SECS, |d| whole_seconds_up(d).max(1))
}

pub(crate) fn invite_problem(e: InviteError) -> Problem {
    let graph = match e {
        InviteError::Paused(p) => {
            return Problem::new(
                ProblemKind::UpstreamUnavailable,
                format!("Graph calls are paused ({}); retry later", p.reason),
            )
            .retry_after(whole_seconds_up(p.retry_after).max(1))
            .paced();
        }
        InviteError::Graph(g) => g,
    };
    match graph {
        GraphError::Rejected { status, code } => Problem::new(
            ProblemKind::GraphRejected,
            format!("Microsoft Graph refused the invitation ({code})"),
        )
        .with("graphStatus", status)
        .with("graphCode", code)
        // A 403 (invitations blocked, or permission not yet granted) can be lifted by an
        // operator, so queued events wait for it rather than being dead-lettered at once.
        .retryable(status == 403),
        GraphError::Throttled { retry_after } => Problem::new(
            ProblemKind::UpstreamUnavailable,
            "Microsoft Graph is throttling; retry later",
        )
        .retry_after(seconds_or_default(retry_after)),
        GraphError::Unavailable {
            reason,
            retry_after,
        } => Problem::new(
            ProblemKind::UpstreamUnavailable,
            format!("Microsoft Graph is unavailable ({reason}); retry later"),
        )
        .retry_after(seconds_or_default(retry_after)),
        GraphError::CredentialRefused(reason) | GraphError::TokenRefused(reason) => {
            tracing::error!(reason = %reason, "Graph authentication failed: check GRAPH_CLIENT_ID, the client secret and admin consent");
            Problem::new(
                ProblemKind::UpstreamAuth,
                "authentication to Microsoft Graph failed",
            )
        }
        GraphError::InvalidResponse(what) => {
            tracing::error!(reason = what, "unusable Graph response");
            Problem::new(ProblemKind::UpstreamInvalid, what)
        }
    }
}

/// Some channels failed after the invitation exists: the answer names which, and a retry
/// delivers to those only.
pub(crate) fn delivery_problem(
    invitation: &Invitation,
    delivered: &[String],
    failed: &[(String, DeliveryError)],
) -> Problem {
    let transient = failed
        .iter()
        .any(|(_, e)| e.is_transient() || *e == DeliveryError::Deferred);
    Problem::new(
        ProblemKind::DeliveryFailed,
        "the invitation was created but not every channel received it; a retry delivers to the remaining channels",
    )
    .with("invitationId", invitation.id.clone())
    .with("delivered", delivered.to_vec())
    .with("failed", failed.iter().map(|(k, e)| json!({"channel": k, "reason": e.to_string()})).collect::<Vec<_>>())
    .retryable(transient)
    .retry_after(if transient {
        TRANSIENT_RETRY_SECS
    } else {
        REFUSED_DELIVERY_RETRY_SECS
    })
}

/// A message the pipeline could not render or use (a template failing on this event).
pub(crate) fn unusable_channel(channel: &str, e: impl std::fmt::Display) -> Problem {
    Problem::new(ProblemKind::Unprocessable, e.to_string()).with("channel", channel.to_owned())
}

/// Whether a Graph refusal is final for a step after the invitation (a bad value, a missing
/// permission): reported and alarmed, not retried. Anything else — throttling, outages, a
/// new guest not yet replicated (404) — is retried with the event.
pub(crate) fn is_final(e: &GraphError) -> bool {
    matches!(e, GraphError::Rejected { status, .. } if *status != 404)
}

/// A step after the delivered link that Graph couldn't do now: the event is retried, and the
/// retry skips the recorded steps (the link is not sent again).
pub(crate) fn unfinished_step(step: &'static str, e: GraphError) -> Problem {
    let mut p = invite_problem(InviteError::Graph(e));
    p.detail = format!(
        "{step} is not done yet ({}); a retry finishes it without sending the link again",
        p.detail
    );
    p.retryable = true;
    p.with("step", step)
}

/// A lifecycle event some channel didn't take: retried (channels that have it are skipped).
pub(crate) fn undelivered_notice(kind: &str) -> Problem {
    Problem::new(
        ProblemKind::DeliveryFailed,
        format!("{kind} did not reach every channel; a retry sends it to the others"),
    )
    .retryable(true)
    .retry_after(TRANSIENT_RETRY_SECS)
}
