//! A Microsoft Graph + identity platform emulator for the invitation flow, strict about the
//! documented contract:
//!
//! - `POST /{tenant}/oauth2/v2.0/token` (client credentials; form body; `scope` must be
//!   `{graph}/.default`, else `invalid_scope` AADSTS1002012; wrong secret → 401 `invalid_client`
//!   AADSTS7000215; unknown tenant → 400 AADSTS90002; or a certificate's client assertion: an
//!   PS256 JWT whose `x5t#S256`, or an RS256 JWT whose `x5t` (SHA-1), names a registered
//!   certificate and whose signature, `aud` (this
//!   token endpoint), `iss` = `sub` = client id, `exp`/`nbf` and unused `jti` all check out,
//!   else 401 `invalid_client` AADSTS700027 / AADSTS700024),
//! - `POST /v1.0/invitations` (bearer token issued here and unexpired; JSON object with only
//!   properties of the `invitation` resource, each of its documented type;
//!   `invitedUserEmailAddress` and `inviteRedirectUrl` required; the email obeys the forbidden
//!   character rules; answers `201` with the invitation, `inviteRedeemUrl` and `invitedUser`;
//!   `invitedUserSponsors` is at most five `{"id": GUID}`; `invitedUserMessageInfo` has only
//!   `messageLanguage`, `customizedMessageBody` and `ccRecipients` of `{"emailAddress":
//!   {"address"}}`; `resetRedemption` needs `invitedUser.id` of a user whose mail or other mails
//!   hold the address),
//! - `GET /v1.0/users` with `$filter` either the B2B existing-user query (quotes doubled) or
//!   `externalUserState eq 'PendingAcceptance'`, both of which Graph supports without the
//!   advanced query parameters (`ne`, `not` and `endsWith` need them: 400 otherwise); any other
//!   filter is 400; pages of `$top` users (default 100, at most 999) with `@odata.nextLink`,
//!   `@odata.count` only with `ConsistencyLevel: eventual` and `$count=true`,
//! - `POST /v1.0/groups/{id}/members/$ref` with exactly `{"@odata.id":
//!   "{graph}/v1.0/directoryObjects/{id}"}`: `204`; `404` for an unknown group or a user not
//!   replicated yet (see [`GraphEmulator::set_replication_lag`]); `400` "One or more added
//!   object references already exist" for a member.
//!
//! - `GET /v1.0/groups/{id}` and `GET /v1.0/users/{id}/memberOf` (id and display name);
//!   tokens carry the consented application permissions as `roles`
//!   ([`GraphEmulator::set_roles`]).
//!
//! Faults can be queued for the next calls. Every call is recorded for assertions.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

use crate::latency::{Jitter, Latency};

/// A fault to answer the next call with, instead of the normal behaviour.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An error response with a Graph error body (`error.code`, a message that echoes the
    /// invitee's email as real Graph messages can) and an optional `Retry-After`.
    Status {
        status: u16,
        code: &'static str,
        /// Seconds, possibly with a fraction (Graph's own throttling sample sends `2.128`).
        retry_after: Option<f64>,
    },
    /// `201` with an invitation body lacking `inviteRedeemUrl`.
    NoRedeemUrl,
    /// `201` with the invitation's `status` `Error` (one of the documented values:
    /// `PendingAcceptance`, `Completed`, `InProgress`, `Error`).
    StatusError,
    /// Wait this long, then behave normally (past the client's timeout, the answer is lost).
    Delay(Duration),
    /// Create the invitation, then stall this long before answering: the client gives up
    /// although the invitation exists (a lost response, as after a dropped connection).
    CommitThenStall(Duration),
}

/// One `POST /v1.0/invitations` as received.
#[derive(Debug, Clone)]
pub struct InvitationCall {
    pub authorization: Option<String>,
    pub body: Value,
    /// The status the emulator answered.
    pub status: u16,
    /// Answered late on purpose (a `Delay` or `CommitThenStall` fault): the client had most
    /// likely given up, so its outcome was not seen.
    pub late: bool,
    /// When the emulator took the call up (after any added latency, before any fault's delay).
    pub at: Instant,
}

/// Added latency per kind of call ([`GraphEmulator::set_latency`]); none by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GraphLatency {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    pub token: Latency,
    /// `POST /v1.0/invitations`.
    pub invitation: Latency,
    /// Every other Graph call (`/v1.0/…`).
    pub other: Latency,
}

/// One token request as received (form fields).
#[derive(Debug, Clone)]
pub struct TokenCall {
    pub tenant: String,
    pub form: HashMap<String, String>,
    pub status: u16,
}

/// A user in the emulated directory.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    pub id: String,
    pub mail: String,
    pub other_mails: Vec<String>,
    /// `Guest` or `Member`.
    pub user_type: String,
    /// `PendingAcceptance`, `Accepted`, or `None` for members.
    pub external_user_state: Option<String>,
    pub external_user_state_change: String,
    pub display_name: Option<String>,
    /// Group additions still answered 404 (replication delay).
    pub unreplicated: u32,
    pub account_enabled: bool,
    /// Sponsors' object ids.
    pub sponsors: Vec<String>,
    /// Properties set with `PATCH /users/{id}` (profile fields, `onPremisesExtensionAttributes`).
    pub attributes: serde_json::Map<String, Value>,
    /// `revokeSignInSessions` calls.
    pub sessions_revoked: u32,
}

impl DirectoryUser {
    fn new(mail: &str, user_type: &str, state: Option<&str>, changed: String) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            mail: mail.to_owned(),
            other_mails: Vec::new(),
            user_type: user_type.to_owned(),
            external_user_state: state.map(str::to_owned),
            external_user_state_change: changed,
            display_name: None,
            unreplicated: 0,
            account_enabled: true,
            sponsors: Vec::new(),
            attributes: serde_json::Map::new(),
            sessions_revoked: 0,
        }
    }
}

/// One call about one user (`GET` and `PATCH /users/{id}`, `revokeSignInSessions`, sponsors, deletion,
/// group removal) as received.
#[derive(Debug, Clone)]
pub struct UserCall {
    pub method: &'static str,
    /// The path below `/v1.0`.
    pub path: String,
    pub body: Value,
    pub status: u16,
}

/// One `GET /v1.0/users` as received.
#[derive(Debug, Clone)]
pub struct UserQuery {
    pub filter: String,
    pub select: Option<String>,
    pub consistency_level: Option<String>,
    pub count: Option<String>,
    pub status: u16,
}

/// One `POST /groups/{id}/members/$ref` as received.
#[derive(Debug, Clone)]
pub struct GroupCall {
    pub group: String,
    pub body: Value,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    client_secrets: Vec<String>,
    /// Registered certificates: `x5t#S256` thumbprint → public key PEM.
    certificates: HashMap<String, String>,
    seen_jti: std::collections::HashSet<String>,
    tokens: HashMap<String, Instant>,
    /// By lower-cased mail.
    users: HashMap<String, DirectoryUser>,
    groups: HashMap<String, Vec<String>>,
    replication_lag: u32,
    user_queries: Vec<UserQuery>,
    group_calls: Vec<GroupCall>,
    invitation_faults: VecDeque<Fault>,
    user_faults: VecDeque<Fault>,
    /// Redeem links point at the emulator's own `/redeem` page (for a browser without the
    /// internet).
    local_redeem: bool,
    /// `GET /redeem` requests received (their query strings).
    redemptions: Vec<String>,
    late_user_calls: usize,
    group_faults: VecDeque<Fault>,
    user_calls: Vec<UserCall>,
    /// Soft-deleted users, by id (restorable for 30 days in Entra).
    deleted: HashMap<String, DirectoryUser>,
    /// Group additions received, counted on arrival (before any delay).
    group_requests: usize,
    token_faults: VecDeque<Fault>,
    invitation_calls: Vec<InvitationCall>,
    token_calls: Vec<TokenCall>,
    redeem_urls: Vec<String>,
    /// The application permissions consented to the app: the `roles` claim of its tokens.
    roles: Vec<String>,
}

