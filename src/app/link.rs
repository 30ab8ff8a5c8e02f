//! Managed links: minted with a delivery, the landing page (`GET /i/{token}`, no side effect)
//! and Accept (`POST`, which re-invites the same address for a fresh redeem link and sends the
//! browser there), and revocation.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, json};

use super::execute::{Run, epoch_secs};
use super::notify::{About, LIFECYCLE_SOURCE};
use super::{App, Keyring};
use crate::delivery::{DeliveryError, NoticeKind};
use crate::domain::{
    DisplayName, EventDetails, Invitation, InvitationRequest, InviteeEmail, RedirectUrl, UserType,
};
use crate::inbound::http::source_ip;
use crate::landing::Page;
use crate::links::{LinkKeys, Sealed, is_token_shaped, mask_email, new_token};
use crate::resilience::Deadline;
use crate::store::{EventKey, GuestState, LinkRecord, LinkState};

/// The landing page's path below `LINK_BASE_URL`.
const LINK_PATH: &str = "i/";
/// Largest Accept form body read.
const MAX_FORM_BYTES: usize = 2048;

/// What a link's page request found.
enum Found {
    Link(Box<LinkRecord>, Sealed),
    /// Unknown token.
    Unknown,
    /// Expired or revoked.
    Ended,
}

impl App {
    /// The managed link for this run's invitation (one token per delivery attempt), stored —
    /// its hash and the sealed address — before any channel gets it: the invitation to
    /// deliver through managed channels.
    pub(crate) async fn mint_link(
        &self,
        run: &Run<'_>,
        invitation: &Invitation,
    ) -> Result<Invitation, DeliveryError> {
        let (Some(keys), Some(base)) =
            (run.keys.links.as_ref(), self.config.links.base_url.as_ref())
        else {
            return Err(DeliveryError::Refused(
                "managed links are not configured".into(),
            ));
        };
        let token = new_token().map_err(DeliveryError::Unavailable)?;
        let hash = keys.hash(&token);
        let plan = run.plan;
        let sealed = Sealed {
            email: plan.request.invited_user_email_address.as_str().to_owned(),
            name: plan
                .request
                .invited_user_display_name
                .as_ref()
                .map(|n| n.as_str().to_owned()),
            language: plan.details.language.clone(),
        };
        let record = LinkRecord {
            sealed: keys
                .seal(&hash, &sealed)
                .map_err(DeliveryError::Unavailable)?,
            hash,
            event: plan.key.clone(),
            user_id: invitation.invited_user_id.clone(),
            redirect: plan.request.invite_redirect_url.as_str().to_owned(),
            expires_at: epoch_secs() + self.config.links.ttl.as_secs(),
            state: LinkState::Active,
            opened_at: None,
        };
        self.store
            .put_link(record)
            .await
            .map_err(|e| DeliveryError::Unavailable(e.to_string()))?;
        let url = base
            .join(&format!("{LINK_PATH}{token}"))
            .map_err(|_| DeliveryError::Refused("LINK_BASE_URL can't carry the link".into()))?;
        Ok(Invitation {
            redeem_url: SecretString::from(url.to_string()),
            ..invitation.clone()
        })
    }

