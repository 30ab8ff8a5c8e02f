//! Lifecycle notices: what happened to a guest after the invitation (redeemed, expired,
//! failed, updated, offboarded), sent to the channels a route names for that event — the
//! signed webhook, so a CRM automation can record it, and Slack or Teams for the owner. A
//! notice never carries a link.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::channels::ChannelKind;
use super::escape::{escape_adaptive_card, escape_mrkdwn};
use super::slack::truncate;
use super::teams::CARD_VERSION;
use crate::domain::EventDetails;

/// The events of a guest's life the relay reports, by their `type` on the signed webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NoticeKind {
    /// The invitation was created and its link delivered (the link message itself).
    #[serde(rename = "invitation.created")]
    InvitationCreated,
    /// The partner pressed Accept on the managed link's page (once per link).
    #[serde(rename = "invitation.opened")]
    InvitationOpened,
    #[serde(rename = "invitation.redeemed")]
    InvitationRedeemed,
    /// The pending guest disappeared (deleted, e.g. by a lifecycle policy).
    #[serde(rename = "invitation.expired")]
    InvitationExpired,
    /// The event was parked: it can't succeed without an operator.
    #[serde(rename = "invitation.failed")]
    InvitationFailed,
    #[serde(rename = "guest.updated")]
    GuestUpdated,
    #[serde(rename = "guest.offboarded")]
    GuestOffboarded,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 7] = [
        NoticeKind::InvitationCreated,
        NoticeKind::InvitationOpened,
        NoticeKind::InvitationRedeemed,
        NoticeKind::InvitationExpired,
        NoticeKind::InvitationFailed,
        NoticeKind::GuestUpdated,
        NoticeKind::GuestOffboarded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NoticeKind::InvitationCreated => "invitation.created",
            NoticeKind::InvitationOpened => "invitation.opened",
            NoticeKind::InvitationRedeemed => "invitation.redeemed",
            NoticeKind::InvitationExpired => "invitation.expired",
            NoticeKind::InvitationFailed => "invitation.failed",
            NoticeKind::GuestUpdated => "guest.updated",
            NoticeKind::GuestOffboarded => "guest.offboarded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The owner's one-line summary.
    fn headline(self) -> &'static str {
        match self {
            NoticeKind::InvitationCreated => "was invited",
            NoticeKind::InvitationOpened => "opened the invitation and is signing in",
            NoticeKind::InvitationRedeemed => "accepted the invitation",
            NoticeKind::InvitationExpired => {
                "no longer has a pending invitation (the guest was deleted)"
            }
            NoticeKind::InvitationFailed => "could not be invited",
            NoticeKind::GuestUpdated => "was updated",
            NoticeKind::GuestOffboarded => "was offboarded",
        }
    }
}

/// One notice: who, from which event, and what the relay did (`data`: actions, reason).
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub kind: NoticeKind,
    pub source: &'a str,
    pub event_id: &'a str,
    pub invited_user_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub details: &'a EventDetails,
    /// Further members of `data` (never a link, a token or a secret).
    pub extra: Map<String, Value>,
}

impl Notice<'_> {
    /// The signed webhook's payload.
    pub fn payload(&self, channel: &str) -> Value {
        let d = self.details;
        let mut data = json!({
            "source": self.source,
            "eventId": self.event_id,
            "eventType": d.event_type,
            "invitedUserId": self.invited_user_id,
            "email": self.email,
            "displayName": self.display_name,
            "company": d.company,
            "ownerEmail": d.owner_email,
            "fields": d.fields,
        });
        if let Value::Object(m) = &mut data {
            m.extend(self.extra.clone());
        }
        json!({"type": self.kind.name(), "channel": channel, "data": data})
    }

    /// Who the notice is about, as the owner reads it.
    fn who(&self) -> String {
        let name = self
            .display_name
            .or(self.email)
            .unwrap_or("A partner")
            .to_owned();
        match &self.details.company {
            Some(c) => format!("{name} ({c})"),
            None => name,
        }
    }

    fn reason(&self) -> Option<String> {
        self.extra
            .get("reason")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                self.extra
                    .get("actions")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
            })
    }

    /// The message for a Slack or Teams channel, values escaped for its markup.
    pub fn render(&self, kind: ChannelKind, channel: &str) -> Option<Value> {
        let line = format!("{} {}", self.who(), self.kind.headline());
        let context = format!(
            "{} · event {} from {}",
            self.kind.name(),
            self.event_id,
            self.source
        );
        match kind {
            ChannelKind::Webhook => Some(self.payload(channel)),
            ChannelKind::Slack => {
                // The top-level text is the notification's: escaped like the section.
                let mut summary = String::new();
                escape_mrkdwn(&line, &mut summary);
                let mut text = summary.clone();
                if let Some(r) = self.reason() {
                    text.push_str(": ");
                    escape_mrkdwn(&r, &mut text);
                }
                Some(json!({
                    "text": truncate(&summary, 4000),
                    "blocks": [
                        {"type": "section", "text": {"type": "mrkdwn", "verbatim": true, "text": truncate(&text, 3000)}},
                        {"type": "context", "elements": [{"type": "plain_text", "text": truncate(&context, 2000)}]}
                    ]
                }))
            }
            ChannelKind::Teams => {
                let mut title = String::new();
                escape_adaptive_card(&line, &mut title);
                let mut body = Vec::new();
                body.push(json!({"type": "TextBlock", "text": truncate(&title, 500), "weight": "Bolder", "wrap": true}));
                if let Some(r) = self.reason() {
                    let mut t = String::new();
                    escape_adaptive_card(&r, &mut t);
                    body.push(
                        json!({"type": "TextBlock", "text": truncate(&t, 4000), "wrap": true}),
                    );
                }
                let mut c = String::new();
                escape_adaptive_card(&context, &mut c);
                body.push(json!({"type": "TextBlock", "text": c, "isSubtle": true, "size": "Small", "wrap": true}));
                Some(json!({
                    "type": "message",
                    "attachments": [{
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "contentUrl": null,
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": CARD_VERSION,
                            "body": body
                        }
                    }]
                }))
            }
            ChannelKind::Email | ChannelKind::Microsoft => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_carry_no_link_and_escape_values() {
        let details = EventDetails {
            company: Some("*Fab*rikam".into()),
            ..EventDetails::default()
        };
        let mut extra = Map::new();
        extra.insert("actions".into(), json!(["blocked", "groups-removed"]));
        let n = Notice {
            kind: NoticeKind::GuestOffboarded,
            source: "generic",
            event_id: "evt_1",
            invited_user_id: Some("u"),
            email: Some("ada@partner.example"),
            display_name: Some("<!channel> Ada"),
            details: &details,
            extra,
        };
        let slack = n.render(ChannelKind::Slack, "slack").unwrap().to_string();
        assert!(slack.contains("&lt;!channel&gt; Ada"), "{slack}");
        assert!(
            !slack.contains("<!channel>"),
            "not in the notification text either: {slack}"
        );
        assert!(!slack.contains("*Fab*"), "{slack}");
        assert!(slack.contains("blocked, groups-removed"));
        let hook = n.payload("webhook");
        assert_eq!(hook["type"], "guest.offboarded");
        assert_eq!(
            hook["data"]["actions"],
            json!(["blocked", "groups-removed"])
        );
        assert!(n.render(ChannelKind::Email, "email").is_none());
        for k in NoticeKind::ALL {
            assert_eq!(NoticeKind::parse(k.name()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
    }
}
