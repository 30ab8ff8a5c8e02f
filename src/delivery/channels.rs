//! Channels as configured: their kinds, `[channels.NAME]` checked into [`ChannelConfig`]s,
//! and [`DeliveryConfig`] (channels, routes and templates together).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::routing::{RouteSpec, Routes};
use super::templates::{self, Brand, Templates};

/// A kind of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Email,
    Slack,
    Teams,
    Webhook,
    /// Microsoft's own invitation email (`sendInvitationMessage: true`), sent by Graph when the
    /// invitation is created.
    Microsoft,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 5] = [
        ChannelKind::Email,
        ChannelKind::Slack,
        ChannelKind::Teams,
        ChannelKind::Webhook,
        ChannelKind::Microsoft,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Microsoft => "microsoft",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The secret key holding the URL when none is configured.
    fn default_url_key(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack_webhook_url",
            ChannelKind::Teams => "teams_webhook_url",
            ChannelKind::Webhook | ChannelKind::Email | ChannelKind::Microsoft => {
                "delivery_webhook_url"
            }
        }
    }
}

/// A channel as written in `[channels.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// `email`, `slack`, `teams` or `webhook`; defaults to the channel's name when that is a
    /// kind.
    pub kind: Option<ChannelKind>,
    /// Slack, Teams, webhook: the secret key holding the URL (default `slack_webhook_url`,
    /// `teams_webhook_url`, `delivery_webhook_url`).
    pub url_secret: Option<String>,
    /// Webhook: the secret key holding the `whsec_` signing key (default
    /// `delivery_signing_secret`).
    pub signing_secret: Option<String>,
    /// Email: the sender, `Name <address>` or `address`, on an SES-verified identity.
    pub from: Option<String>,
    /// Email: Reply-To addresses.
    #[serde(default)]
    pub reply_to: Vec<String>,
    /// Email: fixed CC addresses.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Email: CC the event's account owner (`map.owner_email`).
    #[serde(default)]
    pub cc_owner: bool,
    /// Email: domains CC addresses must be in (default `TENANT_VERIFIED_DOMAINS`).
    pub cc_domains: Option<Vec<String>>,
    /// Email: an SES configuration set (event publishing, dedicated IPs).
    pub configuration_set: Option<String>,
    /// Email: the SES region when it differs from the function's.
    pub region: Option<String>,
    /// The language used when the invitee's isn't available (default `en`).
    pub default_language: Option<String>,
    /// Template overrides: language → part → template.
    #[serde(default)]
    pub templates: templates::TemplateSpec,
    /// `direct` (Graph's redeem link, the default) or `managed` (the relay's own link to its
    /// landing page, which mints the redeem link when the partner presses Accept).
    pub link: Option<LinkMode>,
}

/// Which link a channel delivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    #[default]
    Direct,
    Managed,
}

/// Email settings, checked.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub from: String,
    pub reply_to: Vec<String>,
    pub cc: Vec<String>,
    pub cc_owner: bool,
    pub cc_domains: Vec<String>,
    pub configuration_set: Option<String>,
    pub region: Option<String>,
}

impl EmailSettings {
    /// Whether `address` may be copied on invitation emails.
    /// Subdomains of an allowed domain are allowed.
    pub fn cc_allowed(&self, address: &str) -> bool {
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase());
        domain.is_some_and(|d| {
            self.cc_domains
                .iter()
                .any(|c| d == *c || d.ends_with(&format!(".{c}")))
        })
    }
}

/// A channel's configuration, without its secrets.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelKind,
    pub url_secret: String,
    pub signing_secret: String,
    pub email: Option<EmailSettings>,
    /// Declared in configuration (its secret keys must exist), rather than found in the secret.
    pub declared: bool,
    pub link: LinkMode,
}

/// Everything about delivery that configuration decides.
#[derive(Debug)]
pub struct DeliveryConfig {
    pub channels: Vec<ChannelConfig>,
    pub routes: Routes,
    pub templates: Templates,
}

fn plain_address(s: &str) -> Option<&str> {
    let s = s.trim();
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        (None, false) => s,
        _ => return None,
    };
    email_address::EmailAddress::parse_with_options(addr, email_address::Options::default())
        .ok()
        .map(|_| addr)
}

