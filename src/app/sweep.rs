//! The scheduled sweep over the guests the relay is tracking (and only those): each pending
//! guest is read from Graph, paced — accepted ones are reported (`invitation.redeemed`, once),
//! join the groups kept for after redemption and stop being reminded; deleted ones are reported
//! (`invitation.expired`) so the next event for that partner invites afresh; the others get a
//! reminder when due. Offboarded guests whose deletion is due are deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, json};

use super::errors::{lookup_problem, secret_unavailable, store_unavailable, undelivered_notice};
use super::execute::epoch_secs;
use super::guest::now_rfc3339;
use super::notify::{About, LIFECYCLE_SOURCE};
use super::{App, Keyring};
use crate::delivery::NoticeKind;
use crate::domain::EventDetails;
use crate::graph::{DirectoryUser, GroupAdd};
use crate::problem::Problem;
use crate::resilience::{Deadline, retry};
use crate::store::{EventKey, GuestState, Invitee, Tracking};

/// What the sweep did for one tracked guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SweepAction {
    StillPending,
    Reminded,
    Redeemed,
    Expired,
    Deleted,
    Failed,
}

impl App {
    /// One sweep: every tracked guest, within `deadline` (what doesn't fit waits for the next
    /// run). Counts per action.
    ///
    /// # Errors
    /// The secret or the store can't be read.
    pub async fn sweep(&self, deadline: Deadline) -> Result<BTreeMap<SweepAction, u64>, Problem> {
        let keys = self.secrets.get().await.map_err(secret_unavailable)?;
        let mut counts = BTreeMap::new();
        let pending = self
            .store
            .tracked(Tracking::Pending, None)
            .await
            .map_err(store_unavailable)?;
        for (user_id, known) in pending {
            if !deadline.has_room_for(self.config.outbound.timeout) {
                break;
            }
            let action = self.sweep_pending(&keys, deadline, &user_id, &known).await;
            *counts.entry(action).or_default() += 1;
        }
        let due = self
            .store
            .tracked(Tracking::Deleting, Some(epoch_secs()))
            .await
            .map_err(store_unavailable)?;
        for (user_id, _) in due {
            if !deadline.has_room_for(self.config.outbound.timeout) {
                break;
            }
            let action = self.delete_due(&keys, deadline, &user_id).await;
            *counts.entry(action).or_default() += 1;
        }
        if counts.contains_key(&SweepAction::Failed) {
            tracing::error!(
                alarm = "sweep_failed",
                ?counts,
                "some guests could not be swept"
            );
        } else {
            tracing::info!(?counts, "sweep done");
        }
        Ok(counts)
    }

    async fn sweep_pending(
        &self,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        user_id: &str,
        known: &Invitee,
    ) -> SweepAction {
        self.gate.pace_read(deadline).await;
        let read = retry(deadline, || {
            self.with_rotation(
                keys,
                |k| async move { self.graph.user(&k.graph, user_id).await },
            )
        })
        .await;
        let result = match read {
            Ok(None) => self.expired(keys, deadline, user_id, known).await,
            Ok(Some(u)) if u.has_redeemed() => self.redeemed(keys, deadline, &u, known).await,
            Ok(Some(u)) => self.remind_if_due(keys, deadline, &u, known).await,
            Err(e) => Err(lookup_problem(e)),
        };
        result.unwrap_or_else(|p| {
            tracing::warn!(problem = p.kind.slug(), detail = %p.detail, "a tracked guest was not swept");
            SweepAction::Failed
        })
    }

    /// Accepted: the notice (once), the groups kept for after redemption, no more reminders.
    async fn redeemed(
        &self,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        user: &DirectoryUser,
        known: &Invitee,
    ) -> Result<SweepAction, Problem> {
        let mut joined = Vec::new();
        for g in &self.config.policy.after_redemption_groups {
            let added = retry(deadline, || {
                self.with_rotation(keys, |k| async move {
                    self.graph.add_to_group(&k.graph, g, &user.id).await
                })
            })
            .await;
            match added {
                Ok(GroupAdd::Added | GroupAdd::AlreadyMember) => joined.push(g.clone()),
                Err(e) => {
                    tracing::error!(alarm = "group_add_failed", group = %g, error = %e, "a redeemed guest was not added to a group");
                    return Err(lookup_problem(e));
                }
            }
        }
        log_store(self.store.add_invitee_groups(&user.id, &joined).await);
        let mut extra = Map::new();
        extra.insert(
            "redeemedAt".into(),
            json!(
                user.external_user_state_change_date_time
                    .clone()
                    .unwrap_or_else(now_rfc3339)
            ),
        );
        if !joined.is_empty() {
            extra.insert("groups".into(), json!(joined));
        }
        self.lifecycle_notice(
            keys,
            deadline,
            &user.id,
            known,
            Some(user),
            NoticeKind::InvitationRedeemed,
            extra,
        )
        .await?;
        log_store(
            self.store
                .transition(
                    &user.id,
                    Some(GuestState::Pending),
                    GuestState::Redeemed,
                    None,
                )
                .await,
        );
        Ok(SweepAction::Redeemed)
    }

