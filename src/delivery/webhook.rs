//! Generic outbound webhook, signed with Standard Webhooks. The `webhook-id` is stable per
//! event and channel, so the receiver can deduplicate retries.

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{DeliveryError, Message};

/// `msg_` + 32 hex digits of SHA-256(source, event id, channel).
pub fn message_id(source: &str, event_id: &str, channel: &str) -> String {
    let mut h = Sha256::new();
    for part in [source, event_id, channel] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// The event as the receiving system gets it: structured data, no presentation.
pub fn payload(channel: &str, msg: &Message<'_>) -> Value {
    let e = msg.details;
    json!({
        "type": "invitation.created",
        "channel": channel,
        "data": {
            "source": msg.source,
            "eventId": msg.event_id,
            "eventType": e.event_type,
            "email": msg.email.as_str(),
            "displayName": msg.display_name.map(|n| n.as_str()),
            "company": e.company,
            "language": e.language,
            "ownerEmail": e.owner_email,
            "fields": e.fields,
            "invitationId": msg.invitation.id,
            "invitedUserId": msg.invitation.invited_user_id,
            "inviteRedeemUrl": msg.invitation.redeem_url.expose_secret(),
        }
    })
}

pub fn signed(
    signer: &crate::standard_webhooks::WebhookKey,
    channel: &str,
    msg: &Message<'_>,
    body: &Value,
) -> Result<(HeaderMap, String), DeliveryError> {
    sign(signer, message_id(msg.source, msg.event_id, channel), body)
}

/// Standard Webhooks headers for `body` under the message id `id` (stable per event, channel
/// and kind of message, so a receiver can drop a retry).
pub fn sign(
    signer: &crate::standard_webhooks::WebhookKey,
    id: String,
    body: &Value,
) -> Result<(HeaderMap, String), DeliveryError> {
    let body = body.to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| DeliveryError::Unavailable("clock before 1970".into()))?
        .as_secs() as i64;
    let signature = signer.sign(&id, ts, body.as_bytes());
    let mut headers = HeaderMap::new();
    let value = |s: String| {
        HeaderValue::try_from(s).map_err(|_| DeliveryError::Unavailable("bad header".into()))
    };
    headers.insert("webhook-id", value(id)?);
    headers.insert("webhook-timestamp", value(ts.to_string())?);
    headers.insert("webhook-signature", value(signature)?);
    Ok((headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_is_stable_and_distinct() {
        let id = |s, e, c| message_id(s, e, c);
        assert_eq!(
            id("generic", "evt_1", "webhook"),
            id("generic", "evt_1", "webhook")
        );
        assert_ne!(
            id("generic", "evt_1", "webhook"),
            id("generic", "evt_2", "webhook")
        );
        assert_ne!(
            id("generic", "evt_1", "webhook"),
            id("hubspot", "evt_1", "webhook")
        );
        assert_ne!(
            id("generic", "evt_1", "webhook"),
            id("generic", "evt_1", "crm-hook")
        );
        assert_eq!(id("a", "b", "c").len(), 36);
    }
}
