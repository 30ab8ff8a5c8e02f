//! Where the invitee lands after redeeming: https only, and on the configured allowlist.

use url::Url;

/// Why a redirect URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRule {
    #[error("the redirect URL is not an absolute URL")]
    NotAUrl,
    #[error("the redirect URL must use https")]
    NotHttps,
    #[error("the redirect URL must not carry user name or password")]
    UserInfo,
    #[error("the redirect URL's origin is not on the configured allowlist")]
    NotAllowed,
}

/// An https URL without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUrl(Url);

impl RedirectUrl {
    /// Parses an https URL without user info (the allowlist is checked by [`RedirectPolicy`]).
    ///
    /// # Errors
    /// The [`RedirectRule`] broken.
    pub fn parse(raw: &str) -> Result<Self, RedirectRule> {
        let url = Url::parse(raw.trim()).map_err(|_| RedirectRule::NotAUrl)?;
        if url.scheme() != "https" || url.host().is_none() {
            return Err(RedirectRule::NotHttps);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectRule::UserInfo);
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    fn origin(&self) -> url::Origin {
        self.0.origin()
    }
}

/// The configured default redirect and the origins an event may choose instead.
#[derive(Debug, Clone)]
pub struct RedirectPolicy {
    default: RedirectUrl,
    allowed: Vec<url::Origin>,
}

impl RedirectPolicy {
    /// The default is always allowed; `allowlist` holds further https origins.
    pub fn new(default: RedirectUrl, allowlist: Vec<RedirectUrl>) -> Self {
        let mut allowed: Vec<url::Origin> = allowlist.iter().map(RedirectUrl::origin).collect();
        allowed.push(default.origin());
        Self { default, allowed }
    }

    /// The redirect for an event: the default when the event names none, else the event's own
    /// when its origin (scheme, host, port) is allowed.
    ///
    /// # Errors
    /// The [`RedirectRule`] the event's URL broke.
    pub fn choose(&self, requested: Option<&str>) -> Result<RedirectUrl, RedirectRule> {
        let Some(raw) = requested.filter(|r| !r.trim().is_empty()) else {
            return Ok(self.default.clone());
        };
        let url = RedirectUrl::parse(raw)?;
        if self.allowed.contains(&url.origin()) {
            Ok(url)
        } else {
            Err(RedirectRule::NotAllowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RedirectPolicy {
        RedirectPolicy::new(
            RedirectUrl::parse("https://myapps.microsoft.com/?tenantid=t").unwrap(),
            vec![RedirectUrl::parse("https://portal.partner.example").unwrap()],
        )
    }

    #[test]
    fn default_when_absent_and_allowlisted_origins_only() {
        let p = policy();
        assert_eq!(
            p.choose(None).unwrap().as_str(),
            "https://myapps.microsoft.com/?tenantid=t"
        );
        assert!(p.choose(Some("https://myapps.microsoft.com/other")).is_ok());
        assert!(
            p.choose(Some("https://portal.partner.example/welcome?x=1"))
                .is_ok()
        );
        assert_eq!(
            p.choose(Some("https://evil.example/")),
            Err(RedirectRule::NotAllowed)
        );
        assert_eq!(
            p.choose(Some("https://portal.partner.example:8443/")),
            Err(RedirectRule::NotAllowed)
        );
    }

    #[test]
    fn scheme_and_userinfo_rules() {
        let p = policy();
        assert_eq!(
            p.choose(Some("http://portal.partner.example/")),
            Err(RedirectRule::NotHttps)
        );
        assert_eq!(
            p.choose(Some("javascript:alert(1)")),
            Err(RedirectRule::NotHttps)
        );
        assert_eq!(
            p.choose(Some("https://u:p@portal.partner.example/")),
            Err(RedirectRule::UserInfo)
        );
        assert_eq!(p.choose(Some("not a url")), Err(RedirectRule::NotAUrl));
    }
}
