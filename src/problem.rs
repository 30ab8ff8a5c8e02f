//! RFC 9457 problem details: every refusal the function answers with.

use lambda_http::{Body, Response, http::StatusCode};
use serde_json::{Map, Value, json};

/// One kind of refusal, with a stable `type` URI documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UriTooLong,
    UnsupportedMediaType,
    HeadersTooLarge,
    Malformed,
    Signature,
    Unprocessable,
    InvalidInvitee,
    RedirectNotAllowed,
    NoRoute,
    GraphRejected,
    InProgress,
    UpstreamAuth,
    UpstreamInvalid,
    UpstreamUnavailable,
    DeliveryFailed,
    Internal,
}

impl ProblemKind {
    pub fn status(self) -> StatusCode {
        use ProblemKind::*;
        match self {
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Malformed => StatusCode::BAD_REQUEST,
            Signature => StatusCode::UNAUTHORIZED,
            Unprocessable | InvalidInvitee | RedirectNotAllowed | NoRoute | GraphRejected => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            InProgress => StatusCode::CONFLICT,
            UpstreamAuth | UpstreamInvalid => StatusCode::BAD_GATEWAY,
            UpstreamUnavailable | DeliveryFailed => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Every kind, in the README's order.
    pub const ALL: [ProblemKind; 19] = {
        use ProblemKind::*;
        [
            NotFound,
            MethodNotAllowed,
            PayloadTooLarge,
            UriTooLong,
            HeadersTooLarge,
            UnsupportedMediaType,
            Malformed,
            Signature,
            Unprocessable,
            InvalidInvitee,
            RedirectNotAllowed,
            NoRoute,
            GraphRejected,
            InProgress,
            UpstreamAuth,
            UpstreamInvalid,
            UpstreamUnavailable,
            DeliveryFailed,
            Internal,
        ]
    };

    /// The last segment of the `type` URI.
    pub fn slug(self) -> &'static str {
        use ProblemKind::*;
        match self {
            NotFound => "not-found",
            MethodNotAllowed => "method-not-allowed",
            PayloadTooLarge => "payload-too-large",
            UriTooLong => "uri-too-long",
            HeadersTooLarge => "headers-too-large",
            UnsupportedMediaType => "unsupported-media-type",
            Malformed => "malformed-request",
            Signature => "signature",
            Unprocessable => "unprocessable-event",
            InvalidInvitee => "invalid-invitee",
            RedirectNotAllowed => "redirect-not-allowed",
            NoRoute => "no-route",
            GraphRejected => "graph-rejected",
            InProgress => "in-progress",
            UpstreamAuth => "upstream-auth",
            UpstreamInvalid => "upstream-invalid",
            UpstreamUnavailable => "upstream-unavailable",
            DeliveryFailed => "delivery-failed",
            Internal => "internal",
        }
    }

    fn title(self) -> &'static str {
        use ProblemKind::*;
        match self {
            NotFound => "No such webhook source",
            MethodNotAllowed => "Method not allowed",
            PayloadTooLarge => "Request body too large",
            UriTooLong => "Request URI too long",
            HeadersTooLarge => "Too many request headers",
            UnsupportedMediaType => "Unsupported content type",
            Malformed => "Malformed request body",
            Signature => "Unauthorized",
            Unprocessable => "Event cannot be processed",
            InvalidInvitee => "Invalid invitee",
            RedirectNotAllowed => "Redirect URL not allowed",
            NoRoute => "No delivery route for this event",
            GraphRejected => "Microsoft Graph rejected the invitation",
            InProgress => "Event is being processed",
            UpstreamAuth => "Authentication to Microsoft Graph failed",
            UpstreamInvalid => "Unexpected answer from Microsoft Graph",
            UpstreamUnavailable => "Upstream temporarily unavailable",
            DeliveryFailed => "Delivery failed",
            Internal => "Internal error",
        }
    }
}

/// What becomes of a queued event that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Return it to the queue: a later attempt can succeed.
    Retry,
    /// Park it on the dead-letter queue with its reason.
    Park,
}

/// Prefix of every problem `type` URI.
pub const TYPE_PREFIX: &str = "urn:invite-relay:problem:";

/// A refusal. `detail` and extensions must never carry the request body, an email address,
/// a token, a secret or a redeem URL.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
    pub extensions: Map<String, Value>,
    pub retry_after: Option<u64>,
    /// Whether trying the same event again later can succeed (queue mode retries these and
    /// dead-letters the rest).
    pub retryable: bool,
    /// No invitation slot was free (or Graph is paused for the tenant): nothing was tried, so
    /// the attempt doesn't count; try again after `retry_after`.
    pub paced: bool,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        let status = kind.status().as_u16();
        Self {
            kind,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after: None,
            retryable: status >= 500 || status == 409,
            paced: false,
        }
    }

    /// Adds a member to the problem object (RFC 9457 extension member).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Overrides whether a later attempt can succeed.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Marks a refusal for want of an invitation slot (see [`Problem::paced`]).
    pub fn paced(mut self) -> Self {
        self.paced = true;
        self
    }

    /// Tells the sender when to try again (`Retry-After`, seconds).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// What a queue consumer does with the event: retry it later, or park it for good.
    pub fn disposition(&self) -> Disposition {
        if self.retryable {
            Disposition::Retry
        } else {
            Disposition::Park
        }
    }

    /// `type slug: detail`, for a dead-letter reason (never personal data).
    pub fn reason(&self) -> String {
        format!("{}: {}", self.kind.slug(), self.detail)
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// `application/problem+json` response.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut body = json!({
            "type": format!("{TYPE_PREFIX}{}", self.kind.slug()),
            "title": self.kind.title(),
            "status": status.as_u16(),
            "detail": self.detail,
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extensions);
        }
        let mut builder = Response::builder()
            .status(status)
            .header("content-type", "application/problem+json")
            .header("cache-control", "no-store");
        if self.kind == ProblemKind::MethodNotAllowed {
            builder = builder.header("allow", "POST");
        }
        if let Some(secs) = self.retry_after {
            builder = builder.header("retry-after", secs.to_string());
        }
        builder
            .body(Body::Text(body.to_string()))
            .expect("static headers are valid")
    }
}