/// The emulator's fixed identity.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub token_lifetime: Duration,
}

impl Default for GraphSettings {
    fn default() -> Self {
        Self {
            tenant_id: "7b8f2c1e-0d4a-4e6b-9c3f-5a1d2e3f4a5b".into(),
            client_id: "3c9a1f7e-2b4d-4c8e-a1f3-9e8d7c6b5a40".into(),
            client_secret: "emulator-client-secret-value".into(),
            token_lifetime: Duration::from_secs(3599),
        }
    }
}

struct Shared {
    settings: GraphSettings,
    base_url: String,
    inner: Mutex<Inner>,
    latency: Mutex<GraphLatency>,
    jitter: Jitter,
}

/// A running emulator on a loopback port.
#[derive(Clone)]
pub struct GraphEmulator {
    pub url: String,
    shared: Arc<Shared>,
}

impl GraphEmulator {
    /// Binds `127.0.0.1:port` (0 for any free port) and serves in the background.
    pub async fn start(settings: GraphSettings, port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                client_secrets: vec![settings.client_secret.clone()],
                roles: DEFAULT_ROLES.iter().map(|r| (*r).to_owned()).collect(),
                ..Inner::default()
            }),
            settings,
            base_url: url.clone(),
            latency: Mutex::default(),
            jitter: Jitter::default(),
        });
        // Calls about one user (and group removals) share a fault queue.
        let user_routes = Router::new()
            .route(
                "/v1.0/groups/{id}/members/{member}/$ref",
                axum::routing::delete(remove_member),
            )
            .route(
                "/v1.0/users/{id}",
                axum::routing::get(get_user)
                    .patch(patch_user)
                    .delete(delete_user),
            )
            .route(
                "/v1.0/users/{id}/revokeSignInSessions",
                post(revoke_sessions),
            )
            .route(
                "/v1.0/users/{id}/sponsors",
                axum::routing::get(list_sponsors),
            )
            .route("/v1.0/users/{id}/sponsors/$ref", post(add_sponsor))
            .route(
                "/v1.0/users/{id}/sponsors/{sponsor}/$ref",
                axum::routing::delete(remove_sponsor),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                user_call_faults,
            ));
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/invitations", post(invitations))
            .route("/v1.0/users", axum::routing::get(users))
            .route("/v1.0/groups/{id}/members/$ref", post(add_member))
            .route("/v1.0/groups/{id}", axum::routing::get(get_group))
            .route("/v1.0/users/{id}/memberOf", axum::routing::get(member_of))
            .merge(user_routes)
            // Not Graph: the demo's hand on the directory, as the partner or an admin.
            .route("/_devkit/users/{mail}", axum::routing::get(devkit_user))
            .route("/_devkit/users/{mail}/accept", post(devkit_accept))
            .route("/redeem", axum::routing::get(redeem_page))
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                added_latency,
            ))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, shared })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }

    pub fn settings(&self) -> &GraphSettings {
        &self.shared.settings
    }

    /// Adds latency to the calls from now on (see [`GraphLatency`]).
    pub fn set_latency(&self, latency: GraphLatency) {
        *self.shared.latency.lock().unwrap() = latency;
    }

    /// Queues a fault for the next invitation call(s).
    pub fn fail_next_invitation(&self, fault: Fault) {
        self.inner().invitation_faults.push_back(fault);
    }

    /// Redeem links point at this emulator's `/redeem` page instead of Microsoft's, so a
    /// browser in a test can follow them.
    pub fn serve_redeem_locally(&self) {
        self.inner().local_redeem = true;
    }

    /// The redeem links opened (their query strings).
    pub fn redemptions(&self) -> Vec<String> {
        self.inner().redemptions.clone()
    }

    /// Queues a fault for the next call(s) about one user: `GET`/`PATCH`/`DELETE
    /// /users/{id}`, `revokeSignInSessions`, sponsors, and removals from groups. `Status`
    /// answers the error without doing anything; `Delay` waits, then does the call;
    /// `CommitThenStall` does the call, then stalls before answering (a lost answer).
    pub fn fail_next_user_call(&self, fault: Fault) {
        self.inner().user_faults.push_back(fault);
    }

    /// User calls answered late on purpose so far (their outcome most likely unseen).
    pub fn late_user_calls(&self) -> usize {
        self.inner().late_user_calls
    }

    /// Drops every queued fault (the upstream recovered).
    pub fn clear_faults(&self) {
        let mut inner = self.inner();
        inner.user_faults.clear();
        inner.invitation_faults.clear();
        inner.token_faults.clear();
        inner.group_faults.clear();
    }

    /// Delays the next group addition(s) (`Fault::Delay`; other faults are not modelled there).
    pub fn delay_next_group_add(&self, d: Duration) {
        self.inner().group_faults.push_back(Fault::Delay(d));
    }

    /// Group additions received so far, counted when they arrive.
    pub fn group_requests(&self) -> usize {
        self.inner().group_requests
    }

    /// Queues a fault for the next token call(s).
    pub fn fail_next_token(&self, fault: Fault) {
        self.inner().token_faults.push_back(fault);
    }

    /// Replaces the accepted client secrets (rotation).
    pub fn set_client_secrets(&self, secrets: &[&str]) {
        self.inner().client_secrets = secrets.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Registers an app certificate (PEM) with its public key (PEM), as uploading it to the app
    /// registration does. Returns its `x5t#S256` thumbprint.
    pub fn register_certificate(&self, certificate_pem: &str, public_key_pem: &str) -> String {
        use sha2::Digest as _;
        let der = pem::parse(certificate_pem).expect("a PEM certificate");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let thumbprint = b64.encode(sha2::Sha256::digest(der.contents()));
        let sha1 = b64.encode(<sha1::Sha1 as sha1::Digest>::digest(der.contents()));
        let mut inner = self.inner();
        inner
            .certificates
            .insert(format!("S256:{thumbprint}"), public_key_pem.to_owned());
        inner
            .certificates
            .insert(format!("SHA1:{sha1}"), public_key_pem.to_owned());
        thumbprint
    }

    /// Forgets every issued token, as if they had all expired.
    pub fn revoke_tokens(&self) {
        self.inner().tokens.clear();
    }

    pub fn invitation_calls(&self) -> Vec<InvitationCall> {
        self.inner().invitation_calls.clone()
    }

    /// Invitations actually created (201).
    pub fn created(&self) -> Vec<InvitationCall> {
        self.invitation_calls()
            .into_iter()
            .filter(|c| c.status == 201)
            .collect()
    }

    pub fn token_calls(&self) -> Vec<TokenCall> {
        self.inner().token_calls.clone()
    }

    /// Every access token issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner().tokens.keys().cloned().collect()
    }

    /// Every redeem URL handed out.
    pub fn redeem_urls(&self) -> Vec<String> {
        self.inner().redeem_urls.clone()
    }

    /// Adds a user to the directory: `user_type` `Guest` or `Member`; `state` the guest's
    /// `externalUserState`, changed `days_ago`. Returns its id.
    pub fn seed_user(
        &self,
        mail: &str,
        user_type: &str,
        state: Option<&str>,
        days_ago: i64,
    ) -> String {
        let changed = time::OffsetDateTime::now_utc() - time::Duration::days(days_ago);
        let user = DirectoryUser::new(
            mail,
            user_type,
            state,
            changed
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        );
        let id = user.id.clone();
        self.inner().users.insert(mail.to_ascii_lowercase(), user);
        id
    }

    /// Backdates a user's `externalUserStateChangeDateTime` (an invitation pending that long).
    pub fn set_state_changed(&self, mail: &str, days_ago: i64) {
        if let Some(u) = self.inner().users.get_mut(&mail.to_ascii_lowercase()) {
            u.external_user_state_change = (time::OffsetDateTime::now_utc()
                - time::Duration::days(days_ago))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        }
    }

    pub fn user(&self, mail: &str) -> Option<DirectoryUser> {
        self.inner().users.get(&mail.to_ascii_lowercase()).cloned()
    }

    /// The guest redeems their invitation: `externalUserState` becomes `Accepted`, now.
    pub fn accept(&self, mail: &str) {
        if let Some(u) = self.inner().users.get_mut(&mail.to_ascii_lowercase()) {
            u.external_user_state = Some("Accepted".into());
            u.external_user_state_change = now_rfc3339();
        }
    }

    /// Sets a property on a user, as an administrator would outside the relay.
    pub fn set_attribute(&self, mail: &str, name: &str, value: Value) {
        if let Some(u) = self.inner().users.get_mut(&mail.to_ascii_lowercase()) {
            u.attributes.insert(name.to_owned(), value);
        }
    }

    /// A lifecycle policy (or an administrator) deletes the user: soft deletion.
    pub fn delete_user(&self, mail: &str) {
        let mut inner = self.inner();
        if let Some(u) = inner.users.remove(&mail.to_ascii_lowercase()) {
            inner.deleted.insert(u.id.clone(), u);
        }
    }

    /// Writes to users (PATCH, revokeSignInSessions, sponsors, deletions, group removals).
    pub fn user_calls(&self) -> Vec<UserCall> {
        self.inner().user_calls.clone()
    }

    /// The id of the soft-deleted user with this address, if any.
    pub fn deleted_id(&self, mail: &str) -> Option<String> {
        self.inner()
            .deleted
            .values()
            .find(|u| u.mail.eq_ignore_ascii_case(mail))
            .map(|u| u.id.clone())
    }

    /// Whether a soft-deleted user with this id exists.
    pub fn is_deleted(&self, id: &str) -> bool {
        self.inner().deleted.contains_key(id)
    }

    /// New guests are answered 404 on their first `n` group additions.
    pub fn set_replication_lag(&self, n: u32) {
        self.inner().replication_lag = n;
    }

    /// The application permissions in the tokens issued from now on (the `roles` claim), as
    /// if the admin had consented exactly these.
    pub fn set_roles(&self, roles: &[&str]) {
        self.inner().roles = roles.iter().map(|r| (*r).to_owned()).collect();
    }

    /// Creates an empty group.
    pub fn add_group(&self, id: &str) {
        self.inner().groups.insert(id.to_owned(), Vec::new());
    }

    pub fn group_members(&self, id: &str) -> Vec<String> {
        self.inner().groups.get(id).cloned().unwrap_or_default()
    }

    pub fn user_queries(&self) -> Vec<UserQuery> {
        self.inner().user_queries.clone()
    }

    pub fn group_calls(&self) -> Vec<GroupCall> {
        self.inner().group_calls.clone()
    }
}

