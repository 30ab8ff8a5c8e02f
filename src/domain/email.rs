//! The invitee's email address, accepted only when Microsoft Graph would accept it.

use std::fmt;

/// Characters the Graph `invitation` resource refuses anywhere in `invitedUserEmailAddress`
/// (reference: "invitation resource type", property `invitedUserEmailAddress`).
const GRAPH_FORBIDDEN: &[char] = &[
    '~', '!', '#', '$', '%', '^', '&', '*', '(', ')', '+', '=', '[', ']', '{', '}', '\\', '/', '|',
    ';', ':', '"', '<', '>', '?', ',',
];

/// Longest address accepted (RFC 5321 path limit less the angle brackets).
const MAX_LEN: usize = 254;

/// Which rule an address broke. The value itself is never part of the message, so it can be
/// returned to the caller and logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailRule {
    #[error("the email address is empty")]
    Empty,
    #[error("the email address is longer than 254 characters")]
    TooLong,
    #[error("the email address contains white space or control characters")]
    Whitespace,
    #[error(
        "the email address contains non-ASCII characters; internationalised addresses are not supported (write the domain in its xn-- form)"
    )]
    NonAscii,
    #[error("the email address contains '{0}', which Microsoft Graph does not permit")]
    ForbiddenCharacter(char),
    #[error("the email address must contain exactly one '@'")]
    Separator,
    #[error("the user name (before '@') must not begin or end with '.' or '-'")]
    LocalPartEdge,
    #[error("the user name (before '@') is empty, longer than 64 characters or has '..'")]
    LocalPart,
    #[error("the domain (after '@') is not a valid internet domain name")]
    Domain,
    #[error("the email domain is not on the invitee domain allowlist")]
    DomainNotAllowed,
    #[error("the email domain is on the invitee domain denylist")]
    DomainDenied,
    #[error(
        "the email domain is one of the tenant's own verified domains; its users are members, not guests"
    )]
    OwnDomain,
}

/// Which invitee domains may be invited: an optional allowlist, a denylist, and the tenant's own
/// verified domains (never invited as guests). Entries match the domain and its subdomains.
#[derive(Debug, Clone, Default)]
pub struct DomainPolicy {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub own: Vec<String>,
}

impl DomainPolicy {
    /// Lower-cases and trims entries; empty ones are dropped.
    pub fn new(allow: Vec<String>, deny: Vec<String>, own: Vec<String>) -> Self {
        let clean = |v: Vec<String>| {
            v.into_iter()
                .map(|d| {
                    d.trim()
                        .trim_start_matches("*.")
                        .trim_matches('.')
                        .to_ascii_lowercase()
                })
                .filter(|d| !d.is_empty())
                .collect()
        };
        Self {
            allow: clean(allow),
            deny: clean(deny),
            own: clean(own),
        }
    }

    /// # Errors
    /// The [`EmailRule`] the address's domain breaks.
    pub fn check(&self, email: &InviteeEmail) -> Result<(), EmailRule> {
        let domain = email.domain();
        let hit = |list: &[String]| {
            list.iter()
                .any(|d| domain == d || domain.ends_with(&format!(".{d}")))
        };
        if hit(&self.own) {
            return Err(EmailRule::OwnDomain);
        }
        if hit(&self.deny) {
            return Err(EmailRule::DomainDenied);
        }
        if !self.allow.is_empty() && !hit(&self.allow) {
            return Err(EmailRule::DomainNotAllowed);
        }
        Ok(())
    }
}

/// An email address that satisfies the Graph invitation rules and general address syntax.
///
/// The domain is lower-cased (domains compare case-insensitively); the user name is kept as
/// given. `Debug` is redacted so the address can't reach logs through `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteeEmail(String);

impl InviteeEmail {
    /// Parses `raw` (surrounding white space is ignored).
    ///
    /// # Errors
    /// The first [`EmailRule`] the address breaks.
    pub fn parse(raw: &str) -> Result<Self, EmailRule> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(EmailRule::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(EmailRule::TooLong);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailRule::Whitespace);
        }
        if !s.is_ascii() {
            return Err(EmailRule::NonAscii);
        }
        if let Some(c) = s.chars().find(|c| GRAPH_FORBIDDEN.contains(c)) {
            return Err(EmailRule::ForbiddenCharacter(c));
        }
        let (local, domain) = match s.split_once('@') {
            Some((l, d)) if !d.contains('@') => (l, d),
            _ => return Err(EmailRule::Separator),
        };
        // Graph: '.' and '-' anywhere but at the beginning or end of the user name; '_' anywhere.
        if local.starts_with(['.', '-']) || local.ends_with(['.', '-']) {
            return Err(EmailRule::LocalPartEdge);
        }
        if local.is_empty() || local.len() > 64 || local.contains("..") {
            return Err(EmailRule::LocalPart);
        }
        if !valid_domain(domain) {
            return Err(EmailRule::Domain);
        }
        let normalised = format!("{local}@{}", domain.to_ascii_lowercase());
        // Final syntax check by a maintained parser, on top of the Graph rules above.
        let options = email_address::Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        email_address::EmailAddress::parse_with_options(&normalised, options)
            .map_err(|_| EmailRule::LocalPart)?;
        Ok(Self(normalised))
    }

    /// The address, for the Graph request and the delivered message only.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased domain part.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// A DNS host name with at least two labels, each 1–63 of `[a-z0-9-]`, not starting or ending
