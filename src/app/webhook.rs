//! The HTTP edge: receive → authenticate → replayed? → interpret → accept, and the answer
//! (JSON, problem+json, or the SOAP acknowledgement Salesforce waits for).

use std::sync::Arc;

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use super::errors::{secret_unavailable, unprocessable};
use super::{ANSWER_MARGIN, App, DEFAULT_BUDGET, Keyring, Outcome};
use crate::config::Role;
use crate::inbound::{self, Interpretation, Source};
use crate::metrics;
use crate::problem::{Problem, ProblemKind, TYPE_PREFIX};
use crate::resilience::Deadline;
use crate::secrets::MIN_FORCED_REFRESH;

/// Wait suggested to a sender whose batch holds events that can succeed later.
const BATCH_RETRY_SECS: u64 = 30;

/// What a request came to: one event's outcome, or each event's of a batch.
enum Answer {
    One(Outcome),
    Batch(Batch),
}

/// A body with several events: each processed (and able to fail) on its own.
#[derive(Serialize)]
struct Batch {
    status: &'static str,
    events: Vec<BatchItem>,
    /// Set when some events can succeed later: the sender should send the body again
    /// (completed events then answer `duplicate`).
    #[serde(skip)]
    retry_after: Option<u64>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum BatchItem {
    Done(Outcome),
    Refused(Refusal),
}

/// One event of a batch that was refused, in the problem's terms.
#[derive(Serialize)]
struct Refusal {
    status: &'static str,
    problem: String,
    detail: String,
    #[serde(flatten)]
    extensions: serde_json::Map<String, serde_json::Value>,
}

impl From<Problem> for Refusal {
    fn from(p: Problem) -> Self {
        Refusal {
            status: "refused",
            problem: format!("{TYPE_PREFIX}{}", p.kind.slug()),
            detail: p.detail,
            extensions: p.extensions,
        }
    }
}

impl App {
    /// Answers one Lambda HTTP event (Function URL, HTTP API or REST API) with its response
    /// object. Whatever the event holds, the answer is an HTTP response (problem+json for a
    /// refusal), never a panic: see [`inbound::lambda`].
    pub async fn on_lambda_event(
        &self,
        event: serde_json::Value,
        context: Option<lambda_runtime::Context>,
    ) -> serde_json::Value {
        let handled = async {
            match inbound::lambda::to_request(event, context) {
                Ok(req) => {
                    let origin = req
                        .extensions()
                        .get::<inbound::lambda::Called>()
                        .map_or(inbound::lambda::Origin::V2, |c| c.origin);
                    inbound::lambda::to_event_response(origin, self.on_http(req).await)
                }
                Err(refused) => {
                    tracing::info!(
                        status = refused.problem.status().as_u16(),
                        problem = refused.problem.kind.slug(),
                        "request refused"
                    );
                    metrics::refused(refused.problem.kind);
                    inbound::lambda::refusal_response(refused)
                }
            }
        };
        self.metrics().measure(Role::Webhook, handled).await
    }

    /// Answers one HTTP request within the invocation's deadline. Never panics on input; every
    /// refusal is problem+json.
    pub async fn on_http(&self, req: Request) -> Response<Body> {
        let deadline_ms = req.lambda_context_ref().map_or(0, |c| c.deadline);
        self.on_http_until(
            req,
            Deadline::from_lambda(deadline_ms, ANSWER_MARGIN, DEFAULT_BUDGET),
        )
        .await
    }

    /// [`App::on_http`] with an explicit deadline; writes the request's metrics line.
    pub async fn on_http_until(&self, req: Request, deadline: Deadline) -> Response<Body> {
        self.metrics()
            .measure(Role::Webhook, self.answer(req, deadline))
            .await
    }

    async fn answer(&self, req: Request, deadline: Deadline) -> Response<Body> {
        if let Some(token) = inbound::http::link_token(&req) {
            return self.on_link(&req, token, deadline).await;
        }
        let source = inbound::http::source_name(&req).and_then(|n| self.config.sources.get(n));
        if let Some(s) = source {
            metrics::source(&s.name);
        }
        match self.receive(source, &req, deadline).await {
            Ok(answer) => respond(source.map(|s| s.reply).unwrap_or_default(), answer),
            Err(problem) => {
                let status = problem.status().as_u16();
                if status >= 500 {
                    tracing::warn!(status, problem = problem.kind.slug(), "request failed");
                } else {
                    tracing::info!(status, problem = problem.kind.slug(), "request refused");
                }
                metrics::refused(problem.kind);
                problem.into_response()
            }
        }
    }

    async fn receive(
        &self,
        source: Option<&Source>,
        req: &Request,
        deadline: Deadline,
    ) -> Result<Answer, Problem> {
        let source = source.ok_or_else(|| {
            Problem::new(
                ProblemKind::NotFound,
                "POST to /webhooks/{source} with a configured source",
            )
        })?;
        let body =
            inbound::http::checked_body(req, self.config.inbound.max_body_bytes, source.format)?;
        let keys = self.authenticate(source, req, body).await?;
        let parsed = inbound::body::parse(source.format, body)
            .map_err(|e| Problem::new(ProblemKind::Malformed, e))?;
        if source.is_batch() {
            return self.interpret_batch(source, &parsed, &keys, deadline).await;
        }
        match source.interpret(&parsed).map_err(unprocessable)? {
            Interpretation::Ignored {
                event_id,
                event_type,
            } => {
                tracing::info!(source = %source.name, event_id = %keys.hasher.loggable(&event_id), event_type = %keys.hasher.loggable(event_type.as_deref().unwrap_or("")), "event ignored by filter");
                Ok(Answer::One(Outcome::Ignored { event_id }))
            }
            Interpretation::Invite(event) => self
                .accept(source, *event, &keys, deadline)
                .await
                .map(Answer::One),
        }
    }

