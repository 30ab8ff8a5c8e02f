//! Follow-up on pending invitations: guests who haven't redeemed after N days get a fresh link
//! through the channels their first link went to. The worker runs it on a schedule; operators
//! run `invite-relay pending`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{App, Outcome, Plan, lookup_problem, secret_unavailable, store_unavailable};
use crate::delivery::Extras;
use crate::domain::{DisplayName, InvitationRequest, InviteeEmail, UserType};
use crate::problem::Problem;
use crate::resilience::{Deadline, retry};
use crate::store::EventKey;

/// The source name follow-up records are kept under.
pub const FOLLOW_UP_SOURCE: &str = "follow-up";

/// One pending guest and what the follow-up did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowUp {
    pub invited_user_id: String,
    pub days_pending: u64,
    /// `not-due`, `due` (listing only), `resent`, `already-reminded`, `no-record` (not invited
    /// by this relay, or longer ago than the records are kept), `no-address`, `no-channel` or
    /// `failed`.
    pub action: &'static str,
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
        let creds = self.secrets.get().await.map_err(secret_unavailable)?;
        let guests = retry(deadline, || self.graph.pending_guests(&creds.graph))
            .await
            .map_err(lookup_problem)?;
        let now = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        for g in guests.into_iter().filter(|g| g.is_guest()) {
            let days = g
                .external_user_state_change_date_time
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .map_or(0, |t| (now - t).whole_days().max(0) as u64);
            let mut item = FollowUp {
                invited_user_id: g.id.clone(),
                days_pending: days,
                action: "not-due",
                channels: Vec::new(),
                reason: None,
                mail: g.mail.clone(),
            };
            if days < after_days {
                out.push(item);
                continue;
            }
            let Some(pointer) = self.store.invitee(&g.id).await.map_err(store_unavailable)? else {
                item.action = "no-record";
                out.push(item);
                continue;
            };
            item.channels = pointer
                .channels
                .iter()
                .filter(|c| creds.channel(c).is_some_and(|c| !c.sent_by_graph()))
                .cloned()
                .collect();
            let email = g.mail.as_deref().and_then(|m| InviteeEmail::parse(m).ok());
            item.action = match (resend, &email, item.channels.is_empty()) {
                (false, _, _) => "due",
                (true, None, _) => "no-address",
                (true, Some(_), true) => "no-channel",
                (true, Some(_), false) => "resend",
            };
            let (Some(email), "resend") = (email, item.action) else {
                out.push(item);
                continue;
            };
            let redirect = match self.config.redirect.choose(None) {
                Ok(r) => r,
                Err(e) => {
                    item.action = "failed";
                    item.reason = Some(e.to_string());
                    out.push(item);
                    continue;
                }
            };
            let period = days / after_days;
            let plan = Plan {
                key: EventKey {
                    source: FOLLOW_UP_SOURCE.into(),
                    event_id: format!("{}:{period}", g.id),
                },
                request: InvitationRequest::new(
                    email,
                    g.display_name.as_deref().and_then(DisplayName::parse),
                    UserType::Guest,
                    redirect,
                ),
                channels: item.channels.clone(),
                groups: Vec::new(),
                extras: Extras::default(),
                follow_up: true,
            };
            match self.run(plan, &creds, deadline, None).await {
                Ok(Outcome::Duplicate { .. }) => item.action = "already-reminded",
                Ok(_) => item.action = "resent",
                Err(p) => {
                    item.action = "failed";
                    item.reason = Some(p.detail.clone());
                }
            }
            tracing::info!(invited_user_id = %item.invited_user_id, days_pending = days, action = item.action, "follow-up");
            out.push(item);
        }
        Ok(out)
    }
}