/// The permissions consented by default: every feature of the relay works.
pub const DEFAULT_ROLES: &[&str] = &[
    "User.Invite.All",
    "User.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "User.RevokeSessions.All",
    "User.EnableDisableAccount.All",
    "User.DeleteRestore.All",
];

/// `GET /groups/{id}`: the group's `id` and `displayName` (`$select` honoured for those), or
/// 404 `Request_ResourceNotFound`.
async fn get_group(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    if !s.inner.lock().unwrap().groups.contains_key(&id) {
        return not_found(&id).1;
    }
    axum::Json(json!({"id": id, "displayName": group_name(&id)})).into_response()
}

fn group_name(id: &str) -> String {
    format!("Group {}", id.get(..8).unwrap_or(id))
}

/// `GET /users/{id}/memberOf`: the groups the user is a direct member of.
async fn member_of(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    if user_by_id(&s, &id).is_none() {
        return not_found(&id).1;
    }
    let inner = s.inner.lock().unwrap();
    let mut groups: Vec<&String> = inner
        .groups
        .iter()
        .filter(|(_, members)| members.contains(&id))
        .map(|(g, _)| g)
        .collect();
    groups.sort();
    let value: Vec<Value> = groups
        .into_iter()
        .map(|g| json!({"@odata.type": "#microsoft.graph.group", "id": g, "displayName": group_name(g)}))
        .collect();
    axum::Json(json!({ "value": value })).into_response()
}

/// The bearer token is one issued here and unexpired.
fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| {
            s.inner
                .lock()
                .unwrap()
                .tokens
                .get(t)
                .is_some_and(|exp| *exp > Instant::now())
        })
}

fn unauthorized() -> Response {
    graph_error(
        401,
        "InvalidAuthenticationToken",
        "Access token is empty or invalid.",
    )
}

/// An OData string literal: `'…'` with `'` doubled.
fn odata_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// Reads the OData string literal at the start of `s`: its value and the rest.
fn read_literal(s: &str) -> Option<(String, &str)> {
    let mut rest = s.strip_prefix('\'')?;
    let mut out = String::new();
    loop {
        let i = rest.find('\'')?;
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('\'') {
            out.push('\'');
            rest = r;
        } else {
            return Some((out, rest));
        }
    }
}

/// The address of the documented existing-user query, if `filter` is exactly that query.
fn existing_user_query(filter: &str) -> Option<String> {
    let (email, _) = read_literal(filter.strip_prefix("userPrincipalName eq ")?)?;
    let q = odata_literal(&email);
    let smtp = odata_literal(&format!("SMTP:{email}"));
    let expected = format!(
        "userPrincipalName eq {q} or mail eq {q} or proxyAddresses/any(x:x eq {smtp}) or otherMails/any(x:x eq {q})"
    );
    (filter == expected).then_some(email)
}

fn user_json(u: &DirectoryUser, select: Option<&str>) -> Value {
    let all = json!({
        "id": u.id,
        "mail": u.mail,
        "userType": u.user_type,
        "externalUserState": u.external_user_state,
        "externalUserStateChangeDateTime": u.external_user_state_change,
        "displayName": u.display_name,
        "otherMails": u.other_mails,
        "accountEnabled": u.account_enabled,
        "onPremisesExtensionAttributes": u.attributes.get("onPremisesExtensionAttributes").cloned().unwrap_or(json!({})),
    });
    let mut all = all;
    for (k, v) in &u.attributes {
        if k != "onPremisesExtensionAttributes" {
            all[k] = v.clone();
        }
    }
    match select {
        None => all,
        Some(sel) => {
            let mut out = serde_json::Map::new();
            for k in sel.split(',') {
                if let Some(v) = all.get(k.trim()) {
                    out.insert(k.trim().to_owned(), v.clone());
                }
            }
            Value::Object(out)
        }
    }
}

