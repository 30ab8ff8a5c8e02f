//! The invitation policy (`[invitations]`): what happens when the invitee already exists in the
//! directory, who sponsors the guest, and which groups they join.

use serde::{Deserialize, Serialize};

use crate::domain::object_id::check_ids;
use crate::domain::{MAX_SPONSORS, ProvenanceSlots};
use crate::graph::DirectoryUser;

/// What to do when the invitee already exists in the directory (found with the existing-user
/// query: sign-in name, mail, SMTP proxy address or other mail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingUsers {
    /// Don't look: invite (Graph gives an existing guest a fresh link). Needs only
    /// `User.Invite.All`.
    #[default]
    Invite,
    /// Answer "exists" without inviting.
    Skip,
    /// A fresh link for a guest who hasn't redeemed; "exists" for one who has.
    Reinvite,
    /// Reset the guest's redemption (`resetRedemption`) and send a fresh link. Needs
    /// `User.ReadWrite.All`.
    Reset,
}

/// `[invitations]` as written in `RELAY_CONFIG`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationSpec {
    pub existing_users: Option<ExistingUsers>,
    /// Make the event's owner (`map.owner_email` or `map.owner_id`) the guest's sponsor.
    #[serde(default)]
    pub sponsor_owner: bool,
    /// Sponsors for every guest (user or group object ids).
    #[serde(default)]
    pub sponsors: Vec<String>,
    /// Groups every new guest joins (object ids); routes can add more.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Groups a guest joins only once they have redeemed the invitation.
    #[serde(default)]
    pub after_redemption_groups: Vec<String>,
    /// Where the guest's provenance is written (`onPremisesExtensionAttributes` slots).
    #[serde(default)]
    pub provenance: ProvenanceSlots,
}

/// `[offboarding]` as written in `RELAY_CONFIG`: what happens to a guest when a source maps an
/// event to `action = "offboard"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffboardingSpec {
    /// Offboarding events are refused until this is true.
    #[serde(default)]
    pub enabled: bool,
    /// Remove the guest from the groups the relay added them to.
    #[serde(default = "yes")]
    pub remove_from_groups: bool,
    /// `accountEnabled: false`.
    #[serde(default = "yes")]
    pub block_sign_in: bool,
    /// `revokeSignInSessions` (Microsoft: this does not end sessions external users hold in
    /// their home tenant).
    #[serde(default = "yes")]
    pub revoke_sessions: bool,
    /// Delete the guest this many days later, unless a new invitation for the partner comes
    /// first.
    pub delete_after_days: Option<u32>,
    /// Report what would happen, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The longest grace period before an offboarded guest is deleted.
pub const MAX_DELETE_AFTER_DAYS: u32 = 365;

fn yes() -> bool {
    true
}

impl Default for OffboardingSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            remove_from_groups: true,
            block_sign_in: true,
            revoke_sessions: true,
            delete_after_days: None,
            dry_run: false,
        }
    }
}

/// `[invitations]` and `[offboarding]`, checked.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub existing_users: ExistingUsers,
    pub sponsor_owner: bool,
    pub sponsors: Vec<String>,
    pub groups: Vec<String>,
    pub after_redemption_groups: Vec<String>,
    pub provenance: ProvenanceSlots,
    pub offboarding: OffboardingSpec,
}

impl Policy {
    /// # Errors
    /// One line naming the setting at fault.
    pub fn compile(spec: InvitationSpec, offboarding: OffboardingSpec) -> Result<Self, String> {
        check_ids("invitations.sponsors", &spec.sponsors)?;
        check_ids("invitations.groups", &spec.groups)?;
        check_ids(
            "invitations.after_redemption_groups",
            &spec.after_redemption_groups,
        )?;
        spec.provenance.check()?;
        if offboarding
            .delete_after_days
            .is_some_and(|d| d > MAX_DELETE_AFTER_DAYS)
        {
            return Err(format!(
                "offboarding.delete_after_days: at most {MAX_DELETE_AFTER_DAYS} (0 deletes at the next sweep)"
            ));
        }
        if spec.sponsors.len() > MAX_SPONSORS {
            return Err(format!(
                "invitations.sponsors: at most {MAX_SPONSORS} (Graph's limit per guest)"
            ));
        }
        Ok(Self {
            existing_users: spec.existing_users.unwrap_or_default(),
            sponsor_owner: spec.sponsor_owner,
            sponsors: spec.sponsors,
            groups: spec.groups,
            after_redemption_groups: spec.after_redemption_groups,
            provenance: spec.provenance,
            offboarding,
        })
    }

