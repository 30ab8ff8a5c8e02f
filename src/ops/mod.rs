//! The operator's tools behind the `invite-relay` command: checking a deployment (`doctor`),
//! the dead-letter queue (`dlq`), one guest or event's state (`status`, `resend`) and bulk
//! invitations from a CSV file (`bulk`). None of this runs in the functions.
//!
//! The commands read the functions' own environment (configuration, secret id, table and queue
//! URLs) and reach AWS with the workstation's ordinary credentials (a profile or the
//! environment), through the SDK's standard settings.

pub mod bulk;
pub mod dlq;
pub mod doctor;
mod doctor_aws;
pub mod permissions;
pub mod status;

use crate::config::Config;

/// The SDK's configuration, as the functions build it (the shared TLS client, a timeout).
pub(crate) async fn sdk(config: &Config) -> Result<aws_config::SdkConfig, String> {
    let http = crate::aws::default_client(config.outbound.timeout)?;
    Ok(crate::aws::loader(http).load().await)
}

/// A failed AWS SDK call.
pub(crate) type AwsError<E> =
    aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>;

/// Says what a failed AWS call needs: for a refusal (`AccessDenied…`, or any HTTP 403 that
/// isn't about the credentials themselves), the action and the resource to allow; for refused
/// credentials, that; otherwise the error code.
pub(crate) fn aws_failure<E>(action: &str, resource: &str, e: &AwsError<E>) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;
    let code = e.code().unwrap_or_default();
    let status = e.raw_response().map(|r| r.status().as_u16());
    let credentials = [
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
    ];
    if credentials.contains(&code) {
        format!(
            "{action} on {resource}: AWS refused these credentials ({code}); check the profile or environment"
        )
    } else if code.starts_with("AccessDenied")
        || code == "UnauthorizedOperation"
        || (code.is_empty() && status == Some(403))
    {
        let why = if code.is_empty() { "HTTP 403" } else { code };
        format!("permission missing: allow {action} on {resource} to these AWS credentials ({why})")
    } else if code.is_empty() {
        let detail = match status {
            Some(s) => format!("HTTP {s}"),
            None => aws_smithy_types::error::display::DisplayErrorContext(e)
                .to_string()
                .chars()
                .take(200)
                .collect(),
        };
        format!("{action} on {resource} failed: {detail}")
    } else {
        format!("{action} on {resource} failed: {code}")
    }
}

/// Options of the form `--name value` and `--flag`, with the names allowed.
pub(crate) struct Flags {
    values: std::collections::HashMap<String, String>,
    switches: std::collections::HashSet<String>,
    pub positional: Vec<String>,
}

impl Flags {
    /// Reads `args`: `with_value` take the next argument, `switches` stand alone.
    pub fn parse(args: &[String], with_value: &[&str], switches: &[&str]) -> Result<Self, String> {
        let mut out = Self {
            values: Default::default(),
            switches: Default::default(),
            positional: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.strip_prefix("--") {
                Some(name) if with_value.contains(&name) => {
                    let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                    out.values.insert(name.to_owned(), v.clone());
                }
                Some(name) if switches.contains(&name) => {
                    out.switches.insert(name.to_owned());
                }
                Some(name) => return Err(format!("unknown option --{name}")),
                None => out.positional.push(a.clone()),
            }
        }
        Ok(out)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn on(&self, name: &str) -> bool {
        self.switches.contains(name)
    }
}

/// An event named on the command line as `SOURCE/EVENT_ID`.
pub(crate) fn event_key(arg: &str) -> Option<crate::store::EventKey> {
    let (source, event_id) = arg.split_once('/')?;
    (!source.is_empty() && !event_id.is_empty()).then(|| crate::store::EventKey {
        source: source.to_owned(),
        event_id: event_id.to_owned(),
    })
}