impl DeliveryConfig {
    /// Checks channel declarations, routes and templates.
    ///
    /// # Errors
    /// One line naming the setting at fault.
    pub fn compile(
        specs: BTreeMap<String, ChannelSpec>,
        routes: Vec<RouteSpec>,
        brand: &Brand,
        tenant_domains: &[String],
        locate: &dyn Fn(std::ops::Range<usize>) -> String,
    ) -> Result<Self, String> {
        check_brand(brand)?;
        let declared = !specs.is_empty();
        let mut channels = Vec::new();
        let mut template_specs = Vec::new();
        if declared {
            for (name, spec) in specs {
                let (config, default_language, tspec) =
                    compile_channel(&name, spec, tenant_domains)?;
                template_specs.push((name, config.kind, default_language, tspec));
                channels.push(config);
            }
        } else {
            for kind in [ChannelKind::Slack, ChannelKind::Teams, ChannelKind::Webhook] {
                channels.push(ChannelConfig {
                    name: kind.name().to_owned(),
                    kind,
                    url_secret: kind.default_url_key().to_owned(),
                    signing_secret: "delivery_signing_secret".to_owned(),
                    email: None,
                    declared: false,
                    link: LinkMode::Direct,
                });
            }
        }
        let names: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
        let routes = Routes::compile(routes, declared.then_some(names.as_slice()), locate)?;
        check_notice_routes(&routes, &channels)?;
        let templates = Templates::build(&template_specs, brand)?;
        Ok(Self {
            channels,
            routes,
            templates,
        })
    }

    /// Whether a channel delivers managed links.
    pub fn managed_links(&self) -> bool {
        self.channels.iter().any(|c| c.link == LinkMode::Managed)
    }

    /// How `channel` delivers the link (direct for an unknown name).
    pub fn link_mode(&self, channel: &str) -> LinkMode {
        self.channels
            .iter()
            .find(|c| c.name == channel)
            .map_or(LinkMode::Direct, |c| c.link)
    }

    /// Email channels' SES regions (`None`: the function's own).
    pub fn email_regions(&self) -> BTreeSet<Option<String>> {
        self.channels
            .iter()
            .filter(|c| c.kind == ChannelKind::Email)
            .filter_map(|c| c.email.as_ref().map(|e| e.region.clone()))
            .collect()
    }
}

/// Lifecycle notices go to Slack, Teams or the signed webhook: an email channel writes to the
/// partner, not the owner.
fn check_notice_routes(routes: &Routes, channels: &[ChannelConfig]) -> Result<(), String> {
    for r in routes.all() {
        let notices =
            r.on.iter()
                .any(|k| *k != super::NoticeKind::InvitationCreated);
        let bad = r.channels.iter().find(|name| {
            channels.iter().any(|c| {
                &c.name == *name && matches!(c.kind, ChannelKind::Email | ChannelKind::Microsoft)
            })
        });
        if let (true, Some(c)) = (notices, bad) {
            return Err(format!(
                "route {}: lifecycle notices go to slack, teams or webhook channels, not {c:?}",
                r.name
            ));
        }
    }
    Ok(())
}

fn check_brand(b: &Brand) -> Result<(), String> {
    if let Some(c) = &b.color {
        let hex = c.strip_prefix('#').unwrap_or("");
        if !(matches!(hex.len(), 3 | 6) && hex.bytes().all(|x| x.is_ascii_hexdigit())) {
            return Err("brand.color: a hex colour such as \"#0f6cbd\"".into());
        }
    }
    if let Some(u) = &b.logo_url
        && !url::Url::parse(u).is_ok_and(|u| u.scheme() == "https")
    {
        return Err("brand.logo_url: an https URL".into());
    }
    if let Some(e) = &b.support_email
        && plain_address(e) != Some(e.trim())
    {
        return Err("brand.support_email: an email address".into());
    }
    Ok(())
}

type CompiledChannel = (ChannelConfig, Option<String>, templates::TemplateSpec);

/// `channels.NAME.FIELD`, for messages.
fn at(name: &str, field: &str) -> String {
    format!("channels.{name}.{field}")
}

/// A field set on a channel of a kind that doesn't take it.
fn only(name: &str, set: bool, field: &str, kinds: &str) -> Result<(), String> {
    if set {
        Err(format!("{}: only for {kinds} channels", at(name, field)))
    } else {
        Ok(())
    }
}

fn compile_channel(
    name: &str,
    spec: ChannelSpec,
    tenant_domains: &[String],
) -> Result<CompiledChannel, String> {
    if !valid_channel_name(name) {
        return Err(format!(
            "channels.{name}: channel names are lower-case letters, digits and '-'"
        ));
    }
    let kind = spec
        .kind
        .or_else(|| ChannelKind::parse(name))
        .ok_or_else(|| format!("{}: email, slack, teams or webhook", at(name, "kind")))?;
    let email = if matches!(kind, ChannelKind::Email | ChannelKind::Microsoft) {
        only(
            name,
            spec.url_secret.is_some(),
            "url_secret",
            "slack, teams and webhook",
        )?;
        Some(email_settings(name, kind, &spec, tenant_domains)?)
    } else {
        reject_email_fields(name, &spec)?;
        None
    };
    if kind != ChannelKind::Webhook {
        only(
            name,
            spec.signing_secret.is_some(),
            "signing_secret",
            "webhook",
        )?;
    }
    let link = spec.link.unwrap_or_default();
    if link == LinkMode::Managed && kind == ChannelKind::Microsoft {
        return Err(format!(
            "{}: Microsoft's email carries Graph's own link; managed links need another channel",
            at(name, "link")
        ));
    }
    let config = ChannelConfig {
        name: name.to_owned(),
        kind,
        url_secret: spec
            .url_secret
            .unwrap_or_else(|| kind.default_url_key().to_owned()),
        signing_secret: spec
            .signing_secret
            .unwrap_or_else(|| "delivery_signing_secret".to_owned()),
        email,
        declared: true,
        link,
    };
    Ok((config, spec.default_language, spec.templates))
}

