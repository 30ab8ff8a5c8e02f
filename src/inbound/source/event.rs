//! A CRM event reduced to what an invitation needs, and its details checked.

use std::collections::BTreeMap;

use crate::domain::object_id::is_object_id;
use crate::domain::{DisplayName, EventDetails, InviteeEmail};

/// A CRM event reduced to what an invitation needs. Values are still raw strings; the domain
/// types parse them (again in the worker, which trusts nothing it reads from a queue).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmEvent {
    pub event_id: String,
    pub event_type: Option<String>,
    pub email: String,
    pub display_name: Option<String>,
    pub user_type: Option<String>,
    pub redirect_url: Option<String>,
    pub channels: Option<Vec<String>>,
    pub occurred_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// What the event asks for.
    #[serde(default, skip_serializing_if = "Action::is_invite")]
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_end: Option<String>,
    /// Guest properties, as mapped (checked in the plan).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profile: BTreeMap<String, String>,
}

/// What an event asks the relay to do with its partner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Invite (or re-invite) the partner, and keep their guest up to date.
    #[default]
    Invite,
    /// The partnership ended: apply the offboarding policy to their guest.
    Offboard,
}

impl Action {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "invite" => Some(Action::Invite),
            "offboard" => Some(Action::Offboard),
            _ => None,
        }
    }

    /// The action's name, as mapped.
    pub fn name(self) -> &'static str {
        match self {
            Action::Invite => "invite",
            Action::Offboard => "offboard",
        }
    }

    fn is_invite(&self) -> bool {
        *self == Action::Invite
    }
}

impl CrmEvent {
    /// The event's details, checked: the company cleaned as a display name, the language a
    /// tag, the owner a valid address and a GUID.
    ///
    /// # Errors
    /// When the owner's address or id is not valid (the message names which).
    pub fn details(&self) -> Result<EventDetails, &'static str> {
        Ok(EventDetails {
            event_type: self.event_type.clone(),
            company: self
                .company
                .as_deref()
                .and_then(DisplayName::parse)
                .map(|c| c.as_str().to_owned()),
            language: self
                .language
                .as_deref()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && l.len() <= 35
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
                .map(str::to_owned),
            owner_email: self
                .owner_email
                .as_deref()
                .map(|raw| {
                    InviteeEmail::parse(raw)
                        .map(|e| e.as_str().to_owned())
                        .map_err(|_| "the owner email is not a valid address")
                })
                .transpose()?,
            owner_id: self
                .owner_id
                .as_deref()
                .map(|id| {
                    let id = id.trim().to_ascii_lowercase();
                    if is_object_id(&id) {
                        Ok(id)
                    } else {
                        Err("the owner id is not an object id (a GUID)")
                    }
                })
                .transpose()?,
            fields: self.fields.clone(),
        })
    }
}
