//! Delivering the redeem link: channels (branded email through Amazon SES, Slack, Microsoft
//! Teams, a signed webhook), their templates, routing rules and the outbound guard.
//!
//! Channels are declared in configuration (`[channels.NAME]`, see [`ChannelSpec`]); without
//! any, the channels whose URLs are in the secret are used under their kind's name. A channel's
//! URL is a credential (a Slack or Teams webhook URL is), so it lives in the secret and is never
//! logged.

mod email;
pub mod guard;
pub mod preview;
pub mod routing;
mod slack;
mod teams;
pub mod templates;
mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::{DisplayName, EventDetails, Invitation, InviteeEmail};
use crate::secrets::SecretValues;
pub use routing::{Route, RouteSpec, Routes};
pub use templates::{Brand, Templates};

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
    url_secret: String,
    signing_secret: String,
    pub email: Option<EmailSettings>,
    /// Declared in configuration (its secret keys must exist), rather than found in the secret.
    declared: bool,
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
                });
            }
        }
        let names: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
        let routes = Routes::compile(routes, declared.then_some(names.as_slice()), locate)?;
        let templates = Templates::build(&template_specs, brand)?;
        Ok(Self {
            channels,
            routes,
            templates,
        })
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

fn compile_channel(
    name: &str,
    spec: ChannelSpec,
    tenant_domains: &[String],
) -> Result<CompiledChannel, String> {
    let at = |f: &str| format!("channels.{name}.{f}");
    if !valid_channel_name(name) {
        return Err(format!(
            "channels.{name}: channel names are lower-case letters, digits and '-'"
        ));
    }
    let kind = spec
        .kind
        .or_else(|| ChannelKind::parse(name))
        .ok_or_else(|| format!("{}: email, slack, teams or webhook", at("kind")))?;
    let only = |set: bool, field: &str, kinds: &str| {
        if set {
            Err(format!("{}: only for {kinds} channels", at(field)))
        } else {
            Ok(())
        }
    };
    let email = if matches!(kind, ChannelKind::Email | ChannelKind::Microsoft) {
        only(
            spec.url_secret.is_some(),
            "url_secret",
            "slack, teams and webhook",
        )?;
        let from = if kind == ChannelKind::Email {
            let from = spec.from.ok_or_else(|| {
                format!(
                    "{}: required (a sender on an SES-verified identity)",
                    at("from")
                )
            })?;
            if plain_address(&from).is_none() || from.contains(['\r', '\n']) {
                return Err(format!("{}: \"Name <address>\" or an address", at("from")));
            }
            from
        } else {
            // Microsoft sends from its own address; only the CC list is ours.
            only(spec.from.is_some(), "from", "email")?;
            only(!spec.reply_to.is_empty(), "reply_to", "email")?;
            only(
                spec.configuration_set.is_some(),
                "configuration_set",
                "email",
            )?;
            only(spec.region.is_some(), "region", "email")?;
            String::new()
        };
        for (field, list) in [("reply_to", &spec.reply_to), ("cc", &spec.cc)] {
            if let Some(bad) = list.iter().find(|a| plain_address(a) != Some(a.trim())) {
                return Err(format!("{}: {bad:?} is not an email address", at(field)));
            }
        }
        let cc_domains: Vec<String> = spec
            .cc_domains
            .unwrap_or_else(|| tenant_domains.to_vec())
            .iter()
            .map(|d| {
                d.trim()
                    .trim_start_matches("*.")
                    .trim_end_matches('.')
                    .to_ascii_lowercase()
            })
            .filter(|d| !d.is_empty())
            .collect();
        let settings = EmailSettings {
            from,
            reply_to: spec.reply_to,
            cc: spec.cc,
            cc_owner: spec.cc_owner,
            cc_domains,
            configuration_set: spec.configuration_set,
            region: spec.region,
        };
        if settings.cc_owner && settings.cc_domains.is_empty() {
            return Err(format!(
                "{}: cc_owner needs cc_domains or TENANT_VERIFIED_DOMAINS, so the link is only copied inside the organisation",
                at("cc_domains")
            ));
        }
        if let Some(bad) = settings
            .cc
            .iter()
            .find(|a| !settings.cc_allowed(plain_address(a).unwrap_or(a)))
        {
            return Err(format!(
                "{}: {bad:?} is outside cc_domains / TENANT_VERIFIED_DOMAINS",
                at("cc")
            ));
        }
        // Graph's invitedUserMessageInfo: "Currently only 1 additional recipient is supported."
        if kind == ChannelKind::Microsoft && settings.cc.len() + usize::from(settings.cc_owner) > 1
        {
            return Err(format!(
                "{}: Microsoft's invitation email takes one CC recipient: set one address in cc, or cc_owner without cc",
                at("cc")
            ));
        }
        Some(settings)
    } else {
        only(spec.from.is_some(), "from", "email")?;
        only(!spec.reply_to.is_empty(), "reply_to", "email")?;
        only(!spec.cc.is_empty(), "cc", "email")?;
        only(spec.cc_owner, "cc_owner", "email")?;
        only(spec.cc_domains.is_some(), "cc_domains", "email")?;
        only(
            spec.configuration_set.is_some(),
            "configuration_set",
            "email",
        )?;
        only(spec.region.is_some(), "region", "email")?;
        None
    };
    if kind != ChannelKind::Webhook {
        only(spec.signing_secret.is_some(), "signing_secret", "webhook")?;
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
    };
    Ok((config, spec.default_language, spec.templates))
}

