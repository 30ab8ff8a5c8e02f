//! Delivering the redeem link: channels (branded email through Amazon SES, Slack, Microsoft
//! Teams, a signed webhook), their templates, routing rules and the outbound guard.
//!
//! Channels are declared in configuration (`[channels.NAME]`, see [`ChannelSpec`]); without
//! any, the channels whose URLs are in the secret are used under their kind's name. A channel's
//! URL is a credential (a Slack or Teams webhook URL is), so it lives in the secret and is never
//! logged.

//!
//! Where to look: [`channels`] (configuration), [`target`] (channels with their secrets),
//! [`message`] (what is delivered), [`render`] (how each kind shows it), and here the
//! [`Deliverer`] that sends it.

mod channels;
mod email;
mod escape;
pub mod guard;
mod message;
pub mod notice;
pub mod preview;
mod render;
pub mod routing;
mod slack;
mod target;
mod teams;
pub mod templates;
mod webhook;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub use channels::{
    ChannelConfig, ChannelKind, ChannelSpec, DeliveryConfig, EmailSettings, LinkMode,
};
pub use message::{Message, context, sample_invitation};
pub use notice::{Notice, NoticeKind};
pub use render::{Rendered, microsoft_message, render};
pub use routing::{Route, RouteSpec, Routes};
pub use target::Channel;
use target::Target;
pub use templates::{Brand, Templates};

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
        self.dispatch(request).await
    }

    /// Sends a lifecycle notice over `channel` (Slack, Teams or the signed webhook).
    ///
    /// # Errors
    /// [`DeliveryError`], as for [`Deliverer::send`]; a channel that can't carry notices is
    /// refused.
    #[tracing::instrument(name = "notify", skip_all, fields(channel = %channel.name, notice = notice.kind.name()))]
    pub async fn notify(
        &self,
        channel: &Channel,
        notice: &Notice<'_>,
    ) -> Result<(), DeliveryError> {
        let body = notice
            .render(channel.kind, &channel.name)
            .ok_or_else(|| DeliveryError::Refused("this channel carries no notices".into()))?;
        let request = match &channel.target {
            Target::Slack { url } | Target::Teams { url } => self.post(url)?.json(&body),
            Target::Webhook { url, signer } => {
                let id = webhook::message_id(
                    notice.source,
                    notice.event_id,
                    &format!("{}#{}", channel.name, notice.kind.name()),
                );
                let (headers, body) = webhook::sign(signer, id, &body)?;
                self.post(url)?
                    .headers(headers)
                    .header("content-type", "application/json")
                    .body(body)
            }
            _ => {
                return Err(DeliveryError::Refused(
                    "this channel carries no notices".into(),
                ));
            }
        };
        self.dispatch(request).await
    }

    async fn dispatch(&self, request: reqwest::RequestBuilder) -> Result<(), DeliveryError> {
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
