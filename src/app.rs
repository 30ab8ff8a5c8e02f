//! The application: dependencies built once at start-up, and the pipeline that turns one HTTP
//! request into one answer, readable top to bottom in [`App::process`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use lambda_http::{Body, Request, RequestExt, Response};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::Sha256;
use tracing::Instrument;

use crate::config::{Config, ConfigError};
use crate::delivery::{Channel, ChannelKind, Deliverer, DeliveryError, Message};
use crate::domain::{DisplayName, Invitation, InvitationRequest, InviteeEmail, UserType};
use crate::graph::{ClientCredential, GraphClient, GraphError};
use crate::inbound::signature::{Key, Scheme};
use crate::inbound::{self, CrmEvent, Interpretation, MapError, Source};
use crate::problem::{Problem, ProblemKind};
use crate::secrets::{SecretCache, SecretError, SecretValues};
use crate::store::{Claim, EventKey, MemoryStore, Progress, Store};
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
        sources: &[(String, Scheme, Vec<String>)],
        allow_private: bool,
    ) -> Result<Self, String> {
        let graph_secret = values
            .get("graph_client_secret")
            .ok_or("secret key graph_client_secret is required")?;
        let mut source_keys = HashMap::new();
        for (name, scheme, keys) in sources {
            let decoded = keys
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
            source_keys.insert(name.clone(), decoded);
        }
        let channels = Channel::from_secret(values, allow_private)?;
        let hash_key: Vec<u8> = match values.get("log_hash_key") {
            Some(k) => k.expose_secret().as_bytes().to_vec(),
            None => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(graph_secret.expose_secret().as_bytes())
                        .expect("any key length");
                mac.update(b"invite-relay log hash");
                mac.finalize().into_bytes().to_vec()
            }
        };
        Ok(Self {
            graph: ClientCredential::Secret(graph_secret.clone()),
            source_keys,
            channels,
            hasher: EmailHasher::new(&hash_key),
        })
    }

    fn channel(&self, kind: ChannelKind) -> Option<&Channel> {
        self.channels.iter().find(|c| c.kind() == kind)
    }
}

/// Start-up failure: the function should not take events.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("start-up failed: {0}")]
    Secret(#[from] SecretError),
}

/// How long completed events are remembered by the in-memory store.
const MEMORY_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Lock length when the invocation deadline is unknown.
const DEFAULT_LOCK: Duration = Duration::from_secs(60);

/// The function's dependencies, built once per container.
pub struct App {
    config: Config,
    secrets: SecretCache<Credentials>,
    graph: GraphClient,
    deliverer: Deliverer,
    store: Store,
}

/// A successful answer.
#[derive(Debug)]
enum Outcome {
    Ignored {
        event_id: String,
    },
    Invited {
        event_id: String,
        invitation_id: String,
        invited_user_id: String,
        delivered: Vec<ChannelKind>,
    },
    Duplicate {
        event_id: String,
        progress: Progress,
    },
}

impl Outcome {
    fn into_response(self) -> Response<Body> {
        let body = match self {
            Outcome::Ignored { event_id } => json!({"status": "ignored", "eventId": event_id}),
            Outcome::Invited {
                event_id,
                invitation_id,
                invited_user_id,
                delivered,
            } => json!({
                "status": "invited",
                "eventId": event_id,
                "invitationId": invitation_id,
                "invitedUserId": invited_user_id,
                "delivered": names(&delivered),
            }),
            Outcome::Duplicate { event_id, progress } => json!({
                "status": "duplicate",
                "eventId": event_id,
                "invitationId": progress.invitation_id,
                "invitedUserId": progress.invited_user_id,
                "delivered": names(&progress.delivered),
            }),
        };
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .body(Body::Text(body.to_string()))
            .expect("static headers are valid")
    }
}

fn names(kinds: &[ChannelKind]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.name()).collect()
}

/// An event ready for Graph: every value validated.
struct Plan {
    key: EventKey,
    request: InvitationRequest,
    channels: Vec<ChannelKind>,
}

