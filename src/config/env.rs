//! The environment variables, read into each component's settings: one reader per settings
//! struct. Environment variable names appear only in this module.

use std::time::Duration;

use url::Url;

use super::{
    ConfigError, FollowUpSettings, GateSettings, InboundSettings, InviteePolicy, LinkSettings,
    MetricsSettings, Mode, OutboundSettings, Processing, SecretSettings, StoreSettings, err,
};
use crate::domain::{DomainPolicy, RedirectPolicy, RedirectUrl};
use crate::graph::{GraphSettings, cloud_hosts};

/// A variable lookup: the process environment, or a map in tests. Empty values are unset.
pub struct Env<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn var(&self, k: &str) -> Option<String> {
        (self.0)(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, k: &str) -> Result<String, ConfigError> {
        self.var(k)
            .ok_or_else(|| ConfigError(format!("{k} is required")))
    }

    fn number(
        &self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        number(name, self.var(name), default, range)
    }

    fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        flag(name, self.var(name))
    }

    fn list(&self, name: &str) -> Vec<String> {
        list(self.var(name))
    }

    /// `TENANT_VERIFIED_DOMAINS`: also the default CC domains of email channels.
    pub fn tenant_domains(&self) -> Vec<String> {
        self.list("TENANT_VERIFIED_DOMAINS")
    }

    /// `RELAY_CONFIG`: inline TOML or a file path.
    pub fn relay_config(&self) -> Option<String> {
        self.var("RELAY_CONFIG")
    }

    pub fn secrets(&self) -> Result<SecretSettings, ConfigError> {
        Ok(SecretSettings {
            id: self.required("RELAY_SECRET_ID")?,
            ttl: Duration::from_secs(self.number("SECRET_CACHE_TTL_SECONDS", 300, 0..=86_400)?),
            read_at_start: match self.var("SECRET_READ_AT_START") {
                None => true,
                v => flag("SECRET_READ_AT_START", v)?,
            },
        })
    }

    pub fn graph(&self) -> Result<GraphSettings, ConfigError> {
        let cloud = self.var("GRAPH_CLOUD").unwrap_or_else(|| "global".into());
        let (login, api) = cloud_hosts(&cloud).ok_or_else(|| {
            ConfigError("GRAPH_CLOUD must be global, usgov, usgov-dod or china".into())
        })?;
        Ok(GraphSettings {
            tenant_id: tenant(&self.required("GRAPH_TENANT_ID")?)?,
            client_id: self.required("GRAPH_CLIENT_ID")?,
            login_url: base_url(
                "GRAPH_LOGIN_URL",
                self.var("GRAPH_LOGIN_URL").as_deref().unwrap_or(login),
            )?,
            api_url: base_url(
                "GRAPH_API_URL",
                self.var("GRAPH_API_URL").as_deref().unwrap_or(api),
            )?,
        })
    }

    pub fn gate(&self) -> Result<GateSettings, ConfigError> {
        Ok(GateSettings {
            per_minute: std::num::NonZeroU32::new(self.number(
                "INVITE_RATE_PER_MINUTE",
                30,
                1..=6000,
            )? as u32)
            .expect("range starts at 1"),
            cooldown: Duration::from_secs(self.number(
                "GRAPH_COOLDOWN_SECONDS",
                900,
                1..=86_400,
            )?),
        })
    }

    pub fn invitees(&self, tenant_domains: Vec<String>) -> Result<InviteePolicy, ConfigError> {
        let default_redirect = RedirectUrl::parse(&self.required("INVITE_REDIRECT_URL")?)
            .map_err(|e| ConfigError(format!("INVITE_REDIRECT_URL: {e}")))?;
        let allowlist = self
            .list("INVITE_REDIRECT_ALLOWLIST")
            .iter()
            .map(|o| {
                RedirectUrl::parse(o)
                    .map_err(|e| ConfigError(format!("INVITE_REDIRECT_ALLOWLIST: {o:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InviteePolicy {
            redirect: RedirectPolicy::new(default_redirect, allowlist),
            domains: DomainPolicy::new(
                self.list("INVITEE_DOMAIN_ALLOWLIST"),
                self.list("INVITEE_DOMAIN_DENYLIST"),
                tenant_domains,
            ),
            allow_members: self.flag("ALLOW_MEMBER_INVITATIONS")?,
        })
    }

    pub fn inbound(&self) -> Result<InboundSettings, ConfigError> {
        Ok(InboundSettings {
            max_body_bytes: self.number("MAX_BODY_BYTES", 256 * 1024, 1024..=6 * 1024 * 1024)?
                as usize,
            public_base_url: self
                .var("PUBLIC_BASE_URL")
                .map(|v| {
                    Url::parse(&v)
                        .ok()
                        .filter(|u| {
                            u.scheme() == "https" && u.query().is_none() && u.username().is_empty()
                        })
                        .ok_or_else(|| {
                            ConfigError(
                                "PUBLIC_BASE_URL must be an https URL without query or credentials"
                                    .into(),
                            )
                        })
                })
                .transpose()?,
        })
    }

    pub fn outbound(&self) -> Result<OutboundSettings, ConfigError> {
        Ok(OutboundSettings {
            timeout: Duration::from_millis(self.number(
                "OUTBOUND_TIMEOUT_MS",
                8_000,
                100..=60_000,
            )?),
            allow_private_networks: self.flag("DELIVERY_ALLOW_PRIVATE_NETWORKS")?,
        })
    }

    /// `METRICS_NAMESPACE`: what CloudWatch accepts as a custom namespace (1 to 255 of
    /// `A-Za-z0-9 . - _ / # :` and space, not `AWS/`).
    pub fn metrics(&self) -> Result<MetricsSettings, ConfigError> {
        let namespace = self
            .var("METRICS_NAMESPACE")
            .unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.into());
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
        if namespace.len() > 255 || !namespace.chars().all(allowed) || namespace.starts_with("AWS/")
        {
            return err(
                "METRICS_NAMESPACE must be up to 255 of A-Z a-z 0-9 . - _ / # : and space, not starting with AWS/",
            );
        }
        Ok(MetricsSettings { namespace })
    }

    pub fn processing(&self) -> Result<Processing, ConfigError> {
        Ok(Processing {
            mode: match self
                .var("PROCESSING_MODE")
                .map(|m| m.to_ascii_lowercase())
                .as_deref()
            {
                None | Some("sync") => Mode::Sync,
                Some("queue") => Mode::Queue,
                _ => return err("PROCESSING_MODE must be sync or queue"),
            },
            queue_url: self.var("QUEUE_URL"),
            dead_letter_url: self.var("DEAD_LETTER_QUEUE_URL"),
            max_receives: self.number("MAX_RECEIVES", 5, 1..=1000)? as u32,
        })
    }

    pub fn store(&self) -> Result<StoreSettings, ConfigError> {
        Ok(StoreSettings {
            table: self.var("IDEMPOTENCY_TABLE"),
            retention: Duration::from_secs(self.number(
                "IDEMPOTENCY_RETENTION_SECONDS",
                7 * 24 * 3600,
                60..=365 * 24 * 3600,
            )?),
        })
    }

    /// Managed links' settings; `LINK_BASE_URL` is required when a channel uses them.
    pub fn links(&self, managed: bool) -> Result<LinkSettings, ConfigError> {
        let base_url = match self.var("LINK_BASE_URL") {
            Some(raw) => Some(link_base(
                &raw,
                self.flag("DELIVERY_ALLOW_PRIVATE_NETWORKS")?,
            )?),
            None if managed => {
                return Err(ConfigError(
                    "LINK_BASE_URL is required when a channel has link = \"managed\" (the Function URL)".into(),
                ));
            }
            None => None,
        };
        Ok(LinkSettings {
            base_url,
            ttl: Duration::from_secs(24 * 3600 * self.number("LINK_TTL_DAYS", 30, 1..=365)?),
            per_ip_per_minute: self.number("LINK_REQUESTS_PER_IP_PER_MINUTE", 30, 1..=10_000)?,
            accepts_per_hour: self.number("LINK_ACCEPTS_PER_HOUR", 5, 1..=100)?,
        })
    }

    pub fn follow_up(&self) -> Result<FollowUpSettings, ConfigError> {
        Ok(FollowUpSettings {
            after_days: self.number("FOLLOW_UP_AFTER_DAYS", 7, 1..=365)?,
        })
    }
}

/// The links' base: https (http only on loopback when private networks are allowed, for
/// local runs), no query or fragment; a trailing slash is added.
fn link_base(raw: &str, allow_loopback_http: bool) -> Result<url::Url, ConfigError> {
    let bad = || ConfigError("LINK_BASE_URL: an https URL without query or fragment".into());
    let mut u = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let scheme_ok =
        u.scheme() == "https" || (u.scheme() == "http" && loopback && allow_loopback_http);
    if !scheme_ok || u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(bad());
    }
    if !u.path().ends_with('/') {
        let path = format!("{}/", u.path());
        u.set_path(&path);
    }
    Ok(u)
}

/// A comma-separated list.
fn list(v: Option<String>) -> Vec<String> {
    v.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn tenant(v: &str) -> Result<String, ConfigError> {
    // A GUID or a domain name; both are path segments of the token URL.
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        Ok(v.to_owned())
    } else {
        err("GRAPH_TENANT_ID must be a tenant GUID or domain name")
    }
}

/// A base URL without path, query or credentials; https, or http on a loopback host (local
/// emulators).
fn base_url(name: &str, v: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(v).map_err(|_| ConfigError(format!("{name} is not a URL")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return err(format!("{name} must use https (http only for localhost)"));
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return err(format!(
            "{name} must be a base URL without path, query or credentials"
        ));
    }
    Ok(url)
}

fn number(
    name: &str,
    v: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    match v.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => err(format!(
            "{name} must be a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

fn flag(name: &str, v: Option<String>) -> Result<bool, ConfigError> {
    match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        _ => err(format!("{name} must be true or false")),
    }
}