/// Default page size and largest `$top` of `GET /users` (user-list: "The default and maximum
/// page sizes are 100 and 999 user objects respectively").
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 999;

/// Operators and functions that only work with the advanced query parameters
/// (aad-advanced-queries: `ne`, `not` and `endsWith` are advanced-only).
fn needs_advanced_query(filter: &str) -> bool {
    filter.contains(" ne ")
        || filter.contains("not(")
        || filter.contains("endswith(")
        || filter.contains("endsWith(")
}

async fn users(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let params: HashMap<String, String> = url_form(query.unwrap_or_default().as_bytes());
    let filter = params.get("$filter").cloned().unwrap_or_default();
    let consistency = headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let record = |status: u16| {
        s.inner.lock().unwrap().user_queries.push(UserQuery {
            filter: filter.clone(),
            select: params.get("$select").cloned(),
            consistency_level: consistency.clone(),
            count: params.get("$count").cloned(),
            status,
        });
    };
    if !authorized(&s, &headers) {
        record(401);
        return unauthorized();
    }
    // Advanced query parameters: the header and `$count=true` together. Without the header,
    // `$count=true` is silently ignored.
    let advanced = consistency.as_deref() == Some("eventual")
        && params.get("$count").map(String::as_str) == Some("true");
    if needs_advanced_query(&filter) && !advanced {
        record(400);
        return graph_error(
            400,
            "Request_UnsupportedQuery",
            "Unsupported query: this filter needs the advanced query parameters (ConsistencyLevel: eventual and $count=true).",
        );
    }
    let top = match params.get("$top").map(|t| t.parse::<usize>()) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            record(400);
            return graph_error(400, "Request_BadRequest", "Invalid page size specified.");
        }
    };
    let skip: usize = match params.get("$skiptoken").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            record(400);
            return graph_error(400, "Request_BadRequest", "Invalid skip token.");
        }
    };
    let select = params.get("$select").map(String::as_str);
    let mut found: Vec<&DirectoryUser>;
    let inner = s.inner.lock().unwrap();
    if let Some(email) = existing_user_query(&filter) {
        let e = email.to_ascii_lowercase();
        found = inner
            .users
            .values()
            .filter(|u| {
                u.mail.eq_ignore_ascii_case(&e)
                    || u.other_mails.iter().any(|m| m.eq_ignore_ascii_case(&e))
            })
            .collect();
    } else if filter == "externalUserState eq 'PendingAcceptance'" {
        found = inner
            .users
            .values()
            .filter(|u| u.external_user_state.as_deref() == Some("PendingAcceptance"))
            .collect();
    } else {
        drop(inner);
        record(400);
        return graph_error(
            400,
            "BadRequest",
            "Invalid filter clause: the emulator accepts the documented existing-user query and externalUserState eq 'PendingAcceptance'.",
        );
    }
    // A stable order, so pages neither repeat nor skip anyone.
    found.sort_by(|a, b| a.id.cmp(&b.id));
    let total = found.len();
    let page: Vec<Value> = found
        .iter()
        .skip(skip)
        .take(top)
        .map(|u| user_json(u, select))
        .collect();
    drop(inner);
    record(200);
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users", s.base_url),
        "value": page,
    });
    if advanced && skip == 0 {
        body["@odata.count"] = json!(total);
    }
    if skip + top < total {
        // The whole next URL, as Graph gives it: the same query plus a `$skiptoken`.
        let mut next = url::Url::parse(&format!("{}/v1.0/users", s.base_url)).unwrap();
        {
            let mut q = next.query_pairs_mut();
            for (k, v) in params.iter().filter(|(k, _)| k.as_str() != "$skiptoken") {
                q.append_pair(k, v);
            }
            q.append_pair("$skiptoken", &(skip + top).to_string());
        }
        body["@odata.nextLink"] = json!(next.to_string());
    }
    axum::Json(body).into_response()
}

async fn add_member(
    State(s): State<Arc<Shared>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = {
        let mut inner = s.inner.lock().unwrap();
        inner.group_requests += 1;
        inner.group_faults.pop_front()
    };
    if let Some(Fault::Delay(d)) = fault {
        tokio::time::sleep(d).await;
    }
    let (status, response) = add_member_response(&s, &group, &headers, &parsed);
    s.inner.lock().unwrap().group_calls.push(GroupCall {
        group,
        body: parsed,
        status,
    });
    response
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Graph's 404 for a directory object that doesn't exist (or isn't replicated yet).
fn not_found(id: &str) -> (u16, Response) {
    (
        404,
        graph_error(
            404,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        ),
    )
}

fn add_member_response(
    s: &Shared,
    group: &str,
    headers: &HeaderMap,
    body: &Value,
) -> (u16, Response) {
    if !authorized(s, headers) {
        return (401, unauthorized());
    }
    let prefix = format!("{}/v1.0/directoryObjects/", s.base_url);
    let user_id = match body.as_object() {
        Some(o) if o.len() == 1 => o
            .get("@odata.id")
            .and_then(Value::as_str)
            .and_then(|v| v.strip_prefix(&prefix))
            .map(str::to_owned),
        _ => None,
    };
    let Some(user_id) = user_id else {
        return (
            400,
            graph_error(
                400,
                "Request_BadRequest",
                "Invalid object identifier: the body must be {\"@odata.id\": \"{graph}/v1.0/directoryObjects/{id}\"}.",
            ),
        );
    };
    let mut inner = s.inner.lock().unwrap();
    if !inner.groups.contains_key(group) {
        return not_found(group);
    }
    let Some(user) = inner.users.values_mut().find(|u| u.id == user_id) else {
        return not_found(&user_id);
    };
    if user.unreplicated > 0 {
        user.unreplicated -= 1;
        return not_found(&user_id);
    }
    let members = inner.groups.get_mut(group).expect("checked above");
    if members.contains(&user_id) {
        return (
            400,
            graph_error(
                400,
                "Request_BadRequest",
                "One or more added object references already exist for the following modified properties: 'members'.",
            ),
        );
    }
    members.push(user_id);
    (204, StatusCode::NO_CONTENT.into_response())
}

fn graph_error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": code,
        "message": message,
        "innerError": {"date": "2026-11-21T10:00:00", "request-id": uuid::Uuid::new_v4().to_string()}
    }});
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn oauth_error(status: u16, error: &str, aadsts: &str, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("{aadsts}: {description}"),
        "error_codes": [aadsts.trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)],
        "timestamp": "2026-11-21 10:00:00Z",
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(body),
    )
        .into_response()
}

