//! The application: dependencies built once at start-up, and the pipeline that turns one event
//! into one outcome, readable top to bottom: [`App::handle`] for webhooks,
//! [`App::process_queued`] and [`App::process_eventbridge`] for the worker, and [`App::run`],
//! which they share.

mod follow_up;

pub use follow_up::{FOLLOW_UP_SOURCE, FollowUp};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use lambda_http::{Body, Request, RequestExt, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use tracing::Instrument;

use crate::config::{Config, ConfigError, Mode, Role};
use crate::delivery::{Channel, Deliverer, DeliveryConfig, DeliveryError, Extras, Message};
use crate::domain::{DisplayName, Invitation, InvitationRequest, InviteeEmail, UserType};
use crate::graph::{ClientCredential, GraphClient, GraphError, GroupAdd};
use crate::inbound::signature::{Key, Scheme};
use crate::inbound::{self, CrmEvent, Interpretation, MapError, Source};
use crate::lifecycle::{Decision, GroupOutcome, decide};
use crate::problem::{Problem, ProblemKind};
use crate::queue::{QueuedEvent, Queues};
use crate::resilience::{Deadline, GraphGate, Paused, Transient, retry};
use crate::secrets::{SecretCache, SecretError, SecretValues};
use crate::store::{Claim, DynamoStore, EventKey, MemoryStore, Progress, Store};
use crate::telemetry::EmailHasher;

/// What the secret provides, decoded once per read of the secret.
pub struct Credentials {
    graph: ClientCredential,
    source_keys: HashMap<String, Vec<Key>>,
    channels: Vec<Channel>,
    hasher: EmailHasher,
}

impl Credentials {
    /// Validates and decodes the secret's values for the configured sources.
    ///
    /// # Errors
    /// A message naming the missing or invalid key.
    pub fn derive(
        values: &SecretValues,
        sources: &[SourceKeys],
        delivery: &DeliveryConfig,
        allow_private: bool,
    ) -> Result<Self, String> {
        let graph = match (
            values.get("graph_client_certificate"),
            values.get("graph_client_private_key"),
        ) {
            (Some(cert), Some(key)) => ClientCredential::Certificate(std::sync::Arc::new(
                crate::graph::CertificateCredential::from_pem(
                    cert.expose_secret(),
                    key.expose_secret(),
                )
                .map_err(|e| format!("secret key {e}"))?,
            )),
            (Some(_), None) | (None, Some(_)) => {
                return Err("secret keys graph_client_certificate and graph_client_private_key go together".into());
            }
            (None, None) => ClientCredential::Secret(
                values
                    .get("graph_client_secret")
                    .ok_or("secret key graph_client_secret (or graph_client_certificate with graph_client_private_key) is required")?
                    .clone(),
            ),
        };
        let hash_seed: &SecretString = values
            .get("graph_client_secret")
            .or_else(|| values.get("graph_client_private_key"))
            .expect("one of them is present");
        let mut source_keys = HashMap::new();
        for SourceKeys {
            name,
            scheme,
            keys,
            organization,
        } in sources
        {
            if *scheme == Scheme::Eventbridge {
                source_keys.insert(name.clone(), Vec::new());
                continue;
            }
            let mut decoded = keys
                .iter()
                .filter_map(|k| {
                    values
                        .get(k)
                        .map(|v| scheme.key(v).map_err(|e| format!("secret key {k}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if decoded.is_empty() {
                return Err(format!(
                    "source {name}: none of the secret keys {keys:?} is set"
                ));
            }
            if let Some(k) = organization {
                let v = values
                    .get(k)
                    .ok_or_else(|| format!("source {name}: secret key {k} is required"))?;
                decoded.push(
                    inbound::signature::organization_key(v)
                        .map_err(|e| format!("secret key {k}: {e}"))?,
                );
            }
            source_keys.insert(name.clone(), decoded);
        }
        let channels = Channel::resolve(delivery, values, allow_private)?;
        let hash_key: Vec<u8> = match values.get("log_hash_key") {
            Some(k) => k.expose_secret().as_bytes().to_vec(),
            None => {
                let mut mac = Hmac::<Sha256>::new_from_slice(hash_seed.expose_secret().as_bytes())
                    .expect("any key length");
                mac.update(b"invite-relay log hash");
                mac.finalize().into_bytes().to_vec()
            }
        };
        Ok(Self {
            graph,
            source_keys,
            channels,
            hasher: EmailHasher::new(&hash_key),
        })
    }

    fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// Where a source's keys are in the secret.
pub struct SourceKeys {
    pub name: String,
    pub scheme: Scheme,
    /// Keys of the signing or credential values (any of them verifies).
    pub keys: Vec<String>,
    /// The key of a second factor (the Salesforce org id), required when set.
    pub organization: Option<String>,
}

/// Start-up failure: the function should not take events.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("start-up failed: {0}")]
    Secret(#[from] SecretError),
}

/// Time kept in reserve to answer after the deadline's work is cut off.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// Deadline when the invocation's is unknown (local runs).
const DEFAULT_BUDGET: Duration = Duration::from_secs(25);

/// The function's dependencies, built once per container.
pub struct App {
    config: Config,
    secrets: SecretCache<Credentials>,
    graph: GraphClient,
    gate: GraphGate,
    deliverer: Deliverer,
    store: Store,
    queues: Queues,
    /// How long start-up's secret read took (for the start-up timings line).
    secret_read_us: u64,
}

/// A successful outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ignored {
        event_id: String,
    },
    Queued {
        event_id: String,
    },
    Invited {
        event_id: String,
        invitation_id: String,
        invited_user_id: String,
        delivered: Vec<String>,
        groups: Vec<GroupOutcome>,
    },
    /// The invitee already exists and the existing-user policy says not to invite.
    Exists {
        event_id: String,
        invited_user_id: String,
        why: &'static str,
    },
    Duplicate {
        event_id: String,
        progress: Progress,
    },
    /// Several events from one body, each with its own outcome; `retry_after` when some can
    /// succeed later (the sender should send the body again: completed events then answer
    /// `duplicate`).
    Batch {
        items: Vec<serde_json::Value>,
        retry_after: Option<u64>,
    },
}

impl Outcome {
    /// The JSON answer (never the redeem URL).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Outcome::Ignored { event_id } => json!({"status": "ignored", "eventId": event_id}),
            Outcome::Queued { event_id } => json!({"status": "queued", "eventId": event_id}),
            Outcome::Invited {
                event_id,
                invitation_id,
                invited_user_id,
                delivered,
                groups,
            } => {
                let mut v = json!({
                    "status": "invited",
                    "eventId": event_id,
                    "invitationId": invitation_id,
                    "invitedUserId": invited_user_id,
                    "delivered": delivered,
                });
                if !groups.is_empty() {
                    v["groups"] = json!(groups);
                }
                v
            }
            Outcome::Exists {
                event_id,
                invited_user_id,
                why,
            } => json!({
                "status": "exists",
                "eventId": event_id,
                "invitedUserId": invited_user_id,
                "existing": why,
            }),
            Outcome::Duplicate { event_id, progress } => {
                let mut delivered = progress.delivered.clone();
                delivered.sort();
                json!({
                    "status": "duplicate",
                    "eventId": event_id,
                    "invitationId": progress.invitation_id,
                    "invitedUserId": progress.invited_user_id,
                    "delivered": delivered,
                })
            }
            Outcome::Batch { items, .. } => json!({"status": "processed", "events": items}),
        }
    }

    fn into_response(self) -> Response<Body> {
        if let Outcome::Batch {
            items,
            retry_after: Some(secs),
        } = self
        {
            let mut p = Problem::new(
                ProblemKind::UpstreamUnavailable,
                "some events of this request must be retried; send it again (completed events answer duplicate)",
            )
            .with("events", items);
            p.retry_after = Some(secs);
            return p.into_response();
        }
        let status = if matches!(self, Outcome::Queued { .. }) {
            202
        } else {
            200
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .body(Body::Text(self.to_json().to_string()))
            .expect("static headers are valid")
    }
}

impl Outcome {
    /// A batch of which some events must be sent again.
    fn must_retry(&self) -> bool {
        matches!(
            self,
            Outcome::Batch {
                retry_after: Some(_),
                ..
            }
        )
    }
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

/// An event ready for Graph: every value validated.
struct Plan {
    key: EventKey,
    request: InvitationRequest,
    channels: Vec<String>,
    /// Groups to join: `[invitations] groups` and the route's.
    groups: Vec<String>,
    extras: Extras,
    /// A reminder for a pending invitation: no existing-user policy, sponsors or groups (the
    /// first invitation applied them), and no new invitee pointer.
    follow_up: bool,
}

/// Why an invitation attempt did not produce an invitation.
#[derive(Debug)]
enum InviteError {
    Graph(GraphError),
    Paused(Paused),
}

impl Transient for InviteError {
    fn is_transient(&self) -> bool {
        matches!(self, InviteError::Graph(e) if e.is_transient())
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            InviteError::Graph(e) => e.retry_after(),
            InviteError::Paused(_) => None,
        }
    }
}

impl App {
    /// Reads configuration from the environment, AWS settings from the SDK's standard sources
    /// (`AWS_ENDPOINT_URL`, region, credentials), and the secret once.
    ///
    /// # Errors
    /// [`InitError`] with one line saying what to fix.
    pub async fn from_env(role: Role) -> Result<Self, InitError> {
        let started_unix_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let start = std::time::Instant::now();
        let config = Config::from_env()?;
        config.require_for(role)?;
        let config_done = start.elapsed();
        // Built once here (timed) and shared by every client below.
        crate::delivery::guard::tls_config().map_err(ConfigError)?;
        let tls_done = start.elapsed();
        let aws_http = crate::aws::default_client(config.outbound_timeout).map_err(ConfigError)?;
        let sdk = crate::aws::loader(aws_http).load().await;
        let sdk_done = start.elapsed();
        let app = Self::new(config, &sdk).await?;
        // Where a cold start's init time goes (the benchmarks read this line).
        tracing::info!(
            target: "invite_relay::startup",
            started_unix_us,
            config_us = config_done.as_micros() as u64,
            tls_us = (tls_done - config_done).as_micros() as u64,
            aws_config_us = (sdk_done - tls_done).as_micros() as u64,
            app_us = (start.elapsed() - sdk_done).as_micros() as u64,
            secret_read_us = app.secret_read_us,
            "start-up timings"
        );
        Ok(app)
    }

    /// Builds the application and reads the secret, so a deployment without usable credentials
    /// or channels fails at start-up rather than on its first event.
    ///
    /// # Errors
    /// [`InitError`] with one line saying what to fix.
    pub async fn new(config: Config, sdk: &aws_config::SdkConfig) -> Result<Self, InitError> {
        let sources: Vec<SourceKeys> = config
            .sources
            .values()
            .map(|s| SourceKeys {
                name: s.name.clone(),
                scheme: s.scheme,
                keys: s.secret_keys.clone(),
                organization: s.organization_secret.clone(),
            })
            .collect();
        let allow_private = config.delivery_allow_private_networks;
        if allow_private {
            tracing::warn!(
                "DELIVERY_ALLOW_PRIVATE_NETWORKS=true: delivery URLs may use http and private addresses"
            );
        }
        let secrets = SecretCache::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            config.secret_id.clone(),
            config.secret_ttl,
            {
                let delivery = config.delivery.clone();
                move |values| Credentials::derive(values, &sources, &delivery, allow_private)
            },
        );
        let before_secret = std::time::Instant::now();
        let creds = if config.secret_read_at_start {
            Some(secrets.get().await?)
        } else {
            None
        };
        let secret_us = before_secret.elapsed().as_micros() as u64;
        let store = match &config.idempotency_table {
            Some(table) => Store::Dynamo(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                table.clone(),
                config.idempotency_retention,
            )),
            None => Store::Memory(MemoryStore::new(config.idempotency_retention)),
        };
        tracing::info!(
            sources = ?config.sources.keys().collect::<Vec<_>>(),
            channels = ?creds.as_ref().map(|creds| creds.channels.iter().map(|c| format!("{}:{}", c.name, c.kind.name())).collect::<Vec<_>>()),
            routes = !config.delivery.routes.is_empty(),
            mode = ?config.mode,
            durable_store = config.idempotency_table.is_some(),
            "invite-relay ready"
        );
        let tls = crate::delivery::guard::tls_config().map_err(ConfigError)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .timeout(config.outbound_timeout)
            .connect_timeout(config.outbound_timeout.min(Duration::from_secs(3)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("invite-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("static client configuration is valid");
        Ok(Self {
            graph: GraphClient::new(http, &config.graph),
            gate: GraphGate::new(config.invite_rate_per_minute, config.graph_cooldown),
            deliverer: Deliverer::new(
                config.outbound_timeout,
                allow_private,
                sdk,
                &config.delivery,
                tls,
            ),
            queues: Queues::new(
                sdk,
                config.queue_url.clone(),
                config.dead_letter_queue_url.clone(),
            ),
            store,
            secrets,
            config,
            secret_read_us: secret_us,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Answers one Lambda HTTP event (Function URL, HTTP API or REST API) with its response
    /// object. Whatever the event holds, the answer is an HTTP response (problem+json for a
    /// refusal), never a panic: see [`inbound::lambda`].
    pub async fn on_lambda_event(
        &self,
        event: serde_json::Value,
        context: Option<lambda_runtime::Context>,
    ) -> serde_json::Value {
        match inbound::lambda::to_request(event, context) {
            Ok(req) => {
                let origin = req
                    .extensions()
                    .get::<inbound::lambda::Called>()
                    .map_or(inbound::lambda::Origin::V2, |c| c.origin);
                inbound::lambda::to_event_response(origin, self.handle(req).await)
            }
            Err(refused) => {
                tracing::info!(
                    status = refused.problem.status().as_u16(),
                    problem = refused.problem.kind.slug(),
                    "request refused"
                );
                inbound::lambda::refusal_response(refused)
            }
        }
    }

    /// Answers one HTTP request within the invocation's deadline. Never panics on input; every
    /// refusal is problem+json.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let deadline_ms = req.lambda_context_ref().map_or(0, |c| c.deadline);
        self.handle_until(
            req,
            Deadline::from_lambda(deadline_ms, ANSWER_MARGIN, DEFAULT_BUDGET),
        )
        .await
    }

    /// [`App::handle`] with an explicit deadline.
    pub async fn handle_until(&self, req: Request, deadline: Deadline) -> Response<Body> {
        let reply = inbound::http::source_name(&req)
            .and_then(|name| self.config.sources.get(name))
            .map(|s| s.reply)
            .unwrap_or_default();
        match self.process(&req, deadline).await {
            Ok(outcome) if reply == inbound::Reply::SalesforceAck && !outcome.must_retry() => {
                salesforce_ack()
            }
            Ok(outcome) => outcome.into_response(),
            Err(problem) => {
                let status = problem.status().as_u16();
                if status >= 500 {
                    tracing::warn!(status, problem = problem.kind.slug(), "request failed");
                } else {
                    tracing::info!(status, problem = problem.kind.slug(), "request refused");
                }
                problem.into_response()
            }
        }
    }

    async fn process(&self, req: &Request, deadline: Deadline) -> Result<Outcome, Problem> {
        let source = inbound::http::source_name(req)
            .and_then(|name| self.config.sources.get(name))
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::NotFound,
                    "POST to /webhooks/{source} with a configured source",
                )
            })?;
        let body = inbound::http::checked_body(req, self.config.max_body_bytes, source.format)?;
        let creds = self.verified(source, req, body).await?;
        let delivery_id = source.scheme.delivery_id(req.headers());
        if let Some(id) = &delivery_id
            && let Some((key, progress)) = self
                .store
                .completed_delivery(&source.name, id)
                .await
                .map_err(store_unavailable)?
        {
            tracing::info!(source = %source.name, event_id = %creds.hasher.loggable(&key.event_id), "replayed delivery answered as a duplicate");
            return Ok(Outcome::Duplicate {
                event_id: key.event_id,
                progress,
            });
        }
        let parsed = match source.format {
            inbound::BodyFormat::Json => inbound::json::parse(body),
            inbound::BodyFormat::Xml => inbound::xml::to_json(body),
        }
        .map_err(|e| Problem::new(ProblemKind::Malformed, e))?;
        if !source.is_batch() {
            let event = match source.interpret(&parsed).map_err(unprocessable)? {
                Interpretation::Ignored {
                    event_id,
                    event_type,
                } => {
                    tracing::info!(source = %source.name, event_id = %creds.hasher.loggable(&event_id), event_type = %creds.hasher.loggable(event_type.as_deref().unwrap_or("")), "event ignored by filter");
                    return Ok(Outcome::Ignored { event_id });
                }
                Interpretation::Invite(event) => event,
            };
            return self
                .accept(source, *event, &creds, deadline, delivery_id)
                .await;
        }
        // A body with several events: each is processed (and can fail) on its own.
        let mut items = Vec::new();
        let mut retry_after = None;
        for item in source.interpret_all(&parsed).map_err(unprocessable)? {
            let result = match item.map_err(unprocessable) {
                Err(p) => Err(p),
                Ok(Interpretation::Ignored { event_id, .. }) => Ok(Outcome::Ignored { event_id }),
                Ok(Interpretation::Invite(event)) => {
                    let event_id = event.event_id.clone();
                    self.accept(source, *event, &creds, deadline, None)
                        .await
                        .map_err(|p| p.with("eventId", event_id))
                }
            };
            items.push(match result {
                Ok(outcome) => outcome.to_json(),
                Err(p) => {
                    if p.retryable {
                        retry_after = Some(p.retry_after.unwrap_or(30).max(retry_after.unwrap_or(0)));
                    }
                    let mut v = json!({"status": "refused", "problem": format!("{}{}", crate::problem::TYPE_PREFIX, p.kind.slug()), "detail": p.detail});
                    if let (Some(obj), serde_json::Value::Object(ext)) = (v.as_object_mut(), serde_json::Value::Object(p.extensions)) {
                        obj.extend(ext);
                    }
                    v
                }
            });
        }
        Ok(Outcome::Batch { items, retry_after })
    }

    /// Takes one verified, interpreted event: validates it, then invites and delivers now (sync
    /// mode) or enqueues it for the worker (queue mode).
    async fn accept(
        &self,
        source: &Source,
        event: CrmEvent,
        creds: &Credentials,
        deadline: Deadline,
        delivery_id: Option<String>,
    ) -> Result<Outcome, Problem> {
        let span = tracing::info_span!("event", source = %source.name, event_id = %creds.hasher.loggable(&event.event_id));
        async {
            let plan = self.plan(source, &event, creds)?;
            tracing::info!(invitee = %creds.hasher.hash(&plan.request.invited_user_email_address), "event accepted");
            match self.config.mode {
                Mode::Sync => self.run(plan, creds, deadline, delivery_id.as_deref()).await,
                Mode::Queue => {
                    if let Some(progress) = self.store.completed(&plan.key).await.map_err(store_unavailable)? {
                        return Ok(Outcome::Duplicate { event_id: plan.key.event_id, progress });
                    }
                    let queued = QueuedEvent { v: 1, source: source.name.clone(), delivery_id, event };
                    self.queues.enqueue(&queued).await.map_err(|e| {
                        tracing::error!(error = %e, "enqueue failed");
                        let mut p = Problem::new(ProblemKind::UpstreamUnavailable, "the event could not be queued; retry later");
                        p.retry_after = Some(30);
                        p
                    })?;
                    tracing::info!("event queued");
                    Ok(Outcome::Queued { event_id: plan.key.event_id })
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Processes one event from the queue (the body of an SQS message). Errors say whether a
    /// later attempt can succeed ([`Problem::retryable`]).
    pub async fn process_queued(&self, body: &str, deadline: Deadline) -> Result<Outcome, Problem> {
        let q: QueuedEvent = serde_json::from_str(body).map_err(|_| {
            Problem::new(
                ProblemKind::Malformed,
                "the queue message is not a queued event",
            )
        })?;
        let source = self.config.sources.get(&q.source).ok_or_else(|| {
            Problem::new(
                ProblemKind::NotFound,
                "the queue message names a source that is not configured",
            )
        })?;
        let creds = self.secrets.get().await.map_err(secret_unavailable)?;
        let span = tracing::info_span!("event", source = %source.name, event_id = %creds.hasher.loggable(&q.event.event_id));
        async {
            let plan = self.plan(source, &q.event, &creds)?;
            self.run(plan, &creds, deadline, q.delivery_id.as_deref())
                .await
        }
        .instrument(span)
        .await
    }

    /// Processes one Amazon EventBridge event (e.g. a Salesforce Platform Event relayed by Event
    /// Relay) through the source whose `eventbridge_source` matches the event's `source`.
    pub async fn process_eventbridge(
        &self,
        envelope: &serde_json::Value,
        deadline: Deadline,
    ) -> Result<Outcome, Problem> {
        let origin = envelope
            .get("source")
            .and_then(|s| s.as_str())
            .unwrap_or("");
        let source = self
            .config
            .sources
            .values()
            .find(|s| {
                s.eventbridge_source
                    .as_deref()
                    .is_some_and(|p| origin.starts_with(p))
            })
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::NotFound,
                    "no source is configured for this EventBridge source",
                )
            })?;
        let creds = self.secrets.get().await.map_err(secret_unavailable)?;
        let event = match source.interpret(envelope).map_err(unprocessable)? {
            Interpretation::Ignored { event_id, .. } => return Ok(Outcome::Ignored { event_id }),
            Interpretation::Invite(event) => event,
        };
        let span = tracing::info_span!("event", source = %source.name, event_id = %creds.hasher.loggable(&event.event_id));
        async {
            let plan = self.plan(source, &event, &creds)?;
            self.run(plan, &creds, deadline, None).await
        }
        .instrument(span)
        .await
    }

    /// Parks an event that can't succeed on the dead-letter queue with its reason.
    ///
    /// # Errors
    /// The queue error, when even parking failed (the caller then lets the message return).
    pub async fn park(
        &self,
        body: &str,
        problem: &Problem,
        source: &str,
        event_id: &str,
    ) -> Result<(), crate::queue::QueueError> {
        self.queues
            .park(body, &problem.reason(), source, event_id)
            .await?;
        tracing::error!(
            alarm = "event_dead_lettered",
            problem = problem.kind.slug(),
            "event parked on the dead-letter queue"
        );
        Ok(())
    }

    /// Verifies the signature; after a mismatch the secret is read again once (rotation).
    async fn verified(
        &self,
        source: &Source,
        req: &Request,
        body: &[u8],
    ) -> Result<Arc<Credentials>, Problem> {
        let refused = || Problem::new(ProblemKind::Signature, "signature verification failed");
        let uri = match (&self.config.public_base_url, source.scheme.signs_uri()) {
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
        };
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let signed = inbound::signature::Signed {
            headers: req.headers(),
            body,
            method: req.method().as_str(),
            uri: &uri,
            now_unix,
            key_name: source.key_name.as_deref(),
        };
        let mut creds = self.secrets.get().await.map_err(secret_unavailable)?;
        for attempt in 0..2 {
            let keys = creds
                .source_keys
                .get(&source.name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            match source.scheme.verify(keys, &signed) {
                Ok(()) => return Ok(creds),
                Err(e)
                    if attempt == 0
                        && e == inbound::signature::SignatureError::Mismatch
                        && source.scheme != Scheme::Eventbridge =>
                {
                    let fresh = self
                        .secrets
                        .refresh_after_auth_failure(&creds, crate::secrets::MIN_FORCED_REFRESH)
                        .await
                        .map_err(secret_unavailable)?;
                    if Arc::ptr_eq(&fresh, &creds) {
                        tracing::info!(source = %source.name, reason = %e, "signature verification failed");
                        return Err(refused());
                    }
                    creds = fresh;
                }
                Err(e) => {
                    tracing::info!(source = %source.name, reason = %e, "signature verification failed");
                    return Err(refused());
                }
            }
        }
        Err(refused())
    }

    /// Validates every value the invitation and delivery need, before anything leaves.
    fn plan(
        &self,
        source: &Source,
        event: &CrmEvent,
        creds: &Credentials,
    ) -> Result<Plan, Problem> {
        let email = InviteeEmail::parse(&event.email)
            .and_then(|e| self.config.invitee_domains.check(&e).map(|()| e))
            .map_err(|rule| {
                Problem::new(ProblemKind::InvalidInvitee, rule.to_string()).with("field", "email")
            })?;
        let user_type = match event.user_type.as_deref() {
            None => UserType::Guest,
            Some(raw) => UserType::parse(raw).ok_or_else(|| {
                Problem::new(
                    ProblemKind::Unprocessable,
                    "userType must be Guest or Member",
                )
                .with("field", "userType")
            })?,
        };
        if user_type == UserType::Member && !self.config.allow_member_invitations {
            return Err(Problem::new(
                ProblemKind::Unprocessable,
                "Member invitations are not enabled (ALLOW_MEMBER_INVITATIONS)",
            )
            .with("field", "userType"));
        }
        let redirect = self
            .config
            .redirect
            .choose(event.redirect_url.as_deref())
            .map_err(|rule| {
                Problem::new(ProblemKind::RedirectNotAllowed, rule.to_string())
                    .with("field", "redirectUrl")
            })?;
        let display_name = event.display_name.as_deref().and_then(DisplayName::parse);
        let extras = Extras::from_event(event)
            .map_err(|e| Problem::new(ProblemKind::Unprocessable, e).with("field", "owner"))?;
        let ctx = crate::delivery::context(
            &source.name,
            &event.event_id,
            email.as_str(),
            display_name.as_ref().map(DisplayName::as_str),
            &extras,
            None,
            None,
        );
        let (channels, route_groups) = self.channels_for(event.channels.as_deref(), creds, &ctx)?;
        let mut groups = self.config.lifecycle.groups.clone();
        for g in route_groups {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        // Every chosen channel's message renders for this event (with a stand-in link), so a
        // template that fails on these values refuses the event before anything is invited.
        {
            let sample = crate::delivery::sample_invitation();
            let msg = Message {
                source: &source.name,
                event_id: &event.event_id,
                email: &email,
                display_name: display_name.as_ref(),
                extras: &extras,
                invitation: &sample,
            };
            for c in channels.iter().filter_map(|n| creds.channel(n)) {
                crate::delivery::render(&c.name, c.kind, &self.config.delivery.templates, &msg)
                    .map_err(|e| {
                        Problem::new(ProblemKind::Unprocessable, e.to_string())
                            .with("channel", c.name.clone())
                    })?;
            }
        }
        if let Some(owner) = &extras.owner_email {
            let refused = channels.iter().filter_map(|n| creds.channel(n)).find(|c| {
                c.email()
                    .is_some_and(|e| e.cc_owner && !e.cc_allowed(owner))
            });
            if let Some(c) = refused {
                return Err(Problem::new(
                    ProblemKind::Unprocessable,
                    format!(
                        "the owner email is outside the domains channel {} may copy",
                        c.name
                    ),
                )
                .with("field", "ownerEmail"));
            }
        }
        Ok(Plan {
            key: EventKey {
                source: source.name.clone(),
                event_id: event.event_id.clone(),
            },
            request: InvitationRequest::new(email, display_name, user_type, redirect),
            channels,
            groups,
            extras,
            follow_up: false,
        })
    }

    /// The event's requested channels (all must exist), else the first matching route's,
    /// else every channel.
    fn channels_for(
        &self,
        requested: Option<&[String]>,
        creds: &Credentials,
        ctx: &minijinja::Value,
    ) -> Result<(Vec<String>, Vec<String>), Problem> {
        let mut groups = Vec::new();
        let configured: Vec<String> = creds.channels.iter().map(|c| c.name.clone()).collect();
        let chosen: Vec<String> = match requested.filter(|r| !r.is_empty()) {
            Some(requested) => {
                for name in requested {
                    if !configured.iter().any(|c| c == name.trim()) {
                        return Err(Problem::new(
                            ProblemKind::Unprocessable,
                            "delivery.channels names a channel that is not configured",
                        )
                        .with("field", "delivery.channels")
                        .with("known", configured.clone()));
                    }
                }
                requested.iter().map(|n| n.trim().to_owned()).collect()
            }
            None if self.config.delivery.routes.is_empty() => configured,
            None => {
                let route = self.config.delivery.routes.choose(ctx).map_err(|e| {
                    Problem::new(ProblemKind::Unprocessable, e).with("field", "routes")
                })?;
                match route {
                    Some(r) => {
                        tracing::debug!(route = %r.name, "route chosen");
                        groups.clone_from(&r.groups);
                        r.channels.clone()
                    }
                    None => {
                        return Err(Problem::new(
                            ProblemKind::NoRoute,
                            "no routing rule matches this event",
                        ));
                    }
                }
            }
        };
        let mut out: Vec<String> = Vec::new();
        for c in chosen {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        Ok((out, groups))
    }

    /// Invite, then deliver to each channel not yet delivered, recording each step, all within
    /// `deadline`.
    async fn run(
        &self,
        plan: Plan,
        creds: &Credentials,
        deadline: Deadline,
        delivery_id: Option<&str>,
    ) -> Result<Outcome, Problem> {
        let event_id = plan.key.event_id.clone();
        let lock_for = deadline.remaining() + ANSWER_MARGIN;
        let progress = match self
            .store
            .claim(&plan.key, lock_for)
            .await
            .map_err(store_unavailable)?
        {
            Claim::Completed(progress) => {
                tracing::info!("duplicate of a completed event");
                return Ok(Outcome::Duplicate { event_id, progress });
            }
            Claim::InProgress => {
                let mut p = Problem::new(
                    ProblemKind::InProgress,
                    "this event is being processed; retry later",
                );
                p.retry_after = Some(30);
                return Err(p);
            }
            Claim::Acquired(progress) => progress,
        };
        let pending: Vec<String> = plan
            .channels
            .iter()
            .filter(|c| !progress.delivered.contains(c))
            .cloned()
            .collect();
        if let (true, Some(invitation_id), Some(invited_user_id)) = (
            pending.is_empty(),
            progress.invitation_id.clone(),
            progress.invited_user_id.clone(),
        ) {
            // Everything was delivered; only the completion record was missing.
            self.record(self.store.complete(&plan.key).await);
            return Ok(Outcome::Invited {
                event_id,
                invitation_id,
                invited_user_id,
                delivered: progress.delivered,
                groups: Vec::new(),
            });
        }

        // The existing-user policy applies before the first invitation only: a retry after a
        // partial delivery must finish what the first attempt started.
        let decision = if self.config.lifecycle.looks_up_users()
            && progress.invitation_id.is_none()
            && !plan.follow_up
        {
            let email = plan.request.invited_user_email_address.as_str();
            match retry(deadline, || self.graph.find_user(&creds.graph, email)).await {
                Ok(found) => decide(self.config.lifecycle.existing_users, found.as_ref()),
                Err(e) => {
                    self.record(self.store.release(&plan.key).await);
                    return Err(lookup_problem(e));
                }
            }
        } else {
            Decision::Invite
        };
        let mut request = plan.request.clone();
        match decision {
            Decision::Exists { user_id, why } => {
                tracing::info!(existing = why, "the invitee already exists; not invited");
                self.record(self.store.complete(&plan.key).await);
                return Ok(Outcome::Exists {
                    event_id,
                    invited_user_id: user_id,
                    why,
                });
            }
            Decision::Reset(user_id) => {
                request.reset_redemption = true;
                request.invited_user = Some(user_id);
            }
            Decision::Invite => {}
        }
        if !plan.follow_up {
            request.invited_user_sponsors = self.sponsors(creds, &plan.extras, deadline).await;
        }
        // Microsoft's own email, when a pending channel asks for it, goes with the invitation.
        let graph_mail = pending
            .iter()
            .filter_map(|n| creds.channel(n))
            .find(|c| c.sent_by_graph());
        if let Some(ch) = graph_mail {
            let ctx = crate::delivery::context(
                &plan.key.source,
                &plan.key.event_id,
                plan.request.invited_user_email_address.as_str(),
                plan.request
                    .invited_user_display_name
                    .as_ref()
                    .map(DisplayName::as_str),
                &plan.extras,
                None,
                None,
            );
            match crate::delivery::microsoft_message(
                &ch.name,
                &self.config.delivery.templates,
                &plan.extras,
                &ctx,
                &ch.cc_for(&plan.extras),
            ) {
                Ok(info) => {
                    request.send_invitation_message = true;
                    request.invited_user_message_info = Some(info);
                }
                Err(e) => {
                    self.record(self.store.release(&plan.key).await);
                    return Err(Problem::new(ProblemKind::Unprocessable, e.to_string())
                        .with("channel", ch.name.clone()));
                }
            }
        }

        let invitation = match self.invite(creds, &request, deadline).await {
            Ok(i) => i,
            Err(e) => {
                self.record(self.store.release(&plan.key).await);
                return Err(invite_problem(e));
            }
        };
        self.record(
            self.store
                .record_invited(&plan.key, &invitation.id, &invitation.invited_user_id)
                .await,
        );

        let msg = Message {
            source: &plan.key.source,
            event_id: &plan.key.event_id,
            email: &plan.request.invited_user_email_address,
            display_name: plan.request.invited_user_display_name.as_ref(),
            extras: &plan.extras,
            invitation: &invitation,
        };
        let mut delivered = progress.delivered.clone();
        if let Some(ch) = graph_mail {
            tracing::info!(channel = %ch.name, "delivered by Microsoft with the invitation");
            self.record(self.store.record_delivered(&plan.key, &ch.name).await);
            delivered.push(ch.name.clone());
        }
        let mut failed: Vec<(String, DeliveryError)> = Vec::new();
        for name in pending
            .into_iter()
            .filter(|n| graph_mail.is_none_or(|c| &c.name != n))
        {
            let Some(channel) = creds.channel(&name) else {
                failed.push((name, DeliveryError::Blocked));
                continue;
            };
            let attempt = || async {
                // A call that could be cut off by the deadline might land without us knowing:
                // don't start one.
                if deadline.remaining() < self.config.outbound_timeout {
                    return Err(DeliveryError::Deferred);
                }
                deadline
                    .bound(
                        self.deliverer
                            .send(channel, &self.config.delivery.templates, &msg),
                        DeliveryError::Unavailable("deadline reached".into()),
                    )
                    .await
            };
            match retry(deadline, attempt).await {
                Ok(()) => {
                    tracing::info!(channel = %name, "delivered");
                    self.record(self.store.record_delivered(&plan.key, &name).await);
                    delivered.push(name);
                }
                Err(e) => {
                    tracing::warn!(channel = %name, error = %e, "delivery failed");
                    failed.push((name, e));
                }
            }
        }
        if !failed.is_empty() {
            tracing::warn!(
                delivered = delivered.len(),
                failed = failed.len(),
                "delivery incomplete; a retry re-invites and delivers to the remaining channels"
            );
            self.record(self.store.release(&plan.key).await);
            return Err(delivery_problem(&invitation, &delivered, &failed));
        }
        let groups = self
            .join_groups(creds, &plan.groups, &invitation.invited_user_id, deadline)
            .await;
        self.record(self.store.complete(&plan.key).await);
        if !plan.follow_up {
            self.record(
                self.store
                    .remember_invitee(
                        &invitation.invited_user_id,
                        crate::store::Invitee {
                            event: plan.key.clone(),
                            channels: delivered.clone(),
                        },
                    )
                    .await,
            );
        }
        if let Some(id) = delivery_id {
            self.record(
                self.store
                    .remember_delivery(&plan.key.source, id, &plan.key)
                    .await,
            );
        }
        Ok(Outcome::Invited {
            event_id,
            invitation_id: invitation.id,
            invited_user_id: invitation.invited_user_id,
            delivered,
            groups,
        })
    }

    /// The guest's sponsors: the configured ones and, with `sponsor_owner`, the event's owner
    /// (by object id, or resolved from their email). An owner who can't be resolved is logged
    /// and left out: the invitation goes ahead.
    async fn sponsors(
        &self,
        creds: &Credentials,
        extras: &Extras,
        deadline: Deadline,
    ) -> Vec<String> {
        let lifecycle = &self.config.lifecycle;
        let mut ids = lifecycle.sponsors.clone();
        if lifecycle.sponsor_owner {
            let owner = match (&extras.owner_id, &extras.owner_email) {
                (Some(id), _) => Some(id.clone()),
                (None, Some(email)) => {
                    match retry(deadline, || self.graph.find_user(&creds.graph, email)).await {
                        Ok(Some(u)) if !u.is_guest() => Some(u.id),
                        Ok(_) => {
                            tracing::warn!(
                                alarm = "sponsor_unresolved",
                                "the owner is not a member of the directory; no sponsor set"
                            );
                            None
                        }
                        Err(e) => {
                            tracing::warn!(alarm = "sponsor_unresolved", error = %e, "the owner could not be looked up; no sponsor set");
                            None
                        }
                    }
                }
                (None, None) => None,
            };
            if let Some(id) = owner
                && !ids.contains(&id)
            {
                ids.insert(0, id);
            }
        }
        if ids.len() > crate::domain::MAX_SPONSORS {
            tracing::warn!(
                sponsors = ids.len(),
                "more than five sponsors; the first five are kept"
            );
            ids.truncate(crate::domain::MAX_SPONSORS);
        }
        ids
    }

    /// Adds the guest to each group, retrying the 404 of a user not yet replicated. A failure
    /// is reported and alarmed, never undoes the delivered invitation.
    async fn join_groups(
        &self,
        creds: &Credentials,
        groups: &[String],
        user_id: &str,
        deadline: Deadline,
    ) -> Vec<GroupOutcome> {
        let mut out = Vec::new();
        for id in groups {
            let attempt = || async {
                if deadline.remaining() < self.config.outbound_timeout {
                    return Err(GraphError::Unavailable {
                        reason: "not enough time left in this invocation".into(),
                        retry_after: None,
                    });
                }
                self.graph.add_to_group(&creds.graph, id, user_id).await
            };
            let outcome = match retry(deadline, attempt).await {
                Ok(GroupAdd::Added) => ("added", None),
                Ok(GroupAdd::AlreadyMember) => ("already-member", None),
                Err(e) => {
                    tracing::error!(alarm = "group_add_failed", group = %id, error = %e, "the guest was not added to a group");
                    ("failed", Some(e.to_string()))
                }
            };
            out.push(GroupOutcome {
                id: id.clone(),
                status: outcome.0,
                reason: outcome.1,
            });
        }
        out
    }

    /// A progress write that failed after its side effect happened can't be undone: it is
    /// logged (a later retry may then repeat that step) and processing goes on.
    fn record(&self, r: Result<(), crate::store::StoreError>) {
        if let Err(e) = r {
            tracing::error!(alarm = "idempotency_write_failed", error = %e, "progress not recorded");
        }
    }

    /// Creates the invitation under the pacing gate, retrying throttling and transient failures
    /// within the deadline. A refused credential re-reads the secret once (rotation).
    async fn invite(
        &self,
        creds: &Credentials,
        req: &InvitationRequest,
        deadline: Deadline,
    ) -> Result<Invitation, InviteError> {
        let attempt = || async {
            if deadline.remaining() < self.config.outbound_timeout {
                return Err(InviteError::Paused(Paused {
                    retry_after: Duration::from_secs(1),
                    reason: "not enough time left in this invocation",
                }));
            }
            self.gate
                .admit(deadline)
                .await
                .map_err(InviteError::Paused)?;
            let timeout = GraphError::Unavailable {
                reason: "timeout (deadline)".into(),
                retry_after: None,
            };
            let result = deadline.bound(self.invite_once(creds, req), timeout).await;
            match &result {
                Err(GraphError::Rejected { status: 403, .. }) => self.gate.blocked(),
                Err(GraphError::Throttled { retry_after }) => self.gate.throttled(*retry_after),
                _ => {}
            }
            result.map_err(InviteError::Graph)
        };
        retry(deadline, attempt).await
    }

    async fn invite_once(
        &self,
        creds: &Credentials,
        req: &InvitationRequest,
    ) -> Result<Invitation, GraphError> {
        match self.graph.invite(&creds.graph, req).await {
            Err(GraphError::CredentialRefused(reason)) => {
                let current = self
                    .secrets
                    .get()
                    .await
                    .map_err(|_| GraphError::CredentialRefused(reason.clone()))?;
                let fresh = self
                    .secrets
                    .refresh_after_auth_failure(&current, Duration::ZERO)
                    .await
                    .map_err(|_| GraphError::CredentialRefused(reason.clone()))?;
                if Arc::ptr_eq(&fresh, &current) {
                    return Err(GraphError::CredentialRefused(reason));
                }
                tracing::info!("app credential refused; retrying with the re-read secret");
                self.graph.invite(&fresh.graph, req).await
            }
            other => other,
        }
    }
}

fn unprocessable(e: MapError) -> Problem {
    let field = match &e {
        MapError::Missing(f) | MapError::WrongType(f, _) | MapError::Invalid(f, _) => {
            Some(f.clone())
        }
        MapError::Filter(_) => None,
    };
    // A value of the wrong type is a malformed request (400); a missing or unusable one is an
    // event we can't process (422).
    let kind = match &e {
        MapError::WrongType(..) => ProblemKind::Malformed,
        _ => ProblemKind::Unprocessable,
    };
    let p = Problem::new(kind, e.to_string());
    match field {
        Some(f) => p.with("field", f),
        None => p,
    }
}

fn secret_unavailable(e: SecretError) -> Problem {
    tracing::error!(error = %e, "secret unavailable");
    let mut p = Problem::new(
        ProblemKind::UpstreamUnavailable,
        "configuration secret unavailable; retry later",
    );
    p.retry_after = Some(30);
    p
}

/// The existing-user query failed: a refusal (usually a missing `User.Read.All`) or Graph
/// being unavailable.
fn lookup_problem(e: GraphError) -> Problem {
    match e {
        GraphError::Rejected { status, code } => Problem::new(
            ProblemKind::UpstreamAuth,
            "Graph refused the existing-user query; the app needs User.Read.All for existing_users policies",
        )
        .with("graphStatus", status)
        .with("graphCode", code)
        .retryable(true),
        other => invite_problem(InviteError::Graph(other)),
    }
}

fn store_unavailable(e: crate::store::StoreError) -> Problem {
    tracing::error!(error = %e, "idempotency store unavailable");
    let mut p = Problem::new(
        ProblemKind::UpstreamUnavailable,
        "idempotency store unavailable; retry later",
    );
    p.retry_after = Some(10);
    p
}

fn invite_problem(e: InviteError) -> Problem {
    match e {
        InviteError::Paused(p) => {
            let mut problem = Problem::new(
                ProblemKind::UpstreamUnavailable,
                format!("Graph calls are paused ({}); retry later", p.reason),
            );
            problem.retry_after = Some(crate::graph::whole_seconds_up(p.retry_after).max(1));
            problem
        }
        InviteError::Graph(GraphError::Rejected { status, code }) => {
            Problem::new(
                ProblemKind::GraphRejected,
                format!("Microsoft Graph refused the invitation ({code})"),
            )
            .with("graphStatus", status)
            .with("graphCode", code)
            // A 403 (invitations blocked, or permission not yet granted) can be lifted by an
            // operator, so queued events wait for it rather than being dead-lettered at once.
            .retryable(status == 403)
        }
        InviteError::Graph(GraphError::Throttled { retry_after }) => {
            let mut p = Problem::new(
                ProblemKind::UpstreamUnavailable,
                "Microsoft Graph is throttling; retry later",
            );
            p.retry_after =
                Some(retry_after.map_or(30, |d| crate::graph::whole_seconds_up(d).max(1)));
            p
        }
        InviteError::Graph(GraphError::Unavailable {
            reason,
            retry_after,
        }) => {
            let mut p = Problem::new(
                ProblemKind::UpstreamUnavailable,
                format!("Microsoft Graph is unavailable ({reason}); retry later"),
            );
            p.retry_after =
                Some(retry_after.map_or(30, |d| crate::graph::whole_seconds_up(d).max(1)));
            p
        }
        InviteError::Graph(
            GraphError::CredentialRefused(reason) | GraphError::TokenRefused(reason),
        ) => {
            tracing::error!(reason = %reason, "Graph authentication failed: check GRAPH_CLIENT_ID, the client secret and admin consent");
            Problem::new(
                ProblemKind::UpstreamAuth,
                "authentication to Microsoft Graph failed",
            )
        }
        InviteError::Graph(GraphError::InvalidResponse(what)) => {
            tracing::error!(reason = what, "unusable Graph response");
            Problem::new(ProblemKind::UpstreamInvalid, what)
        }
    }
}

fn delivery_problem(
    invitation: &Invitation,
    delivered: &[String],
    failed: &[(String, DeliveryError)],
) -> Problem {
    let transient = failed
        .iter()
        .any(|(_, e)| e.is_transient() || *e == DeliveryError::Deferred);
    let mut p = Problem::new(
        ProblemKind::DeliveryFailed,
        "the invitation was created but not every channel received it; a retry delivers to the remaining channels",
    )
    .with("invitationId", invitation.id.clone())
    .with("delivered", delivered.to_vec())
    .with("failed", failed.iter().map(|(k, e)| json!({"channel": k, "reason": e.to_string()})).collect::<Vec<_>>())
    .retryable(transient);
    p.retry_after = Some(if transient { 30 } else { 300 });
    p
}
