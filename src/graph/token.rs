//! App-only OAuth2 client-credentials tokens, cached per container until shortly before expiry.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::GraphError;
use crate::config::GraphConfig;

/// Refresh this long before `expires_in` runs out.
const EARLY_REFRESH: Duration = Duration::from_secs(300);

/// The app credential used at the token endpoint.
#[derive(Clone)]
pub enum ClientCredential {
    Secret(SecretString),
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCredential(<redacted>)")
    }
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

/// Gets and caches access tokens. One fetch at a time: concurrent callers wait for it.
pub struct TokenProvider {
    http: reqwest::Client,
    endpoint: String,
    client_id: String,
    scope: String,
    cached: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    expires_in: u64,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
}

impl TokenProvider {
    pub fn new(http: reqwest::Client, cfg: &GraphConfig) -> Self {
        Self {
            http,
            endpoint: cfg.token_endpoint(),
            client_id: cfg.client_id.clone(),
            scope: cfg.scope(),
            cached: Mutex::new(None),
        }
    }

    /// A valid access token, from the cache when fresh.
    ///
    /// # Errors
    /// [`GraphError::CredentialRefused`] when the credential is refused; `Unavailable` when the endpoint
    /// can't be reached or answers 5xx.
    pub async fn token(&self, credential: &ClientCredential) -> Result<SecretString, GraphError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch(credential).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token (after Graph refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    #[tracing::instrument(name = "graph.token", skip_all)]
    async fn fetch(&self, credential: &ClientCredential) -> Result<Cached, GraphError> {
        let ClientCredential::Secret(secret) = credential;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret.expose_secret()),
            ("scope", self.scope.as_str()),
        ];
        let resp = self
            .http
            .post(&self.endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| super::error::transport(&e))?;
        let status = resp.status().as_u16();
        let retry_after = super::error::retry_after(resp.headers());
        let body = resp
            .bytes()
            .await
            .map_err(|e| super::error::transport(&e))?;
        match status {
            200 => {
                let t: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
                    GraphError::InvalidResponse("token response without access_token")
                })?;
                let lifetime = Duration::from_secs(t.expires_in);
                let refresh_at =
                    Instant::now() + lifetime.saturating_sub(EARLY_REFRESH).max(lifetime / 2);
                tracing::info!(expires_in = t.expires_in, "access token acquired");
                Ok(Cached {
                    token: t.access_token,
                    refresh_at,
                })
            }
            429 | 500..=599 => Err(GraphError::Unavailable {
                reason: format!("token endpoint HTTP {status}"),
                retry_after,
            }),
            _ => {
                // OAuth error codes (invalid_client, unauthorized_client, invalid_scope) are
                // safe to log; error_description is not kept.
                let code = serde_json::from_slice::<TokenError>(&body)
                    .map(|e| e.error)
                    .unwrap_or_else(|_| "unknown".into());
                let code: String = code
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect();
                Err(GraphError::CredentialRefused(format!(
                    "HTTP {status} {code}"
                )))
            }
        }
    }
}
