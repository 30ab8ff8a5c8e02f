//! Slack incoming webhook with Block Kit: a section with the (mrkdwn-escaped) message, a
//! button to the link, and the event's id for the record.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::Message;

/// Slack's limits: section text 3,000 characters, button text 75, notification text 40,000.
const SECTION_MAX: usize = 3000;
const BUTTON_MAX: usize = 75;
const TEXT_MAX: usize = 4000;

/// Cuts `s` to `max` characters with an ellipsis, never inside an escape (`\\x` or `&amp;`).
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    let trailing = out.len() - out.trim_end_matches('\\').len();
    if trailing % 2 == 1 {
        out.pop();
    }
    out.push('…');
    out
}

/// `verbatim`: Slack doesn't turn URLs, channel names or mentions in the (escaped) text into
/// links. The event line is plain text.
pub fn payload(summary: &str, body: &str, button: &str, msg: &Message<'_>) -> Value {
    let context = format!("Event {} from {}", msg.event_id, msg.source);
    json!({
        "text": truncate(summary, TEXT_MAX),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "verbatim": true, "text": truncate(body, SECTION_MAX)}},
            {"type": "actions", "elements": [{
                "type": "button",
                "action_id": "open_invitation",
                "style": "primary",
                "text": {"type": "plain_text", "text": truncate(button, BUTTON_MAX)},
                "url": msg.invitation.redeem_url.expose_secret()
            }]},
            {"type": "context", "elements": [{"type": "plain_text", "text": truncate(&context, 2000)}]}
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
        assert_eq!(truncate("ab &amp; cd", 7), "ab …");
        assert_eq!(truncate(r"ab\.cd", 4), "ab…");
        assert_eq!(truncate(r"a\\.cd", 4), r"a\\…");
    }
}