async fn token(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fault = s.inner.lock().unwrap().token_faults.pop_front();
    let form: HashMap<String, String> = url_form(&body);
    let record = |status: u16| {
        s.inner.lock().unwrap().token_calls.push(TokenCall {
            tenant: tenant.clone(),
            form: form.clone(),
            status,
        });
    };
    match fault {
        Some(Fault::Status {
            status,
            code,
            retry_after,
        }) => {
            record(status);
            let mut r = oauth_error(status, code, "AADSTS50000", "injected fault");
            if let Some(ra) = retry_after {
                r.headers_mut()
                    .insert("retry-after", ra.to_string().parse().unwrap());
            }
            return r;
        }
        Some(Fault::Delay(d) | Fault::CommitThenStall(d)) => tokio::time::sleep(d).await,
        Some(Fault::NoRedeemUrl | Fault::StatusError) | None => {}
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        record(400);
        return oauth_error(
            400,
            "invalid_request",
            "AADSTS900144",
            "The request body must contain the following parameter: 'grant_type'.",
        );
    }
    if tenant != s.settings.tenant_id {
        record(400);
        return oauth_error(400, "invalid_request", "AADSTS90002", "Tenant not found.");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        record(400);
        return oauth_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003",
            "The app requested an unsupported grant type.",
        );
    }
    if form.get("client_id") != Some(&s.settings.client_id) {
        record(400);
        return oauth_error(
            400,
            "unauthorized_client",
            "AADSTS700016",
            "Application not found in the directory.",
        );
    }
    let expected_scope = format!("{}/.default", s.base_url);
    match form.get("scope") {
        Some(scope) if scope == &expected_scope => {}
        Some(scope) if !scope.ends_with("/.default") => {
            record(400);
            return oauth_error(
                400,
                "invalid_scope",
                "AADSTS1002012",
                "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
            );
        }
        _ => {
            record(400);
            return oauth_error(
                400,
                "invalid_scope",
                "AADSTS500011",
                "The resource principal was not found in the tenant.",
            );
        }
    }
    if form.contains_key("client_assertion") || form.contains_key("client_assertion_type") {
        let endpoint = format!("{}/{}/oauth2/v2.0/token", s.base_url, tenant);
        if let Err((aadsts, description)) = check_assertion(&s, &form, &endpoint) {
            record(401);
            return oauth_error(401, "invalid_client", aadsts, description);
        }
    } else if !{
        let inner = s.inner.lock().unwrap();
        form.get("client_secret")
            .is_some_and(|c| inner.client_secrets.contains(c))
    } {
        record(401);
        return oauth_error(
            401,
            "invalid_client",
            "AADSTS7000215",
            "Invalid client secret provided.",
        );
    }
    let roles = s.inner.lock().unwrap().roles.clone();
    let token = fake_jwt(&s.settings, &roles);
    let lifetime = s.settings.token_lifetime;
    {
        let mut inner = s.inner.lock().unwrap();
        inner
            .tokens
            .insert(token.clone(), Instant::now() + lifetime);
    }
    record(200);
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": token,
    }))
    .into_response()
}

/// Verifies a certificate's client assertion as the identity platform does.
fn check_assertion(
    s: &Shared,
    form: &HashMap<String, String>,
    endpoint: &str,
) -> Result<(), (&'static str, &'static str)> {
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        || form.contains_key("client_secret")
    {
        return Err(("AADSTS50027", "Invalid client assertion type."));
    }
    let jwt = form
        .get("client_assertion")
        .ok_or(("AADSTS50027", "Missing client assertion."))?;
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|_| ("AADSTS50027", "The client assertion is not a JWT."))?;
    // The two documented forms: PS256 with the SHA-256 thumbprint (`x5t#S256`, the current
    // certificate-credentials page) or RS256 with the SHA-1 thumbprint (`x5t`, the earlier
    // pages). Any other pairing is refused.
    let thumbprint = match (header.alg, &header.x5t_s256, &header.x5t) {
        (jsonwebtoken::Algorithm::PS256, Some(t), None) => format!("S256:{t}"),
        (jsonwebtoken::Algorithm::RS256, None, Some(t)) => format!("SHA1:{t}"),
        _ => {
            return Err((
                "AADSTS5002738",
                "The client assertion must be PS256 with x5t#S256, or RS256 with x5t.",
            ));
        }
    };
    let public_key = s
        .inner
        .lock()
        .unwrap()
        .certificates
        .get(&thumbprint)
        .cloned()
        .ok_or((
            "AADSTS700027",
            "The certificate with the thumbprint in the assertion is not registered for the application.",
        ))?;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_key.as_bytes())
        .map_err(|_| ("AADSTS700027", "Registered key unusable."))?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[endpoint]);
    v.set_issuer(&[s.settings.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    v.validate_nbf = true;
    v.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => (
            "AADSTS700024",
            "Client assertion is not within its valid time range.",
        ),
        jsonwebtoken::errors::ErrorKind::InvalidSignature => (
            "AADSTS700027",
            "Client assertion contains an invalid signature.",
        ),
        _ => ("AADSTS700027", "Client assertion failed validation."),
    })?;
    let claims = data.claims;
    if claims["sub"] != s.settings.client_id.as_str() {
        return Err(("AADSTS700027", "The sub claim must be the client id."));
    }
    let lifetime = claims["exp"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(claims["nbf"].as_u64().unwrap_or(0));
    if lifetime > 3600 {
        return Err((
            "AADSTS700027",
            "Client assertions may be valid for an hour at most.",
        ));
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or(("AADSTS700027", "The client assertion has no jti."))?;
    if !s.inner.lock().unwrap().seen_jti.insert(jti.to_owned()) {
        return Err((
            "AADSTS700027",
            "The client assertion was already used (jti replay).",
        ));
    }
    Ok(())
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A JWT-shaped opaque token (`eyJ…`), unique per issue.
fn fake_jwt(settings: &GraphSettings, roles: &[String]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"RS256","kid":"emulator"}"#);
    let claims = b64.encode(
        json!({"aud": "https://graph.microsoft.com", "tid": settings.tenant_id, "appid": settings.client_id,
               "roles": roles, "jti": uuid::Uuid::new_v4().to_string()})
        .to_string(),
    );
    let sig = b64.encode(uuid::Uuid::new_v4().as_bytes());
    format!("{header}.{claims}.{sig}")
}

/// Properties of the `invitation` resource a client may send, with their types.
const INVITATION_PROPERTIES: &[(&str, &str)] = &[
    ("invitedUserDisplayName", "string"),
    ("invitedUserEmailAddress", "string"),
    ("invitedUserMessageInfo", "object"),
    ("sendInvitationMessage", "boolean"),
    ("inviteRedirectUrl", "string"),
    ("resetRedemption", "boolean"),
    ("invitedUser", "object"),
    ("invitedUserType", "string"),
    ("invitedUserSponsors", "array"),
];

/// The shapes of `invitedUserSponsors` and `invitedUserMessageInfo`.
fn check_relationships(obj: &serde_json::Map<String, Value>) -> Result<(), String> {
    if let Some(sponsors) = obj.get("invitedUserSponsors").and_then(Value::as_array) {
        if sponsors.len() > 5 {
            return Err("A guest can have at most 5 sponsors.".into());
        }
        for sp in sponsors {
            let ok = sp.as_object().is_some_and(|o| {
                o.keys().all(|k| k == "id" || k == "@odata.type")
                    && o.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
            });
            if !ok {
                return Err(
                    "invitedUserSponsors must be directory objects with an id (GUID).".into(),
                );
            }
        }
    }
    if let Some(info) = obj.get("invitedUserMessageInfo") {
        let o = info
            .as_object()
            .ok_or("invitedUserMessageInfo must be an object.")?;
        for (k, v) in o {
            let ok = match k.as_str() {
                "messageLanguage" | "customizedMessageBody" => v.is_string() || v.is_null(),
                // "Currently only 1 additional recipient is supported."
                "ccRecipients" => v.as_array().is_some_and(|a| {
                    a.len() <= 1
                        && a.iter().all(|r| {
                            r.get("emailAddress")
                                .and_then(|e| e.get("address"))
                                .and_then(Value::as_str)
                                .is_some_and(|a| a.contains('@'))
                        })
                }),
                "@odata.type" => true,
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "Property '{k}' of invitedUserMessageInfo is invalid or does not exist."
                ));
            }
        }
    }
    Ok(())
}

