//! Webhook signature schemes, one file each. Every scheme verifies the raw body bytes as
//! received (after Lambda's base64 decoding), compares in constant time, refuses timestamps
//! outside its window, and accepts any of the source's current keys (two during rotation).

mod credentials;
mod hub_signature;
mod hubspot;
mod salesforce;
mod standard;
mod zendesk;

use http::HeaderMap;
use secrecy::SecretString;
use serde::Deserialize;

/// The signature scheme a source uses, named in the relay configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Standard Webhooks / Svix: `webhook-*` (or `svix-*`) id, timestamp and signature headers,
    /// `whsec_` key, ±5 minutes.
    StandardWebhooks,
    /// HubSpot signature v3: `X-HubSpot-Signature-v3`, `X-HubSpot-Request-Timestamp` (ms).
    HubspotV3,
    /// Zendesk: `X-Zendesk-Webhook-Signature`, `X-Zendesk-Webhook-Signature-Timestamp`.
    Zendesk,
    /// GitHub-style `X-Hub-Signature-256: sha256=<hex>` over the body (no timestamp).
    #[serde(rename = "hub-signature-256")]
    HubSignature256,
    /// HTTP Basic credentials (Pipedrive webhooks); the key is `user:password`.
    Basic,
    /// A static `Authorization: Bearer <token>`.
    Bearer,
    /// A static key in the header named by the source's `key_name` (Dynamics 365 "HttpHeader").
    HeaderKey,
    /// A static key in the query parameter named by `key_name`, default `code` (Dynamics 365
    /// "WebhookKey").
    QueryKey,
    /// Salesforce Outbound Messages (SOAP), which Salesforce does not sign: a long random key
    /// in the endpoint URL's query (parameter `key_name`, default `key`), compared before the
    /// body is parsed, then the body's `OrganizationId` against the org's id.
    SalesforceOutbound,
    /// Amazon EventBridge events delivered to the worker (Salesforce Event Relay and other
    /// partner event buses): trust comes from the bus and IAM, so HTTP requests to such a
    /// source are always refused.
    Eventbridge,
}

/// Why verification failed. Callers answer every variant with the same 401; the variant is
/// logged for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature headers missing or malformed")]
    MissingHeaders,
    #[error("timestamp outside the tolerance")]
    Timestamp,
    #[error("no key produced a matching signature")]
    Mismatch,
    #[error("the signature scheme version is not accepted")]
    Version,
}

/// A key of one scheme, decoded once when the secret is loaded.
pub enum Key {
    StandardWebhooks(crate::standard_webhooks::WebhookKey),
    /// HMAC key bytes (HubSpot, Zendesk, Hub-Signature).
    Hmac(SecretString),
    /// Basic `user:password`, a bearer token, or a key sent in a header or the query.
    Credential(SecretString),
    /// A Salesforce org id (15 or 18 characters), the second factor of `salesforce-outbound`.
    Organization(SecretString),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// What a scheme may look at: the headers, the raw body, the method and the full URI the
/// sender called (HubSpot signs it), and the current time.
pub struct Signed<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub method: &'a str,
    pub uri: &'a str,
    pub now_unix: i64,
    /// The header or query parameter holding the key (`header-key`, `query-key`).
    pub key_name: Option<&'a str>,
}

/// The second key of a scheme that has one (the Salesforce org id), decoded from the secret.
///
/// # Errors
/// A message naming the problem (never the value).
pub fn organization_key(secret: &SecretString) -> Result<Key, String> {
    use secrecy::ExposeSecret;
    let raw = secret.expose_secret().trim();
    if salesforce::valid_org_id(raw) {
        Ok(Key::Organization(SecretString::from(raw.to_owned())))
    } else {
        Err("a Salesforce organization id is 00D followed by 12 or 15 letters and digits".into())
    }
}

/// Accepted clock skew for timestamped schemes.
pub const TOLERANCE_SECS: i64 = 300;

