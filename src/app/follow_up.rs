//! Follow-up on pending invitations: guests who haven't redeemed after N days get a fresh link
//! through the channels their first link went to. The worker runs it on a schedule; operators
//! run `invite-relay pending`.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::errors::{lookup_problem, secret_unavailable, store_unavailable};
use super::plan::Plan;
use super::{App, Keyring, Outcome};
use crate::domain::{DisplayName, InvitationRequest, InviteeEmail, UserType};
use crate::graph::DirectoryUser;
use crate::problem::Problem;
use crate::resilience::{Deadline, retry};
use crate::store::{EventKey, Invitee};

/// The source name follow-up records are kept under.
pub const FOLLOW_UP_SOURCE: &str = "follow-up";

/// What the follow-up did for one pending guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FollowUpAction {
    /// Pending for less than the period.
    NotDue,
    /// Due (when only listing).
    Due,
    /// A fresh link went out now.
    Resent,
    /// This period's reminder went out before.
    AlreadyReminded,
    /// Not invited by this relay, or longer ago than the records are kept.
    NoRecord,
    /// The guest has no usable address.
    NoAddress,
    /// None of the first link's channels can deliver a reminder.
    NoChannel,
    Failed,
}

/// One pending guest and what the follow-up did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowUp {
    pub invited_user_id: String,
    pub days_pending: u64,
    pub action: FollowUpAction,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The guest's address: for the operator's terminal only (`--show-emails`), never
    /// serialized or logged.
    #[serde(skip)]
    pub mail: Option<String>,
}

impl App {
    /// Lists guests whose invitation is still pending (`externalUserState eq
    /// 'PendingAcceptance'`) and, with `resend`, sends those pending for `after_days` or more a
    /// fresh link through the channels their first link went to — once per `after_days`
    /// period, however often this runs.
    ///
    /// # Errors
    /// A [`Problem`] when the secret, Graph or the store can't be read.
    pub async fn follow_up(
        &self,
        after_days: u64,
        resend: bool,
        deadline: Deadline,
    ) -> Result<Vec<FollowUp>, Problem> {
        let after_days = after_days.max(1);
        let keys = self.secrets.get().await.map_err(secret_unavailable)?;
        let guests = retry(deadline, || {
            self.with_rotation(&keys, |k| async move {
                self.graph.pending_guests(&k.graph).await
            })
        })
        .await
        .map_err(lookup_problem)?;
        let mut out = Vec::new();
        for g in guests.into_iter().filter(DirectoryUser::is_guest) {
            let item = self
                .follow_up_one(&keys, g, None, after_days, resend, deadline)
                .await?;
            out.push(item);
        }
        Ok(out)
    }

    /// One pending guest: `known` is the guest's record when the caller has read it already.
    pub(crate) async fn follow_up_one(
        &self,
        keys: &std::sync::Arc<Keyring>,
        g: DirectoryUser,
        known: Option<Invitee>,
        after_days: u64,
        resend: bool,
        deadline: Deadline,
    ) -> Result<FollowUp, Problem> {
        let days = days_pending(&g);
        let mut item = FollowUp {
            invited_user_id: g.id.clone(),
            days_pending: days,
            action: FollowUpAction::NotDue,
            channels: Vec::new(),
            reason: None,
            mail: g.mail.clone(),
        };
        if days < after_days {
            return Ok(item);
        }
        let pointer = match known {
            Some(k) => Some(k),
            None => self.store.invitee(&g.id).await.map_err(store_unavailable)?,
        };
        let Some(pointer) = pointer else {
            item.action = FollowUpAction::NoRecord;
            return Ok(item);
        };
        item.channels = pointer
            .channels
            .iter()
            .filter(|c| keys.channel(c).is_some_and(|c| !c.sent_by_graph()))
            .cloned()
            .collect();
        let email = g.mail.as_deref().and_then(|m| InviteeEmail::parse(m).ok());
        let email = match (resend, email, item.channels.is_empty()) {
            (false, _, _) => {
                item.action = FollowUpAction::Due;
                return Ok(item);
            }
            (true, None, _) => {
                item.action = FollowUpAction::NoAddress;
                return Ok(item);
            }
            (true, Some(_), true) => {
                item.action = FollowUpAction::NoChannel;
                return Ok(item);
            }
            (true, Some(email), false) => email,
        };
        let plan = match self.reminder_plan(&g, email, days / after_days, &item.channels) {
            Ok(plan) => plan,
            Err(reason) => {
                item.action = FollowUpAction::Failed;
                item.reason = Some(reason);
                return Ok(item);
            }
        };
        match self.execute(&plan, keys, deadline).await {
            Ok(Outcome::Duplicate { .. }) => item.action = FollowUpAction::AlreadyReminded,
            Ok(_) => item.action = FollowUpAction::Resent,
            Err(p) => {
                item.action = FollowUpAction::Failed;
                item.reason = Some(p.detail.clone());
            }
        }
        tracing::info!(invited_user_id = %item.invited_user_id, days_pending = days, action = ?item.action, "follow-up");
        Ok(item)
    }

    /// The reminder for this period: a new invitation for the guest through `channels`.
    pub(crate) fn reminder_plan(
        &self,
        g: &DirectoryUser,
        email: InviteeEmail,
        period: u64,
        channels: &[String],
    ) -> Result<Plan, String> {
        let redirect = self
            .config
            .invitees
            .redirect
            .choose(None)
            .map_err(|e| e.to_string())?;
        Ok(Plan::reminder(
            EventKey {
                source: FOLLOW_UP_SOURCE.into(),
                event_id: format!("{}:{period}", g.id),
            },
            InvitationRequest::new(
                email,
                g.display_name.as_deref().and_then(DisplayName::parse),
                UserType::Guest,
                redirect,
            ),
            channels.to_vec(),
        ))
    }
}

/// Whole days since the guest's `externalUserState` last changed (0 when unknown).
fn days_pending(g: &DirectoryUser) -> u64 {
    let now = OffsetDateTime::now_utc();
    g.external_user_state_change_date_time
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .map_or(0, |t| (now - t).whole_days().max(0) as u64)
}
