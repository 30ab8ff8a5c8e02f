//! Previews: every channel's message for one event, in every language the channel speaks,
//! rendered exactly as it is sent (with a sample invitation). `invite-relay render` writes them
//! out so template authors see the result before deploying.

use super::{ChannelKind, DeliveryConfig, Message, Rendered, render};
use crate::domain::{DisplayName, EventDetails, InviteeEmail};

/// One preview file: a name such as `email.de.html` and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewFile {
    pub name: String,
    pub content: String,
}

/// The event a preview is written for, as the source interpreted it.
pub struct Sample<'a> {
    pub source: &'a str,
    pub event_id: &'a str,
    pub email: &'a InviteeEmail,
    pub display_name: Option<&'a DisplayName>,
    pub details: EventDetails,
}

/// Renders every channel's message for `sample`, in every language the channel speaks.
///
/// # Errors
/// A template that fails on this event.
pub fn render_all(
    delivery: &DeliveryConfig,
    sample: Sample<'_>,
) -> Result<Vec<PreviewFile>, String> {
    let Sample {
        source,
        event_id,
        email,
        display_name,
        mut details,
    } = sample;
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
            details.language = (!lang.is_empty()).then(|| lang.clone());
            let msg = Message {
                source,
                event_id,
                email,
                display_name,
                details: &details,
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