    /// `GET` or `POST /i/{token}`: always an HTML page or a redirect, never an error stack.
    pub(crate) async fn on_link(
        &self,
        req: &Request,
        token: &str,
        deadline: Deadline,
    ) -> Response<Body> {
        let method = req.method().clone();
        if method != http::Method::GET && method != http::Method::POST {
            let mut r = self.page(405, &Page::Gone, None);
            r.headers_mut()
                .insert("allow", http::HeaderValue::from_static("GET, POST"));
            return r;
        }
        let now = epoch_secs();
        let keys = match self.secrets.get().await {
            Ok(k) => k,
            Err(_) => return self.page(503, &Page::Limited, None),
        };
        let ip = keys.hasher.hash_text(source_ip(req));
        let per_ip = self.config.links.per_ip_per_minute;
        if self
            .over_limit(&format!("linkip#{ip}"), 60, per_ip, now)
            .await
        {
            tracing::warn!(
                alarm = "link_rate_limited",
                "too many link requests from one address"
            );
            return self.page(429, &Page::Limited, None);
        }
        let Some(link_keys) = keys.links.as_ref() else {
            return self.page(404, &Page::Gone, None);
        };
        let (record, sealed) = match self.find_link(link_keys, token, now).await {
            Ok(Found::Link(r, s)) => (r, s),
            Ok(Found::Unknown) => {
                tracing::info!("a managed link page was asked for an unknown token");
                return self.page(404, &Page::Gone, None);
            }
            Ok(Found::Ended) => return self.page(410, &Page::Gone, None),
            Err(()) => return self.page(503, &Page::Limited, None),
        };
        let language = sealed.language.as_deref();
        if method == http::Method::GET {
            return self
                .invite_page(link_keys, &record, &sealed, now, 200)
                .await;
        }
        if self
            .over_limit(
                &format!("linkaccept#{}", record.hash),
                3600,
                self.config.links.accepts_per_hour,
                now,
            )
            .await
        {
            tracing::warn!(alarm = "link_rate_limited", "too many Accepts on one link");
            return self.page(429, &Page::Limited, language);
        }
        let nonce = form_nonce(req);
        if !nonce.is_some_and(|n| link_keys.verify_nonce(&record.hash, &n, now)) {
            tracing::info!("an Accept without a valid nonce was refused");
            return self
                .invite_page(link_keys, &record, &sealed, now, 403)
                .await;
        }
        self.accept_link(&keys, &record, &sealed, deadline, now)
            .await
    }

    /// The link behind `token`, when it is one, active and not expired.
    async fn find_link(&self, keys: &LinkKeys, token: &str, now: u64) -> Result<Found, ()> {
        if !is_token_shaped(token) {
            return Ok(Found::Unknown);
        }
        let hash = keys.hash(token);
        let Some(record) = self.store.link(&hash).await.map_err(|e| {
            tracing::error!(error = %e, "a managed link could not be read");
        })?
        else {
            return Ok(Found::Unknown);
        };
        if record.state == LinkState::Revoked || record.expires_at <= now {
            return Ok(Found::Ended);
        }
        let Some(sealed) = keys.open(&hash, &record.sealed) else {
            tracing::error!("a managed link's record could not be opened (was link_key changed?)");
            return Ok(Found::Ended);
        };
        Ok(Found::Link(Box::new(record), sealed))
    }

    /// The invitation page, or "already accepted" when the relay knows the guest redeemed.
    async fn invite_page(
        &self,
        keys: &LinkKeys,
        record: &LinkRecord,
        sealed: &Sealed,
        now: u64,
        status: u16,
    ) -> Response<Body> {
        let redeemed = matches!(
            self.store.invitee(&record.user_id).await,
            Ok(Some(i)) if i.state == GuestState::Redeemed
        );
        let language = sealed.language.as_deref();
        if redeemed {
            return self.page(
                200,
                &Page::Accepted {
                    continue_url: &record.redirect,
                },
                language,
            );
        }
        let nonce = keys.nonce(&record.hash, now);
        let masked = mask_email(&sealed.email);
        self.page(
            status,
            &Page::Invite {
                name: sealed.name.as_deref(),
                masked_email: &masked,
                nonce: &nonce,
            },
            language,
        )
    }

    /// Accept: a guest who already redeemed is sent on to where they work; otherwise the same
    /// address is invited again (a fresh redeem link for the same user, or a new user if the
    /// guest was deleted meanwhile) and the browser goes to it. The owner hears of the first
    /// Accept (`invitation.opened`).
    async fn accept_link(
        &self,
        keys: &Arc<Keyring>,
        record: &LinkRecord,
        sealed: &Sealed,
        deadline: Deadline,
        now: u64,
    ) -> Response<Body> {
        let language = sealed.language.as_deref();
        let found = self
            .with_rotation(keys, |k| async move {
                self.graph.user(&k.graph, &record.user_id).await
            })
            .await;
        if let Ok(Some(u)) = &found
            && u.has_redeemed()
        {
            return self.page(
                200,
                &Page::Accepted {
                    continue_url: &record.redirect,
                },
                language,
            );
        }
        let Some(request) = reinvitation(sealed, &record.redirect) else {
            return self.page(410, &Page::Gone, language);
        };
        let invitation = match self.create(keys, deadline, &request, None).await {
            Ok(i) => i,
            Err(e) => {
                let p = super::errors::invite_problem(e);
                tracing::error!(
                    alarm = "link_accept_failed",
                    problem = p.kind.slug(),
                    "a managed link's Accept could not re-invite"
                );
                return self.page(503, &Page::Limited, language);
            }
        };
        if invitation.invited_user_id != record.user_id {
            tracing::info!(
                "the guest behind a managed link was deleted meanwhile and is invited afresh"
            );
            if let Err(e) = self
                .store
                .relink(&record.hash, &invitation.invited_user_id)
                .await
            {
                tracing::error!(error = %e, "a managed link's guest was not updated");
            }
        }
        match self.store.open_link(&record.hash, now).await {
            Ok(true) => {
                self.opened(keys, deadline, record, sealed, &invitation)
                    .await
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "a managed link's first Accept was not recorded"),
        }
        tracing::info!("a managed link's Accept sent the partner to Microsoft's redemption");
        redirect(invitation.redeem_url.expose_secret())
    }

