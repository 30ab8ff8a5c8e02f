//! Rendering a message for a channel exactly as it is sent, and Microsoft's own message.

use secrecy::ExposeSecret;

use super::channels::ChannelKind;
use super::message::Message;
use super::templates::{self, Templates};
use super::{DeliveryError, email, slack, teams, webhook};
use crate::domain::EventDetails;

/// A rendered message, as its channel's service receives it (for previews and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Email {
        subject: String,
        html: String,
        text: String,
    },
    Json(serde_json::Value),
}

/// Renders `msg` for a channel of `kind` named `channel`, exactly as it is sent.
///
/// # Errors
/// [`DeliveryError::Template`] when a template fails on this message.
pub fn render(
    channel: &str,
    kind: ChannelKind,
    templates: &Templates,
    msg: &Message<'_>,
) -> Result<Rendered, DeliveryError> {
    let ctx = msg.context(true);
    let lang = templates.language_for(channel, kind, msg.details.language.as_deref());
    let part = |p: &str| {
        let text = templates
            .render(channel, kind, &lang, p, &ctx)
            .map_err(DeliveryError::Template)?;
        if text.is_empty() {
            return Err(DeliveryError::Template(format!(
                "the {p} part renders empty for this event"
            )));
        }
        Ok(text)
    };
    Ok(match kind {
        ChannelKind::Email => {
            let (html, text) = (part("html")?, part("text")?);
            let url = msg.invitation.redeem_url.expose_secret();
            let mut escaped = String::new();
            templates::escape_html(url, &mut escaped);
            if !html.contains(&escaped) || !text.contains(url) {
                return Err(DeliveryError::Template(
                    "the email renders without the invitation link for this event".into(),
                ));
            }
            Rendered::Email {
                subject: email::subject_line(&part("subject")?),
                html,
                text,
            }
        }
        ChannelKind::Slack => Rendered::Json(slack::payload(
            &part("summary")?,
            &part("body")?,
            &part("button")?,
            msg,
        )),
        ChannelKind::Teams => Rendered::Json(teams::payload(
            &part("title")?,
            &part("body")?,
            &part("button")?,
            msg,
        )),
        ChannelKind::Webhook => Rendered::Json(webhook::payload(channel, msg)),
        ChannelKind::Microsoft => {
            let message = microsoft_message(channel, templates, msg.details, &ctx, &[])?;
            Rendered::Json(serde_json::json!({
                "sendInvitationMessage": true,
                "invitedUserMessageInfo": message,
            }))
        }
    })
}

/// `invitedUserMessageInfo` for Microsoft's own email: the invitee's language, the channel's
/// message template (if any; else Microsoft's text) and the CC list.
///
/// # Errors
/// [`DeliveryError::Template`] when the message template fails.
pub fn microsoft_message(
    channel: &str,
    templates: &Templates,
    details: &EventDetails,
    ctx: &minijinja::Value,
    cc: &[String],
) -> Result<crate::domain::MessageInfo, DeliveryError> {
    let languages = templates.languages(channel, ChannelKind::Microsoft);
    let body = if languages.is_empty() {
        None
    } else {
        let lang =
            templates.language_for(channel, ChannelKind::Microsoft, details.language.as_deref());
        Some(
            templates
                .render(channel, ChannelKind::Microsoft, &lang, "message", ctx)
                .map_err(DeliveryError::Template)?,
        )
    };
    Ok(crate::domain::MessageInfo {
        message_language: details.language.clone(),
        customized_message_body: body,
        cc_recipients: cc.to_vec(),
    })
}