const FORBIDDEN: &[char] = &[
    '~', '!', '#', '$', '%', '^', '&', '*', '(', ')', '+', '=', '[', ']', '{', '}', '\\', '/', '|',
    ';', ':', '"', '<', '>', '?', ',',
];

async fn invitations(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let at = Instant::now();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = s.inner.lock().unwrap().invitation_faults.pop_front();
    let (mut stall, mut late) = (None, false);
    match &fault {
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(*d).await;
            late = true;
        }
        Some(Fault::CommitThenStall(d)) => {
            stall = Some(*d);
            late = true;
        }
        _ => {}
    }
    let (status, response) = invitation_response(&s, &headers, &parsed, fault).await;
    // Recorded before any stall, so a client that gives up can't make a created invitation vanish.
    s.inner
        .lock()
        .unwrap()
        .invitation_calls
        .push(InvitationCall {
            authorization,
            body: parsed,
            status,
            late,
            at,
        });
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    response
}

/// The latency set for the kind of call, before the call is handled (the emulator's own pages,
/// `/_devkit/…` and `/redeem`, answer at once).
async fn added_latency(
    State(s): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let latency = {
        let l = s.latency.lock().unwrap();
        if path.ends_with("/oauth2/v2.0/token") {
            l.token
        } else if path == "/v1.0/invitations" {
            l.invitation
        } else if path.starts_with("/v1.0/") {
            l.other
        } else {
            Latency::ZERO
        }
    };
    latency.wait(&s.jitter).await;
    next.run(request).await
}

async fn invitation_response(
    s: &Shared,
    headers: &HeaderMap,
    body: &Value,
    fault: Option<Fault>,
) -> (u16, Response) {
    let email_for_messages = body
        .get("invitedUserEmailAddress")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let (mut strip_redeem, mut status_error) = (false, false);
    match fault {
        Some(Fault::Status {
            status,
            code,
            retry_after,
        }) => {
            let mut r = graph_error(
                status,
                code,
                &format!("Injected failure while inviting {email_for_messages}."),
            );
            if let Some(ra) = retry_after {
                r.headers_mut()
                    .insert("retry-after", ra.to_string().parse().unwrap());
            }
            return (status, r);
        }
        Some(Fault::NoRedeemUrl) => strip_redeem = true,
        Some(Fault::StatusError) => status_error = true,
        Some(Fault::Delay(_) | Fault::CommitThenStall(_)) | None => {}
    }

    if !authorized(s, headers) {
        return (401, unauthorized());
    }
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return (
            415,
            graph_error(
                415,
                "UnsupportedMediaType",
                "Content-Type must be application/json.",
            ),
        );
    }
    let Some(obj) = body.as_object() else {
        return (
            400,
            graph_error(400, "BadRequest", "Empty or invalid payload."),
        );
    };
    for (k, v) in obj {
        let Some((_, ty)) = INVITATION_PROPERTIES.iter().find(|(name, _)| name == k) else {
            return (
                400,
                graph_error(
                    400,
                    "BadRequest",
                    &format!("Property '{k}' does not exist on type 'microsoft.graph.invitation'."),
                ),
            );
        };
        let ok = match *ty {
            "string" => v.is_string() || v.is_null(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            _ => false,
        };
        if !ok {
            return (
                400,
                graph_error(
                    400,
                    "BadRequest",
                    &format!("Cannot convert the literal to the expected type for '{k}'."),
                ),
            );
        }
    }
    let Some(email) = obj.get("invitedUserEmailAddress").and_then(Value::as_str) else {
        return (
            400,
            graph_error(
                400,
                "BadRequest",
                "Required property 'invitedUserEmailAddress' is missing.",
            ),
        );
    };
    if obj
        .get("inviteRedirectUrl")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return (
            400,
            graph_error(
                400,
                "BadRequest",
                "Required property 'inviteRedirectUrl' is missing.",
            ),
        );
    }
    let local = email.split('@').next().unwrap_or("");
    if email.contains(FORBIDDEN)
        || email.matches('@').count() != 1
        || local.starts_with(['.', '-'])
        || local.ends_with(['.', '-'])
    {
        return (
            400,
            graph_error(
                400,
                "BadRequest",
                &format!("The email address '{email}' is invalid."),
            ),
        );
    }
    if let Some(t) = obj.get("invitedUserType").and_then(Value::as_str)
        && t != "Guest"
        && t != "Member"
    {
        return (
            400,
            graph_error(
                400,
                "BadRequest",
                "invitedUserType must be Guest or Member.",
            ),
        );
    }
    if let Err(message) = check_relationships(obj) {
        return (400, graph_error(400, "BadRequest", &message));
    }
    let reset = obj.get("resetRedemption").and_then(Value::as_bool) == Some(true);
    let sponsors: Vec<String> = obj
        .get("invitedUserSponsors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|sp| sp.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let invited_user = obj
        .get("invitedUser")
        .and_then(|u| u.get("id"))
        .and_then(Value::as_str);
    let user_id = {
        let mut inner = s.inner.lock().unwrap();
        let lag = inner.replication_lag;
        match (reset, invited_user) {
            (true, Some(id)) => {
                let Some(u) = inner.users.values().find(|u| u.id == id) else {
                    return (
                        404,
                        graph_error(
                            404,
                            "Request_ResourceNotFound",
                            "The invited user does not exist.",
                        ),
                    );
                };
                if !u.mail.eq_ignore_ascii_case(email)
                    && !u.other_mails.iter().any(|m| m.eq_ignore_ascii_case(email))
                {
                    return (
                        400,
                        graph_error(
                            400,
                            "BadRequest",
                            "The email address provided doesn't match any emails on the user object.",
                        ),
                    );
                }
                let id = u.id.clone();
                if let Some(u) = inner.users.values_mut().find(|u| u.id == id) {
                    u.external_user_state = Some("PendingAcceptance".into());
                }
                id
            }
            (true, None) => {
                return (
                    400,
                    graph_error(
                        400,
                        "BadRequest",
                        "invitedUser with an id is required when resetRedemption is true.",
                    ),
                );
            }
            (false, Some(_)) => {
                return (
                    400,
                    graph_error(
                        400,
                        "BadRequest",
                        "invitedUser can only be set to reset the redemption (resetRedemption: true).",
                    ),
                );
            }
            (false, None) => {
                let user_type = obj
                    .get("invitedUserType")
                    .and_then(Value::as_str)
                    .unwrap_or("Guest")
                    .to_owned();
                let display_name = obj
                    .get("invitedUserDisplayName")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                inner
                    .users
                    .entry(email.to_ascii_lowercase())
                    .or_insert_with(|| {
                        let mut u = DirectoryUser::new(
                            email,
                            &user_type,
                            Some("PendingAcceptance"),
                            now_rfc3339(),
                        );
                        u.display_name = display_name;
                        u.unreplicated = lag;
                        u.sponsors = sponsors.clone();
                        u
                    })
                    .id
                    .clone()
            }
        }
    };
    let ticket = uuid::Uuid::new_v4().simple().to_string();
    let local = s.inner.lock().unwrap().local_redeem;
    let redeem = if local {
        format!("{}/redeem?user={user_id}&ticket={ticket}", s.base_url)
    } else {
        format!(
            "https://login.microsoftonline.com/redeem?rd=https%3a%2f%2finvitations.microsoft.com%2fredeem%2f%3ftenant%3d{}%26user%3d{}%26ticket%3d{}%26ver%3d2.0",
            s.settings.tenant_id, user_id, ticket
        )
    };
    s.inner.lock().unwrap().redeem_urls.push(redeem.clone());
    let upn = format!("{}#EXT#@emulator.onmicrosoft.com", email.replace('@', "_"));
    let mut out = json!({
        "@odata.context": format!("{}/v1.0/$metadata#invitations/$entity", s.base_url),
        "id": uuid::Uuid::new_v4().to_string(),
        "inviteRedeemUrl": redeem,
        "invitedUserDisplayName": obj.get("invitedUserDisplayName").cloned().unwrap_or(Value::Null),
        "invitedUserType": obj.get("invitedUserType").cloned().unwrap_or(json!("Guest")),
        "invitedUserEmailAddress": email,
        "sendInvitationMessage": obj.get("sendInvitationMessage").cloned().unwrap_or(json!(false)),
        "resetRedemption": obj.get("resetRedemption").cloned().unwrap_or(json!(false)),
        "inviteRedirectUrl": obj.get("inviteRedirectUrl").cloned(),
        "status": "PendingAcceptance",
        "invitedUserMessageInfo": obj.get("invitedUserMessageInfo").cloned().unwrap_or(json!({"messageLanguage": null, "customizedMessageBody": null, "ccRecipients": []})),
        "invitedUser": {"id": user_id, "userPrincipalName": upn},
    });
    if strip_redeem {
        out.as_object_mut().unwrap().remove("inviteRedeemUrl");
    }
    if status_error {
        out["status"] = json!("Error");
    }
    (201, (StatusCode::CREATED, axum::Json(out)).into_response())
}