fn valid_channel_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where a channel sends.
enum Target {
    Email(EmailSettings),
    /// Graph sends it with the invitation; its settings are the CC list.
    Microsoft(EmailSettings),
    Slack {
        url: SecretString,
    },
    Teams {
        url: SecretString,
    },
    Webhook {
        url: SecretString,
        signer: crate::standard_webhooks::WebhookKey,
    },
}

/// A usable channel: its configuration and, for HTTP channels, its URL from the secret.
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    target: Target,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Channel({}: {})", self.name, self.kind.name())
    }
}

impl Channel {
    /// The usable channels: each declared one (its secret keys must exist), or each implicit
    /// one whose URL is in the secret. Routes are checked against the result.
    ///
    /// # Errors
    /// A message naming the key at fault; also when no channel at all is usable.
    pub fn resolve(
        config: &DeliveryConfig,
        values: &SecretValues,
        allow_private: bool,
    ) -> Result<Vec<Channel>, String> {
        let mut out = Vec::new();
        for c in &config.channels {
            let url = || -> Result<Option<SecretString>, String> {
                let Some(u) = values.get(&c.url_secret) else {
                    return if c.declared {
                        Err(format!(
                            "channel {}: secret key {} is required",
                            c.name, c.url_secret
                        ))
                    } else {
                        Ok(None)
                    };
                };
                guard::check_url(u.expose_secret(), allow_private)
                    .map(|_| Some(u.clone()))
                    .map_err(|e| format!("secret key {}: {e}", c.url_secret))
            };
            let target = match c.kind {
                ChannelKind::Email => c.email.clone().map(Target::Email),
                ChannelKind::Microsoft => c.email.clone().map(Target::Microsoft),
                ChannelKind::Slack => url()?.map(|url| Target::Slack { url }),
                ChannelKind::Teams => url()?.map(|url| Target::Teams { url }),
                ChannelKind::Webhook => match url()? {
                    None => None,
                    Some(url) => {
                        let key = values.get(&c.signing_secret).ok_or_else(|| {
                            format!(
                                "secret key {} is required with {}",
                                c.signing_secret, c.url_secret
                            )
                        })?;
                        let raw = key.expose_secret();
                        let signer = crate::standard_webhooks::WebhookKey::parse(raw)
                            .map_err(|e| format!("secret key {}: {e}", c.signing_secret))?;
                        Some(Target::Webhook { url, signer })
                    }
                },
            };
            if let Some(target) = target {
                out.push(Channel {
                    name: c.name.clone(),
                    kind: c.kind,
                    target,
                });
            }
        }
        if out.is_empty() {
            return Err("no delivery channel is configured: declare [channels.NAME] in RELAY_CONFIG, or set slack_webhook_url, teams_webhook_url or delivery_webhook_url in the secret".into());
        }
        let names: Vec<String> = out.iter().map(|c| c.name.clone()).collect();
        config.routes.check(&names)?;
        Ok(out)
    }

    /// The email settings of an email channel.
    pub fn email(&self) -> Option<&EmailSettings> {
        match &self.target {
            Target::Email(e) | Target::Microsoft(e) => Some(e),
            _ => None,
        }
    }

    /// Whether Graph delivers this channel itself, with the invitation.
    pub fn sent_by_graph(&self) -> bool {
        self.kind == ChannelKind::Microsoft
    }
}

/// What a channel delivers: the invitee and the created invitation.
pub struct Message<'a> {
    pub source: &'a str,
    pub event_id: &'a str,
    pub email: &'a InviteeEmail,
    pub display_name: Option<&'a DisplayName>,
    pub details: &'a EventDetails,
    pub invitation: &'a Invitation,
}