    async fn interpret_batch(
        &self,
        source: &Source,
        parsed: &serde_json::Value,
        keys: &Arc<Keyring>,
        deadline: Deadline,
    ) -> Result<Answer, Problem> {
        let mut events = Vec::new();
        let mut retry_after = None;
        for item in source.interpret_all(parsed).map_err(unprocessable)? {
            let result = match item.map_err(unprocessable) {
                Err(p) => Err(p),
                Ok(Interpretation::Ignored { event_id, .. }) => Ok(Outcome::Ignored { event_id }),
                Ok(Interpretation::Invite(event)) => {
                    let event_id = event.event_id.clone();
                    self.accept(source, *event, keys, deadline)
                        .await
                        .map_err(|p| p.with("eventId", event_id))
                }
            };
            events.push(match result {
                Ok(outcome) => BatchItem::Done(outcome),
                Err(p) => {
                    metrics::refused(p.kind);
                    if p.retryable {
                        let secs = p.retry_after.unwrap_or(BATCH_RETRY_SECS);
                        retry_after = Some(secs.max(retry_after.unwrap_or(0)));
                    }
                    BatchItem::Refused(p.into())
                }
            });
        }
        Ok(Answer::Batch(Batch {
            status: "processed",
            events,
            retry_after,
        }))
    }

    /// Verifies the request; after a mismatch the secret is read again once (rotation), at
    /// most every [`MIN_FORCED_REFRESH`].
    async fn authenticate(
        &self,
        source: &Source,
        req: &Request,
        body: &[u8],
    ) -> Result<Arc<Keyring>, Problem> {
        let refused = |e: inbound::signature::SignatureError| {
            tracing::info!(source = %source.name, reason = %e, "signature verification failed");
            Problem::new(ProblemKind::Signature, "signature verification failed")
        };
        let uri = self.signed_uri(source, req);
        let signed = inbound::signature::Signed {
            headers: req.headers(),
            body,
            method: req.method().as_str(),
            uri: &uri,
            now_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            key_name: source.key_name.as_deref(),
        };
        let keys = self.secrets.get().await.map_err(secret_unavailable)?;
        match source
            .scheme
            .verify(keys.source_keys(&source.name), &signed)
        {
            Ok(()) => return Ok(keys),
            // Only a mismatch can be a rotated key (EventBridge sources take no HTTP at all).
            Err(e)
                if e != inbound::signature::SignatureError::Mismatch
                    || source.scheme == inbound::signature::Scheme::Eventbridge =>
            {
                return Err(refused(e));
            }
            Err(_) => {}
        }
        let fresh = self
            .secrets
            .refresh_after_auth_failure(&keys, MIN_FORCED_REFRESH)
            .await
            .map_err(secret_unavailable)?;
        if Arc::ptr_eq(&fresh, &keys) {
            return Err(refused(inbound::signature::SignatureError::Mismatch));
        }
        source
            .scheme
            .verify(fresh.source_keys(&source.name), &signed)
            .map_err(refused)?;
        Ok(fresh)
    }

    /// The URI the sender signed: the configured public base URL (custom domain, CloudFront)
    /// when set, else the URI as called.
    fn signed_uri(&self, source: &Source, req: &Request) -> String {
        match (
            &self.config.inbound.public_base_url,
            source.scheme.signs_uri(),
        ) {
            (Some(base), true) => {
                let query = req
                    .uri()
                    .query()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                format!(
                    "{}/webhooks/{}{query}",
                    base.as_str().trim_end_matches('/'),
                    source.name
                )
            }
            _ => req.uri().to_string(),
        }
    }
}

/// The HTTP answer: `202` for queued, `200` for the rest, the SOAP acknowledgement for a
/// source that expects it, and `503` with the events when some of a batch must be retried.
fn respond(reply: inbound::Reply, answer: Answer) -> Response<Body> {
    let (status, json) = match answer {
        Answer::Batch(Batch {
            events,
            retry_after: Some(secs),
            ..
        }) => {
            return Problem::new(
                ProblemKind::UpstreamUnavailable,
                "some events of this request must be retried; send it again (completed events answer duplicate)",
            )
            .with("events", serde_json::to_value(events).expect("batch items serialise"))
            .retry_after(secs)
            .into_response();
        }
        _ if reply == inbound::Reply::SalesforceAck => return salesforce_ack(),
        Answer::Batch(b) => (200, serde_json::to_value(b).expect("a batch serialises")),
        Answer::One(o @ Outcome::Queued { .. }) => (202, o.to_json()),
        Answer::One(o) => (200, o.to_json()),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::Text(json.to_string()))
        .expect("static headers are valid")
}

/// The SOAP acknowledgement a Salesforce Outbound Message waits for; without it Salesforce
/// retries the message.
fn salesforce_ack() -> Response<Body> {
    const ACK: &str = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>"#,
        r#"<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>"#,
        r#"</soapenv:Body></soapenv:Envelope>"#
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/xml; charset=utf-8")
        .body(Body::Text(ACK.to_owned()))
        .expect("static headers are valid")
}