/// Properties of `user` an app may write with `PATCH /users/{id}`, with their longest value
/// (`None`: not a string, or no documented limit). From the user-update page and the user
/// resource's property descriptions.
const WRITABLE_USER_PROPERTIES: &[(&str, Option<usize>)] = &[
    ("accountEnabled", None),
    ("businessPhones", None),
    ("city", Some(128)),
    ("companyName", Some(64)),
    ("country", Some(128)),
    ("department", Some(64)),
    ("displayName", Some(256)),
    ("employeeId", Some(16)),
    ("employeeType", None),
    ("givenName", Some(64)),
    ("jobTitle", Some(128)),
    ("mobilePhone", Some(64)),
    ("officeLocation", Some(128)),
    ("onPremisesExtensionAttributes", None),
    ("otherMails", None),
    ("postalCode", Some(40)),
    ("preferredLanguage", None),
    ("state", Some(128)),
    ("streetAddress", Some(1024)),
    ("surname", Some(64)),
    ("usageLocation", Some(2)),
    ("userType", None),
];

/// Properties that exist on `user` but can't be written.
const READ_ONLY_USER_PROPERTIES: &[&str] = &[
    "id",
    "createdDateTime",
    "creationType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "proxyAddresses",
    "signInSessionsValidFromDateTime",
    "mail",
    "userPrincipalName",
];

/// `GET /redeem`: where a local redeem link lands (the real one is Microsoft's consent page).
async fn redeem_page(
    State(s): State<Arc<Shared>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    s.inner
        .lock()
        .unwrap()
        .redemptions
        .push(query.unwrap_or_default());
    axum::response::Html(
        "<!doctype html><title>Microsoft redemption (emulator)</title><h1>Review permissions (emulator)</h1>",
    )
    .into_response()
}

/// `GET /_devkit/users/{mail}`: the user as the emulator holds it, sponsors included.
async fn devkit_user(State(s): State<Arc<Shared>>, Path(mail): Path<String>) -> Response {
    let found = s
        .inner
        .lock()
        .unwrap()
        .users
        .get(&mail.to_ascii_lowercase())
        .cloned();
    match found {
        Some(u) => {
            let mut v = user_json(&u, None);
            v["sponsors"] = json!(u.sponsors);
            axum::Json(v).into_response()
        }
        None => not_found(&mail).1,
    }
}

