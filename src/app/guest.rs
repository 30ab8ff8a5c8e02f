//! The steps that keep the guest true to the CRM after the invitation: reinstate one the relay
//! offboarded, write their properties and provenance (once), and keep their sponsor the
//! account's owner.

use serde_json::{Map, Value, json};

use super::errors::{is_final, unfinished_step};
use super::execute::{Run, epoch_secs, log_unrecorded};
use super::plan::Purpose;
use super::{App, Outcome, ProfileOutcome, ProfileStatus};
use crate::delivery::NoticeKind;
use crate::graph::GraphError;
use crate::policy::ExistsBecause;
use crate::problem::Problem;
use crate::resilience::retry;
use crate::store::{GuestState, Invitee};

/// The progress record of the stamp step.
const STAMPED: &str = "stamped";
/// The progress record of the sponsor sync.
const SPONSORS: &str = "sponsors";
/// The progress record of a reinstatement.
const REINSTATED: &str = "reinstated";

impl App {
    /// What the relay knew of this guest before (their pointer), if anything.
    pub(crate) async fn known(&self, user_id: &str) -> Option<Invitee> {
        match self.store.invitee(user_id).await {
            Ok(known) => known,
            Err(e) => {
                tracing::warn!(error = %e, "the guest's record could not be read");
                None
            }
        }
    }

    /// Whether none of the steps after delivery has anything to do for this run (no guest to
    /// reinstate, no properties to write, no sponsor to move, no groups): then the guest's
    /// record is written before the link goes out, and the last delivery's write completes the
    /// event — one write fewer.
    pub(crate) fn delivery_is_last(&self, run: &Run<'_>) -> bool {
        let done = |step: &str| run.progress.steps.iter().any(|s| s == step);
        let reinstate = run
            .known
            .as_ref()
            .is_some_and(|k| k.state == GuestState::Offboarded)
            && !done(REINSTATED);
        let stamp = run.plan.purpose == Purpose::Invitation && !self.stamp_body(run).is_empty();
        let previous = run.known.as_ref().and_then(|k| k.owner_id.as_ref());
        let sponsors = self.config.policy.sponsor_owner
            && run.owner_id.is_some()
            && previous.is_some_and(|p| Some(p) != run.owner_id.as_ref());
        !reinstate && !stamp && !sponsors && run.plan.groups.is_empty()
    }

    /// A new invitation for a partner the relay offboarded: the guest signs in again and is no
    /// longer due for deletion. Idempotent; recorded.
    pub(crate) async fn reinstate(&self, run: &mut Run<'_>, user_id: &str) -> Result<(), Problem> {
        let offboarded = run
            .known
            .as_ref()
            .is_some_and(|k| k.state == GuestState::Offboarded);
        if !offboarded || run.progress.steps.iter().any(|s| s == REINSTATED) {
            return Ok(());
        }
        let body = json!({"accountEnabled": true});
        match self.update_user(run, user_id, &body).await {
            Ok(()) => {
                tracing::info!(
                    "an offboarded guest was invited again: sign-in unblocked, deletion cancelled"
                );
                log_unrecorded(
                    self.store
                        .transition(
                            user_id,
                            Some(GuestState::Offboarded),
                            GuestState::Pending,
                            None,
                        )
                        .await
                        .map(|_| ()),
                );
                log_unrecorded(self.store.record_step(&run.plan.key, REINSTATED).await);
                run.progress.steps.push(REINSTATED.into());
                Ok(())
            }
            Err(e) if is_final(&e) => {
                tracing::error!(alarm = "reinstate_failed", error = %e, "an offboarded guest invited again is still blocked");
                Ok(())
            }
            Err(e) => Err(unfinished_step("unblocking the guest's sign-in", e)),
        }
    }

