//! Graph calls: `POST /invitations`, the existing-user query, pending guests, and group
//! membership.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::GraphSettings;
use super::error::{classify, transport};
use super::{ClientCredential, GraphError, TokenProvider};
use crate::domain::{Invitation, InvitationRequest};

/// Graph API client. Base URLs come from configuration, so national clouds and local
/// emulators need no code change.
pub struct GraphClient {
    http: reqwest::Client,
    invitations: String,
    /// `{graph}/v1.0`
    pub(super) api: String,
    tokens: TokenProvider,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvitationResponse {
    id: Option<String>,
    invite_redeem_url: Option<SecretString>,
    status: Option<String>,
    invited_user: Option<InvitedUser>,
}

#[derive(Deserialize)]
struct InvitedUser {
    id: Option<String>,
}

/// A user found by the existing-user query.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    pub id: String,
    /// `Guest` or `Member`.
    pub user_type: Option<String>,
    /// `PendingAcceptance` or `Accepted` for invited users; absent for members.
    pub external_user_state: Option<String>,
    pub external_user_state_change_date_time: Option<String>,
    pub mail: Option<String>,
    pub display_name: Option<String>,
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// `extensionAttribute1`–`15`, where the relay writes provenance.
    #[serde(default)]
    pub on_premises_extension_attributes:
        Option<std::collections::BTreeMap<String, Option<String>>>,
}

impl DirectoryUser {
    pub fn is_guest(&self) -> bool {
        self.user_type.as_deref() == Some("Guest")
    }
    pub fn has_redeemed(&self) -> bool {
        self.external_user_state.as_deref() == Some("Accepted")
    }

    /// The value of an `onPremisesExtensionAttributes` slot (`extensionAttribute10`).
    pub fn extension_attribute(&self, slot: &str) -> Option<&str> {
        self.on_premises_extension_attributes
            .as_ref()?
            .get(slot)?
            .as_deref()
            .filter(|v| !v.is_empty())
    }
}

/// What adding a user to a group came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAdd {
    Added,
    AlreadyMember,
}

/// Quotes a value for an OData string literal: `'` is doubled.
pub fn odata_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The existing-user query from the B2B API guidance: the address as a sign-in name, mail,
/// SMTP proxy address or other mail.
pub fn existing_user_filter(email: &str) -> String {
    let q = odata_quote(email);
    let smtp = odata_quote(&format!("SMTP:{email}"));
    format!(
        "userPrincipalName eq {q} or mail eq {q} or proxyAddresses/any(x:x eq {smtp}) or otherMails/any(x:x eq {q})"
    )
}

/// Most pages one listing follows: 100 pages of 999 users.
const MAX_PAGES: usize = 100;

pub(super) const USER_SELECT: &str = "id,userType,externalUserState,externalUserStateChangeDateTime,mail,displayName,accountEnabled,onPremisesExtensionAttributes";

impl GraphClient {
    pub fn new(http: reqwest::Client, cfg: &GraphSettings) -> Self {
        Self {
            tokens: TokenProvider::new(http.clone(), cfg),
            invitations: cfg.invitations_endpoint(),
            api: format!("{}/v1.0", cfg.api_url.as_str().trim_end_matches('/')),
            http,
        }
    }

    /// A redeem link is https — or, against a Graph on plain-HTTP loopback (the project's
    /// emulator; production Graph is https), on that Graph's own origin.
    fn redeem_url_ok(&self, url: &str) -> bool {
        if url.starts_with("https://") {
            return true;
        }
        let origin = self.api.trim_end_matches("/v1.0");
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|p| origin.starts_with(p));
        loopback && url.starts_with(&format!("{origin}/"))
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// Sends one Graph request with an app-only token. A 401 drops the cached token and
    /// retries once with a fresh one. Answers the status and body of any HTTP answer.
    pub(super) async fn call(
        &self,
        credential: &ClientCredential,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), GraphError> {
        let mut refreshed = false;
        loop {
            let token = self.tokens.token(credential).await?;
            let started = std::time::Instant::now();
            let answered = async {
                let resp = build(&self.http)
                    .bearer_auth(token.expose_secret())
                    .send()
                    .await?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                Ok::<_, reqwest::Error>((status, headers, resp.bytes().await?.to_vec()))
            }
            .await;
            // The request's own time, from sending to the last byte (the token is not in it).
            crate::metrics::graph_call(started.elapsed());
            let (status, headers, body) = answered.map_err(|e| transport(&e))?;
            if status == 401 && !refreshed {
                tracing::warn!("Graph refused the cached token; retrying once with a fresh one");
                self.tokens.invalidate().await;
                refreshed = true;
                continue;
            }
            return Ok((status, headers, body));
        }
    }

