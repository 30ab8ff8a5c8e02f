//! Channels made usable: each configured channel with its target from the secret (a URL, the
//! webhook's signing key, the email settings).

use secrecy::{ExposeSecret, SecretString};

use super::channels::{ChannelKind, DeliveryConfig, EmailSettings};
use super::guard;
use crate::domain::EventDetails;
use crate::secrets::SecretValues;

/// Where a channel sends.
pub(super) enum Target {
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
    pub(super) target: Target,
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
            if let Some(channel) = Self::resolve_one(c, values, allow_private)? {
                out.push(channel);
            }
        }
        if out.is_empty() {
            return Err("no delivery channel is configured: declare [channels.NAME] in RELAY_CONFIG, or set slack_webhook_url, teams_webhook_url or delivery_webhook_url in the secret".into());
        }
        let names: Vec<String> = out.iter().map(|c| c.name.clone()).collect();
        config.routes.check(&names)?;
        Ok(out)
    }

    /// One channel: `None` when it is implicit and its URL is not in the secret.
    ///
    /// # Errors
    /// A message naming the key at fault.
    pub fn resolve_one(
        c: &super::ChannelConfig,
        values: &SecretValues,
        allow_private: bool,
    ) -> Result<Option<Channel>, String> {
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
        Ok(target.map(|target| Channel {
            name: c.name.clone(),
            kind: c.kind,
            target,
        }))
    }

    /// The URL an HTTP channel posts to (a secret: never print it).
    pub fn url(&self) -> Option<&SecretString> {
        match &self.target {
            Target::Slack { url } | Target::Teams { url } | Target::Webhook { url, .. } => {
                Some(url)
            }
            Target::Email(_) | Target::Microsoft(_) => None,
        }
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