    /// Deleted while pending: reported; the guest's record says so, and the next event for
    /// this partner invites afresh.
    async fn expired(
        &self,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        user_id: &str,
        known: &Invitee,
    ) -> Result<SweepAction, Problem> {
        self.lifecycle_notice(
            keys,
            deadline,
            user_id,
            known,
            None,
            NoticeKind::InvitationExpired,
            Map::new(),
        )
        .await?;
        log_store(
            self.store
                .transition(
                    user_id,
                    Some(GuestState::Pending),
                    GuestState::Expired,
                    None,
                )
                .await,
        );
        Ok(SweepAction::Expired)
    }

    async fn remind_if_due(
        &self,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        user: &DirectoryUser,
        known: &Invitee,
    ) -> Result<SweepAction, Problem> {
        let after_days = self.config.follow_up.after_days;
        let item = self
            .follow_up_one(
                keys,
                user.clone(),
                Some(known.clone()),
                after_days,
                true,
                deadline,
            )
            .await?;
        Ok(match item.action {
            super::FollowUpAction::Resent => SweepAction::Reminded,
            super::FollowUpAction::Failed => SweepAction::Failed,
            _ => SweepAction::StillPending,
        })
    }

    /// An offboarded guest whose grace period ended: deleted, if still blocked (an operator
    /// who unblocked them meanwhile keeps them).
    async fn delete_due(
        &self,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        user_id: &str,
    ) -> SweepAction {
        let read = retry(deadline, || {
            self.with_rotation(
                keys,
                |k| async move { self.graph.user(&k.graph, user_id).await },
            )
        })
        .await;
        let deleted = match read {
            Ok(Some(u)) if u.is_guest() && u.account_enabled == Some(false) => {
                retry(deadline, || {
                    self.with_rotation(keys, |k| async move {
                        self.graph.delete_user(&k.graph, user_id).await
                    })
                })
                .await
                .map(|_| true)
            }
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        };
        match deleted {
            Ok(done) => {
                log_store(
                    self.store
                        .transition(
                            user_id,
                            Some(GuestState::Offboarded),
                            GuestState::Offboarded,
                            None,
                        )
                        .await,
                );
                if done {
                    tracing::info!("an offboarded guest was deleted after the grace period");
                    SweepAction::Deleted
                } else {
                    tracing::warn!(
                        "an offboarded guest due for deletion was re-enabled meanwhile: kept"
                    );
                    SweepAction::StillPending
                }
            }
            Err(e) => {
                tracing::error!(alarm = "guest_delete_failed", error = %e, "an offboarded guest was not deleted");
                SweepAction::Failed
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn lifecycle_notice(
        &self,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        user_id: &str,
        known: &Invitee,
        user: Option<&DirectoryUser>,
        kind: NoticeKind,
        extra: Map<String, serde_json::Value>,
    ) -> Result<(), Problem> {
        let key = EventKey {
            source: LIFECYCLE_SOURCE.into(),
            event_id: format!("{}:{user_id}", kind.name()),
        };
        let mut extra = extra;
        extra.insert(
            "invitedBy".into(),
            json!({"source": known.event.source, "eventId": known.event.event_id}),
        );
        let details = EventDetails::default();
        let about = About {
            record: &key,
            event: &known.event,
            user_id: Some(user_id),
            email: user.and_then(|u| u.mail.as_deref()),
            display_name: user.and_then(|u| u.display_name.as_deref()),
            details: &details,
        };
        if self
            .execute_notice(keys, deadline, &about, kind, extra)
            .await?
        {
            Ok(())
        } else {
            // The guest's state doesn't move on: the next sweep sends it to the others.
            Err(undelivered_notice(kind.name()))
        }
    }
}

fn log_store<T>(r: Result<T, crate::store::StoreError>) {
    if let Err(e) = r {
        tracing::error!(alarm = "idempotency_write_failed", error = %e, "a guest's record was not updated");
    }
}
