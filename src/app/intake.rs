//! Where an interpreted event enters the pipeline: `accept` (plan it, then execute it now or
//! enqueue it), the operator's entry for bodies they hand in (`accept_from_operator`, and its
//! rehearsal), and the worker's entries for queued events and EventBridge events.

use std::sync::Arc;

use tracing::Instrument;

use super::errors::{queue_unavailable, secret_unavailable, store_unavailable, unprocessable};
use super::plan::{Plan, PlanInputs};
use super::{App, Keyring, Outcome};
use crate::config::Mode;
use crate::inbound::{Action, CrmEvent, Interpretation, Source};
use crate::problem::{Problem, ProblemKind};
use crate::queue::{QueueError, QueuedEvent};
use crate::resilience::Deadline;

/// How queue mode looks for a completed duplicate before the worker would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DuplicateCheck {
    /// A consistent read, then the send if there is none (an operator's re-run: mostly done).
    First,
    /// An eventually consistent read while the event is sent (the webhook: billed for the
    /// slower call, not both; a replay that slips through is found done by the worker's claim).
    Alongside,
}

/// A queued message to send again later.
pub struct Deferral<'a> {
    pub body: &'a str,
    /// Receives of this message and its earlier copies, less this one's.
    pub earlier_receives: u32,
    pub delay: std::time::Duration,
    /// The tenant's invitation cell it holds.
    pub cell: Option<u64>,
}

/// What an event would come to ([`App::rehearse`]).
pub(crate) enum Rehearsal {
    /// Nothing would be done: the filter ignores it, or it completed before (a duplicate).
    Answered(Outcome),
    /// Every check passed: it would be invited (sync mode) or enqueued (queue mode), and
    /// delivered to `channels`.
    Planned {
        event_id: String,
        channels: Vec<String>,
        groups: Vec<String>,
    },
}

/// Queue messages' format version.
const QUEUED_EVENT_VERSION: u8 = 1;

/// The span every event's log lines carry: its source and (loggable) id.
fn event_span(source: &str, keys: &Keyring, event_id: &str) -> tracing::Span {
    tracing::info_span!("event", source = %source, event_id = %keys.hasher.loggable(event_id))
}

impl App {
    /// Checks every value of `event` against the configuration and the secret's channels.
    pub(crate) fn plan(
        &self,
        source: &Source,
        event: &CrmEvent,
        keys: &Keyring,
    ) -> Result<Plan, Problem> {
        let inputs = PlanInputs {
            invitees: &self.config.invitees,
            delivery: &self.config.delivery,
            groups: &self.config.policy.groups,
            channels: &keys.channels,
            offboarding: self.config.policy.offboarding.enabled,
        };
        super::plan::build(&inputs, &source.name, event)
    }

    /// Takes one verified, interpreted event: plans it, then invites and delivers now (sync
    /// mode) or enqueues it for the worker (queue mode).
    pub(crate) async fn accept(
        &self,
        source: &Source,
        event: CrmEvent,
        keys: &Arc<Keyring>,
        deadline: Deadline,
    ) -> Result<Outcome, Problem> {
        self.accept_as(source, event, keys, deadline, DuplicateCheck::Alongside)
            .await
    }