/// The sender (SES email only: Microsoft sends from its own address) and the copies.
fn email_settings(
    name: &str,
    kind: ChannelKind,
    spec: &ChannelSpec,
    tenant_domains: &[String],
) -> Result<EmailSettings, String> {
    let from = if kind == ChannelKind::Email {
        let from = spec.from.clone().ok_or_else(|| {
            format!(
                "{}: required (a sender on an SES-verified identity)",
                at(name, "from")
            )
        })?;
        if plain_address(&from).is_none() || from.contains(['\r', '\n']) {
            return Err(format!(
                "{}: \"Name <address>\" or an address",
                at(name, "from")
            ));
        }
        from
    } else {
        only(name, spec.from.is_some(), "from", "email")?;
        only(name, !spec.reply_to.is_empty(), "reply_to", "email")?;
        only(
            name,
            spec.configuration_set.is_some(),
            "configuration_set",
            "email",
        )?;
        only(name, spec.region.is_some(), "region", "email")?;
        String::new()
    };
    for (field, list) in [("reply_to", &spec.reply_to), ("cc", &spec.cc)] {
        if let Some(bad) = list.iter().find(|a| plain_address(a) != Some(a.trim())) {
            return Err(format!(
                "{}: {bad:?} is not an email address",
                at(name, field)
            ));
        }
    }
    let settings = EmailSettings {
        from,
        reply_to: spec.reply_to.clone(),
        cc: spec.cc.clone(),
        cc_owner: spec.cc_owner,
        cc_domains: cc_domains(
            spec.cc_domains
                .clone()
                .unwrap_or_else(|| tenant_domains.to_vec()),
        ),
        configuration_set: spec.configuration_set.clone(),
        region: spec.region.clone(),
    };
    check_copies(name, kind, &settings)?;
    Ok(settings)
}

fn cc_domains(list: Vec<String>) -> Vec<String> {
    list.iter()
        .map(|d| {
            d.trim()
                .trim_start_matches("*.")
                .trim_end_matches('.')
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty())
        .collect()
}

/// Copies of the link go only inside the organisation, and Microsoft's email takes one.
fn check_copies(name: &str, kind: ChannelKind, settings: &EmailSettings) -> Result<(), String> {
    if settings.cc_owner && settings.cc_domains.is_empty() {
        return Err(format!(
            "{}: cc_owner needs cc_domains or TENANT_VERIFIED_DOMAINS, so the link is only copied inside the organisation",
            at(name, "cc_domains")
        ));
    }
    if let Some(bad) = settings
        .cc
        .iter()
        .find(|a| !settings.cc_allowed(plain_address(a).unwrap_or(a)))
    {
        return Err(format!(
            "{}: {bad:?} is outside cc_domains / TENANT_VERIFIED_DOMAINS",
            at(name, "cc")
        ));
    }
    // Graph's invitedUserMessageInfo: "Currently only 1 additional recipient is supported."
    if kind == ChannelKind::Microsoft && settings.cc.len() + usize::from(settings.cc_owner) > 1 {
        return Err(format!(
            "{}: Microsoft's invitation email takes one CC recipient: set one address in cc, or cc_owner without cc",
            at(name, "cc")
        ));
    }
    Ok(())
}

/// Email settings on a Slack, Teams or webhook channel are a mistake worth naming.
fn reject_email_fields(name: &str, spec: &ChannelSpec) -> Result<(), String> {
    only(name, spec.from.is_some(), "from", "email")?;
    only(name, !spec.reply_to.is_empty(), "reply_to", "email")?;
    only(name, !spec.cc.is_empty(), "cc", "email")?;
    only(name, spec.cc_owner, "cc_owner", "email")?;
    only(name, spec.cc_domains.is_some(), "cc_domains", "email")?;
    only(
        name,
        spec.configuration_set.is_some(),
        "configuration_set",
        "email",
    )?;
    only(name, spec.region.is_some(), "region", "email")
}

fn valid_channel_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
