//! Slack incoming webhook with Block Kit: a short text, the invitee, and a button to the link.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::Message;

/// Escapes text for Slack mrkdwn: `&`, `<` and `>` are the control characters of Slack's
/// message formatting; escaping them defuses `<!channel>` mentions and `<url|label>` links.
pub fn escape_mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn payload(msg: &Message<'_>) -> Value {
    let who = msg.display_name.map(|n| escape_mrkdwn(n.as_str()));
    let email = escape_mrkdwn(msg.email.as_str());
    let headline = match &who {
        Some(name) => format!("*{name}* ({email}) is invited as a guest."),
        None => format!("*{email}* is invited as a guest."),
    };
    let url = msg.invitation.redeem_url.expose_secret();
    json!({
        "text": format!("Guest invitation ready for {}", who.as_deref().unwrap_or(&email)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!(
                "{headline}\nShare the button below with them: it opens their invitation to sign in."
            )}},
            {"type": "actions", "elements": [{
                "type": "button",
                "action_id": "open_invitation",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Accept the invitation"},
                "url": url
            }]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                "Event `{}` from {}", escape_mrkdwn(msg.event_id), escape_mrkdwn(msg.source)
            )}]}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_mentions_and_links() {
        assert_eq!(
            escape_mrkdwn("<!channel> & <https://x|y>"),
            "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
        );
    }
}
