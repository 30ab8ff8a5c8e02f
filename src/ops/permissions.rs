//! Which Microsoft Graph application permissions a deployment's features need, and whether the
//! permissions an app token carries (its `roles` claim) cover them.
//!
//! Each need is the least-privileged permission Microsoft's v1.0 API pages list for the call
//! (invitation-post, user-get, user-update, user-post-sponsors, group-post-members,
//! user-revokesigninsessions, user-delete); a more privileged permission the same pages list
//! satisfies it too.

use base64::Engine as _;

use crate::config::Config;
use crate::policy::ExistingUsers;

/// One feature's need: the permission Microsoft lists first for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub feature: &'static str,
    pub permission: &'static str,
}

/// The more privileged permissions that include `permission`.
fn included_by(permission: &str) -> &'static [&'static str] {
    match permission {
        "User.Invite.All"
        | "User.ReadUpdate.All"
        | "User.EnableDisableAccount.All"
        | "User.RevokeSessions.All" => &["User.ReadWrite.All", "Directory.ReadWrite.All"],
        "User.Read.All" => &[
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        "GroupMember.ReadWrite.All" => &["Group.ReadWrite.All", "Directory.ReadWrite.All"],
        "User.DeleteRestore.All" => &["User.ReadWrite.All"],
        "User.ReadWrite.All" => &["Directory.ReadWrite.All"],
        _ => &[],
    }
}

/// Whether `roles` cover `permission`.
pub fn covered(permission: &str, roles: &[String]) -> bool {
    roles
        .iter()
        .any(|r| r == permission || included_by(permission).contains(&r.as_str()))
}

/// What the configured features need, in the README's order.
pub fn needs(config: &Config) -> Vec<Need> {
    let policy = &config.policy;
    let mut out = vec![Need {
        feature: "invitations",
        permission: "User.Invite.All",
    }];
    let mut need = |feature, permission| {
        out.push(Need {
            feature,
            permission,
        })
    };
    match policy.existing_users {
        ExistingUsers::Skip | ExistingUsers::Reinvite => {
            need("existing_users (finding the guest)", "User.Read.All");
        }
        ExistingUsers::Reset => need("existing_users = \"reset\"", "User.ReadWrite.All"),
        ExistingUsers::Invite => {}
    }
    if config.store.table.is_some() {
        need("the sweep and follow-ups (guest states)", "User.Read.All");
    }
    if !policy.groups.is_empty() || !policy.after_redemption_groups.is_empty() {
        need("groups", "GroupMember.ReadWrite.All");
    }
    let profile: Vec<&str> = config
        .sources
        .values()
        .flat_map(|s| s.profile_properties())
        .collect();
    if !profile.is_empty() || policy.provenance.any() {
        need("guest properties and provenance", "User.ReadUpdate.All");
    }
    if profile.contains(&"mobilePhone") {
        need("the mobilePhone property", "User-Phone.ReadWrite.All");
    }
    if policy.sponsor_owner {
        need("sponsor sync (sponsor_owner)", "User.ReadWrite.All");
    }
    if config.delivery.managed_links() {
        need(
            "managed links (recognising a redeemed guest)",
            "User.Read.All",
        );
    }
    let off = &policy.offboarding;
    if off.enabled {
        if off.remove_from_groups {
            need(
                "offboarding: remove from groups",
                "GroupMember.ReadWrite.All",
            );
        }
        if off.block_sign_in {
            need(
                "offboarding: block sign-in",
                "User.EnableDisableAccount.All",
            );
            need("offboarding: block sign-in", "User.Read.All");
        }
        if off.revoke_sessions {
            need("offboarding: revoke sessions", "User.RevokeSessions.All");
        }
        if off.delete_after_days.is_some() {
            need(
                "offboarding: delete after the grace period",
                "User.DeleteRestore.All",
            );
        }
    }
    out
}

/// The `roles` claim of an app-only access token (the application permissions consented to the
/// app). The token is only read, not verified: it was just issued to us over TLS.
///
/// # Errors
/// When the token is not a JWT with a payload.
pub fn roles_of(token: &str) -> Result<Vec<String>, String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or("the access token is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the access token's payload is not base64url")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "the access token's payload is not JSON")?;
    Ok(claims["roles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_more_privileged_permission_covers_a_lesser_one() {
        assert!(covered("User.Read.All", &roles(&["User.ReadWrite.All"])));
        assert!(covered(
            "User.Invite.All",
            &roles(&["Directory.ReadWrite.All"])
        ));
        assert!(!covered("User.ReadWrite.All", &roles(&["User.Read.All"])));
        assert!(!covered(
            "GroupMember.ReadWrite.All",
            &roles(&["User.ReadWrite.All"])
        ));
        assert!(!covered(
            "User-Phone.ReadWrite.All",
            &roles(&["User.Invite.All"])
        ));
        assert!(covered(
            "User-Phone.ReadWrite.All",
            &roles(&["User-Phone.ReadWrite.All"])
        ));
    }

    #[test]
    fn roles_are_read_from_the_payload() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!(
            "{}.{}.sig",
            b64.encode(br#"{"alg":"RS256"}"#),
            b64.encode(br#"{"roles":["User.Invite.All","User.Read.All"]}"#)
        );
        assert_eq!(
            roles_of(&token).unwrap(),
            roles(&["User.Invite.All", "User.Read.All"])
        );
        assert_eq!(
            roles_of(&format!("{}.{}.s", b64.encode(b"{}"), b64.encode(b"{}"))).unwrap(),
            Vec::<String>::new()
        );
        assert!(roles_of("opaque").is_err());
    }
}
