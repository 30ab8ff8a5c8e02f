//! What an event says beyond the invitee's address and name, checked: the details messages,
//! routes and templates use.

use std::collections::BTreeMap;

/// Event details, each value checked where it came in (see `inbound::CrmEvent::details`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventDetails {
    pub event_type: Option<String>,
    /// The partner's organisation, cleaned like a display name.
    pub company: Option<String>,
    /// A language tag (`de`, `fr-CA`).
    pub language: Option<String>,
    /// A valid address (CC permission is per channel).
    pub owner_email: Option<String>,
    /// An object id (a GUID, lower case).
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Values for routing rules and templates.
    pub fields: BTreeMap<String, String>,
}
