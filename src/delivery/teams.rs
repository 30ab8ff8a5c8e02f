//! Microsoft Teams through a Workflows (Power Automate) webhook: the "When a Teams webhook
//! request is received" trigger takes a message whose attachment is an Adaptive Card, and
//! posts the card to the chosen chat or channel. The retired Office 365 connectors'
//! MessageCard format is not used.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::Message;
use super::slack::truncate;
use super::templates::escape_adaptive_card;

/// Adaptive Card version: 1.4 renders on every Teams client.
pub const CARD_VERSION: &str = "1.4";

pub fn payload(title: &str, body: &str, button: &str, msg: &Message<'_>) -> Value {
    let mut facts_source = String::new();
    escape_adaptive_card(msg.source, &mut facts_source);
    let mut facts_event = String::new();
    escape_adaptive_card(msg.event_id, &mut facts_event);
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": CARD_VERSION,
                "body": [
                    {"type": "TextBlock", "text": truncate(title, 500), "weight": "Bolder", "size": "Medium", "wrap": true},
                    {"type": "TextBlock", "text": truncate(body, 4000), "wrap": true},
                    {"type": "TextBlock", "text": format!("{facts_source} · {facts_event}"), "isSubtle": true, "size": "Small", "wrap": true}
                ],
                "actions": [{
                    "type": "Action.OpenUrl",
                    "title": truncate(button, 75),
                    "url": msg.invitation.redeem_url.expose_secret()
                }]
            }
        }]
    })
}