impl Scheme {
    /// Decodes a key from the secret for this scheme.
    ///
    /// # Errors
    /// A message naming the problem (never the key).
    pub fn key(self, secret: &SecretString) -> Result<Key, String> {
        use secrecy::ExposeSecret;
        let raw = secret.expose_secret();
        match self {
            Scheme::StandardWebhooks => standard::key(raw),
            Scheme::HubspotV3
            | Scheme::Zendesk
            | Scheme::HubSignature256
            | Scheme::Bearer
            | Scheme::HeaderKey
            | Scheme::QueryKey => {
                if raw.trim().len() < 8 {
                    return Err("the key is shorter than 8 characters".into());
                }
                Ok(if matches!(self, Scheme::Bearer | Scheme::HeaderKey | Scheme::QueryKey) {
                    Key::Credential(secret.clone())
                } else {
                    Key::Hmac(secret.clone())
                })
            }
            Scheme::Eventbridge => Err("EventBridge sources take no signing key".into()),
            Scheme::SalesforceOutbound => salesforce::url_key(raw).map(Key::Credential),
            Scheme::Basic => match raw.split_once(':') {
                Some((user, pass)) if !user.is_empty() && pass.len() >= 8 => Ok(Key::Credential(secret.clone())),
                _ => Err("a Basic credential must be user:password with a password of 8 characters or more".into()),
            },
        }
    }

    /// Verifies `req` against any of `keys`.
    ///
    /// # Errors
    /// [`SignatureError`] when no key verifies.
    pub fn verify(self, keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
        if keys.is_empty() || self == Scheme::Eventbridge {
            return Err(SignatureError::Mismatch);
        }
        match self {
            Scheme::StandardWebhooks => standard::verify(keys, req),
            Scheme::HubspotV3 => hubspot::verify(keys, req),
            Scheme::Zendesk => zendesk::verify(keys, req),
            Scheme::HubSignature256 => hub_signature::verify(keys, req),
            Scheme::Basic => credentials::verify_basic(keys, req),
            Scheme::Bearer => credentials::verify_bearer(keys, req),
            Scheme::HeaderKey => credentials::verify_header_key(keys, req),
            Scheme::QueryKey => credentials::verify_query_key(keys, req),
            Scheme::SalesforceOutbound => salesforce::verify(keys, req),
            Scheme::Eventbridge => Err(SignatureError::Mismatch),
        }
    }

    /// Whether the scheme needs the full request URI (HubSpot v3 signs it).
    pub fn signs_uri(self) -> bool {
        self == Scheme::HubspotV3
    }
}

/// Each HMAC key in `keys`.
fn hmac_keys(keys: &[Key]) -> impl Iterator<Item = &SecretString> {
    keys.iter().filter_map(|k| match k {
        Key::Hmac(s) => Some(s),
        _ => None,
    })
}

/// Constant-time check of an HMAC-SHA256 tag over `parts` with any key.
fn any_hmac_matches(keys: &[Key], parts: &[&[u8]], tag: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    use secrecy::ExposeSecret;
    let mut ok = false;
    for key in hmac_keys(keys) {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.expose_secret().as_bytes())
            .expect("any key length");
        for p in parts {
            mac.update(p);
        }
        // verify_slice compares in constant time; every key is tried, so timing doesn't say which.
        ok |= mac.verify_slice(tag).is_ok();
    }
    ok
}

/// A header as text, or `MissingHeaders`.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingHeaders)
}

fn within_tolerance(ts: i64, now: i64) -> Result<(), SignatureError> {
    if (now - ts).abs() > TOLERANCE_SECS {
        Err(SignatureError::Timestamp)
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::HeaderName::try_from(*k).unwrap(), v.parse().unwrap());
        }
        h
    }

    /// The signature with one base64 character changed.
    pub fn flip(sig: &str) -> String {
        let mut b = sig.as_bytes().to_vec();
        b[5] = if b[5] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    }

    pub fn key(scheme: Scheme, s: &str) -> Key {
        scheme.key(&SecretString::from(s)).unwrap()
    }

    pub fn signed<'a>(
        headers: &'a HeaderMap,
        body: &'a [u8],
        uri: &'a str,
        now: i64,
    ) -> Signed<'a> {
        Signed {
            headers,
            body,
            method: "POST",
            uri,
            now_unix: now,
            key_name: None,
        }
    }
}