    /// An event for a guest the relay invited, answered "exists" by the existing-user policy:
    /// no new link, but the guest still follows the CRM — reinstated if offboarded, properties
    /// written, sponsor moved to the new owner. A member, or a guest the relay didn't invite,
    /// is left as is.
    pub(crate) async fn keep_true(
        &self,
        run: &mut Run<'_>,
        outcome: Outcome,
    ) -> Result<Outcome, Problem> {
        let Outcome::Exists {
            event_id,
            invited_user_id,
            why,
            ..
        } = outcome
        else {
            return Ok(outcome);
        };
        let unchanged = |profile| Outcome::Exists {
            event_id: event_id.clone(),
            invited_user_id: invited_user_id.clone(),
            why,
            profile,
        };
        if why == ExistsBecause::Member || run.plan.purpose != Purpose::Invitation {
            return Ok(unchanged(None));
        }
        run.known = self.known(&invited_user_id).await;
        let Some(known) = run.known.clone() else {
            return Ok(unchanged(None));
        };
        self.reinstate(run, &invited_user_id).await?;
        self.resolve_sponsors(run).await;
        let profile = self.stamp(run, &invited_user_id).await?;
        self.sync_sponsors(run, &invited_user_id).await?;
        if run.owner_id.is_some() && run.owner_id != known.owner_id {
            let invitee = Invitee {
                owner_id: run.owner_id.clone(),
                ..known
            };
            log_unrecorded(self.store.remember_invitee(&invited_user_id, invitee).await);
        }
        Ok(unchanged(profile))
    }

    /// Writes the guest's properties and provenance once (`PATCH /users/{id}`). When Graph
    /// refuses the whole, each property is written on its own so the answer names the ones
    /// refused. Never undoes the delivered invitation.
    ///
    /// A refusal (a value, a permission) is reported per property and alarmed; Graph not
    /// answering now fails the run, and the retry writes them.
    pub(crate) async fn stamp(
        &self,
        run: &mut Run<'_>,
        user_id: &str,
    ) -> Result<Option<ProfileOutcome>, Problem> {
        let body = self.stamp_body(run);
        if body.is_empty() || run.plan.purpose != Purpose::Invitation {
            return Ok(None);
        }
        if run.progress.steps.iter().any(|s| s == STAMPED) {
            return Ok(Some(ProfileOutcome {
                status: ProfileStatus::AlreadyUpdated,
                failed: Vec::new(),
            }));
        }
        let whole = self
            .update_user(run, user_id, &Value::Object(body.clone()))
            .await;
        let failed = match whole {
            Ok(()) => Vec::new(),
            Err(GraphError::Rejected { status: 400, .. }) => {
                self.stamp_each(run, user_id, &body).await?
            }
            Err(e) if is_final(&e) => {
                tracing::error!(alarm = "profile_update_failed", error = %e, "the guest's properties were not written");
                return Ok(Some(ProfileOutcome {
                    status: ProfileStatus::Failed,
                    failed: body.keys().cloned().collect(),
                }));
            }
            Err(e) => return Err(unfinished_step("writing the guest's properties", e)),
        };
        let status = match failed.len() {
            0 => ProfileStatus::Updated,
            n if n == body.len() => ProfileStatus::Failed,
            _ => ProfileStatus::Partial,
        };
        if !failed.is_empty() {
            tracing::error!(alarm = "profile_update_failed", properties = ?failed, "Graph refused some of the guest's properties");
        }
        if status != ProfileStatus::Failed {
            log_unrecorded(self.store.record_step(&run.plan.key, STAMPED).await);
            run.progress.steps.push(STAMPED.into());
        }
        Ok(Some(ProfileOutcome { status, failed }))
    }

    /// One property at a time: the names of those refused.
    async fn stamp_each(
        &self,
        run: &Run<'_>,
        user_id: &str,
        body: &Map<String, Value>,
    ) -> Result<Vec<String>, Problem> {
        let mut failed = Vec::new();
        for (k, v) in body {
            let one = Value::Object(Map::from_iter([(k.clone(), v.clone())]));
            match self.update_user(run, user_id, &one).await {
                Ok(()) => {}
                Err(e) if is_final(&e) => failed.push(k.clone()),
                Err(e) => return Err(unfinished_step("writing the guest's properties", e)),
            }
        }
        Ok(failed)
    }

