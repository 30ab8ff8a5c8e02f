//! The steps up to the invitation: decide (the existing-user policy), prepare (sponsors,
//! Microsoft's own email) and invite (pacing, retries, the credential's rotation).

use std::time::Duration;

use super::errors::{InviteError, invite_problem, lookup_problem, unusable_channel};
use super::execute::{Run, log_unrecorded};
use super::plan::Purpose;
use super::{App, Keyring, Outcome};
use crate::delivery::Channel;
use crate::domain::{Invitation, InvitationRequest, MAX_SPONSORS};
use crate::graph::GraphError;
use crate::policy::{Decision, decide};
use crate::problem::Problem;
use crate::resilience::{Deadline, Paused, retry};
use crate::store::Delivery;
use std::sync::Arc;

/// Wait suggested when the invocation has no time left for another Graph call.
const NO_TIME_RETRY: Duration = Duration::from_secs(1);

/// The existing-user decision.
pub(crate) enum Decided {
    /// Don't invite: answered as is.
    Exists(Outcome),
    /// Invite with this request.
    Invite(Box<InvitationRequest>),
}

/// The invitation this run works with.
pub(crate) enum Invited {
    /// Created now: its link is to be delivered.
    Fresh(Invitation),
    /// Created and delivered everywhere by an earlier attempt: only its ids are known.
    Recorded {
        invitation_id: String,
        user_id: String,
    },
}

impl Invited {
    pub fn invitation_id(&self) -> &str {
        match self {
            Invited::Fresh(i) => &i.id,
            Invited::Recorded { invitation_id, .. } => invitation_id,
        }
    }
    pub fn user_id(&self) -> &str {
        match self {
            Invited::Fresh(i) => &i.invited_user_id,
            Invited::Recorded { user_id, .. } => user_id,
        }
    }
}

impl App {
    /// The existing-user policy, before the first invitation only: a reminder, or a retry
    /// after an invitation, finishes what was started.
    pub(crate) async fn decide(&self, run: &Run<'_>) -> Result<Decided, Problem> {
        let request = run.plan.request.clone();
        if run.plan.purpose == Purpose::Reminder
            || run.progress.invitation_id.is_some()
            || !self.config.policy.looks_up_users()
        {
            return Ok(Decided::Invite(Box::new(request)));
        }
        let email = request.invited_user_email_address.as_str();
        let found = retry(run.deadline, || {
            self.with_rotation(&run.keys, |k| async move {
                self.graph.find_user(&k.graph, email).await
            })
        })
        .await
        .map_err(lookup_problem)?;
        Ok(
            match decide(self.config.policy.existing_users, found.as_ref()) {
                Decision::Exists { user_id, why } => {
                    tracing::info!(existing = ?why, "the invitee already exists; not invited");
                    Decided::Exists(Outcome::Exists {
                        event_id: run.plan.key.event_id.clone(),
                        invited_user_id: user_id,
                        why,
                        profile: None,
                    })
                }
                Decision::Reset(user_id) => {
                    let mut request = request;
                    request.reset_redemption = true;
                    request.invited_user = Some(user_id);
                    Decided::Invite(Box::new(request))
                }
                Decision::Invite => Decided::Invite(Box::new(request)),
            },
        )
    }

    /// The guest's sponsors (for an invitation) and Microsoft's own email, when a pending
    /// channel asks for it.
    pub(crate) async fn prepare(
        &self,
        run: &mut Run<'_>,
        mut request: InvitationRequest,
    ) -> Result<InvitationRequest, Problem> {
        if run.plan.purpose == Purpose::Invitation {
            request.invited_user_sponsors = self.resolve_sponsors(run).await;
        }
        if let Some(ch) = graph_mail(run) {
            let ctx = crate::delivery::context(
                &run.plan.key.source,
                &run.plan.key.event_id,
                run.plan.request.invited_user_email_address.as_str(),
                run.plan
                    .request
                    .invited_user_display_name
                    .as_ref()
                    .map(crate::domain::DisplayName::as_str),
                &run.plan.details,
                None,
                None,
            );
            let info = crate::delivery::microsoft_message(
                &ch.name,
                &self.config.delivery.templates,
                &run.plan.details,
                &ctx,
                &ch.cc_for(&run.plan.details),
            )
            .map_err(|e| unusable_channel(&ch.name, e))?;
            request.send_invitation_message = true;
            request.invited_user_message_info = Some(info);
        }
        Ok(request)
    }

