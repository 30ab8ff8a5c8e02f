//! The message a channel delivers, and the context templates and routes see.

use secrecy::{ExposeSecret, SecretString};

use super::templates;
use crate::domain::{DisplayName, EventDetails, Invitation, InviteeEmail};

/// What a channel delivers: the invitee and the created invitation.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    pub source: &'a str,
    pub event_id: &'a str,
    pub email: &'a InviteeEmail,
    pub display_name: Option<&'a DisplayName>,
    pub details: &'a EventDetails,
    pub invitation: &'a Invitation,
}

impl Message<'_> {
    /// The template context; with the link only when `with_link`.
    pub(super) fn context(&self, with_link: bool) -> minijinja::Value {
        let display_name = self.display_name.map(DisplayName::as_str);
        context(
            self.source,
            self.event_id,
            self.email.as_str(),
            display_name,
            self.details,
            with_link.then(|| self.invitation.redeem_url.expose_secret()),
            Some(self.invitation.id.as_str()),
        )
    }
}

/// The context routes (without a link) and templates see.
pub fn context(
    source: &str,
    event_id: &str,
    email: &str,
    display_name: Option<&str>,
    details: &EventDetails,
    redeem_url: Option<&str>,
    invitation_id: Option<&str>,
) -> minijinja::Value {
    templates::Context {
        source,
        event_id,
        event_type: details.event_type.as_deref(),
        invitee: templates::Invitee {
            email,
            name: display_name,
            company: details.company.as_deref(),
            language: details.language.as_deref(),
        },
        owner: details
            .owner_email
            .as_deref()
            .map(|email| templates::Owner { email }),
        fields: &details.fields,
        language: details.language.as_deref(),
        redeem_url,
        invitation_id,
    }
    .to_value()
}

/// A stand-in invitation for checking and previewing messages before one exists.
pub fn sample_invitation() -> Invitation {
    Invitation {
        id: "7f5c3b1e-2a4d-4c6e-8f90-1a2b3c4d5e6f".into(),
        invited_user_id: "0b9d2f4e-6a8c-4e1f-9a3b-5c7d9e1f2a4b".into(),
        status: "PendingAcceptance".into(),
        redeem_url: SecretString::from(templates::SAMPLE_REDEEM_URL),
    }
}
