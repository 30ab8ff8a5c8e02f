//! What processing an event came to: the JSON the webhook answers and the worker logs. Never
//! the redeem URL.

use serde::Serialize;

pub use crate::policy::ExistsBecause;
use crate::store::{EventKey, Progress};

/// A successful outcome, serialised as the webhook's answer (`{"status": …, "eventId": …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "status",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Outcome {
    /// The source's filter did not select the event.
    Ignored { event_id: String },
    /// Queue mode: verified, validated and on its way to the worker.
    Queued { event_id: String },
    Invited {
        event_id: String,
        invitation_id: String,
        invited_user_id: String,
        delivered: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        groups: Vec<GroupOutcome>,
        /// The guest's properties and provenance, when any are configured.
        #[serde(skip_serializing_if = "Option::is_none")]
        profile: Option<ProfileOutcome>,
    },
    /// The invitee already exists and the existing-user policy says not to invite.
    Exists {
        event_id: String,
        invited_user_id: String,
        #[serde(rename = "existing")]
        why: ExistsBecause,
        /// The guest's properties, written for a guest the relay invited.
        #[serde(skip_serializing_if = "Option::is_none")]
        profile: Option<ProfileOutcome>,
    },
    /// An offboarding: what was done to the guest (or, with `dryRun`, would be).
    Offboarded {
        event_id: String,
        invited_user_id: String,
        actions: Vec<OffboardAction>,
        dry_run: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        notified: Vec<String>,
    },
    /// An offboarding for a partner the directory doesn't know: nothing to do.
    NothingToDo { event_id: String },
    /// The event was processed before: what that processing recorded.
    Duplicate {
        event_id: String,
        invitation_id: Option<String>,
        invited_user_id: Option<String>,
        delivered: Vec<String>,
    },
}

impl Outcome {
    /// A duplicate of the completed event `key`, from its record.
    pub fn duplicate(key: &EventKey, progress: Progress) -> Self {
        let mut delivered = super::deliver::links_delivered(&progress.delivered);
        delivered.sort();
        Outcome::Duplicate {
            event_id: key.event_id.clone(),
            invitation_id: progress.invitation_id,
            invited_user_id: progress.invited_user_id,
            delivered,
        }
    }

    /// The `status` member of the answer.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Ignored { .. } => "ignored",
            Outcome::Queued { .. } => "queued",
            Outcome::Invited { .. } => "invited",
            Outcome::Exists { .. } => "exists",
            Outcome::Offboarded { .. } => "offboarded",
            Outcome::NothingToDo { .. } => "nothing-to-do",
            Outcome::Duplicate { .. } => "duplicate",
        }
    }

    /// The answer as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("an outcome serialises")
    }
}

/// What writing the guest's properties and provenance came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileOutcome {
    pub status: ProfileStatus,
    /// The properties Graph refused (names only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileStatus {
    Updated,
    /// Written by an earlier attempt.
    AlreadyUpdated,
    /// Some properties were refused (`failed` names them); the rest are written.
    Partial,
    Failed,
}

/// One action of an offboarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OffboardAction {
    GroupsRemoved,
    SignInBlocked,
    SessionsRevoked,
    DeletionScheduled,
}

impl OffboardAction {
    /// The progress record's name for this step.
    pub fn step(self) -> &'static str {
        match self {
            OffboardAction::GroupsRemoved => "offboard:groups",
            OffboardAction::SignInBlocked => "offboard:blocked",
            OffboardAction::SessionsRevoked => "offboard:revoked",
            OffboardAction::DeletionScheduled => "offboard:deletion",
        }
    }
}

/// One group's outcome, as reported in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupOutcome {
    pub id: String,
    pub status: GroupStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What adding the guest to a group came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupStatus {
    Added,
    AlreadyMember,
    /// Reported and alarmed; never undoes the invitation or its delivery.
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_keep_their_documented_shape() {
        let invited = Outcome::Invited {
            event_id: "e".into(),
            invitation_id: "i".into(),
            invited_user_id: "u".into(),
            delivered: vec!["slack".into()],
            groups: Vec::new(),
            profile: None,
        };
        assert_eq!(
            invited.to_json(),
            json!({"status": "invited", "eventId": "e", "invitationId": "i", "invitedUserId": "u", "delivered": ["slack"]})
        );
        let exists = Outcome::Exists {
            event_id: "e".into(),
            invited_user_id: "u".into(),
            why: ExistsBecause::Redeemed,
            profile: None,
        };
        assert_eq!(
            exists.to_json(),
            json!({"status": "exists", "eventId": "e", "invitedUserId": "u", "existing": "redeemed"})
        );
        let dup = Outcome::duplicate(
            &EventKey {
                source: "generic".into(),
                event_id: "e".into(),
            },
            Progress {
                invitation_id: None,
                invited_user_id: None,
                delivered: vec!["webhook".into(), "slack".into()],
                steps: Vec::new(),
            },
        );
        assert_eq!(
            dup.to_json(),
            json!({"status": "duplicate", "eventId": "e", "invitationId": null, "invitedUserId": null, "delivered": ["slack", "webhook"]})
        );
        let g = GroupOutcome {
            id: "g".into(),
            status: GroupStatus::AlreadyMember,
            reason: None,
        };
        assert_eq!(
            serde_json::to_value(g).unwrap(),
            json!({"id": "g", "status": "already-member"})
        );
        assert_eq!(
            Outcome::Queued {
                event_id: "e".into()
            }
            .status(),
            "queued"
        );
    }
}
