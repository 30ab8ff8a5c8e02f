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
    /// False unless a route asks Microsoft to send its own invitation email as well.
    pub send_invitation_message: bool,
    /// With `send_invitation_message`: the message's language, text and CC recipients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_user_message_info: Option<MessageInfo>,
    /// Sponsors (user or group object ids), at most five.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "ser_sponsors")]
    pub invited_user_sponsors: Vec<String>,
    /// Reset the existing guest's redemption (requires `invited_user`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reset_redemption: bool,
    /// The existing user whose redemption is reset: serialized as `{"id": …}`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_user")]
    pub invited_user: Option<String>,
}

impl InvitationRequest {
    /// An invitation whose link the relay delivers itself (no Microsoft email, no sponsors).
    pub fn new(
        email: InviteeEmail,
        display_name: Option<DisplayName>,
        user_type: UserType,
        redirect: RedirectUrl,
    ) -> Self {
        Self {
            invited_user_email_address: email,
            invited_user_display_name: display_name,
            invited_user_type: user_type,
            invite_redirect_url: redirect,
            send_invitation_message: false,
            invited_user_message_info: None,
            invited_user_sponsors: Vec::new(),
            reset_redemption: false,
            invited_user: None,
        }
    }
}

/// Most sponsors a guest can have.
pub const MAX_SPONSORS: usize = 5;

/// `invitedUserMessageInfo`: what Microsoft's own invitation email says.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MessageInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customized_message_body: Option<String>,
    #[serde(serialize_with = "ser_recipients")]
    pub cc_recipients: Vec<String>,
}

fn ser_recipients<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for address in v {
        seq.serialize_element(&serde_json::json!({"emailAddress": {"address": address}}))?;
    }
    seq.end()
}

fn ser_sponsors<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for id in v {
        seq.serialize_element(&serde_json::json!({"id": id}))?;
    }
    seq.end()
}

fn ser_user<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(id) => serde_json::json!({"id": id}).serialize(s),
        None => s.serialize_none(),
    }
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
