//! Delivering the redeem link: one module per channel, one enum to dispatch.

pub mod guard;
mod slack;
mod webhook;

pub use slack::payload as slack_payload;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::domain::{DisplayName, Invitation, InviteeEmail};
use crate::secrets::SecretValues;

/// A kind of channel, as named in events (`delivery.channels`) and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    Slack,
    Webhook,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 2] = [ChannelKind::Slack, ChannelKind::Webhook];

    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// A configured channel. Its URL is a credential (a Slack incoming-webhook URL is), so it is a
/// secret and never logged.
pub enum Channel {
    Slack {
        url: SecretString,
    },
    Webhook {
        url: SecretString,
        signer: standardwebhooks::Webhook,
    },
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Channel({})", self.kind().name())
    }
}

impl Channel {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Channel::Slack { .. } => ChannelKind::Slack,
            Channel::Webhook { .. } => ChannelKind::Webhook,
        }
    }

    /// The channels whose URLs are present in the secret.
    ///
    /// # Errors
    /// A message naming the key at fault; also when no channel at all is configured.
    pub fn from_secret(values: &SecretValues, allow_private: bool) -> Result<Vec<Channel>, String> {
        let mut out = Vec::new();
        let url = |key: &str| -> Result<Option<SecretString>, String> {
            values
                .get(key)
                .map(|u| {
                    guard::check_url(u.expose_secret(), allow_private)
                        .map(|_| u.clone())
                        .map_err(|e| format!("secret key {key}: {e}"))
                })
                .transpose()
        };
        if let Some(url) = url("slack_webhook_url")? {
            out.push(Channel::Slack { url });
        }
        if let Some(url) = url("delivery_webhook_url")? {
            let key = values.get("delivery_signing_secret").ok_or(
                "secret key delivery_signing_secret is required with delivery_webhook_url",
            )?;
            let raw = key.expose_secret();
            let signer = raw
                .starts_with("whsec_")
                .then(|| standardwebhooks::Webhook::new(raw).ok())
                .flatten()
                .ok_or("secret key delivery_signing_secret: must be whsec_ followed by base64")?;
            out.push(Channel::Webhook { url, signer });
        }
        if out.is_empty() {
            return Err("no delivery channel is configured: set slack_webhook_url and/or delivery_webhook_url in the secret".into());
        }
        Ok(out)
    }
}

/// What a channel delivers: the invitee and the created invitation.
pub struct Message<'a> {
    pub source: &'a str,
    pub event_id: &'a str,
    pub email: &'a InviteeEmail,
    pub display_name: Option<&'a DisplayName>,
    pub invitation: &'a Invitation,
}

/// Why a delivery failed. Carries no URL and no response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("the channel refused the message (HTTP {0})")]
    Refused(u16),
    #[error("the channel is unavailable ({0})")]
    Unavailable(String),
    #[error("the channel's target is not allowed")]
    Blocked,
    #[error("not attempted: not enough time left in this invocation")]
    Deferred,
}

impl crate::resilience::Transient for DeliveryError {
    fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Unavailable(_))
    }
}

/// Sends messages over HTTP with the guarded client.
pub struct Deliverer {
    http: reqwest::Client,
    allow_private: bool,
}

impl Deliverer {
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        Self {
            http: guard::delivery_http_client(timeout, allow_private),
            allow_private,
        }
    }

    /// Delivers `msg` over `channel`.
    ///
    /// # Errors
    /// [`DeliveryError`]; 429, 5xx, timeouts and connection failures are transient.
    #[tracing::instrument(name = "deliver", skip_all, fields(channel = channel.kind().name()))]
    pub async fn send(&self, channel: &Channel, msg: &Message<'_>) -> Result<(), DeliveryError> {
        let request = match channel {
            Channel::Slack { url } => self.post(url)?.json(&slack::payload(msg)),
            Channel::Webhook { url, signer } => {
                let (headers, body) = webhook::signed(signer, msg)?;
                self.post(url)?
                    .headers(headers)
                    .header("content-type", "application/json")
                    .body(body)
            }
        };
        let resp = request.send().await.map_err(|e| {
            if e.is_timeout() {
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
            _ => Err(DeliveryError::Refused(status)),
        }
    }

    fn post(&self, url: &SecretString) -> Result<reqwest::RequestBuilder, DeliveryError> {
        let url = guard::check_url(url.expose_secret(), self.allow_private)
            .map_err(|_| DeliveryError::Blocked)?;
        Ok(self.http.post(url))
    }
}
