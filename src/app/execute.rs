//! The pipeline's order: claim → decide → prepare → invite → deliver → join groups → remember,
//! and the one place a claim ends. A resumed event runs the same steps; each skips what the
//! recorded progress says an earlier attempt finished.

use std::sync::Arc;

use super::errors::{in_progress, store_unavailable};
use super::invite::Decided;
use super::plan::Plan;
use super::{ANSWER_MARGIN, App, Keyring, Outcome};
use crate::problem::Problem;
use crate::resilience::Deadline;
use crate::store::{Claim, Progress, StoreError};

/// One execution of a plan: what every step reads.
pub(crate) struct Run<'a> {
    pub plan: &'a Plan,
    pub keys: Arc<Keyring>,
    pub deadline: Deadline,
    /// What earlier attempts finished (and, as steps go, this one).
    pub progress: Progress,
    /// The sender's id for this delivery (replay detection), when its scheme has one.
    pub sender_id: Option<&'a str>,
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
        sender_id: Option<&str>,
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
            sender_id,
        };
        // Boxed: the steps' futures nest deeply, and one allocation per event keeps the
        // function's state machine within the compiler's layout depth in release builds.
        let result = Box::pin(self.steps(&mut run)).await;
        // The one place a claim ends (as Powertools' idempotency utility does).
        match &result {
            Ok(_) => log_unrecorded(self.store.complete(&plan.key).await),
            Err(_) => log_unrecorded(self.store.release(&plan.key).await),
        }
        result
    }

    async fn steps(&self, run: &mut Run<'_>) -> Result<Outcome, Problem> {
        let request = match self.decide(run).await? {
            Decided::Exists(outcome) => return Ok(outcome),
            Decided::Invite(request) => request,
        };
        let request = self.prepare(run, *request).await?;
        let invited = self.invite(run, &request).await?;
        let delivered = self.deliver(run, &invited).await?;
        let groups = self.join_groups(run, invited.user_id()).await;
        self.remember(run, invited.user_id(), &delivered).await;
        Ok(Outcome::Invited {
            event_id: run.plan.key.event_id.clone(),
            invitation_id: invited.invitation_id().to_owned(),
            invited_user_id: invited.user_id().to_owned(),
            delivered,
            groups,
        })
    }
}

/// A progress write that failed after its side effect happened can't be undone: it is
/// logged (a later retry may then repeat that step) and processing goes on.
pub(crate) fn log_unrecorded(r: Result<(), StoreError>) {
    if let Err(e) = r {
        tracing::error!(alarm = "idempotency_write_failed", error = %e, "progress not recorded");
    }
}
