//! The relay's one Secrets Manager secret (a JSON object of strings), read through the SDK's
//! standard configuration, cached for a TTL and re-read once after an authentication failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::{Mutex, RwLock};

/// The secret's values by key. Values are [`SecretString`]s; `Debug` shows keys only.
pub struct SecretValues(HashMap<String, SecretString>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.0.keys().collect();
        keys.sort();
        f.debug_tuple("SecretValues").field(&keys).finish()
    }
}

impl SecretValues {
    /// Parses the secret string: a JSON object whose values are strings.
    ///
    /// # Errors
    /// A message naming the offending key, never a value.
    pub fn parse(json: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|_| "the secret is not a JSON object".to_owned())?;
        let serde_json::Value::Object(map) = v else {
            return Err("the secret is not a JSON object".into());
        };
        let mut out = HashMap::new();
        for (k, v) in map {
            match v {
                serde_json::Value::String(s) if s.is_empty() => {}
                serde_json::Value::String(s) => {
                    out.insert(k, SecretString::from(s));
                }
                serde_json::Value::Null => {}
                _ => return Err(format!("secret key {k:?} must hold a string")),
            }
        }
        Ok(Self(out))
    }

    pub fn get(&self, key: &str) -> Option<&SecretString> {
        self.0.get(key)
    }

    /// Builds values from pairs (tests and local tools).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), SecretString::from(v.to_owned())))
                .collect(),
        )
    }
}

/// Failure to obtain usable secrets.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    #[error("reading the secret failed: {0}")]
    Fetch(String),
    #[error("the secret is unusable: {0}")]
    Invalid(String),
}

type Derive<T> = Box<dyn Fn(&SecretValues) -> Result<T, String> + Send + Sync>;

struct Loaded<T> {
    value: Arc<T>,
    at: Instant,
}

/// Shortest time between two reads forced by signature failures, so forged requests can't
/// turn into a flood of `GetSecretValue` calls.
pub const MIN_FORCED_REFRESH: Duration = Duration::from_secs(10);

/// A cached, derived view of the secret: `derive` turns the raw values into what the
/// application uses (decoded keys, channels) once per read, not once per request.
pub struct SecretCache<T> {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    derive: Derive<T>,
    state: RwLock<Option<Loaded<T>>>,
    fetch_lock: Mutex<()>,
}

impl<T: Send + Sync> SecretCache<T> {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
        ttl: Duration,
        derive: impl Fn(&SecretValues) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            client,
            secret_id,
            ttl,
            derive: Box::new(derive),
            state: RwLock::new(None),
            fetch_lock: Mutex::new(()),
        }
    }

    /// The current value, read again when older than the TTL. When a re-read fails but an
    /// older value exists, the older value is served (and the failure logged).
    ///
    /// # Errors
    /// [`SecretError`] when no usable value has ever been read.
    pub async fn get(&self) -> Result<Arc<T>, SecretError> {
        if let Some(l) = self.state.read().await.as_ref()
            && l.at.elapsed() < self.ttl
        {
            return Ok(l.value.clone());
        }
        self.reload(|l| l.at.elapsed() < self.ttl).await
    }

    /// Reads the secret again after `stale` failed to authenticate (rotation), unless it was
    /// already replaced or read less than `min_age` ago. Returns the value to retry with.
    ///
    /// # Errors
    /// [`SecretError`] when nothing usable can be read.
    pub async fn refresh_after_auth_failure(
        &self,
        stale: &Arc<T>,
        min_age: Duration,
    ) -> Result<Arc<T>, SecretError> {
        self.reload(|l| !Arc::ptr_eq(&l.value, stale) || l.at.elapsed() < min_age)
            .await
    }

    async fn reload(&self, still_good: impl Fn(&Loaded<T>) -> bool) -> Result<Arc<T>, SecretError> {
        let _one_fetch_at_a_time = self.fetch_lock.lock().await;
        if let Some(l) = self.state.read().await.as_ref()
            && still_good(l)
        {
            return Ok(l.value.clone());
        }
        match self.fetch().await {
            Ok(v) => {
                let value = Arc::new(v);
                *self.state.write().await = Some(Loaded {
                    value: value.clone(),
                    at: Instant::now(),
                });
                Ok(value)
            }
            Err(e) => {
                let mut state = self.state.write().await;
                match state.as_mut() {
                    Some(l) => {
                        tracing::error!(error = %e, "secret re-read failed; serving the previous value");
                        // Try again after a short pause rather than on every request.
                        // (Instant arithmetic is checked: a fresh microVM's clock starts near zero.)
                        let now = Instant::now();
                        l.at = now
                            .checked_sub(self.ttl.saturating_sub(MIN_FORCED_REFRESH))
                            .unwrap_or(now);
                        Ok(l.value.clone())
                    }
                    None => Err(e),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<T, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretError::Fetch(aws_error_summary(&e)))?;
        let raw = out
            .secret_string()
            .ok_or_else(|| SecretError::Invalid("the secret has no SecretString".into()))?;
        let values = SecretValues::parse(raw).map_err(SecretError::Invalid)?;
        (self.derive)(&values).map_err(SecretError::Invalid)
    }
}

/// The service error code (or the kind of dispatch failure), never the full message.
fn aws_error_summary<
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::fmt::Debug,
    R,
>(
    e: &aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> String {
    use aws_sdk_secretsmanager::error::SdkError;
    match e {
        SdkError::ServiceError(s) => s.err().code().unwrap_or("unknown service error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".into(),
        SdkError::DispatchFailure(_) => "could not reach Secrets Manager".into(),
        SdkError::ConstructionFailure(_) => "request construction failed".into(),
        _ => "unexpected response".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_string_values_and_names_bad_keys_only() {
        let v = SecretValues::parse(r#"{"a":"x","empty":"","n":null}"#).unwrap();
        assert!(v.get("a").is_some() && v.get("empty").is_none() && v.get("n").is_none());
        let e = SecretValues::parse(r#"{"port": 5, "pw": "hunter2"}"#).unwrap_err();
        assert!(e.contains("port") && !e.contains('5'));
        assert!(SecretValues::parse("[1]").is_err());
        assert!(
            !format!("{:?}", SecretValues::parse(r#"{"k":"hunter2"}"#).unwrap())
                .contains("hunter2")
        );
    }
}