    /// The configured sponsors and, with `sponsor_owner`, the event's owner (by object id, or
    /// resolved from their email). An owner who can't be resolved is logged and left out: the
    /// invitation goes ahead.
    pub(crate) async fn resolve_sponsors(&self, run: &mut Run<'_>) -> Vec<String> {
        let policy = &self.config.policy;
        let mut ids = policy.sponsors.clone();
        let details = &run.plan.details;
        let owner = match (&details.owner_id, &details.owner_email) {
            _ if !policy.sponsor_owner => None,
            (Some(id), _) => Some(id.clone()),
            (None, Some(email)) => self.member_id(run, email).await,
            (None, None) => None,
        };
        if let Some(id) = owner {
            if !ids.contains(&id) {
                ids.insert(0, id.clone());
            }
            run.owner_id = Some(id);
        }
        if ids.len() > MAX_SPONSORS {
            tracing::warn!(
                sponsors = ids.len(),
                "more than five sponsors; the first five are kept"
            );
            ids.truncate(MAX_SPONSORS);
        }
        ids
    }

    /// The object id of the directory member with this address, if there is one.
    async fn member_id(&self, run: &Run<'_>, email: &str) -> Option<String> {
        let found = retry(run.deadline, || {
            self.with_rotation(&run.keys, |k| async move {
                self.graph.find_user(&k.graph, email).await
            })
        })
        .await;
        match found {
            Ok(Some(u)) if !u.is_guest() => Some(u.id),
            Ok(_) => {
                tracing::warn!(
                    alarm = "sponsor_unresolved",
                    "the owner is not a member of the directory; no sponsor set"
                );
                None
            }
            Err(e) => {
                tracing::warn!(alarm = "sponsor_unresolved", error = %e, "the owner could not be looked up; no sponsor set");
                None
            }
        }
    }

    /// Creates the invitation (unless an earlier attempt created it and delivered it
    /// everywhere); Microsoft's email, sent with it, is recorded with its ids in one write.
    pub(crate) async fn invite(
        &self,
        run: &mut Run<'_>,
        request: &InvitationRequest,
    ) -> Result<Invited, Problem> {
        if let (true, Some(invitation_id), Some(user_id)) = (
            run.pending().is_empty(),
            run.progress.invitation_id.clone(),
            run.progress.invited_user_id.clone(),
        ) {
            return Ok(Invited::Recorded {
                invitation_id,
                user_id,
            });
        }
        let graph_mail = graph_mail(run).map(|c| c.name.clone());
        let invitation = self
            .create(&run.keys, run.deadline, request, run.cell)
            .await
            .map_err(invite_problem)?;
        // The ids are recorded with the first delivery (or the completion): before a channel
        // has the link, a retry invites again whatever is recorded.
        run.progress.invitation_id = Some(invitation.id.clone());
        run.progress.invited_user_id = Some(invitation.invited_user_id.clone());
        if let Some(name) = graph_mail {
            tracing::info!(channel = %name, "delivered by Microsoft with the invitation");
            let delivery = Delivery {
                channel: &name,
                invitation: Some((&invitation.id, &invitation.invited_user_id)),
                completes: false,
            };
            log_unrecorded(self.store.record_delivered(&run.plan.key, delivery).await);
            run.progress.delivered.push(name);
        }
        Ok(Invited::Fresh(invitation))
    }

    /// `POST /invitations` under the pacing gate (with the tenant's cell reserved for this
    /// message, if any), retrying throttling and transient failures within the deadline; a
    /// refused credential re-reads the secret once (rotation).
    pub(crate) async fn create(
        &self,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        request: &InvitationRequest,
        cell: Option<u64>,
    ) -> Result<Invitation, InviteError> {
        let attempt = || async {
            if !deadline.has_room_for(self.config.outbound.timeout) {
                return Err(InviteError::Paused(Paused {
                    retry_after: NO_TIME_RETRY,
                    reason: "not enough time left in this invocation",
                }));
            }
            self.admit_invitation(deadline, cell)
                .await
                .map_err(InviteError::Paused)?;
            let timeout = GraphError::Unavailable {
                reason: "timeout (deadline)".into(),
                retry_after: None,
            };
            let call = self.with_rotation(keys, |k| async move {
                self.graph.invite(&k.graph, request).await
            });
            let result = deadline.bound(call, timeout).await;
            let opened = match &result {
                Err(GraphError::Rejected { status: 403, .. }) => self.gate.blocked(),
                Err(GraphError::Throttled { retry_after }) => self.gate.throttled(*retry_after),
                Err(GraphError::Rejected { status, .. }) if (400..500).contains(status) => {
                    self.gate.failed()
                }
                _ => None,
            };
            if let Some(pause) = opened {
                self.pause_tenant(pause).await;
            }
            result.map_err(InviteError::Graph)
        };
        let created = retry(deadline, attempt).await;
        if created.is_ok() {
            crate::metrics::invitation_created();
        }
        created
    }
}

/// The pending channel that Graph delivers itself (Microsoft's own email), if any.
fn graph_mail<'a>(run: &'a Run<'_>) -> Option<&'a Channel> {
    let keys: &'a super::Keyring = &run.keys;
    run.pending()
        .iter()
        .filter_map(|n| keys.channel(n))
        .find(|c| c.sent_by_graph())
}
