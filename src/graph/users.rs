//! A guest's life after the invitation: reading the user, writing its properties, sponsors,
//! blocking and revoking, group removal, deletion.
//! <https://learn.microsoft.com/graph/api/user-update>,
//! <https://learn.microsoft.com/graph/api/user-revokesigninsessions>,
//! <https://learn.microsoft.com/graph/api/user-post-sponsors>,
//! <https://learn.microsoft.com/graph/api/user-delete-sponsors>,
//! <https://learn.microsoft.com/graph/api/group-delete-members>,
//! <https://learn.microsoft.com/graph/api/user-delete>.

use serde::Deserialize;
use serde_json::Value;

use super::client::USER_SELECT;
use super::error::classify;
use super::{ClientCredential, DirectoryUser, GraphClient, GraphError};

/// What a write to a user came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    /// The change was there already (a sponsor present, a member gone).
    AlreadyDone,
}

/// A 404 right after the invitation is the guest not replicated yet: retried.
fn not_yet(status: u16) -> GraphError {
    GraphError::Unavailable {
        reason: format!("HTTP {status} (not replicated yet)"),
        retry_after: None,
    }
}

fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl GraphClient {
    /// The user with this object id, or `None` when there is none (deleted).
    ///
    /// # Errors
    /// [`GraphError`] (`User.Read.All`).
    #[tracing::instrument(name = "graph.get_user", skip_all)]
    pub async fn user(
        &self,
        credential: &ClientCredential,
        id: &str,
    ) -> Result<Option<DirectoryUser>, GraphError> {
        let url = url::Url::parse_with_params(
            &format!("{}/users/{id}", self.api),
            [("$select", USER_SELECT)],
        )
        .map_err(|_| GraphError::InvalidResponse("the Graph URL is not valid"))?;
        let (status, headers, body) = self.call(credential, |h| h.get(url.clone())).await?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|_| GraphError::InvalidResponse("the user response is not a user")),
            404 => Ok(None),
            _ => Err(classify(status, &headers, &body)),
        }
    }

    /// `PATCH /users/{id}` with `body` (only the properties to change).
    ///
    /// # Errors
    /// [`GraphError`]; a 404 (replication) is transient.
    #[tracing::instrument(name = "graph.update_user", skip_all)]
    pub async fn update_user(
        &self,
        credential: &ClientCredential,
        id: &str,
        body: &Value,
    ) -> Result<(), GraphError> {
        let url = format!("{}/users/{id}", self.api);
        let (status, headers, resp) = self.call(credential, |h| h.patch(&url).json(body)).await?;
        match status {
            200 | 204 => Ok(()),
            404 => Err(not_yet(status)),
            _ => Err(classify(status, &headers, &resp)),
        }
    }

    /// `POST /users/{id}/revokeSignInSessions` (200 with `value`, or 204 as a known issue
    /// reports).
    ///
    /// # Errors
    /// [`GraphError`] (`User.RevokeSessions.All`).
    #[tracing::instrument(name = "graph.revoke_sessions", skip_all)]
    pub async fn revoke_sessions(
        &self,
        credential: &ClientCredential,
        id: &str,
    ) -> Result<(), GraphError> {
        let url = format!("{}/users/{id}/revokeSignInSessions", self.api);
        let (status, headers, body) = self.call(credential, |h| h.post(&url)).await?;
        match status {
            200 | 204 => Ok(()),
            _ => Err(classify(status, &headers, &body)),
        }
    }

    /// The user's sponsors' object ids.
    ///
    /// # Errors
    /// [`GraphError`] (`User.Read.All`).
    #[tracing::instrument(name = "graph.sponsors", skip_all)]
    pub async fn sponsors(
        &self,
        credential: &ClientCredential,
        id: &str,
    ) -> Result<Vec<String>, GraphError> {
        #[derive(Deserialize)]
        struct Page {
            value: Vec<Obj>,
        }
        #[derive(Deserialize)]
        struct Obj {
            id: String,
        }
        let url = format!("{}/users/{id}/sponsors?$select=id", self.api);
        let (status, headers, body) = self.call(credential, |h| h.get(&url)).await?;
        match status {
            200 => serde_json::from_slice::<Page>(&body)
                .map(|p| p.value.into_iter().map(|o| o.id).collect())
                .map_err(|_| GraphError::InvalidResponse("the sponsors response is not a list")),
            404 => Err(not_yet(status)),
            _ => Err(classify(status, &headers, &body)),
        }
    }

    /// Adds a sponsor (a user's object id).
    ///
    /// # Errors
    /// [`GraphError`] (`User.ReadWrite.All`).
    #[tracing::instrument(name = "graph.add_sponsor", skip_all)]
    pub async fn add_sponsor(
        &self,
        credential: &ClientCredential,
        id: &str,
        sponsor: &str,
    ) -> Result<(), GraphError> {
        let url = format!("{}/users/{id}/sponsors/$ref", self.api);
        let body = serde_json::json!({"@odata.id": format!("{}/users/{sponsor}", self.api)});
        let (status, headers, resp) = self.call(credential, |h| h.post(&url).json(&body)).await?;
        match status {
            200 | 204 => Ok(()),
            404 => Err(not_yet(status)),
            _ => Err(classify(status, &headers, &resp)),
        }
    }

    /// Removes a sponsor: the relationship only (`/$ref`; without it Graph deletes the
    /// sponsor's own object).
    ///
    /// # Errors
    /// [`GraphError`] (`User.ReadWrite.All`).
    #[tracing::instrument(name = "graph.remove_sponsor", skip_all)]
    pub async fn remove_sponsor(
        &self,
        credential: &ClientCredential,
        id: &str,
        sponsor: &str,
    ) -> Result<Written, GraphError> {
        let url = format!("{}/users/{id}/sponsors/{sponsor}/$ref", self.api);
        let (status, headers, body) = self.call(credential, |h| h.delete(&url)).await?;
        match status {
            200 | 204 => Ok(Written::Done),
            404 => Ok(Written::AlreadyDone),
            _ => Err(classify(status, &headers, &body)),
        }
    }

    /// Removes the user from a group.
    ///
    /// # Errors
    /// [`GraphError`] (`GroupMember.ReadWrite.All`).
    #[tracing::instrument(name = "graph.remove_member", skip_all)]
    pub async fn remove_from_group(
        &self,
        credential: &ClientCredential,
        group_id: &str,
        user_id: &str,
    ) -> Result<Written, GraphError> {
        let url = format!("{}/groups/{group_id}/members/{user_id}/$ref", self.api);
        let (status, headers, body) = self.call(credential, |h| h.delete(&url)).await?;
        match status {
            200 | 204 => Ok(Written::Done),
            // "One or more removed object references do not exist": not a member (any more).
            400 if error_message(&body).contains("references do not exist") => {
                Ok(Written::AlreadyDone)
            }
            _ => Err(classify(status, &headers, &body)),
        }
    }

    /// Deletes the user (soft: restorable for 30 days).
    ///
    /// # Errors
    /// [`GraphError`] (`User.DeleteRestore.All`).
    #[tracing::instrument(name = "graph.delete_user", skip_all)]
    pub async fn delete_user(
        &self,
        credential: &ClientCredential,
        id: &str,
    ) -> Result<Written, GraphError> {
        let url = format!("{}/users/{id}", self.api);
        let (status, headers, body) = self.call(credential, |h| h.delete(&url)).await?;
        match status {
            200 | 204 => Ok(Written::Done),
            404 => Ok(Written::AlreadyDone),
            _ => Err(classify(status, &headers, &body)),
        }
    }
}