    /// Creates the invitation.
    ///
    /// # Errors
    /// [`GraphError`], classified for the caller to map to a status.
    #[tracing::instrument(name = "graph.invite", skip_all)]
    pub async fn invite(
        &self,
        credential: &ClientCredential,
        req: &InvitationRequest,
    ) -> Result<Invitation, GraphError> {
        let (status, headers, body) = self
            .call(credential, |http| http.post(&self.invitations).json(req))
            .await?;
        if status != 201 && status != 200 {
            let e = classify(status, &headers, &body);
            tracing::warn!(status, error = %e, "Graph refused the invitation");
            return Err(e);
        }
        let r: InvitationResponse = serde_json::from_slice(&body)
            .map_err(|_| GraphError::InvalidResponse("the invitation response is not JSON"))?;
        let redeem_url = r
            .invite_redeem_url
            .filter(|u| self.redeem_url_ok(u.expose_secret()))
            .ok_or(GraphError::InvalidResponse(
                "the invitation response has no inviteRedeemUrl",
            ))?;
        // The invitation's documented states are PendingAcceptance, Completed, InProgress and
        // Error; an answer in Error did not invite anyone.
        if r.status.as_deref() == Some("Error") {
            return Err(GraphError::InvalidResponse(
                "the invitation's status is Error",
            ));
        }
        let id = r.id.ok_or(GraphError::InvalidResponse(
            "the invitation response has no id",
        ))?;
        let invited_user_id =
            r.invited_user
                .and_then(|u| u.id)
                .ok_or(GraphError::InvalidResponse(
                    "the invitation response has no invitedUser.id",
                ))?;
        tracing::info!(invitation_id = %id, invited_user_id = %invited_user_id, "invitation created");
        Ok(Invitation {
            id,
            invited_user_id,
            status: r.status.unwrap_or_default(),
            redeem_url,
        })
    }

    /// `GET /users` with `filter`, following `@odata.nextLink` to the end (at most
    /// [`MAX_PAGES`] pages of `top`). Both filters the relay uses are supported by default, so
    /// no advanced query parameters are sent and the answer is strongly consistent (a guest
    /// invited a moment ago is found).
    /// <https://learn.microsoft.com/graph/aad-advanced-queries>, <https://learn.microsoft.com/graph/paging>
    async fn users(
        &self,
        credential: &ClientCredential,
        filter: &str,
        top: u32,
    ) -> Result<Vec<DirectoryUser>, GraphError> {
        #[derive(Deserialize)]
        struct Page {
            value: Vec<DirectoryUser>,
            #[serde(rename = "@odata.nextLink")]
            next_link: Option<String>,
        }
        let top = top.to_string();
        let mut url = url::Url::parse_with_params(
            &format!("{}/users", self.api),
            [
                ("$filter", filter),
                ("$select", USER_SELECT),
                ("$top", top.as_str()),
            ],
        )
        .map_err(|_| GraphError::InvalidResponse("the Graph URL is not valid"))?;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let (status, headers, body) =
                self.call(credential, |http| http.get(url.clone())).await?;
            if status != 200 {
                let e = classify(status, &headers, &body);
                tracing::warn!(status, error = %e, "Graph refused the user query");
                return Err(e);
            }
            let page = serde_json::from_slice::<Page>(&body).map_err(|_| {
                GraphError::InvalidResponse("the users response is not a user list")
            })?;
            out.extend(page.value);
            let Some(next) = page.next_link else {
                return Ok(out);
            };
            // The whole link, as Graph says to use it; only ever to Graph itself, so a link
            // can't send the token elsewhere.
            url = url::Url::parse(&next)
                .ok()
                .filter(|n| n.origin() == url.origin() && n.path() == url.path())
                .ok_or(GraphError::InvalidResponse(
                    "the users response links to another origin",
                ))?;
        }
        tracing::warn!(pages = MAX_PAGES, "user listing stopped at the page limit");
        Ok(out)
    }

    /// The directory user whose sign-in name, mail, proxy address or other mail is `email`.
    ///
    /// # Errors
    /// [`GraphError`] (`User.Read.All` is needed).
    #[tracing::instrument(name = "graph.find_user", skip_all)]
    pub async fn find_user(
        &self,
        credential: &ClientCredential,
        email: &str,
    ) -> Result<Option<DirectoryUser>, GraphError> {
        Ok(self
            .users(credential, &existing_user_filter(email), 2)
            .await?
            .into_iter()
            .next())
    }

    /// Guests whose invitation is still pending (`externalUserState eq 'PendingAcceptance'`).
    ///
    /// # Errors
    /// [`GraphError`] (`User.Read.All` is needed).
    pub async fn pending_guests(
        &self,
        credential: &ClientCredential,
    ) -> Result<Vec<DirectoryUser>, GraphError> {
        self.users(credential, "externalUserState eq 'PendingAcceptance'", 999)
            .await
    }

    /// Adds `user_id` to the group; "already a member" counts as done.
    ///
    /// # Errors
    /// [`GraphError`]; a 404 right after the invitation is usually replication delay and is
    /// reported as `Unavailable` so callers retry it.
    #[tracing::instrument(name = "graph.add_member", skip_all)]
    pub async fn add_to_group(
        &self,
        credential: &ClientCredential,
        group_id: &str,
        user_id: &str,
    ) -> Result<GroupAdd, GraphError> {
        let url = format!("{}/groups/{group_id}/members/$ref", self.api);
        let body = serde_json::json!({
            "@odata.id": format!("{}/directoryObjects/{user_id}", self.api)
        });
        let (status, headers, resp) = self
            .call(credential, |http| http.post(&url).json(&body))
            .await?;
        match (status, member_error(&resp)) {
            (204 | 200, _) => Ok(GroupAdd::Added),
            (400, MemberError::AlreadyMember) => Ok(GroupAdd::AlreadyMember),
            // "404 Not Found … when the object being added doesn't exist": right after the
            // invitation, the guest not replicated yet; and the 400 Graph gives while a new
            // group replicates ("retry after a brief delay"). Both are retried.
            (404, MemberError::NotFound) | (400, MemberError::NotReplicated) => {
                Err(GraphError::Unavailable {
                    reason: format!("HTTP {status} (not replicated yet)"),
                    retry_after: None,
                })
            }
            _ => Err(classify(status, &headers, &resp)),
        }
    }
}