    /// `invitation.opened` to the channels a route names for it, once per link.
    async fn opened(
        &self,
        keys: &Arc<Keyring>,
        deadline: Deadline,
        record: &LinkRecord,
        sealed: &Sealed,
        invitation: &Invitation,
    ) {
        let key = EventKey {
            source: LIFECYCLE_SOURCE.into(),
            event_id: format!("{}:{}", NoticeKind::InvitationOpened.name(), record.hash),
        };
        let details = EventDetails {
            language: sealed.language.clone(),
            ..EventDetails::default()
        };
        let about = About {
            record: &key,
            event: &record.event,
            user_id: Some(&invitation.invited_user_id),
            email: Some(&sealed.email),
            display_name: sealed.name.as_deref(),
            details: &details,
        };
        let mut extra = Map::new();
        extra.insert("openedAt".into(), json!(super::guest::now_rfc3339()));
        if let Err(p) = self
            .execute_notice(keys, deadline, &about, NoticeKind::InvitationOpened, extra)
            .await
        {
            tracing::warn!(problem = p.kind.slug(), "invitation.opened not sent");
        }
    }

    /// Counts a hit; whether `key` went over `limit` in its window. A store that can't count
    /// doesn't lock partners out: it is logged.
    async fn over_limit(&self, key: &str, window_secs: u64, limit: u64, now: u64) -> bool {
        match self.store.count_hit(key, window_secs, now).await {
            Ok(n) => n > limit,
            Err(e) => {
                tracing::error!(error = %e, "a managed link's rate counter could not be updated");
                false
            }
        }
    }

    /// An HTML page with the landing page's security headers.
    fn page(&self, status: u16, page: &Page<'_>, language: Option<&str>) -> Response<Body> {
        let landing = &self.config.landing;
        let html = landing.render(page, language).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the landing page could not be rendered");
            "<!doctype html><title>Unavailable</title><p>Please try again later.</p>".into()
        });
        let mut r = Response::builder()
            .status(status)
            .header("content-type", "text/html; charset=utf-8")
            .header("content-security-policy", landing.csp())
            .body(Body::Text(html))
            .expect("a page response builds");
        security_headers(r.headers_mut());
        r
    }
}

/// The headers every page and redirect carries.
fn security_headers(h: &mut http::HeaderMap) {
    for (k, v) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        h.insert(k, http::HeaderValue::from_static(v));
    }
}

/// `303 See Other` to Microsoft's redeem link, with no body (the link appears only in
/// `Location`) and no referrer.
fn redirect(url: &str) -> Response<Body> {
    let mut r = Response::builder()
        .status(303)
        .body(Body::Empty)
        .expect("a redirect builds");
    if let Ok(v) = http::HeaderValue::from_str(url) {
        r.headers_mut().insert("location", v);
    }
    security_headers(r.headers_mut());
    r
}

/// The `nonce` of an `application/x-www-form-urlencoded` Accept.
fn form_nonce(req: &Request) -> Option<String> {
    let form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let body: &[u8] = match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if !form || body.len() > MAX_FORM_BYTES {
        return None;
    }
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "nonce")
        .map(|(_, v)| v.into_owned())
}

/// The invitation Accept sends: the same address, name and landing place, Graph's own email
/// off.
fn reinvitation(sealed: &Sealed, redirect: &str) -> Option<InvitationRequest> {
    Some(InvitationRequest::new(
        InviteeEmail::parse(&sealed.email).ok()?,
        sealed.name.as_deref().and_then(DisplayName::parse),
        UserType::Guest,
        RedirectUrl::parse(redirect).ok()?,
    ))
}