    /// Whether the existing-user query runs before inviting.
    pub fn looks_up_users(&self) -> bool {
        self.existing_users != ExistingUsers::Invite
    }
}

/// Why an invitee was not invited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExistsBecause {
    /// A member of the tenant: never invited as a guest.
    Member,
    /// A guest, and the policy is `skip`.
    Guest,
    /// A guest who already redeemed, and the policy is `reinvite`.
    Redeemed,
}

/// What to do for one invitee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Invite,
    /// Invite with `resetRedemption` for this user id.
    Reset(String),
    /// Don't invite: the user exists.
    Exists {
        user_id: String,
        why: ExistsBecause,
    },
}

/// Applies the policy to the query's result. Members of the tenant are never invited.
pub fn decide(policy: ExistingUsers, found: Option<&DirectoryUser>) -> Decision {
    let Some(user) = found else {
        return Decision::Invite;
    };
    let exists = |why| Decision::Exists {
        user_id: user.id.clone(),
        why,
    };
    if !user.is_guest() {
        return exists(ExistsBecause::Member);
    }
    match policy {
        ExistingUsers::Invite => Decision::Invite,
        ExistingUsers::Skip => exists(ExistsBecause::Guest),
        ExistingUsers::Reinvite if user.has_redeemed() => exists(ExistsBecause::Redeemed),
        ExistingUsers::Reinvite => Decision::Invite,
        ExistingUsers::Reset => Decision::Reset(user.id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(user_type: &str, state: Option<&str>) -> DirectoryUser {
        DirectoryUser {
            id: "0b9d2f4e-6a8c-4e1f-9a3b-5c7d9e1f2a4b".into(),
            user_type: Some(user_type.into()),
            external_user_state: state.map(str::to_owned),
            external_user_state_change_date_time: None,
            mail: None,
            display_name: None,
            account_enabled: Some(true),
            on_premises_extension_attributes: None,
        }
    }

    #[test]
    fn policies() {
        use ExistingUsers::*;
        let pending = user("Guest", Some("PendingAcceptance"));
        let redeemed = user("Guest", Some("Accepted"));
        let member = user("Member", None);
        assert_eq!(decide(Skip, None), Decision::Invite);
        for p in [Invite, Skip, Reinvite, Reset] {
            assert!(matches!(
                decide(p, Some(&member)),
                Decision::Exists {
                    why: ExistsBecause::Member,
                    ..
                }
            ));
        }
        assert!(matches!(
            decide(Skip, Some(&pending)),
            Decision::Exists {
                why: ExistsBecause::Guest,
                ..
            }
        ));
        assert_eq!(decide(Reinvite, Some(&pending)), Decision::Invite);
        assert!(matches!(
            decide(Reinvite, Some(&redeemed)),
            Decision::Exists {
                why: ExistsBecause::Redeemed,
                ..
            }
        ));
        assert_eq!(
            decide(Reset, Some(&redeemed)),
            Decision::Reset(redeemed.id.clone())
        );
    }

    #[test]
    fn group_ids_are_checked() {
        assert!(
            Policy::compile(
                InvitationSpec {
                    groups: vec!["sales".into()],
                    ..InvitationSpec::default()
                },
                OffboardingSpec::default()
            )
            .unwrap_err()
            .contains("invitations.groups")
        );
    }
}
