//! Slack incoming webhook with Block Kit: a section with the (mrkdwn-escaped) message, a
//! button to the link, and the event's id for the record.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::Message;
use super::templates::escape_mrkdwn;

/// Slack's limits: section text 3,000 characters, button text 75, notification text 40,000.
const SECTION_MAX: usize = 3000;
const BUTTON_MAX: usize = 75;
const TEXT_MAX: usize = 4000;

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn payload(summary: &str, body: &str, button: &str, msg: &Message<'_>) -> Value {
    let mut context = String::from("Event `");
    escape_mrkdwn(msg.event_id, &mut context);
    context.push_str("` from ");
    escape_mrkdwn(msg.source, &mut context);
    json!({
        "text": truncate(summary, TEXT_MAX),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(body, SECTION_MAX)}},
            {"type": "actions", "elements": [{
                "type": "button",
                "action_id": "open_invitation",
                "style": "primary",
                "text": {"type": "plain_text", "text": truncate(button, BUTTON_MAX)},
                "url": msg.invitation.redeem_url.expose_secret()
            }]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_limits_and_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("äbcd", 3), "äb…");
        assert_eq!(
            truncate(&"x".repeat(100), BUTTON_MAX).chars().count(),
            BUTTON_MAX
        );
    }
}