impl Message<'_> {
    /// The template context; with the link only when `with_link`.
    fn context(&self, with_link: bool) -> minijinja::Value {
        let display_name = self.display_name.map(DisplayName::as_str);
        context(
            self.source,
            self.event_id,
            self.email.as_str(),
            display_name,
            self.details,
            with_link.then(|| self.invitation.redeem_url.expose_secret()),
            Some(self.invitation.id.as_str()),
        )
    }
}

/// The context routes (without a link) and templates see.
pub fn context(
    source: &str,
    event_id: &str,
    email: &str,
    display_name: Option<&str>,
    details: &EventDetails,
    redeem_url: Option<&str>,
    invitation_id: Option<&str>,
) -> minijinja::Value {
    templates::Context {
        source,
        event_id,
        event_type: details.event_type.as_deref(),
        invitee: templates::Invitee {
            email,
            name: display_name,
            company: details.company.as_deref(),
            language: details.language.as_deref(),
        },
        owner: details
            .owner_email
            .as_deref()
            .map(|email| templates::Owner { email }),
        fields: &details.fields,
        language: details.language.as_deref(),
        redeem_url,
        invitation_id,
    }
    .to_value()
}

/// Why a delivery failed. Carries no URL, no address and no response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("the channel refused the message ({0})")]
    Refused(String),
    #[error("the channel is unavailable ({0})")]
    Unavailable(String),
    #[error("the channel's target is not allowed")]
    Blocked,
    #[error("the message could not be rendered: {0}")]
    Template(String),
    #[error("not attempted: not enough time left in this invocation")]
    Deferred,
}

impl crate::resilience::Transient for DeliveryError {
    fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Unavailable(_))
    }
}

/// Sends messages: HTTP channels through the guarded client, email through SES.
pub struct Deliverer {
    http: reqwest::Client,
    allow_private: bool,
    ses: email::SesClients,
}

/// A rendered message, as its channel's service receives it (for previews and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Email {
        subject: String,
        html: String,
        text: String,
    },
    Json(serde_json::Value),
}

impl Deliverer {
    pub fn new(
        http: reqwest::Client,
        allow_private: bool,
        sdk: &aws_config::SdkConfig,
        timeout: Duration,
        config: &DeliveryConfig,
    ) -> Self {
        Self {
            http,
            allow_private,
            ses: email::SesClients::new(sdk, timeout, config.email_regions()),
        }
    }

    /// Delivers `msg` over `channel`.
    ///
    /// # Errors
    /// [`DeliveryError`]; 429, 5xx, throttling, timeouts and connection failures are transient.
    #[tracing::instrument(name = "deliver", skip_all, fields(channel = %channel.name, kind = channel.kind.name()))]
    pub async fn send(
        &self,
        channel: &Channel,
        templates: &Templates,
        msg: &Message<'_>,
    ) -> Result<(), DeliveryError> {
        let rendered = render(channel.name.as_str(), channel.kind, templates, msg)?;
        let request = match (&channel.target, rendered) {
            (
                Target::Email(settings),
                Rendered::Email {
                    subject,
                    html,
                    text,
                },
            ) => {
                return self
                    .ses
                    .send(
                        settings,
                        channel.cc_for(msg.details),
                        msg,
                        &subject,
                        &html,
                        &text,
                    )
                    .await;
            }
            (Target::Slack { url } | Target::Teams { url }, Rendered::Json(body)) => {
                self.post(url)?.json(&body)
            }
            (Target::Webhook { url, signer }, Rendered::Json(body)) => {
                let (headers, body) = webhook::signed(signer, &channel.name, msg, &body)?;
                self.post(url)?
                    .headers(headers)
                    .header("content-type", "application/json")
                    .body(body)
            }
            (Target::Microsoft(_), _) => return Ok(()),
            _ => {
                return Err(DeliveryError::Template(
                    "channel and message disagree".into(),
                ));
            }
        };
        let resp = request.send().await.map_err(|e| {
            if guard::refused_by_guard(&e) {
                // A name that resolved inward: permanent, not worth retrying.
                DeliveryError::Blocked
            } else if e.is_timeout() {
                DeliveryError::Unavailable("timeout".into())
            } else if e.is_connect() {
                // The guard's refusal surfaces as a connect error.
                DeliveryError::Unavailable("connection failed".into())
            } else {
                DeliveryError::Unavailable("transport error".into())
            }
        })?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(DeliveryError::Unavailable(format!("HTTP {status}"))),
            _ => Err(DeliveryError::Refused(format!("HTTP {status}"))),
        }
    }

    fn post(&self, url: &SecretString) -> Result<reqwest::RequestBuilder, DeliveryError> {
        let url = guard::check_url(url.expose_secret(), self.allow_private)
            .map_err(|_| DeliveryError::Blocked)?;
        Ok(self.http.post(url))
    }
}

