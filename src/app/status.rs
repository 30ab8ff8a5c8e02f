//! What the relay knows about one event or guest, beside what Graph says now (the operator's
//! `status`), and a fresh link through the event's channels (`resend`).

use std::sync::Arc;

use serde::Serialize;

use super::errors::{lookup_problem, secret_unavailable, store_unavailable};
use super::{App, Keyring, LinkTarget, Outcome};
use crate::graph::{DirectoryUser, GroupRef};
use crate::problem::{Problem, ProblemKind};
use crate::resilience::{Deadline, retry};
use crate::store::{EventKey, EventRecord, Invitee};

/// The event's record: its state, invitation and what each step recorded.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    pub key: String,
    /// `completed`, `in-progress` or `unfinished`.
    pub record: &'static str,
    pub invitation_id: Option<String>,
    pub invited_user_id: Option<String>,
    /// The channels the link was delivered to.
    pub delivered: Vec<String>,
    /// Other steps recorded (properties, sponsors, groups, offboarding actions).
    pub steps: Vec<String>,
}

/// What the relay remembers of the guest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayReport {
    pub state: &'static str,
    pub invited_by: String,
    pub channels: Vec<String>,
    pub groups: Vec<String>,
    pub owner_id: Option<String>,
    /// What the sweep watches the guest for, and from when (epoch seconds).
    pub tracking: Option<(&'static str, u64)>,
}

/// The guest as Graph has it now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestReport {
    pub id: String,
    pub user_type: Option<String>,
    pub external_user_state: Option<String>,
    pub external_user_state_change_date_time: Option<String>,
    pub account_enabled: Option<bool>,
    pub groups: Vec<GroupRef>,
    pub sponsors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
}

/// One support question's answer.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub event: Option<EventReport>,
    pub relay: Option<RelayReport>,
    /// `None`: not in the directory (never invited, or deleted).
    pub guest: Option<GuestReport>,
}

fn event_report(key: &EventKey, r: EventRecord) -> EventReport {
    EventReport {
        key: format!("{}/{}", key.source, key.event_id),
        record: r.status,
        invitation_id: r.progress.invitation_id,
        invited_user_id: r.progress.invited_user_id,
        delivered: r.progress.delivered,
        steps: r.progress.steps,
    }
}

fn relay_report(i: Invitee) -> RelayReport {
    RelayReport {
        state: i.state.name(),
        invited_by: format!("{}/{}", i.event.source, i.event.event_id),
        channels: i.channels,
        groups: i.groups,
        owner_id: i.owner_id,
        tracking: i.tracking.map(|(t, at)| (t.name(), at)),
    }
}

impl App {
    /// What the relay and Graph know about `target` (an event, or the guest with an address).
    /// The guest's address is in the report only when `with_mail`.
    ///
    /// # Errors
    /// The secret, Graph or the store can't be read; nothing is known of the target.
    pub async fn status(
        &self,
        target: &LinkTarget,
        with_mail: bool,
        deadline: Deadline,
    ) -> Result<StatusReport, Problem> {
        let keys = self.secrets.get().await.map_err(secret_unavailable)?;
        let mut report = StatusReport::default();
        let user = match target {
            LinkTarget::Event(key) => {
                let record = self.store.record(key).await.map_err(store_unavailable)?;
                let Some(record) = record else {
                    return Err(Problem::new(
                        ProblemKind::NotFound,
                        "the relay has no record of this event (never received, or older than its retention)",
                    ));
                };
                let id = record.progress.invited_user_id.clone();
                report.event = Some(event_report(key, record));
                match id {
                    Some(id) => self.read_user(&keys, &id, deadline).await?,
                    None => None,
                }
            }
            LinkTarget::Email(email) => {
                let found = retry(deadline, || {
                    self.with_rotation(&keys, |k| async move {
                        self.graph.find_user(&k.graph, email).await
                    })
                })
                .await
                .map_err(lookup_problem)?;
                let Some(user) = found else {
                    return Err(Problem::new(
                        ProblemKind::NotFound,
                        "no user with this address in the directory",
                    ));
                };
                Some(user)
            }
        };
        let Some(user) = user else { return Ok(report) };
        if let Some(known) = self
            .store
            .invitee(&user.id)
            .await
            .map_err(store_unavailable)?
        {
            if report.event.is_none()
                && let Some(r) = self
                    .store
                    .record(&known.event)
                    .await
                    .map_err(store_unavailable)?
            {
                report.event = Some(event_report(&known.event, r));
            }
            report.relay = Some(relay_report(known));
        }
        report.guest = Some(self.guest_report(&keys, user, with_mail, deadline).await?);
        Ok(report)
    }

    async fn read_user(
        &self,
        keys: &Arc<Keyring>,
        id: &str,
        deadline: Deadline,
    ) -> Result<Option<DirectoryUser>, Problem> {
        retry(deadline, || {
            self.with_rotation(keys, |k| async move { self.graph.user(&k.graph, id).await })
        })
        .await
        .map_err(lookup_problem)
    }

    async fn guest_report(
        &self,
        keys: &Arc<Keyring>,
        user: DirectoryUser,
        with_mail: bool,
        deadline: Deadline,
    ) -> Result<GuestReport, Problem> {
        let id = user.id.as_str();
        let groups = retry(deadline, || {
            self.with_rotation(
                keys,
                |k| async move { self.graph.member_of(&k.graph, id).await },
            )
        })
        .await
        .map_err(lookup_problem)?;
        let sponsors = retry(deadline, || {
            self.with_rotation(
                keys,
                |k| async move { self.graph.sponsors(&k.graph, id).await },
            )
        })
        .await
        .map_err(lookup_problem)?;
        Ok(GuestReport {
            id: user.id.clone(),
            user_type: user.user_type,
            external_user_state: user.external_user_state,
            external_user_state_change_date_time: user.external_user_state_change_date_time,
            account_enabled: user.account_enabled,
            groups,
            sponsors,
            mail: if with_mail { user.mail } else { None },
        })
    }

    /// A fresh link for the event's guest through the channels its link went to (the guest's
    /// managed links revoked first). Refused for a guest who has accepted: there is nothing to
    /// redeem.
    ///
    /// # Errors
    /// No completed invitation for the event, the guest gone or redeemed, or a dependency down.
    pub async fn resend(&self, key: &EventKey, deadline: Deadline) -> Result<Outcome, Problem> {
        let keys = self.secrets.get().await.map_err(secret_unavailable)?;
        let user_id = self
            .store
            .completed(key)
            .await
            .map_err(store_unavailable)?
            .and_then(|p| p.invited_user_id)
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::NotFound,
                    "no completed invitation for this event",
                )
            })?;
        let user = self
            .read_user(&keys, &user_id, deadline)
            .await?
            .ok_or_else(|| Problem::new(ProblemKind::NotFound, "the guest is no longer in the directory; a new event for the partner invites afresh"))?;
        if user.has_redeemed() {
            return Err(Problem::new(
                ProblemKind::Unprocessable,
                "the guest has already accepted the invitation; there is no link to resend",
            ));
        }
        self.issue_link(&LinkTarget::Event(key.clone()), deadline)
            .await
    }
}
