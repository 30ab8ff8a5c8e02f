//! App-only OAuth2 client-credentials tokens, cached per container until shortly before expiry.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::GraphError;
use super::GraphSettings;

/// Refresh this long before `expires_in` runs out.
const EARLY_REFRESH: Duration = Duration::from_secs(300);

/// The app credential used at the token endpoint.
#[derive(Clone)]
pub enum ClientCredential {
    Secret(SecretString),
    /// A certificate registered on the app: each token request carries a signed client
    /// assertion (Microsoft's recommended app credential).
    Certificate(std::sync::Arc<CertificateCredential>),
}

/// A private key and the SHA-256 thumbprint of its certificate.
pub struct CertificateCredential {
    key: jsonwebtoken::EncodingKey,
    /// base64url SHA-256 of the certificate's DER: the `x5t#S256` header.
    thumbprint: String,
}

impl CertificateCredential {
    /// From a PEM certificate and its PEM RSA private key (PKCS#8 or PKCS#1).
    ///
    /// # Errors
    /// Which of the two is unusable (never their content).
    pub fn from_pem(certificate: &str, private_key: &str) -> Result<Self, String> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let cert = pem::parse(certificate)
            .ok()
            .filter(|p| p.tag() == "CERTIFICATE")
            .ok_or("graph_client_certificate: not a PEM certificate")?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes())
            .map_err(|_| "graph_client_private_key: not a PEM RSA private key")?;
        let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(cert.contents()));
        Ok(Self { key, thumbprint })
    }

    /// The base64url SHA-256 thumbprint (`x5t#S256`).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A client assertion for `audience` (the token endpoint): PS256, `x5t#S256` header,
    /// `iss` = `sub` = the client id, a unique `jti`, valid for ten minutes.
    ///
    /// # Errors
    /// When signing fails.
    pub fn assertion(&self, client_id: &str, audience: &str) -> Result<String, GraphError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let jti = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(now.as_nanos().to_le_bytes());
            h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            h.update(std::process::id().to_le_bytes());
            hex::encode(&h.finalize()[..16])
        };
        // The pair Microsoft's current certificate-credentials page documents: PS256 (PSS
        // padding) with the certificate's SHA-256 thumbprint in `x5t#S256`.
        // <https://learn.microsoft.com/entra/identity-platform/certificate-credentials>
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.x5t_s256 = Some(self.thumbprint.clone());
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "nbf": now.as_secs(),
            "iat": now.as_secs(),
            "exp": now.as_secs() + ASSERTION_LIFETIME.as_secs(),
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|_| {
            GraphError::CredentialRefused("the client assertion could not be signed".into())
        })
    }
}

/// How long a client assertion is valid.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

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
    pub fn new(http: reqwest::Client, cfg: &GraphSettings) -> Self {
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
        let assertion;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope.as_str()),
        ];
        match credential {
            ClientCredential::Secret(secret) => {
                form.push(("client_secret", secret.expose_secret()))
            }
            ClientCredential::Certificate(cert) => {
                assertion = cert.assertion(&self.client_id, &self.endpoint)?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                form.push(("client_assertion", assertion.as_str()));
            }
        }
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