/// A stand-in invitation for checking and previewing messages before one exists.
pub fn sample_invitation() -> Invitation {
    Invitation {
        id: "7f5c3b1e-2a4d-4c6e-8f90-1a2b3c4d5e6f".into(),
        invited_user_id: "0b9d2f4e-6a8c-4e1f-9a3b-5c7d9e1f2a4b".into(),
        status: "PendingAcceptance".into(),
        redeem_url: SecretString::from(templates::SAMPLE_REDEEM_URL),
    }
}

/// Renders `msg` for a channel of `kind` named `channel`, exactly as it is sent.
///
/// # Errors
/// [`DeliveryError::Template`] when a template fails on this message.
pub fn render(
    channel: &str,
    kind: ChannelKind,
    templates: &Templates,
    msg: &Message<'_>,
) -> Result<Rendered, DeliveryError> {
    let ctx = msg.context(true);
    let lang = templates.language_for(channel, kind, msg.details.language.as_deref());
    let part = |p: &str| {
        let text = templates
            .render(channel, kind, &lang, p, &ctx)
            .map_err(DeliveryError::Template)?;
        if text.is_empty() {
            return Err(DeliveryError::Template(format!(
                "the {p} part renders empty for this event"
            )));
        }
        Ok(text)
    };
    Ok(match kind {
        ChannelKind::Email => {
            let (html, text) = (part("html")?, part("text")?);
            let url = msg.invitation.redeem_url.expose_secret();
            let mut escaped = String::new();
            templates::escape_html(url, &mut escaped);
            if !html.contains(&escaped) || !text.contains(url) {
                return Err(DeliveryError::Template(
                    "the email renders without the invitation link for this event".into(),
                ));
            }
            Rendered::Email {
                subject: email::subject_line(&part("subject")?),
                html,
                text,
            }
        }
        ChannelKind::Slack => Rendered::Json(slack::payload(
            &part("summary")?,
            &part("body")?,
            &part("button")?,
            msg,
        )),
        ChannelKind::Teams => Rendered::Json(teams::payload(
            &part("title")?,
            &part("body")?,
            &part("button")?,
            msg,
        )),
        ChannelKind::Webhook => Rendered::Json(webhook::payload(channel, msg)),
        ChannelKind::Microsoft => {
            let message = microsoft_message(channel, templates, msg.details, &ctx, &[])?;
            Rendered::Json(serde_json::json!({
                "sendInvitationMessage": true,
                "invitedUserMessageInfo": message,
            }))
        }
    })
}

/// `invitedUserMessageInfo` for Microsoft's own email: the invitee's language, the channel's
/// message template (if any; else Microsoft's text) and the CC list.
///
/// # Errors
/// [`DeliveryError::Template`] when the message template fails.
pub fn microsoft_message(
    channel: &str,
    templates: &Templates,
    details: &EventDetails,
    ctx: &minijinja::Value,
    cc: &[String],
) -> Result<crate::domain::MessageInfo, DeliveryError> {
    let languages = templates.languages(channel, ChannelKind::Microsoft);
    let body = if languages.is_empty() {
        None
    } else {
        let lang =
            templates.language_for(channel, ChannelKind::Microsoft, details.language.as_deref());
        Some(
            templates
                .render(channel, ChannelKind::Microsoft, &lang, "message", ctx)
                .map_err(DeliveryError::Template)?,
        )
    };
    Ok(crate::domain::MessageInfo {
        message_language: details.language.clone(),
        customized_message_body: body,
        cc_recipients: cc.to_vec(),
    })
}

impl Channel {
    /// The CC list of an email or Microsoft channel for this event: the fixed CCs and, with
    /// `cc_owner`, the owner when inside the allowed domains.
    pub fn cc_for(&self, details: &EventDetails) -> Vec<String> {
        let Some(settings) = self.email() else {
            return Vec::new();
        };
        let mut cc = settings.cc.clone();
        if settings.cc_owner
            && let Some(owner) = &details.owner_email
            && settings.cc_allowed(owner)
            && !cc.iter().any(|c| c.eq_ignore_ascii_case(owner))
        {
            cc.push(owner.clone());
        }
        cc
    }
}
