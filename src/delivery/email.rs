//! Branded email through Amazon SES v2: HTML and plain-text bodies from the templates, from the
//! organisation's own verified identity, with Reply-To and CC (the account owner) as
//! configured. SES builds the MIME message; the subject and bodies are sent as UTF-8.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message as SesMessage};

use super::{DeliveryError, EmailSettings, Message};

/// Longest subject sent, in characters.
const SUBJECT_MAX: usize = 200;

/// One SES client per region in use, built at start-up (building makes no network call).
pub struct SesClients(BTreeMap<Option<String>, aws_sdk_sesv2::Client>);

impl SesClients {
    /// Clients for `regions` (`None`: the function's region). The SDK's own retries are off:
    /// the pipeline's retry policy (deadline-aware, shared with every channel) decides.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        timeout: Duration,
        regions: BTreeSet<Option<String>>,
    ) -> Self {
        Self(
            regions
                .into_iter()
                .map(|region| {
                    let mut b = aws_sdk_sesv2::config::Builder::from(sdk)
                        .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
                        .timeout_config(
                            aws_sdk_sesv2::config::timeout::TimeoutConfig::builder()
                                .operation_timeout(timeout)
                                .build(),
                        );
                    if let Some(r) = &region {
                        b = b.region(aws_sdk_sesv2::config::Region::new(r.clone()));
                    }
                    (region, aws_sdk_sesv2::Client::from_conf(b.build()))
                })
                .collect(),
        )
    }

    pub async fn send(
        &self,
        settings: &EmailSettings,
        cc: Vec<String>,
        msg: &Message<'_>,
        subject: &str,
        html: &str,
        text: &str,
    ) -> Result<(), DeliveryError> {
        let client = self
            .0
            .get(&settings.region)
            .ok_or_else(|| DeliveryError::Unavailable("no SES client for the region".into()))?;
        let content = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .map_err(|_| DeliveryError::Template("empty message part".into()))
        };
        let message = SesMessage::builder()
            .subject(content(subject)?)
            .body(
                Body::builder()
                    .html(content(html)?)
                    .text(content(text)?)
                    .build(),
            )
            .build();
        client
            .send_email()
            .from_email_address(&settings.from)
            .destination(
                Destination::builder()
                    .to_addresses(msg.email.as_str())
                    .set_cc_addresses((!cc.is_empty()).then_some(cc))
                    .build(),
            )
            .set_reply_to_addresses(
                (!settings.reply_to.is_empty()).then(|| settings.reply_to.clone()),
            )
            .set_configuration_set_name(settings.configuration_set.clone())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// Throttling, 5xx, timeouts and connection failures are worth retrying; the rest (message
/// rejected, identity not verified, sending paused) is not. Only SES's error code is kept:
/// its messages can name addresses.
fn classify(
    e: SdkError<SendEmailError, aws_sdk_sesv2::config::http::HttpResponse>,
) -> DeliveryError {
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("unknown").to_owned();
            match se.err() {
                SendEmailError::TooManyRequestsException(_)
                | SendEmailError::LimitExceededException(_) => {
                    DeliveryError::Unavailable(format!("SES {code}"))
                }
                _ if status == 429 || status == 408 || status >= 500 => {
                    DeliveryError::Unavailable(format!("SES HTTP {status}"))
                }
                _ => DeliveryError::Refused(format!("SES {code}")),
            }
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            if status == 429 || status >= 500 {
                DeliveryError::Unavailable(format!("SES HTTP {status}"))
            } else {
                DeliveryError::Refused(format!("SES HTTP {status}"))
            }
        }
        SdkError::ConstructionFailure(_) => {
            DeliveryError::Refused("the SES request could not be built".into())
        }
        SdkError::TimeoutError(_) => DeliveryError::Unavailable("timeout".into()),
        SdkError::DispatchFailure(_) => DeliveryError::Unavailable("connection failed".into()),
        _ => DeliveryError::Unavailable("transport error".into()),
    }
}

/// A subject line: one line, bounded.
pub fn subject_line(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    super::slack::truncate(&one, SUBJECT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_one_bounded_line() {
        assert_eq!(
            subject_line("Hi\r\nBcc: x@y.z\tthere "),
            "Hi Bcc: x@y.z there"
        );
        assert_eq!(subject_line(&"a".repeat(500)).chars().count(), SUBJECT_MAX);
    }
}