/// Whose managed links an operator means.
#[derive(Debug, Clone)]
pub enum LinkTarget {
    /// The links one event issued.
    Event(EventKey),
    /// Every link of the guest with this address.
    Email(String),
}

impl App {
    /// Revokes the target's managed links: their pages say the link no longer works. How many
    /// were active.
    ///
    /// # Errors
    /// The secret, Graph or the store can't be read.
    pub async fn revoke_links(
        &self,
        target: &LinkTarget,
        deadline: Deadline,
    ) -> Result<u64, crate::problem::Problem> {
        let hashes = match target {
            LinkTarget::Event(key) => self.store.links_for_event(key).await,
            LinkTarget::Email(_) => {
                let user_id = self.link_user(target, deadline).await?;
                self.store.links_for_user(&user_id).await
            }
        }
        .map_err(super::errors::store_unavailable)?;
        let mut revoked = 0;
        for h in hashes {
            if self
                .store
                .revoke_link(&h)
                .await
                .map_err(super::errors::store_unavailable)?
            {
                revoked += 1;
            }
        }
        tracing::info!(revoked, "managed links revoked");
        Ok(revoked)
    }

    /// Revokes the guest's managed links and sends a fresh one (a new invitation for the same
    /// guest) through the channels their first link went to.
    ///
    /// # Errors
    /// No such guest or record, or the secret, Graph or the store can't be read.
    pub async fn issue_link(
        &self,
        target: &LinkTarget,
        deadline: Deadline,
    ) -> Result<super::Outcome, crate::problem::Problem> {
        use crate::problem::{Problem, ProblemKind};
        let user_id = self.link_user(target, deadline).await?;
        let keys = self
            .secrets
            .get()
            .await
            .map_err(super::errors::secret_unavailable)?;
        let known = self
            .store
            .invitee(&user_id)
            .await
            .map_err(super::errors::store_unavailable)?
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::NotFound,
                    "the relay has no record of this guest",
                )
            })?;
        let user = self
            .with_rotation(&keys, |k| {
                let user_id = &user_id;
                async move { self.graph.user(&k.graph, user_id).await }
            })
            .await
            .map_err(super::errors::lookup_problem)?
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::NotFound,
                    "the guest is no longer in the directory",
                )
            })?;
        let email = user
            .mail
            .as_deref()
            .and_then(|m| InviteeEmail::parse(m).ok())
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::Unprocessable,
                    "the guest has no usable address",
                )
            })?;
        for h in self
            .store
            .links_for_user(&user.id)
            .await
            .map_err(super::errors::store_unavailable)?
        {
            let _ = self.store.revoke_link(&h).await;
        }
        let plan = self
            .reminder_plan(&user, email, epoch_secs(), &known.channels)
            .map_err(|e| Problem::new(ProblemKind::RedirectNotAllowed, e))?;
        let plan = super::plan::Plan {
            key: EventKey {
                source: "link-issue".into(),
                event_id: format!("{}:{}", user.id, epoch_secs()),
            },
            ..plan
        };
        self.execute(&plan, &keys, deadline).await
    }

    /// The guest a target names.
    async fn link_user(
        &self,
        target: &LinkTarget,
        deadline: Deadline,
    ) -> Result<String, crate::problem::Problem> {
        use crate::problem::{Problem, ProblemKind};
        match target {
            LinkTarget::Event(key) => self
                .store
                .completed(key)
                .await
                .map_err(super::errors::store_unavailable)?
                .and_then(|p| p.invited_user_id)
                .ok_or_else(|| {
                    Problem::new(
                        ProblemKind::NotFound,
                        "no completed invitation for this event",
                    )
                }),
            LinkTarget::Email(email) => {
                let keys = self
                    .secrets
                    .get()
                    .await
                    .map_err(super::errors::secret_unavailable)?;
                let found = crate::resilience::retry(deadline, || {
                    self.with_rotation(&keys, |k| async move {
                        self.graph.find_user(&k.graph, email).await
                    })
                })
                .await
                .map_err(super::errors::lookup_problem)?;
                found
                    .filter(crate::graph::DirectoryUser::is_guest)
                    .map(|u| u.id)
                    .ok_or_else(|| {
                        Problem::new(ProblemKind::NotFound, "no guest with this address")
                    })
            }
        }
    }
}
