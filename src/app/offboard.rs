//! Offboarding, when the CRM says the partnership ended: find the guest, make sure the relay
//! is responsible for them, then the configured actions, each recorded — remove from the
//! relay's groups, block sign-in, revoke sessions, schedule deletion — and `guest.offboarded`.
//! With `dry_run`, only what would happen.

use serde_json::{Map, Value, json};

use super::errors::lookup_problem;
use super::execute::{Run, epoch_secs, log_unrecorded};
use super::{App, OffboardAction, Outcome};
use crate::delivery::NoticeKind;
use crate::graph::{DirectoryUser, GraphError};
use crate::problem::{Problem, ProblemKind};
use crate::resilience::retry;
use crate::store::{GuestState, Invitee, Tracking};

/// Seconds in a day, for the deletion's due time.
const DAY_SECS: u64 = 86_400;

impl App {
    /// The offboarding steps. An unknown partner is nothing to do; a member, or a guest the
    /// relay did not invite, is refused before anything changes.
    pub(crate) async fn offboard(&self, run: &mut Run<'_>) -> Result<Outcome, Problem> {
        let event_id = run.plan.key.event_id.clone();
        let Some((user, known)) = self.responsible_for(run).await? else {
            tracing::info!("offboarding for a partner the directory doesn't know: nothing to do");
            return Ok(Outcome::NothingToDo { event_id });
        };
        let policy = &self.config.policy.offboarding;
        let actions = planned_actions(policy);
        if policy.dry_run {
            tracing::info!(actions = ?actions, "offboarding dry run: nothing changed");
            return Ok(Outcome::Offboarded {
                event_id,
                invited_user_id: user.id,
                actions,
                dry_run: true,
                notified: Vec::new(),
            });
        }
        for action in &actions {
            if run.progress.steps.iter().any(|s| s == action.step()) {
                continue;
            }
            self.offboard_action(run, &user, &known, *action)
                .await
                .map_err(|e| offboard_problem(*action, e))?;
            log_unrecorded(self.store.record_step(&run.plan.key, action.step()).await);
            run.progress.steps.push(action.step().into());
        }
        let tracking = policy
            .delete_after_days
            .map(|d| (Tracking::Deleting, epoch_secs() + u64::from(d) * DAY_SECS));
        log_unrecorded(
            self.store
                .transition(&user.id, None, GuestState::Offboarded, tracking)
                .await
                .map(|_| ()),
        );
        let mut extra = Map::new();
        extra.insert("actions".into(), json!(actions));
        let notified = self
            .notice_after(run, &user.id, NoticeKind::GuestOffboarded, extra)
            .await?;
        tracing::info!(actions = ?actions, "guest offboarded");
        Ok(Outcome::Offboarded {
            event_id,
            invited_user_id: user.id,
            actions,
            dry_run: false,
            notified,
        })
    }

    /// The guest behind the event's address, when the relay is responsible for them: a guest
    /// (never a member) that the relay invited (its record) or that carries its provenance.
    async fn responsible_for(
        &self,
        run: &Run<'_>,
    ) -> Result<Option<(DirectoryUser, Invitee)>, Problem> {
        let email = run.plan.request.invited_user_email_address.as_str();
        let found = retry(run.deadline, || {
            self.with_rotation(&run.keys, |k| async move {
                self.graph.find_user(&k.graph, email).await
            })
        })
        .await
        .map_err(lookup_problem)?;
        let Some(user) = found else {
            return Ok(None);
        };
        let refuse = |why: &str| {
            tracing::error!(
                alarm = "offboard_refused",
                reason = why,
                "an offboarding was refused"
            );
            Problem::new(
                ProblemKind::Unprocessable,
                format!("offboarding refused: {why}"),
            )
            .with("field", "email")
        };
        if !user.is_guest() {
            return Err(refuse("the user is a member of the tenant, not a guest"));
        }
        let known = self.known(&user.id).await;
        let stamped = self
            .config
            .policy
            .provenance
            .source
            .as_deref()
            .and_then(|slot| user.extension_attribute(slot))
            .is_some();
        match known {
            Some(k) => Ok(Some((user, k))),
            None if stamped => Ok(Some((user, Invitee::default()))),
            None => Err(refuse("the relay did not invite this guest")),
        }
    }

    async fn offboard_action(
        &self,
        run: &Run<'_>,
        user: &DirectoryUser,
        known: &Invitee,
        action: OffboardAction,
    ) -> Result<(), GraphError> {
        let id = user.id.as_str();
        match action {
            OffboardAction::GroupsRemoved => {
                let mut groups = known.groups.clone();
                for g in self
                    .config
                    .policy
                    .groups
                    .iter()
                    .chain(&self.config.policy.after_redemption_groups)
                {
                    if !groups.contains(g) {
                        groups.push(g.clone());
                    }
                }
                for g in &groups {
                    retry(run.deadline, || {
                        self.with_rotation(&run.keys, |k| async move {
                            self.graph.remove_from_group(&k.graph, g, id).await
                        })
                    })
                    .await?;
                }
                Ok(())
            }
            OffboardAction::SignInBlocked => {
                let body = json!({"accountEnabled": false});
                retry(run.deadline, || {
                    self.with_rotation(&run.keys, |k| {
                        let body = &body;
                        async move { self.graph.update_user(&k.graph, id, body).await }
                    })
                })
                .await
            }
            OffboardAction::SessionsRevoked => {
                retry(run.deadline, || {
                    self.with_rotation(&run.keys, |k| async move {
                        self.graph.revoke_sessions(&k.graph, id).await
                    })
                })
                .await
            }
            // Recorded in the guest's record by the caller; the sweep deletes when due.
            OffboardAction::DeletionScheduled => Ok(()),
        }
    }
}

/// The configured actions, in order.
fn planned_actions(policy: &crate::policy::OffboardingSpec) -> Vec<OffboardAction> {
    [
        (policy.remove_from_groups, OffboardAction::GroupsRemoved),
        (policy.block_sign_in, OffboardAction::SignInBlocked),
        (policy.revoke_sessions, OffboardAction::SessionsRevoked),
        (
            policy.delete_after_days.is_some(),
            OffboardAction::DeletionScheduled,
        ),
    ]
    .into_iter()
    .filter_map(|(on, a)| on.then_some(a))
    .collect()
}

fn offboard_problem(action: OffboardAction, e: GraphError) -> Problem {
    let step = serde_json::to_value(action).unwrap_or(Value::Null);
    super::errors::invite_problem(super::errors::InviteError::Graph(e)).with("action", step)
}
