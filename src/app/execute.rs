//! The pipeline's order — claim → decide → prepare → invite → deliver → (reinstate) → stamp →
//! sync sponsors → join groups → remember for an invitation, the offboarding steps for an
//! offboarding — and the one place a claim ends (when nothing follows the delivery, the guest is
//! remembered first and the last delivery's write ends it). A resumed event runs the same steps; each skips what the
//! recorded progress says an earlier attempt finished.

use std::sync::Arc;

use super::errors::{in_progress, store_unavailable};
use super::invite::Decided;
use super::notify::About;
use super::plan::{Plan, Purpose};
use super::{ANSWER_MARGIN, App, Keyring, Outcome};
use crate::delivery::NoticeKind;
use crate::problem::Problem;
use crate::resilience::Deadline;
use crate::store::{Claim, Invitee, Progress, StoreError};

/// One execution of a plan: what every step reads.
pub(crate) struct Run<'a> {
    pub plan: &'a Plan,
    pub keys: Arc<Keyring>,
    pub deadline: Deadline,
    /// What earlier attempts finished (and, as steps go, this one).
    pub progress: Progress,
    /// The owner's object id, once resolved (the sponsor the relay keeps).
    pub owner_id: Option<String>,
    /// Groups the guest is in through this run.
    pub joined: Vec<String>,
    /// What the relay knew of this guest before the run (their pointer).
    pub known: Option<Invitee>,
    /// Nothing follows the delivery: the last channel's write completes the event.
    pub delivery_is_last: bool,
    /// The event's completion is recorded (by that write).
    pub completed: bool,
    /// The tenant's invitation cell reserved for this message (queue mode), if any.
    pub cell: Option<u64>,
}

/// Seconds since the epoch, for records.
pub(crate) fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Run<'_> {
    /// The plan's channels not yet delivered.
    pub fn pending(&self) -> Vec<String> {
        self.plan
            .channels
            .iter()
            .filter(|c| !self.progress.delivered.contains(c))
            .cloned()
            .collect()
    }
}

impl App {
    /// Claims the event, runs the steps, and ends the claim: completed when the steps
    /// succeeded, released (progress kept) when they failed, so a retry resumes.
    pub(crate) async fn execute(
        &self,
        plan: &Plan,
        keys: &Arc<Keyring>,
        deadline: Deadline,
    ) -> Result<Outcome, Problem> {
        self.execute_in(plan, keys, deadline, None).await
    }

    /// [`App::execute`] for a queued message holding the tenant's invitation `cell`.
    pub(crate) async fn execute_in(
        &self,
        plan: &Plan,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        cell: Option<u64>,
    ) -> Result<Outcome, Problem> {
        let lock_for = deadline.remaining() + ANSWER_MARGIN;
        let progress = match self
            .store
            .claim(&plan.key, lock_for)
            .await
            .map_err(store_unavailable)?
        {
            Claim::Completed(progress) => {
                tracing::info!("duplicate of a completed event");
                return Ok(Outcome::duplicate(&plan.key, progress));
            }
            Claim::InProgress => return Err(in_progress()),
            Claim::Acquired(progress) => progress,
        };
        let mut run = Run {
            plan,
            keys: keys.clone(),
            deadline,
            progress,
            owner_id: None,
            joined: Vec::new(),
            known: None,
            delivery_is_last: false,
            completed: false,
            cell,
        };
        // Boxed: the steps' futures nest deeply, and one allocation per event keeps the
        // function's state machine within the compiler's layout depth in release builds.
        let result = Box::pin(self.steps(&mut run)).await;
        // The one place a claim ends (as Powertools' idempotency utility does).
        match &result {
            Ok(_) if run.completed => {}
            Ok(_) => {
                let ids = run.progress.invitation_id.as_deref();
                let ids = ids.zip(run.progress.invited_user_id.as_deref());
                log_unrecorded(self.store.complete(&plan.key, ids).await);
            }
            Err(_) => log_unrecorded(self.store.release(&plan.key).await),
        }
        result
    }

    async fn steps(&self, run: &mut Run<'_>) -> Result<Outcome, Problem> {
        if run.plan.purpose == Purpose::Offboard {
            return self.offboard(run).await;
        }
        let request = match self.decide(run).await? {
            Decided::Exists(outcome) => return self.keep_true(run, outcome).await,
            Decided::Invite(request) => request,
        };
        let request = self.prepare(run, *request).await?;
        let invited = self.invite(run, &request).await?;
        let user_id = invited.user_id().to_owned();
        run.known = self.known(&user_id).await;
        run.delivery_is_last = self.delivery_is_last(run);
        if run.delivery_is_last {
            // Remembered before the link goes out: the last delivery then ends the event.
            let links = super::deliver::links_delivered(&run.plan.channels);
            self.remember(run, &user_id, &links).await;
        }
        let delivered = self.deliver(run, &invited).await?;
        self.reinstate(run, &user_id).await?;
        let profile = self.stamp(run, &user_id).await?;
        self.sync_sponsors(run, &user_id).await?;
        let groups = self.join_groups(run, &user_id).await;
        if !run.delivery_is_last {
            self.remember(run, &user_id, &delivered).await;
        }
        Ok(Outcome::Invited {
            event_id: run.plan.key.event_id.clone(),
            invitation_id: invited.invitation_id().to_owned(),
            invited_user_id: user_id,
            delivered,
            groups,
            profile,
        })
    }
}

impl App {
    /// A lifecycle notice from the sweep, under its own key: claimed, sent to each channel not
    /// yet recorded, and the claim ended here (completed once every channel has it). Whether
    /// every channel has it now (or had it from an earlier sweep).
    pub(crate) async fn execute_notice(
        &self,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        about: &About<'_>,
        kind: NoticeKind,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, Problem> {
        let lock_for = deadline.remaining() + ANSWER_MARGIN;
        let progress = match self
            .store
            .claim(about.record, lock_for)
            .await
            .map_err(store_unavailable)?
        {
            Claim::Completed(_) => return Ok(true),
            Claim::InProgress => return Err(in_progress()),
            Claim::Acquired(progress) => progress,
        };
        let everywhere = self
            .notice_steps(keys, deadline, about, kind, extra, &progress.delivered)
            .await;
        if everywhere {
            log_unrecorded(self.store.complete(about.record, None).await);
        } else {
            log_unrecorded(self.store.release(about.record).await);
        }
        Ok(everywhere)
    }
}

/// A progress write that failed after its side effect happened can't be undone: it is
/// logged (a later retry may then repeat that step) and processing goes on.
pub(crate) fn log_unrecorded(r: Result<(), StoreError>) {
    if let Err(e) = r {
        tracing::error!(alarm = "idempotency_write_failed", error = %e, "progress not recorded");
    }
}