impl App {
    /// Reads configuration from the environment, AWS settings from the SDK's standard sources
    /// (`AWS_ENDPOINT_URL`, region, credentials), and the secret once.
    ///
    /// # Errors
    /// [`InitError`] with one line saying what to fix.
    pub async fn from_env() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(config, &sdk).await
    }

    /// Builds the application and reads the secret, so a deployment without usable credentials
    /// or channels fails at start-up rather than on its first event.
    ///
    /// # Errors
    /// [`InitError`] with one line saying what to fix.
    pub async fn new(config: Config, sdk: &aws_config::SdkConfig) -> Result<Self, InitError> {
        let sources: Vec<(String, Scheme, Vec<String>)> = config
            .sources
            .values()
            .map(|s| (s.name.clone(), s.scheme, s.secret_keys.clone()))
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
            move |values| Credentials::derive(values, &sources, allow_private),
        );
        let creds = secrets.get().await?;
        tracing::info!(
            sources = ?config.sources.keys().collect::<Vec<_>>(),
            channels = ?creds.channels.iter().map(|c| c.kind().name()).collect::<Vec<_>>(),
            "invite-relay ready"
        );
        let http = reqwest::Client::builder()
            .timeout(config.outbound_timeout)
            .connect_timeout(config.outbound_timeout.min(Duration::from_secs(3)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("invite-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("static client configuration is valid");
        Ok(Self {
            graph: GraphClient::new(http, &config.graph),
            deliverer: Deliverer::new(config.outbound_timeout, allow_private),
            store: Store::Memory(MemoryStore::new(MEMORY_RETENTION)),
            secrets,
            config,
        })
    }

    /// Answers one HTTP request. Never panics on input; every refusal is problem+json.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        match self.process(&req).await {
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

    async fn process(&self, req: &Request) -> Result<Outcome, Problem> {
        let source = inbound::http::source_name(req)
            .and_then(|name| self.config.sources.get(name))
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::NotFound,
                    "POST to /webhooks/{source} with a configured source",
                )
            })?;
        let body = inbound::http::checked_body(req, self.config.max_body_bytes)?;
        let creds = self.verified(source, req, body).await?;
        let delivery_id = source.scheme.delivery_id(req.headers());
        if let Some(id) = &delivery_id
            && let Some((key, progress)) = self.store.completed_delivery(&source.name, id).await
        {
            tracing::info!(source = %source.name, event_id = %creds.hasher.loggable(&key.event_id), "replayed delivery answered as a duplicate");
            return Ok(Outcome::Duplicate {
                event_id: key.event_id,
                progress,
            });
        }
        let parsed =
            inbound::json::parse(body).map_err(|e| Problem::new(ProblemKind::Malformed, e))?;
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
        let span = tracing::info_span!("event", source = %source.name, event_id = %creds.hasher.loggable(&event.event_id));
        async {
            let plan = self.plan(source, event, &creds)?;
            tracing::info!(invitee = %creds.hasher.hash(&plan.request.invited_user_email_address), "event accepted");
            self.run(plan, creds, lock_duration(req), delivery_id.as_deref()).await
        }
        .instrument(span)
        .await
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
                Err(e) if attempt == 0 && e == inbound::signature::SignatureError::Mismatch => {
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
    fn plan(&self, source: &Source, event: CrmEvent, creds: &Credentials) -> Result<Plan, Problem> {
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
        let channels = self.channels_for(event.channels.as_deref(), creds)?;
        Ok(Plan {
            key: EventKey {
                source: source.name.clone(),
                event_id: event.event_id,
            },
            request: InvitationRequest {
                invited_user_email_address: email,
                invited_user_display_name: event
                    .display_name
                    .as_deref()
                    .and_then(DisplayName::parse),
                invited_user_type: user_type,
                invite_redirect_url: redirect,
                send_invitation_message: false,
            },
            channels,
        })
    }

    /// The event's requested channels (all must be configured), or every configured channel.
    fn channels_for(
        &self,
        requested: Option<&[String]>,
        creds: &Credentials,
    ) -> Result<Vec<ChannelKind>, Problem> {
        let configured: Vec<ChannelKind> = creds.channels.iter().map(Channel::kind).collect();
        let Some(requested) = requested.filter(|r| !r.is_empty()) else {
            return Ok(configured);
        };
        let mut out = Vec::new();
        for name in requested {
            let kind = ChannelKind::parse(name).ok_or_else(|| {
                Problem::new(
                    ProblemKind::Unprocessable,
                    "delivery.channels names an unknown channel",
                )
                .with("field", "delivery.channels")
                .with("known", names(&ChannelKind::ALL))
            })?;
            if !configured.contains(&kind) {
                return Err(Problem::new(
                    ProblemKind::Unprocessable,
                    format!("channel {} is not configured", kind.name()),
                )
                .with("field", "delivery.channels"));
            }
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        Ok(out)
    }

    /// Invite, then deliver to each channel not yet delivered, recording each step.
    async fn run(
        &self,
        plan: Plan,
        creds: Arc<Credentials>,
        lock_for: Duration,
        delivery_id: Option<&str>,
    ) -> Result<Outcome, Problem> {
        let event_id = plan.key.event_id.clone();
        let progress = match self.store.claim(&plan.key, lock_for).await {
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
        let pending: Vec<ChannelKind> = plan
            .channels
            .iter()
            .copied()
            .filter(|c| !progress.delivered.contains(c))
            .collect();
        if let (true, Some(invitation_id), Some(invited_user_id)) = (
            pending.is_empty(),
            progress.invitation_id.clone(),
            progress.invited_user_id.clone(),
        ) {
            // Everything was delivered; only the completion record was missing.
            self.store.complete(&plan.key).await;
            return Ok(Outcome::Invited {
                event_id,
                invitation_id,
                invited_user_id,
                delivered: progress.delivered,
            });
        }

        let invitation = match self.invite(&creds, &plan.request).await {
            Ok(i) => i,
            Err(e) => {
                self.store.release(&plan.key).await;
                return Err(graph_problem(e));
            }
        };
        self.store
            .record_invited(&plan.key, &invitation.id, &invitation.invited_user_id)
            .await;

        let msg = Message {
            source: &plan.key.source,
            event_id: &plan.key.event_id,
            email: &plan.request.invited_user_email_address,
            display_name: plan.request.invited_user_display_name.as_ref(),
            invitation: &invitation,
        };
        let mut delivered = progress.delivered.clone();
        let mut failed: Vec<(ChannelKind, DeliveryError)> = Vec::new();
        for kind in pending {
            let Some(channel) = creds.channel(kind) else {
                failed.push((kind, DeliveryError::Blocked));
                continue;
            };
            match self.deliverer.send(channel, &msg).await {
                Ok(()) => {
                    tracing::info!(channel = kind.name(), "delivered");
                    self.store.record_delivered(&plan.key, kind).await;
                    delivered.push(kind);
                }
                Err(e) => {
                    tracing::warn!(channel = kind.name(), error = %e, "delivery failed");
                    failed.push((kind, e));
                }
            }
        }
        if !failed.is_empty() {
            self.store.release(&plan.key).await;
            return Err(delivery_problem(&invitation, &delivered, &failed));
        }
        self.store.complete(&plan.key).await;
        if let Some(id) = delivery_id {
            self.store
                .remember_delivery(&plan.key.source, id, &plan.key)
                .await;
        }
        Ok(Outcome::Invited {
            event_id,
            invitation_id: invitation.id,
            invited_user_id: invitation.invited_user_id,
            delivered,
        })
    }

    /// Creates the invitation; when the token endpoint refuses the credential, the secret is
    /// read again once (rotation) and the call repeated with the new value.
    async fn invite(
        &self,
        creds: &Arc<Credentials>,
        req: &InvitationRequest,
    ) -> Result<Invitation, GraphError> {
        match self.graph.invite(&creds.graph, req).await {
            Err(GraphError::CredentialRefused(reason)) => {
                let fresh = self
                    .secrets
                    .refresh_after_auth_failure(creds, Duration::ZERO)
                    .await
                    .map_err(|_| GraphError::CredentialRefused(reason.clone()))?;
                if Arc::ptr_eq(&fresh, creds) {
                    return Err(GraphError::CredentialRefused(reason));
                }
                tracing::info!("app credential refused; retrying with the re-read secret");
                self.graph.invite(&fresh.graph, req).await
            }
            other => other,
        }
    }
}

/// The lock lasts as long as this invocation can (its deadline), so a crashed or timed-out
/// invocation's lock frees itself.
fn lock_duration(req: &Request) -> Duration {
    let deadline_ms = req.lambda_context_ref().map(|c| c.deadline).unwrap_or(0);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if deadline_ms > now_ms {
        Duration::from_millis(deadline_ms - now_ms)
    } else {
        DEFAULT_LOCK
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

fn graph_problem(e: GraphError) -> Problem {
    match e {
        GraphError::Rejected { status, code } => Problem::new(
            ProblemKind::GraphRejected,
            format!("Microsoft Graph refused the invitation ({code})"),
        )
        .with("graphStatus", status)
        .with("graphCode", code),
        GraphError::Unavailable {
            reason,
            retry_after,
        } => {
            let mut p = Problem::new(
                ProblemKind::UpstreamUnavailable,
                format!("Microsoft Graph is unavailable ({reason}); retry later"),
            );
            p.retry_after = Some(retry_after.map_or(30, |d| d.as_secs().max(1)));
            p
        }
        GraphError::CredentialRefused(reason) | GraphError::TokenRefused(reason) => {
            tracing::error!(reason = %reason, "Graph authentication failed: check GRAPH_CLIENT_ID, the client secret and admin consent");
            Problem::new(
                ProblemKind::UpstreamAuth,
                "authentication to Microsoft Graph failed",
            )
        }
        GraphError::InvalidResponse(what) => {
            tracing::error!(reason = what, "unusable Graph response");
            Problem::new(ProblemKind::UpstreamInvalid, what)
        }
    }
}

fn delivery_problem(
    invitation: &Invitation,
    delivered: &[ChannelKind],
    failed: &[(ChannelKind, DeliveryError)],
) -> Problem {
    let transient = failed.iter().any(|(_, e)| e.is_transient());
    let mut p = Problem::new(
        ProblemKind::DeliveryFailed,
        "the invitation was created but not every channel received it; a retry delivers to the remaining channels",
    )
    .with("invitationId", invitation.id.clone())
    .with("delivered", names(delivered))
    .with("failed", failed.iter().map(|(k, e)| json!({"channel": k.name(), "reason": e.to_string()})).collect::<Vec<_>>());
    p.retry_after = Some(if transient { 30 } else { 300 });
    p
}
