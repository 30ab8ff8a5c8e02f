//! `POST /v1.0/invitations`.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::{classify, transport};
use super::{ClientCredential, GraphError, TokenProvider};
use crate::config::GraphConfig;
use crate::domain::{Invitation, InvitationRequest};

/// Graph API client. Base URLs come from configuration, so national clouds and local
/// emulators need no code change.
pub struct GraphClient {
    http: reqwest::Client,
    invitations: String,
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

impl GraphClient {
    pub fn new(http: reqwest::Client, cfg: &GraphConfig) -> Self {
        Self {
            tokens: TokenProvider::new(http.clone(), cfg),
            invitations: cfg.invitations_endpoint(),
            http,
        }
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// Creates the invitation. A 401 from Graph drops the cached token and retries once with a
    /// fresh one.
    ///
    /// # Errors
    /// [`GraphError`], classified for the caller to map to a status.
    #[tracing::instrument(name = "graph.invite", skip_all)]
    pub async fn invite(
        &self,
        credential: &ClientCredential,
        req: &InvitationRequest,
    ) -> Result<Invitation, GraphError> {
        match self.invite_once(credential, req).await {
            Err(GraphError::TokenRefused(_)) => {
                tracing::warn!("Graph refused the cached token; retrying once with a fresh one");
                self.tokens.invalidate().await;
                self.invite_once(credential, req).await
            }
            other => other,
        }
    }

    async fn invite_once(
        &self,
        credential: &ClientCredential,
        req: &InvitationRequest,
    ) -> Result<Invitation, GraphError> {
        let token = self.tokens.token(credential).await?;
        let resp = self
            .http
            .post(&self.invitations)
            .bearer_auth(token.expose_secret())
            .json(req)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| transport(&e))?;
        if status != 201 && status != 200 {
            let e = classify(status, &headers, &body);
            tracing::warn!(status, error = %e, "Graph refused the invitation");
            return Err(e);
        }
        let r: InvitationResponse = serde_json::from_slice(&body)
            .map_err(|_| GraphError::InvalidResponse("the invitation response is not JSON"))?;
        let redeem_url = r
            .invite_redeem_url
            .filter(|u| u.expose_secret().starts_with("https://"))
            .ok_or(GraphError::InvalidResponse(
                "the invitation response has no inviteRedeemUrl",
            ))?;
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
}
