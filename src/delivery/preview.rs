//! Previews: every channel's message for one event, in every language the channel speaks,
//! rendered exactly as it is sent (with a sample invitation). `invite-relay render` writes them
//! out so template authors see the result before deploying.

use super::{ChannelKind, DeliveryConfig, Extras, Message, Rendered, render};
use crate::domain::{DisplayName, InviteeEmail};
use crate::inbound::{BodyFormat, Interpretation, Source};

/// One preview file: a name such as `email.de.html` and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewFile {
    pub name: String,
    pub content: String,
}

/// Parses `body` as `source` would, and renders every channel's message for it.
///
/// # Errors
/// What stops the event (the filter, a missing field, an invalid address) or a template.
pub fn render_all(
    delivery: &DeliveryConfig,
    source: &Source,
    body: &[u8],
) -> Result<Vec<PreviewFile>, String> {
    let parsed = match source.format {
        BodyFormat::Json => crate::inbound::json::parse(body)?,
        BodyFormat::Xml => crate::inbound::xml::to_json(body)?,
    };
    let event = source
        .interpret_all(&parsed)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find_map(|i| match i {
            Ok(Interpretation::Invite(e)) => Some(e),
            _ => None,
        })
        .ok_or("the source's filter ignores this event, or it can't be interpreted")?;
    let email = InviteeEmail::parse(&event.email).map_err(|e| e.to_string())?;
    let display_name = event.display_name.as_deref().and_then(DisplayName::parse);
    let mut extras = Extras::from_event(&event).map_err(str::to_owned)?;
    let invitation = super::sample_invitation();
    let mut out = Vec::new();
    for channel in &delivery.channels {
        let languages = match channel.kind {
            ChannelKind::Webhook => vec![String::new()],
            kind => delivery.templates.languages(&channel.name, kind),
        };
        let languages = if languages.is_empty() {
            vec![String::new()]
        } else {
            languages
        };
        for lang in languages {
            extras.language = (!lang.is_empty()).then(|| lang.clone());
            let msg = Message {
                source: &source.name,
                event_id: &event.event_id,
                email: &email,
                display_name: display_name.as_ref(),
                extras: &extras,
                invitation: &invitation,
            };
            let rendered = render(&channel.name, channel.kind, &delivery.templates, &msg)
                .map_err(|e| format!("channel {}: {e}", channel.name))?;
            let stem = if lang.is_empty() {
                channel.name.clone()
            } else {
                format!("{}.{lang}", channel.name)
            };
            match rendered {
                Rendered::Email {
                    subject,
                    html,
                    text,
                } => {
                    out.push(PreviewFile {
                        name: format!("{stem}.subject.txt"),
                        content: subject + "\n",
                    });
                    out.push(PreviewFile {
                        name: format!("{stem}.html"),
                        content: html + "\n",
                    });
                    out.push(PreviewFile {
                        name: format!("{stem}.txt"),
                        content: text + "\n",
                    });
                }
                Rendered::Json(v) => out.push(PreviewFile {
                    name: format!("{stem}.json"),
                    content: serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n",
                }),
            }
        }
    }
    Ok(out)
}
