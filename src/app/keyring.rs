//! What the secret provides, decoded once per read: the Graph credential, each source's keys,
//! the channels' targets and the log hash key; and the one rule for a rotated secret.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::App;
use crate::delivery::{Channel, DeliveryConfig};
use crate::graph::{ClientCredential, GraphError};
use crate::inbound::signature::{Key, Scheme};
use crate::links::LinkKeys;
use crate::secrets::SecretValues;
use crate::telemetry::EmailHasher;

/// The secret, decoded.
pub struct Keyring {
    pub(crate) graph: ClientCredential,
    source_keys: HashMap<String, Vec<Key>>,
    pub(crate) channels: Vec<Channel>,
    pub(crate) hasher: EmailHasher,
    /// Managed links' keys (`link_key`), when a channel delivers managed links.
    pub(crate) links: Option<LinkKeys>,
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

impl Keyring {
    /// Validates and decodes the secret's values for the configured sources and channels.
    ///
    /// # Errors
    /// A message naming the missing or invalid key (never a value).
    pub fn derive(
        values: &SecretValues,
        sources: &[SourceKeys],
        delivery: &DeliveryConfig,
        allow_private: bool,
    ) -> Result<Self, String> {
        let graph = graph_credential(values)?;
        let mut source_keys = HashMap::new();
        for s in sources {
            source_keys.insert(s.name.clone(), source_keys_of(values, s)?);
        }
        let links = if delivery.managed_links() {
            let key = values
                .get("link_key")
                .ok_or("link_key is required when a channel has link = \"managed\"")?;
            Some(LinkKeys::new(key.expose_secret().as_bytes())?)
        } else {
            None
        };
        Ok(Self {
            graph,
            source_keys,
            channels: Channel::resolve(delivery, values, allow_private)?,
            hasher: EmailHasher::new(&hash_key(values)),
            links,
        })
    }

    pub(crate) fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    pub(crate) fn source_keys(&self, source: &str) -> &[Key] {
        self.source_keys
            .get(source)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Each thing the secret must provide, checked on its own (the operator's `doctor`): the Graph
/// credential, each source's keys, each channel's keys and URL, the managed links' key. The
/// label names the key's user; an error names the key at fault, never a value.
pub fn key_checks(
    values: &SecretValues,
    sources: &[SourceKeys],
    delivery: &DeliveryConfig,
    allow_private: bool,
) -> Vec<(String, Result<(), String>)> {
    let mut out = vec![(
        "Graph credential".to_owned(),
        graph_credential(values).map(|_| ()),
    )];
    for s in sources {
        out.push((
            format!("source {}", s.name),
            source_keys_of(values, s).map(|_| ()),
        ));
    }
    for c in &delivery.channels {
        let result = Channel::resolve_one(c, values, allow_private).and_then(|found| {
            found.map(|_| ()).ok_or_else(|| {
                format!("channel {}: secret key {} is not set", c.name, c.url_secret)
            })
        });
        // An implicit channel without its URL is simply not in use.
        if c.declared || values.get(&c.url_secret).is_some() {
            out.push((format!("channel {}", c.name), result));
        }
    }
    if delivery.managed_links() {
        let key = values
            .get("link_key")
            .ok_or_else(|| "link_key is required when a channel has link = \"managed\"".to_owned())
            .and_then(|k| LinkKeys::new(k.expose_secret().as_bytes()).map(|_| ()));
        out.push(("managed links".to_owned(), key));
    }
    out
}

/// A client certificate with its key, or a client secret.
pub fn graph_credential(values: &SecretValues) -> Result<ClientCredential, String> {
    match (
        values.get("graph_client_certificate"),
        values.get("graph_client_private_key"),
    ) {
        (Some(cert), Some(key)) => Ok(ClientCredential::Certificate(Arc::new(
            crate::graph::CertificateCredential::from_pem(cert.expose_secret(), key.expose_secret())
                .map_err(|e| format!("secret key {e}"))?,
        ))),
        (Some(_), None) | (None, Some(_)) => Err(
            "secret keys graph_client_certificate and graph_client_private_key go together".into(),
        ),
        (None, None) => Ok(ClientCredential::Secret(
            values
                .get("graph_client_secret")
                .ok_or("secret key graph_client_secret (or graph_client_certificate with graph_client_private_key) is required")?
                .clone(),
        )),
    }
}

fn source_keys_of(values: &SecretValues, s: &SourceKeys) -> Result<Vec<Key>, String> {
    if s.scheme == Scheme::Eventbridge {
        return Ok(Vec::new());
    }
    let mut decoded = s
        .keys
        .iter()
        .filter_map(|k| {
            values
                .get(k)
                .map(|v| s.scheme.key(v).map_err(|e| format!("secret key {k}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if decoded.is_empty() {
        return Err(format!(
            "source {}: none of the secret keys {:?} is set",
            s.name, s.keys
        ));
    }
    if let Some(k) = &s.organization {
        let v = values
            .get(k)
            .ok_or_else(|| format!("source {}: secret key {k} is required", s.name))?;
        decoded.push(
            crate::inbound::signature::organization_key(v)
                .map_err(|e| format!("secret key {k}: {e}"))?,
        );
    }
    Ok(decoded)
}

/// `log_hash_key`, else a key derived from the Graph credential (stable per deployment).
fn hash_key(values: &SecretValues) -> Vec<u8> {
    if let Some(k) = values.get("log_hash_key") {
        return k.expose_secret().as_bytes().to_vec();
    }
    let seed: &SecretString = values
        .get("graph_client_secret")
        .or_else(|| values.get("graph_client_private_key"))
        .expect("graph_credential checked that one is present");
    let mut mac =
        Hmac::<Sha256>::new_from_slice(seed.expose_secret().as_bytes()).expect("any key length");
    mac.update(b"invite-relay log hash");
    mac.finalize().into_bytes().to_vec()
}

impl App {
    /// Calls `f` with `keys`; when Graph refused the app credential and the secret has changed
    /// since `keys` were read (rotation), calls it once more with the re-read keys. Every Graph
    /// call goes through here, so a rotation is recovered on whichever call meets it first.
    pub(crate) async fn with_rotation<T, F, Fut>(
        &self,
        keys: &Arc<Keyring>,
        f: F,
    ) -> Result<T, GraphError>
    where
        F: Fn(Arc<Keyring>) -> Fut,
        Fut: Future<Output = Result<T, GraphError>>,
    {
        match f(keys.clone()).await {
            Err(GraphError::CredentialRefused(reason)) => {
                let refused = || GraphError::CredentialRefused(reason.clone());
                let fresh = self
                    .secrets
                    .refresh_after_auth_failure(keys, Duration::ZERO)
                    .await
                    .map_err(|_| refused())?;
                if Arc::ptr_eq(&fresh, keys) {
                    return Err(refused());
                }
                tracing::info!("app credential refused; retrying with the re-read secret");
                f(fresh).await
            }
            other => other,
        }
    }
}