    async fn accept_as(
        &self,
        source: &Source,
        event: CrmEvent,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        check: DuplicateCheck,
    ) -> Result<Outcome, Problem> {
        let span = event_span(&source.name, keys, &event.event_id);
        async {
            if event.action == Action::Offboard && !self.config.policy.offboarding.enabled {
                // A preset maps "partnership ended" events; a relay without an offboarding
                // policy answers them as it answers any event it doesn't act on.
                tracing::info!("offboarding event ignored: offboarding is not enabled");
                return Ok(Outcome::Ignored {
                    event_id: event.event_id,
                });
            }
            let plan = self.plan(source, &event, keys)?;
            tracing::info!(invitee = %keys.hasher.hash(&plan.request.invited_user_email_address), "event accepted");
            match self.config.processing.mode {
                Mode::Sync => self.execute(&plan, keys, deadline).await,
                Mode::Queue => self.enqueue(source, event, &plan, check).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Takes a body for `source` that an operator hands in (`invite-relay bulk`) the way the
    /// webhook takes a verified one: interpret, then [`App::accept`] (sync or queue, as
    /// deployed). No signature is checked: the operator's AWS credentials, which read the
    /// secret holding the source's keys, are the authentication.
    pub(crate) async fn accept_from_operator(
        &self,
        source: &Source,
        body: &serde_json::Value,
        deadline: Deadline,
    ) -> Result<Outcome, Problem> {
        let keys = self.secrets.get().await.map_err(secret_unavailable)?;
        match source.interpret(body).map_err(unprocessable)? {
            Interpretation::Ignored { event_id, .. } => Ok(Outcome::Ignored { event_id }),
            // A file handed in again is mostly done already: its duplicates are answered from
            // the table rather than enqueued for the worker.
            Interpretation::Invite(event) => {
                self.accept_as(source, *event, &keys, deadline, DuplicateCheck::First)
                    .await
            }
        }
    }

    /// What [`App::accept_from_operator`] would do with `body`, found without claiming,
    /// inviting, enqueuing or sending: the same interpretation and plan, and the event's
    /// record read (a completed event is a duplicate).
    pub(crate) async fn rehearse(
        &self,
        source: &Source,
        body: &serde_json::Value,
    ) -> Result<Rehearsal, Problem> {
        let keys = self.secrets.get().await.map_err(secret_unavailable)?;
        let event = match source.interpret(body).map_err(unprocessable)? {
            Interpretation::Ignored { event_id, .. } => {
                return Ok(Rehearsal::Answered(Outcome::Ignored { event_id }));
            }
            Interpretation::Invite(event) => *event,
        };
        if event.action == Action::Offboard && !self.config.policy.offboarding.enabled {
            let event_id = event.event_id;
            return Ok(Rehearsal::Answered(Outcome::Ignored { event_id }));
        }
        let plan = self.plan(source, &event, &keys)?;
        let done = self
            .store
            .completed(&plan.key)
            .await
            .map_err(store_unavailable)?;
        Ok(match done {
            Some(progress) => Rehearsal::Answered(Outcome::duplicate(&plan.key, progress)),
            None => Rehearsal::Planned {
                event_id: plan.key.event_id,
                channels: plan.channels,
                groups: plan.groups,
            },
        })
    }

    /// Queue mode: a completed event is answered as a duplicate; anything else goes to the
    /// worker.
    async fn enqueue(
        &self,
        source: &Source,
        event: CrmEvent,
        plan: &Plan,
        check: DuplicateCheck,
    ) -> Result<Outcome, Problem> {
        let queued = QueuedEvent {
            v: QUEUED_EVENT_VERSION,
            source: source.name.clone(),
            event,
            earlier_receives: 0,
            cell: None,
        };
        let (done, sent) = match check {
            DuplicateCheck::First => {
                let done = self.store.completed(&plan.key).await;
                match done.map_err(store_unavailable)? {
                    Some(progress) => (Ok(Some(progress)), Ok(())),
                    None => (Ok(None), self.queues.enqueue(&queued).await),
                }
            }
            DuplicateCheck::Alongside => tokio::join!(
                self.store.seen_completed(&plan.key),
                self.queues.enqueue(&queued)
            ),
        };
        match done {
            Ok(Some(progress)) => return Ok(Outcome::duplicate(&plan.key, progress)),
            Ok(None) => {}
            // The event is safe in the queue when the send succeeded; the check was a courtesy.
            Err(e) => tracing::warn!(error = %e, "duplicate check failed"),
        }
        sent.map_err(|e| {
            tracing::error!(error = %e, "enqueue failed");
            queue_unavailable()
        })?;
        tracing::info!("event queued");
        Ok(Outcome::Queued {
            event_id: plan.key.event_id.clone(),
        })
    }

    /// Processes one event from the queue (the body of an SQS message). Errors say whether a
    /// later attempt can succeed ([`Problem::disposition`]).
    ///
    /// # Errors
    /// The [`Problem`] that stopped the event.
    pub async fn on_queued(
        &self,
        body: &str,
        deadline: Deadline,
        cell: Option<u64>,
    ) -> Result<Outcome, Problem> {
        let q: QueuedEvent = serde_json::from_str(body).map_err(|_| {
            Problem::new(
                ProblemKind::Malformed,
                "the queue message is not a queued event",
            )
        })?;
        let source = self.config.sources.get(&q.source).ok_or_else(|| {
            Problem::new(
                ProblemKind::NotFound,
                "the queue message names a source that is not configured",
            )
        })?;
        crate::metrics::source(&source.name);
        let keys = self.secrets.get().await.map_err(secret_unavailable)?;
        async {
            let plan = self.plan(source, &q.event, &keys)?;
            self.execute_in(&plan, &keys, deadline, cell).await
        }
        .instrument(event_span(&source.name, &keys, &q.event.event_id))
        .await
    }

    /// Processes one Amazon EventBridge event (e.g. a Salesforce Platform Event relayed by Event
    /// Relay) through the source whose `eventbridge_source` matches the event's `source`.
    ///
    /// # Errors
    /// The [`Problem`] that stopped the event.
    pub async fn on_eventbridge(
        &self,
        envelope: &serde_json::Value,
        deadline: Deadline,
    ) -> Result<Outcome, Problem> {
        let origin = envelope
            .get("source")
            .and_then(|s| s.as_str())
            .unwrap_or("");
        let source = self.config.eventbridge_source(origin).ok_or_else(|| {
            Problem::new(
                ProblemKind::NotFound,
                "no source is configured for this EventBridge source",
            )
        })?;
        crate::metrics::source(&source.name);
        let keys = self.secrets.get().await.map_err(secret_unavailable)?;
        let event = match source.interpret(envelope).map_err(unprocessable)? {
            Interpretation::Ignored { event_id, .. } => return Ok(Outcome::Ignored { event_id }),
            Interpretation::Invite(event) => event,
        };
        async {
            let plan = self.plan(source, &event, &keys)?;
            self.execute(&plan, &keys, deadline).await
        }
        .instrument(event_span(&source.name, &keys, &event.event_id))
        .await
    }

    /// Sends delayed copies of queued messages (each carrying its receives so far and the cell
    /// it holds), in as few requests as SQS allows; whether each was sent.
    ///
    /// # Errors
    /// [`QueueError`] when the queue is not configured.
    pub async fn defer_queued(&self, messages: &[Deferral<'_>]) -> Result<Vec<bool>, QueueError> {
        let mut copies = Vec::with_capacity(messages.len());
        for Deferral {
            body,
            earlier_receives,
            delay,
            cell,
        } in messages
        {
            let mut q: QueuedEvent = serde_json::from_str(body)
                .map_err(|_| QueueError("the message is not a queued event".into()))?;
            q.earlier_receives = *earlier_receives;
            q.cell = *cell;
            let body =
                serde_json::to_string(&q).map_err(|_| QueueError("serialisation failed".into()))?;
            copies.push((body, *delay));
        }
        self.queues.defer(&copies).await
    }

    /// Parks an event that can't succeed on the dead-letter queue with its reason.
    ///
    /// # Errors
    /// The queue error, when even parking failed (the caller then lets the message return).
    pub async fn park(
        &self,
        body: &str,
        problem: &Problem,
        source: &str,
        event_id: &str,
    ) -> Result<(), QueueError> {
        self.queues
            .park(body, &problem.reason(), source, event_id)
            .await?;
        crate::metrics::parked(problem.kind);
        tracing::error!(
            alarm = "event_dead_lettered",
            problem = problem.kind.slug(),
            "event parked on the dead-letter queue"
        );
        Ok(())
    }
}