/// `POST /_devkit/users/{mail}/accept`: the partner redeems the invitation.
async fn devkit_accept(State(s): State<Arc<Shared>>, Path(mail): Path<String>) -> Response {
    let mut inner = s.inner.lock().unwrap();
    match inner.users.get_mut(&mail.to_ascii_lowercase()) {
        Some(u) => {
            u.external_user_state = Some("Accepted".into());
            u.external_user_state_change = now_rfc3339();
            StatusCode::NO_CONTENT.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The user routes' fault queue, applied around the handler.
async fn user_call_faults(
    State(s): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let fault = s.inner.lock().unwrap().user_faults.pop_front();
    match fault {
        Some(Fault::Status {
            status,
            code,
            retry_after,
        }) => {
            let mut r = graph_error(status, code, "Injected failure.");
            if let Some(ra) = retry_after {
                r.headers_mut()
                    .insert("retry-after", ra.to_string().parse().unwrap());
            }
            r
        }
        Some(Fault::Delay(d)) => {
            s.inner.lock().unwrap().late_user_calls += 1;
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(Fault::CommitThenStall(d)) => {
            s.inner.lock().unwrap().late_user_calls += 1;
            let r = next.run(req).await;
            tokio::time::sleep(d).await;
            r
        }
        Some(Fault::NoRedeemUrl | Fault::StatusError) | None => next.run(req).await,
    }
}

fn record_user_call(s: &Shared, method: &'static str, path: String, body: Value, status: u16) {
    s.inner.lock().unwrap().user_calls.push(UserCall {
        method,
        path,
        body,
        status,
    });
}

/// The live (not deleted) user with this id, as a clone.
fn user_by_id(s: &Shared, id: &str) -> Option<DirectoryUser> {
    s.inner
        .lock()
        .unwrap()
        .users
        .values()
        .find(|u| u.id == id)
        .cloned()
}

fn with_user(s: &Shared, id: &str, f: impl FnOnce(&mut DirectoryUser)) -> bool {
    let mut inner = s.inner.lock().unwrap();
    match inner.users.values_mut().find(|u| u.id == id) {
        Some(u) => {
            f(u);
            true
        }
        None => false,
    }
}

async fn get_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let params: HashMap<String, String> = url_form(query.unwrap_or_default().as_bytes());
    let found = user_by_id(&s, &id);
    let status = if found.is_some() { 200 } else { 404 };
    record_user_call(&s, "GET", format!("/users/{id}"), Value::Null, status);
    match found {
        Some(u) => {
            axum::Json(user_json(&u, params.get("$select").map(String::as_str))).into_response()
        }
        None => not_found(&id).1,
    }
}

/// Checks a `PATCH /users/{id}` body against the writable properties and their limits.
fn check_user_patch(body: &Value) -> Result<&serde_json::Map<String, Value>, String> {
    let obj = body.as_object().ok_or("Empty or invalid payload.")?;
    for (k, v) in obj {
        if READ_ONLY_USER_PROPERTIES.contains(&k.as_str()) {
            return Err(format!("Property '{k}' is read-only and cannot be set."));
        }
        let Some((_, max)) = WRITABLE_USER_PROPERTIES.iter().find(|(n, _)| n == k) else {
            return Err(format!(
                "Property '{k}' does not exist on type 'microsoft.graph.user'."
            ));
        };
        match (k.as_str(), v) {
            ("accountEnabled", v) if !v.is_boolean() => {
                return Err("Invalid value for accountEnabled.".into());
            }
            ("usageLocation", Value::String(c))
                if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) =>
            {
                return Err("Invalid value specified for property 'usageLocation'.".into());
            }
            ("onPremisesExtensionAttributes", Value::Object(attrs)) => {
                for (ak, av) in attrs {
                    let slot_ok = ak
                        .strip_prefix("extensionAttribute")
                        .and_then(|n| n.parse::<u8>().ok())
                        .is_some_and(|n| (1..=15).contains(&n));
                    if !slot_ok || !(av.is_string() || av.is_null()) {
                        return Err(format!(
                            "Invalid property '{ak}' of onPremisesExtensionAttributes."
                        ));
                    }
                }
            }
            ("onPremisesExtensionAttributes", _) => {
                return Err("onPremisesExtensionAttributes must be an object.".into());
            }
            (_, Value::String(text)) if max.is_some_and(|m| text.chars().count() > m) => {
                return Err(format!(
                    "Invalid value specified for property '{k}' of resource 'User'."
                ));
            }
            _ => {}
        }
    }
    Ok(obj)
}

async fn patch_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = format!("/users/{id}");
    if !authorized(&s, &headers) {
        record_user_call(&s, "PATCH", path, parsed, 401);
        return unauthorized();
    }
    let obj = match check_user_patch(&parsed) {
        Ok(obj) => obj.clone(),
        Err(message) => {
            record_user_call(&s, "PATCH", path, parsed, 400);
            return graph_error(400, "Request_BadRequest", &message);
        }
    };
    let replicated = {
        let mut inner = s.inner.lock().unwrap();
        match inner.users.values_mut().find(|u| u.id == id) {
            Some(u) if u.unreplicated > 0 => {
                u.unreplicated -= 1;
                false
            }
            Some(_) => true,
            None => false,
        }
    };
    let found = replicated
        && with_user(&s, &id, |u| {
            for (k, v) in obj {
                match k.as_str() {
                    "accountEnabled" => u.account_enabled = v.as_bool().unwrap_or(true),
                    "displayName" => u.display_name = v.as_str().map(str::to_owned),
                    "onPremisesExtensionAttributes" => {
                        let slots = u
                            .attributes
                            .entry("onPremisesExtensionAttributes")
                            .or_insert_with(|| json!({}));
                        for (ak, av) in v.as_object().cloned().unwrap_or_default() {
                            slots[ak] = av;
                        }
                    }
                    _ => {
                        u.attributes.insert(k, v);
                    }
                }
            }
        });
    let status = if found { 204 } else { 404 };
    record_user_call(&s, "PATCH", path, parsed, status);
    if found {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found(&id).1
    }
}

async fn delete_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/users/{id}");
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let removed = {
        let mut inner = s.inner.lock().unwrap();
        let key = inner
            .users
            .iter()
            .find(|(_, u)| u.id == id)
            .map(|(k, _)| k.clone());
        match key.and_then(|k| inner.users.remove(&k)) {
            Some(u) => {
                inner.deleted.insert(u.id.clone(), u);
                true
            }
            None => false,
        }
    };
    record_user_call(
        &s,
        "DELETE",
        path,
        Value::Null,
        if removed { 204 } else { 404 },
    );
    if removed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found(&id).1
    }
}

/// `POST /users/{id}/revokeSignInSessions`: no body; `200 {"value": true}`.
async fn revoke_sessions(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/users/{id}/revokeSignInSessions");
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let found = with_user(&s, &id, |u| u.sessions_revoked += 1);
    record_user_call(&s, "POST", path, Value::Null, if found { 200 } else { 404 });
    if found {
        axum::Json(json!({
            "@odata.context": format!("{}/v1.0/$metadata#Edm.Boolean", s.base_url),
            "value": true
        }))
        .into_response()
    } else {
        not_found(&id).1
    }
}

async fn list_sponsors(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    match user_by_id(&s, &id) {
        Some(u) => axum::Json(json!({
            "value": u.sponsors.iter().map(|sp| json!({"@odata.type": "#microsoft.graph.user", "id": sp})).collect::<Vec<_>>()
        }))
        .into_response(),
        None => not_found(&id).1,
    }
}

/// `POST /users/{id}/sponsors/$ref` with `{"@odata.id": "{graph}/v1.0/users/{sponsor}"}` (or
/// `/groups/{sponsor}`).
async fn add_sponsor(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = format!("/users/{id}/sponsors/$ref");
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let prefix_user = format!("{}/v1.0/users/", s.base_url);
    let prefix_group = format!("{}/v1.0/groups/", s.base_url);
    let sponsor = parsed
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("@odata.id"))
        .and_then(Value::as_str)
        .and_then(|v| {
            v.strip_prefix(&prefix_user)
                .or_else(|| v.strip_prefix(&prefix_group))
        })
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .map(str::to_owned);
    let Some(sponsor) = sponsor else {
        record_user_call(&s, "POST", path, parsed, 400);
        return graph_error(
            400,
            "Request_BadRequest",
            "Invalid object identifier: the body must be {\"@odata.id\": \"{graph}/v1.0/users/{id}\"}.",
        );
    };
    let mut too_many = false;
    let found = with_user(&s, &id, |u| {
        if u.sponsors.len() >= 5 && !u.sponsors.contains(&sponsor) {
            too_many = true;
        } else if !u.sponsors.contains(&sponsor) {
            u.sponsors.push(sponsor.clone());
        }
    });
    let status = match (found, too_many) {
        (false, _) => 404,
        (true, true) => 400,
        (true, false) => 204,
    };
    record_user_call(&s, "POST", path, parsed, status);
    match status {
        204 => StatusCode::NO_CONTENT.into_response(),
        400 => graph_error(
            400,
            "Request_BadRequest",
            "A user can have at most 5 sponsors.",
        ),
        _ => not_found(&id).1,
    }
}

/// `DELETE /users/{id}/sponsors/{sponsor}/$ref`: removes the relationship only.
async fn remove_sponsor(
    State(s): State<Arc<Shared>>,
    Path((id, sponsor)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/users/{id}/sponsors/{sponsor}/$ref");
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let mut had = false;
    let found = with_user(&s, &id, |u| {
        had = u.sponsors.contains(&sponsor);
        u.sponsors.retain(|sp| sp != &sponsor);
    });
    let status = if found && had { 204 } else { 404 };
    record_user_call(&s, "DELETE", path, Value::Null, status);
    if status == 204 {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found(&sponsor).1
    }
}

/// `DELETE /groups/{id}/members/{member}/$ref`; a non-member is 400 "One or more removed
/// object references do not exist".
async fn remove_member(
    State(s): State<Arc<Shared>>,
    Path((group, member)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/groups/{group}/members/{member}/$ref");
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let status = {
        let mut inner = s.inner.lock().unwrap();
        match inner.groups.get_mut(&group) {
            None => 404,
            Some(members) if members.contains(&member) => {
                members.retain(|m| m != &member);
                204
            }
            Some(_) => 400,
        }
    };
    record_user_call(&s, "DELETE", path, Value::Null, status);
    match status {
        204 => StatusCode::NO_CONTENT.into_response(),
        400 => graph_error(
            400,
            "Request_BadRequest",
            "One or more removed object references do not exist for the following modified properties: 'members'.",
        ),
        _ => not_found(&group).1,
    }
}