    /// The `PATCH` body: the profile, and provenance in the configured slots.
    fn stamp_body(&self, run: &Run<'_>) -> Map<String, Value> {
        let mut body: Map<String, Value> = run
            .plan
            .profile
            .iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        let slots = &self.config.policy.provenance;
        let attrs: Map<String, Value> = slots
            .named()
            .filter_map(|(what, slot)| {
                run.plan
                    .provenance
                    .value(what)
                    .map(|v| (slot.to_owned(), Value::from(v)))
            })
            .collect();
        if !attrs.is_empty() {
            body.insert("onPremisesExtensionAttributes".into(), Value::Object(attrs));
        }
        body
    }

    async fn update_user(
        &self,
        run: &Run<'_>,
        user_id: &str,
        body: &Value,
    ) -> Result<(), GraphError> {
        retry(run.deadline, || {
            self.with_rotation(&run.keys, |k| async move {
                self.graph.update_user(&k.graph, user_id, body).await
            })
        })
        .await
    }

    /// When the account's owner changed, the guest's sponsor follows: the new owner is added
    /// first, then the previous one removed — never a configured sponsor, never the last one.
    /// Recorded, and reported as `guest.updated` (a retry sends the report to the channels
    /// that lack it without moving anything again).
    pub(crate) async fn sync_sponsors(
        &self,
        run: &mut Run<'_>,
        user_id: &str,
    ) -> Result<(), Problem> {
        let (Some(new), Some(previous)) = (
            run.owner_id.clone(),
            run.known.as_ref().and_then(|k| k.owner_id.clone()),
        ) else {
            return Ok(());
        };
        if new == previous || !self.config.policy.sponsor_owner {
            return Ok(());
        }
        if !run.progress.steps.iter().any(|s| s == SPONSORS) {
            match self.move_sponsor(run, user_id, &new, &previous).await {
                Ok(()) => {
                    log_unrecorded(self.store.record_step(&run.plan.key, SPONSORS).await);
                    run.progress.steps.push(SPONSORS.into());
                }
                Err(e) if is_final(&e) => {
                    tracing::error!(alarm = "sponsor_sync_failed", error = %e, "the guest's sponsor was not moved to the new owner");
                    return Ok(());
                }
                Err(e) => return Err(unfinished_step("moving the guest's sponsor", e)),
            }
        }
        let mut extra = Map::new();
        extra.insert("sponsorAdded".into(), json!(new));
        if !self.config.policy.sponsors.contains(&previous) {
            extra.insert("sponsorRemoved".into(), json!(previous));
        }
        self.notice_after(run, user_id, NoticeKind::GuestUpdated, extra)
            .await
            .map(|_| ())
    }

    /// Adds `new`, then removes `previous` (unless configured, or already gone).
    async fn move_sponsor(
        &self,
        run: &Run<'_>,
        user_id: &str,
        new: &str,
        previous: &str,
    ) -> Result<(), GraphError> {
        let current = retry(run.deadline, || {
            self.with_rotation(&run.keys, |k| async move {
                self.graph.sponsors(&k.graph, user_id).await
            })
        })
        .await?;
        if !current.iter().any(|s| s == new) {
            retry(run.deadline, || {
                self.with_rotation(&run.keys, |k| async move {
                    self.graph.add_sponsor(&k.graph, user_id, new).await
                })
            })
            .await?;
        }
        let keep = self.config.policy.sponsors.iter().any(|s| s == previous);
        if keep || !current.iter().any(|s| s == previous) {
            return Ok(());
        }
        retry(run.deadline, || {
            self.with_rotation(&run.keys, |k| async move {
                self.graph.remove_sponsor(&k.graph, user_id, previous).await
            })
        })
        .await
        .map(|_| ())
    }
}

/// When something was done, for notices.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch_secs() as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
