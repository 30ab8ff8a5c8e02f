//! Lifecycle notices to the channels a route names for them, each channel once: within an
//! event's run (a sponsor moved, a guest offboarded) the notice is recorded beside the
//! deliveries (`<notice>@<channel>`); from the sweep (redeemed, expired) under a key of its own.

use serde_json::{Map, json};

use super::errors::undelivered_notice;
use super::execute::{Run, log_unrecorded};
use super::{App, Keyring};
use crate::delivery::{Notice, NoticeKind};
use crate::domain::EventDetails;
use crate::inbound::CrmEvent;
use crate::problem::Problem;
use crate::resilience::{Deadline, retry};
use crate::store::{Delivery, EventKey};

/// The source under which the sweep's notices are recorded.
pub const LIFECYCLE_SOURCE: &str = "lifecycle";

/// The record name of a notice to a channel (kept apart from the link's deliveries).
fn record_name(kind: NoticeKind, channel: &str) -> String {
    format!("{}@{channel}", kind.name())
}

/// Whether a progress entry is a notice rather than a delivered link.
pub(crate) fn is_notice_record(entry: &str) -> bool {
    entry.contains('@')
}

/// What a notice is about, without the run.
pub(crate) struct About<'a> {
    /// Where the notice is recorded.
    pub record: &'a EventKey,
    /// The event the notice is about (what routes and receivers see).
    pub event: &'a EventKey,
    pub user_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub details: &'a EventDetails,
}

impl App {
    /// `invitation.failed` for an event parked on the dead-letter queue: its reason (never the
    /// link), to the channels a route names for it, once per event. Best effort: the parked
    /// event and its alarm are the record.
    pub async fn notify_failed(
        &self,
        source: &str,
        event: &CrmEvent,
        problem: &Problem,
        deadline: Deadline,
    ) {
        if !self
            .config
            .delivery
            .routes
            .routes(NoticeKind::InvitationFailed)
        {
            return;
        }
        let keys = match self.secrets.get().await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "invitation.failed not sent: the secret is unavailable");
                return;
            }
        };
        let record = EventKey {
            source: LIFECYCLE_SOURCE.into(),
            event_id: format!(
                "{}:{source}:{}",
                NoticeKind::InvitationFailed.name(),
                event.event_id
            ),
        };
        let about_event = EventKey {
            source: source.into(),
            event_id: event.event_id.clone(),
        };
        let details = event.details().unwrap_or_default();
        let about = About {
            record: &record,
            event: &about_event,
            user_id: None,
            email: Some(&event.email),
            display_name: event.display_name.as_deref(),
            details: &details,
        };
        let mut extra = Map::new();
        extra.insert("action".into(), json!(event.action.name()));
        extra.insert("reason".into(), json!(problem.kind.slug()));
        extra.insert("detail".into(), json!(problem.detail));
        if let Err(p) = self
            .execute_notice(&keys, deadline, &about, NoticeKind::InvitationFailed, extra)
            .await
        {
            tracing::warn!(problem = p.kind.slug(), "invitation.failed not sent");
        }
    }

    /// The channels a route names for `kind` for this guest (none without such a route).
    pub(crate) fn notice_channels(&self, kind: NoticeKind, about: &About<'_>) -> Vec<String> {
        if !self.config.delivery.routes.routes(kind) {
            return Vec::new();
        }
        let ctx = crate::delivery::context(
            &about.event.source,
            &about.event.event_id,
            about.email.unwrap_or_default(),
            about.display_name,
            about.details,
            None,
            None,
        );
        match self.config.delivery.routes.choose_for(kind, &ctx) {
            Ok(Some(route)) => route.channels.clone(),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, notice = kind.name(), "no route for the notice");
                Vec::new()
            }
        }
    }

    /// Sends `kind` to each of `channels` not yet in `done`; the names sent, as recorded.
    async fn send_notices(
        &self,
        keys: &Keyring,
        deadline: Deadline,
        notice: &Notice<'_>,
        channels: &[String],
        done: &[String],
    ) -> Vec<String> {
        let mut sent = Vec::new();
        for name in channels {
            let record = record_name(notice.kind, name);
            if done.contains(&record) {
                continue;
            }
            let Some(channel) = keys.channel(name) else {
                continue;
            };
            match retry(deadline, || self.deliverer.notify(channel, notice)).await {
                Ok(()) => sent.push(record),
                Err(e) => {
                    tracing::warn!(alarm = "notice_failed", channel = %name, notice = notice.kind.name(), error = %e, "a lifecycle notice was not delivered");
                }
            }
        }
        sent
    }

    /// A notice about this run's guest, recorded in the run's own record; the channels it
    /// reached — all of them, or a retryable problem (a retry sends it to the others).
    pub(crate) async fn notice_after(
        &self,
        run: &mut Run<'_>,
        user_id: &str,
        kind: NoticeKind,
        extra: Map<String, serde_json::Value>,
    ) -> Result<Vec<String>, Problem> {
        let plan = run.plan;
        let about = About {
            record: &plan.key,
            event: &plan.key,
            user_id: Some(user_id),
            email: Some(plan.request.invited_user_email_address.as_str()),
            display_name: plan
                .request
                .invited_user_display_name
                .as_ref()
                .map(crate::domain::DisplayName::as_str),
            details: &plan.details,
        };
        let channels = self.notice_channels(kind, &about);
        let notice = notice(kind, &about, extra);
        let keys = run.keys.clone();
        let sent = self
            .send_notices(
                &keys,
                run.deadline,
                &notice,
                &channels,
                &run.progress.delivered,
            )
            .await;
        for record in &sent {
            log_unrecorded(
                self.store
                    .record_delivered(&plan.key, Delivery::of(record))
                    .await,
            );
            run.progress.delivered.push(record.clone());
        }
        if channels
            .iter()
            .any(|c| !run.progress.delivered.contains(&record_name(kind, c)))
        {
            return Err(undelivered_notice(kind.name()));
        }
        Ok(channels)
    }

    /// The steps of a notice from the sweep (see `execute_notice`, which claims and ends its
    /// key): each channel not yet recorded; whether every channel has it now.
    pub(crate) async fn notice_steps(
        &self,
        keys: &Keyring,
        deadline: Deadline,
        about: &About<'_>,
        kind: NoticeKind,
        extra: Map<String, serde_json::Value>,
        done: &[String],
    ) -> bool {
        let channels = self.notice_channels(kind, about);
        let notice = notice(kind, about, extra);
        let sent = self
            .send_notices(keys, deadline, &notice, &channels, done)
            .await;
        for record in &sent {
            log_unrecorded(
                self.store
                    .record_delivered(about.record, Delivery::of(record))
                    .await,
            );
        }
        done.len() + sent.len() >= channels.len()
    }
}

fn notice<'a>(
    kind: NoticeKind,
    about: &'a About<'a>,
    extra: Map<String, serde_json::Value>,
) -> Notice<'a> {
    Notice {
        kind,
        source: &about.event.source,
        event_id: &about.event.event_id,
        invited_user_id: about.user_id,
        email: about.email,
        display_name: about.display_name,
        details: about.details,
        extra,
    }
}
