//! Permissions: when AWS refuses the operator's credentials, which action on which resource
//! they need.
//!
//! The pipeline answers a refused AWS call as "unavailable" and logs the AWS error code; the
//! command listens to those log lines (nothing else is printed) and turns an access denial into
//! the action and resource to grant.

use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// The AWS error codes that mean "these credentials may not do this".
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "KMS.AccessDeniedException",
];

/// The last denial the pipeline logged (the `error` field of its line).
#[derive(Clone, Default)]
pub(crate) struct Denials(Arc<Mutex<Option<String>>>);

impl Denials {
    /// Listens to the pipeline's log lines for the rest of the process (printing none).
    pub fn install(&self) {
        let subscriber = tracing_subscriber::registry().with(self.clone());
        // A second install (tests calling `run` twice) keeps the first listener.
        let _ = tracing::subscriber::set_global_default(subscriber);
    }

    /// The denial logged since the last call, if any.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Whether an AWS error text is an access denial.
pub(crate) fn is_denied(error: &str) -> bool {
    error
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .any(|word| DENIED.contains(&word))
}

struct ErrorField(Option<String>);

impl Visit for ErrorField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "error" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "error" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Denials {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut error = ErrorField(None);
        event.record(&mut error);
        if let Some(e) = error.0.filter(|e| is_denied(e)) {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
        }
    }
}

/// Where the deployment keeps what the command touches (names for the message).
#[derive(Debug, Default, Clone)]
pub(crate) struct Resources {
    pub secret: String,
    pub table: Option<String>,
    pub queue: Option<String>,
}

/// The operator's message for a denial: the IAM action and the resource it is needed on.
pub(crate) fn explain(error: &str, r: &Resources) -> String {
    let code = error
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .find(|w| DENIED.contains(w))
        .unwrap_or("AccessDenied");
    let need = if let Some(op) = error
        .strip_prefix("DynamoDB ")
        .and_then(|rest| rest.split_whitespace().next())
    {
        format!(
            "dynamodb:{op} on table {}",
            r.table.as_deref().unwrap_or("(IDEMPOTENCY_TABLE)")
        )
    } else if error.contains("SendMessage") {
        format!(
            "sqs:SendMessage on queue {}",
            r.queue.as_deref().unwrap_or("(QUEUE_URL)")
        )
    } else if error.contains("SES") {
        "ses:SendEmail on the email channel's sending identity (and its configuration set)".into()
    } else if error.contains("secret") || error.contains("Secret") {
        secret_need(&r.secret)
    } else {
        format!(
            "access to the deployment's resources (secret {}, table {}, queue {})",
            r.secret,
            r.table.as_deref().unwrap_or("-"),
            r.queue.as_deref().unwrap_or("-")
        )
    };
    format!("{code}: your AWS credentials need {need}")
}

/// What reading the relay's secret needs.
pub(crate) fn secret_need(secret: &str) -> String {
    format!(
        "secretsmanager:GetSecretValue on secret {secret} (and kms:Decrypt on its key when it \
         is a customer-managed key)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources() -> Resources {
        Resources {
            secret: "invite-relay/prod".into(),
            table: Some("invite-relay-idempotency".into()),
            queue: Some("https://sqs.eu-west-1.amazonaws.com/1/invite-relay".into()),
        }
    }

    #[test]
    fn a_denial_names_the_action_and_the_resource() {
        let r = resources();
        assert_eq!(
            explain("DynamoDB PutItem failed: AccessDeniedException", &r),
            "AccessDeniedException: your AWS credentials need dynamodb:PutItem on table invite-relay-idempotency"
        );
        assert_eq!(
            explain("SendMessage failed: AccessDenied", &r),
            "AccessDenied: your AWS credentials need sqs:SendMessage on queue https://sqs.eu-west-1.amazonaws.com/1/invite-relay"
        );
        assert!(
            explain("SES AccessDeniedException", &r).contains("ses:SendEmail on the email channel")
        );
        assert!(
            explain("reading the secret failed: AccessDeniedException", &r)
                .contains("secretsmanager:GetSecretValue on secret invite-relay/prod")
        );
    }

    #[test]
    fn only_denials_count() {
        assert!(is_denied("DynamoDB GetItem failed: AccessDeniedException"));
        assert!(is_denied("SendMessage failed: AccessDenied"));
        assert!(!is_denied(
            "DynamoDB GetItem failed: ProvisionedThroughputExceededException"
        ));
        assert!(!is_denied("SendMessage failed: unreachable"));
    }

    #[test]
    fn the_listener_keeps_the_denial_a_log_line_carries() {
        let denials = Denials::default();
        let subscriber = tracing_subscriber::registry().with(denials.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(error = "DynamoDB UpdateItem failed: throttled", "x");
            assert_eq!(denials.take(), None);
            tracing::error!(error = %"DynamoDB UpdateItem failed: AccessDeniedException", "y");
        });
        assert_eq!(
            denials.take().as_deref(),
            Some("DynamoDB UpdateItem failed: AccessDeniedException")
        );
        assert_eq!(denials.take(), None);
    }
}
