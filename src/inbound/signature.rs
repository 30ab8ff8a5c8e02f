//! Webhook signature schemes. Each verifies the raw body bytes as received, in constant time,
//! with a timestamp window, against every currently valid key (two during rotation).

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The signature scheme a source uses, named in the relay configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`, `whsec_` key,
    /// ±5 minutes), verified by the `standardwebhooks` crate.
    StandardWebhooks,
}

/// Why verification failed. Callers answer every variant with the same 401; the variant is for
/// metrics and debugging only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature headers missing or malformed")]
    MissingHeaders,
    #[error("timestamp outside the tolerance")]
    Timestamp,
    #[error("no key produced a matching signature")]
    Mismatch,
}

/// A key of one scheme, decoded once when the secret is loaded.
pub enum Key {
    StandardWebhooks(standardwebhooks::Webhook),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Scheme {
    /// Decodes a key from the secret for this scheme.
    ///
    /// # Errors
    /// A message naming the problem (never the key).
    pub fn key(self, secret: &SecretString) -> Result<Key, String> {
        match self {
            Scheme::StandardWebhooks => {
                let raw = secret.expose_secret();
                if !raw.starts_with("whsec_") {
                    return Err("a Standard Webhooks key must start with whsec_".into());
                }
                standardwebhooks::Webhook::new(raw)
                    .map(Key::StandardWebhooks)
                    .map_err(|_| {
                        "the Standard Webhooks key is not valid base64 after whsec_".into()
                    })
            }
        }
    }

    /// Verifies `body` and `headers` against any of `keys`.
    ///
    /// # Errors
    /// [`SignatureError`] when no key verifies.
    pub fn verify(
        self,
        keys: &[Key],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        match self {
            Scheme::StandardWebhooks => {
                let mut last = SignatureError::Mismatch;
                for key in keys {
                    let Key::StandardWebhooks(wh) = key;
                    match wh.verify(body, headers) {
                        Ok(()) => return Ok(()),
                        Err(e) => last = classify_standard(&e),
                    }
                }
                Err(last)
            }
        }
    }

    /// The delivery id the sender put on this request, for replay detection.
    pub fn delivery_id(self, headers: &HeaderMap) -> Option<String> {
        match self {
            Scheme::StandardWebhooks => headers
                .get(standardwebhooks::HEADER_WEBHOOK_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

fn classify_standard(e: &standardwebhooks::WebhookError) -> SignatureError {
    use standardwebhooks::WebhookError as W;
    match e {
        W::TimestampTooOldError | W::FutureTimestampError => SignatureError::Timestamp,
        W::MissingHeader(_) | W::InvalidHeader(_) | W::InvalidTimestamp => {
            SignatureError::MissingHeaders
        }
        _ => SignatureError::Mismatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    fn key(s: &str) -> Key {
        Scheme::StandardWebhooks
            .key(&SecretString::from(s))
            .unwrap()
    }

    /// Published vectors (FACTS.md): the Svix docs and the standard-webhooks Rust library test.
    /// Their timestamps are years old, so they are checked through `sign`, which is what
    /// `verify` compares against.
    #[test]
    fn standard_webhooks_known_answers() {
        let wh = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            wh.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            )
            .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let wh = standardwebhooks::Webhook::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            wh.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            )
            .unwrap(),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn verifies_fresh_signature_with_either_rotation_key() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let now = time_now();
        let body = br#"{"id":"evt_1"}"#;
        let sig = standardwebhooks::Webhook::new(secret)
            .unwrap()
            .sign("msg_1", now, body)
            .unwrap();
        let h = headers("msg_1", now, &sig);
        let s = Scheme::StandardWebhooks;
        assert_eq!(s.verify(&[key(secret)], &h, body), Ok(()));
        assert_eq!(s.verify(&[key(other), key(secret)], &h, body), Ok(()));
        assert_eq!(
            s.verify(&[key(other)], &h, body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            s.verify(&[key(secret)], &h, br#"{"id":"evt_2"}"#),
            Err(SignatureError::Mismatch)
        );
        let truncated = &sig[..sig.len() - 4];
        assert!(
            s.verify(&[key(secret)], &headers("msg_1", now, truncated), body)
                .is_err()
        );
        assert!(
            s.verify(&[key(secret)], &headers("msg_1", now, "v1,"), body)
                .is_err()
        );
        for skew in [-301, 301] {
            let ts = now + skew;
            let sig = standardwebhooks::Webhook::new(secret)
                .unwrap()
                .sign("msg_1", ts, body)
                .unwrap();
            assert_eq!(
                s.verify(&[key(secret)], &headers("msg_1", ts, &sig), body),
                Err(SignatureError::Timestamp)
            );
        }
        assert_eq!(
            s.verify(&[key(secret)], &HeaderMap::new(), body),
            Err(SignatureError::MissingHeaders)
        );
        assert_eq!(s.delivery_id(&h).as_deref(), Some("msg_1"));
    }

    #[test]
    fn keys_must_be_whsec_base64() {
        assert!(
            Scheme::StandardWebhooks
                .key(&SecretString::from("plain"))
                .is_err()
        );
        assert!(
            Scheme::StandardWebhooks
                .key(&SecretString::from("whsec_!!!"))
                .is_err()
        );
    }

    fn time_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }
}