/// with '-', and an alphabetic top-level label.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels.last().is_some_and(|tld| {
            tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
                || tld.starts_with("xn--")
        })
}

impl fmt::Debug for InviteeEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteeEmail(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_the_domain() {
        let e = InviteeEmail::parse(" Ada.Lovelace@Partner.Example ").unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace@partner.example");
        assert_eq!(e.domain(), "partner.example");
        for ok in [
            "_ada@x.io",
            "ada_@x.io",
            "a-b.c@x.co.uk",
            "a@xn--bcher-kva.example",
        ] {
            assert!(InviteeEmail::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_every_character_graph_forbids() {
        for c in GRAPH_FORBIDDEN {
            let raw = format!("ad{c}a@partner.example");
            let err = InviteeEmail::parse(&raw).unwrap_err();
            assert_eq!(err, EmailRule::ForbiddenCharacter(*c), "{raw}");
        }
        assert_eq!(
            InviteeEmail::parse("ada+crm@partner.example"),
            Err(EmailRule::ForbiddenCharacter('+'))
        );
    }

    #[test]
    fn period_and_hyphen_not_at_user_name_edges() {
        for bad in [".ada@x.io", "ada.@x.io", "-ada@x.io", "ada-@x.io"] {
            assert_eq!(
                InviteeEmail::parse(bad),
                Err(EmailRule::LocalPartEdge),
                "{bad}"
            );
        }
        assert_eq!(InviteeEmail::parse("a..b@x.io"), Err(EmailRule::LocalPart));
    }

    #[test]
    fn structural_failures_name_their_rule() {
        assert_eq!(InviteeEmail::parse(""), Err(EmailRule::Empty));
        assert_eq!(InviteeEmail::parse("ada"), Err(EmailRule::Separator));
        assert_eq!(InviteeEmail::parse("a@b@c.io"), Err(EmailRule::Separator));
        assert_eq!(InviteeEmail::parse("a b@c.io"), Err(EmailRule::Whitespace));
        assert_eq!(InviteeEmail::parse("ada@localhost"), Err(EmailRule::Domain));
        assert_eq!(InviteeEmail::parse("ada@-x.io"), Err(EmailRule::Domain));
        assert_eq!(InviteeEmail::parse("ada@x.1"), Err(EmailRule::Domain));
        assert_eq!(InviteeEmail::parse("adä@x.io"), Err(EmailRule::NonAscii));
        let long = format!("{}@x.io", "a".repeat(260));
        assert_eq!(InviteeEmail::parse(&long), Err(EmailRule::TooLong));
    }

    #[test]
    fn domain_policy_matches_domains_and_subdomains() {
        let p = DomainPolicy::new(
            vec!["partner.example".into(), "*.allies.example".into()],
            vec!["blocked.partner.example".into()],
            vec!["Contoso.com".into()],
        );
        let e = |s: &str| InviteeEmail::parse(s).unwrap();
        assert_eq!(p.check(&e("ada@partner.example")), Ok(()));
        assert_eq!(p.check(&e("ada@eu.partner.example")), Ok(()));
        assert_eq!(p.check(&e("ada@x.allies.example")), Ok(()));
        assert_eq!(
            p.check(&e("ada@notpartner.example")),
            Err(EmailRule::DomainNotAllowed)
        );
        assert_eq!(
            p.check(&e("ada@blocked.partner.example")),
            Err(EmailRule::DomainDenied)
        );
        assert_eq!(p.check(&e("ada@contoso.com")), Err(EmailRule::OwnDomain));
        assert_eq!(
            p.check(&e("ada@sales.contoso.com")),
            Err(EmailRule::OwnDomain)
        );
        assert_eq!(
            DomainPolicy::default().check(&e("ada@anything.example")),
            Ok(())
        );
    }

    #[test]
    fn internationalised_addresses_are_refused_with_the_way_out() {
        let err = InviteeEmail::parse("ada@bücher.example").unwrap_err();
        assert_eq!(err, EmailRule::NonAscii);
        assert!(err.to_string().contains("xn--"));
        assert!(InviteeEmail::parse("ada@xn--bcher-kva.example").is_ok());
    }

    #[test]
    fn debug_never_shows_the_address() {
        let e = InviteeEmail::parse("ada@partner.example").unwrap();
        assert!(!format!("{e:?}").contains("ada"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the input, parsing never panics, and anything accepted obeys every Graph rule.
        #[test]
        fn accepted_addresses_obey_the_graph_rules(raw in "\\PC{0,80}") {
            if let Ok(e) = InviteeEmail::parse(&raw) {
                let s = e.as_str();
                prop_assert!(!s.contains(GRAPH_FORBIDDEN));
                let (local, domain) = s.split_once('@').unwrap();
                prop_assert!(!local.starts_with(['.', '-']) && !local.ends_with(['.', '-']));
                prop_assert_eq!(domain, domain.to_ascii_lowercase());
                prop_assert!(s.is_ascii());
            }
        }

        /// Addresses built from the permitted alphabet are accepted unchanged (domain lower-cased).
        #[test]
        fn well_formed_addresses_round_trip(
            local in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}[A-Za-z0-9_]",
            host in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?",
            tld in "[a-z]{2,6}",
        ) {
            prop_assume!(!local.contains(".."));
            let raw = format!("{local}@{host}.{tld}");
            let e = InviteeEmail::parse(&raw).unwrap();
            prop_assert_eq!(e.as_str(), raw);
        }
    }
}
