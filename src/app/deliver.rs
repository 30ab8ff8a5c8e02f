//! The steps after the invitation: deliver the link to each pending channel, join the groups,
//! and remember where the link went.

use super::errors::delivery_problem;
use super::execute::{Run, epoch_secs, log_unrecorded};
use super::invite::Invited;
use super::notify::is_notice_record;
use super::plan::Purpose;
use super::{App, GroupOutcome, GroupStatus};
use crate::delivery::{DeliveryError, LinkMode, Message};
use crate::graph::{GraphError, GroupAdd};
use crate::problem::Problem;
use crate::resilience::retry;
use crate::store::{Delivery, GuestState, Invitee, Tracking};

/// The channels the link reached (the record also names the notices sent).
pub(crate) fn links_delivered(recorded: &[String]) -> Vec<String> {
    recorded
        .iter()
        .filter(|r| !is_notice_record(r))
        .cloned()
        .collect()
}

impl App {
    /// Sends the link to each channel not yet delivered, recording each as it succeeds. When
    /// any fails, the run fails (a retry delivers to the others only).
    pub(crate) async fn deliver(
        &self,
        run: &mut Run<'_>,
        invited: &Invited,
    ) -> Result<Vec<String>, Problem> {
        let pending = run.pending();
        let Invited::Fresh(invitation) = invited else {
            // Recorded: nothing is pending.
            return Ok(links_delivered(&run.progress.delivered));
        };
        let plan = run.plan;
        let msg = Message {
            source: &plan.key.source,
            event_id: &plan.key.event_id,
            email: &plan.request.invited_user_email_address,
            display_name: plan.request.invited_user_display_name.as_ref(),
            details: &plan.details,
            invitation,
        };
        let mut failed: Vec<(String, DeliveryError)> = Vec::new();
        // Channels that deliver the managed link get one minted for this attempt.
        let managed = |name: &str| self.config.delivery.link_mode(name) == LinkMode::Managed;
        let minted = if pending.iter().any(|n| managed(n)) {
            Some(self.mint_link(run, invitation).await)
        } else {
            None
        };
        // Every channel at once: each waits on its own service, and each is recorded as soon as
        // it succeeds, so a crash mid-way repeats none that was recorded. A lone last channel's
        // write also completes the event.
        let completes = run.delivery_is_last && pending.len() == 1;
        let sends = pending.into_iter().map(|name| {
            let msg = match (&minted, managed(&name)) {
                (Some(Ok(link)), true) => Ok(Message {
                    invitation: link,
                    ..msg
                }),
                (Some(Err(e)), true) => Err(e.clone()),
                _ => Ok(msg),
            };
            self.send_and_record(&*run, name, msg, invitation, completes)
        });
        for (name, sent, done) in futures_util::future::join_all(sends).await {
            run.completed |= done;
            match sent {
                Ok(()) => run.progress.delivered.push(name),
                Err(e) => failed.push((name, e)),
            }
        }
        if !failed.is_empty() {
            tracing::warn!(
                delivered = run.progress.delivered.len(),
                failed = failed.len(),
                "delivery incomplete; a retry re-invites and delivers to the remaining channels"
            );
            return Err(delivery_problem(
                invitation,
                &links_delivered(&run.progress.delivered),
                &failed,
            ));
        }
        Ok(links_delivered(&run.progress.delivered))
    }

    /// One channel's delivery, recorded (with the invitation's ids, and the event's completion
    /// when `completes`) as soon as it succeeds; whether that write completed the event.
    async fn send_and_record(
        &self,
        run: &Run<'_>,
        name: String,
        msg: Result<Message<'_>, DeliveryError>,
        invitation: &crate::domain::Invitation,
        completes: bool,
    ) -> (String, Result<(), DeliveryError>, bool) {
        let sent = match msg {
            Ok(msg) => self.deliver_one(run, &name, &msg).await,
            Err(e) => Err(e),
        };
        let mut done = false;
        match &sent {
            Ok(()) => {
                tracing::info!(channel = %name, "delivered");
                crate::metrics::delivery(&name, true);
                let delivery = Delivery {
                    channel: &name,
                    invitation: Some((&invitation.id, &invitation.invited_user_id)),
                    completes,
                };
                let recorded = self.store.record_delivered(&run.plan.key, delivery).await;
                done = completes && recorded.is_ok();
                log_unrecorded(recorded);
            }
            Err(e) => {
                tracing::warn!(channel = %name, error = %e, "delivery failed");
                crate::metrics::delivery(&name, false);
            }
        }
        (name, sent, done)
    }

    /// One channel, retried within the deadline.
    async fn deliver_one(
        &self,
        run: &Run<'_>,
        name: &str,
        msg: &Message<'_>,
    ) -> Result<(), DeliveryError> {
        let Some(channel) = run.keys.channel(name) else {
            return Err(DeliveryError::Blocked);
        };
        let deadline = run.deadline;
        let attempt = || async {
            if !deadline.has_room_for(self.config.outbound.timeout) {
                return Err(DeliveryError::Deferred);
            }
            deadline
                .bound(
                    self.deliverer
                        .send(channel, &self.config.delivery.templates, msg),
                    DeliveryError::Unavailable("deadline reached".into()),
                )
                .await
        };
        retry(deadline, attempt).await
    }

    /// Adds the guest to each group, retrying replication delays. Idempotent ("already a
    /// member" counts as done), so a resumed run simply repeats it. A failure is reported and
    /// alarmed, and never undoes the delivered invitation.
    pub(crate) async fn join_groups(&self, run: &mut Run<'_>, user_id: &str) -> Vec<GroupOutcome> {
        let mut out = Vec::new();
        for id in &run.plan.groups {
            let attempt = || async {
                if !run.deadline.has_room_for(self.config.outbound.timeout) {
                    return Err(GraphError::Unavailable {
                        reason: "not enough time left in this invocation".into(),
                        retry_after: None,
                    });
                }
                self.with_rotation(&run.keys, |k| async move {
                    self.graph.add_to_group(&k.graph, id, user_id).await
                })
                .await
            };
            let (status, reason) = match retry(run.deadline, attempt).await {
                Ok(GroupAdd::Added) => (GroupStatus::Added, None),
                Ok(GroupAdd::AlreadyMember) => (GroupStatus::AlreadyMember, None),
                Err(e) => {
                    tracing::error!(alarm = "group_add_failed", group = %id, error = %e, "the guest was not added to a group");
                    (GroupStatus::Failed, Some(e.to_string()))
                }
            };
            if status != GroupStatus::Failed {
                run.joined.push(id.clone());
            }
            out.push(GroupOutcome {
                id: id.clone(),
                status,
                reason,
            });
        }
        out
    }

    /// Remembers which event invited the guest and where the link went (the follow-up's
    /// pointer; not for a reminder, whose event is the follow-up itself), and which event the
    /// sender's delivery id carried (replays). Both are overwrites, safe to repeat.
    pub(crate) async fn remember(&self, run: &Run<'_>, user_id: &str, delivered: &[String]) {
        let key = &run.plan.key;
        if run.plan.purpose == Purpose::Invitation {
            let known = run.known.clone().unwrap_or_default();
            let mut groups = known.groups;
            for g in &run.joined {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
            let invitee = Invitee {
                event: key.clone(),
                channels: delivered.to_vec(),
                groups,
                owner_id: run.owner_id.clone().or(known.owner_id),
                state: GuestState::Pending,
                tracking: Some((Tracking::Pending, epoch_secs())),
            };
            log_unrecorded(self.store.remember_invitee(user_id, invitee).await);
        }
    }
}