/// How Graph answered a group addition.
/// <https://learn.microsoft.com/graph/api/group-post-members>
#[derive(Debug, PartialEq, Eq)]
enum MemberError {
    /// 404 `Request_ResourceNotFound`.
    NotFound,
    /// 400 `Request_BadRequest`, "One or more added object references already exist": Graph
    /// has no distinct code for it, so this one case reads the message.
    AlreadyMember,
    /// 400 `Request_BadRequest`, "The source resource object or one of the objects being
    /// referenced don't exist" (a group still replicating; again only the message tells).
    NotReplicated,
    Other,
}

fn member_error(body: &[u8]) -> MemberError {
    let v = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or("");
    let message = v["error"]["message"].as_str().unwrap_or("");
    match code {
        "Request_ResourceNotFound" => MemberError::NotFound,
        "Request_BadRequest" if message.contains("object references already exist") => {
            MemberError::AlreadyMember
        }
        "Request_BadRequest" if message.contains("objects being referenced don't exist") => {
            MemberError::NotReplicated
        }
        _ => MemberError::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_user_query_escapes_quotes() {
        assert_eq!(
            existing_user_filter("o'brien@partner.example"),
            "userPrincipalName eq 'o''brien@partner.example' or mail eq 'o''brien@partner.example' \
             or proxyAddresses/any(x:x eq 'SMTP:o''brien@partner.example') \
             or otherMails/any(x:x eq 'o''brien@partner.example')"
        );
    }

    #[test]
    fn group_answers_are_read_by_code_then_message() {
        assert_eq!(
            member_error(
                br#"{"error":{"code":"Request_BadRequest","message":"One or more added object references already exist for the following modified properties: 'members'."}}"#
            ),
            MemberError::AlreadyMember
        );
        assert_eq!(
            member_error(
                br#"{"error":{"code":"Request_BadRequest","message":"The source resource object or one of the objects being referenced don't exist."}}"#
            ),
            MemberError::NotReplicated
        );
        assert_eq!(
            member_error(
                br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist or one of its queried reference-property objects are not present."}}"#
            ),
            MemberError::NotFound
        );
        // The same words under another code are not trusted.
        assert_eq!(
            member_error(
                br#"{"error":{"code":"Authorization_RequestDenied","message":"object references already exist"}}"#
            ),
            MemberError::Other
        );
        assert_eq!(
            member_error(
                br#"{"error":{"code":"Request_BadRequest","message":"Invalid object identifier"}}"#
            ),
            MemberError::Other
        );
    }
}
