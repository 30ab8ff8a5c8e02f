//! The Graph invitation we send and the one we get back.

use secrecy::SecretString;
use serde::Serialize;

use super::{DisplayName, InviteeEmail, RedirectUrl};

/// `invitedUserType`: Guest unless configuration allows an event to ask for Member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UserType {
    Guest,
    Member,
}

impl UserType {
    /// Case-insensitive `guest` / `member`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "guest" => Some(Self::Guest),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
}

/// The body of `POST /v1.0/invitations`, built only from validated values.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationRequest {
    #[serde(serialize_with = "ser_email")]
    pub invited_user_email_address: InviteeEmail,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_name")]
    pub invited_user_display_name: Option<DisplayName>,
    pub invited_user_type: UserType,
    #[serde(serialize_with = "ser_redirect")]
    pub invite_redirect_url: RedirectUrl,
    /// Always false: the link is delivered through the organisation's own channels.
    pub send_invitation_message: bool,
}

fn ser_email<S: serde::Serializer>(v: &InviteeEmail, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}
fn ser_name<S: serde::Serializer>(v: &Option<DisplayName>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(n.as_str()),
        None => s.serialize_none(),
    }
}
fn ser_redirect<S: serde::Serializer>(v: &RedirectUrl, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// A created invitation. The redeem URL is a bearer credential for the partner's account, so it
/// is held as a secret and only exposed when a message body is rendered.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: String,
    pub invited_user_id: String,
    pub status: String,
    pub redeem_url: SecretString,
}
