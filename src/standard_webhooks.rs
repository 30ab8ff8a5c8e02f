//! Standard Webhooks keys, signatures and their check, shared by the inbound scheme (Svix sends
//! the same scheme under `svix-*` header names) and the outbound webhook channel:
//! HMAC-SHA256 over `{id}.{timestamp}.{raw body}` with the base64-decoded key, sent as a
//! space-separated list of `v1,<base64>` entries, accepted within ±5 minutes.
//! Spec: <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>.
//!
//! Written here rather than taken from the `standardwebhooks` crate (1.0.1), whose verification
//! computes `now - timestamp` unchecked (a `webhook-timestamp` of `i64::MIN` wraps and is
//! accepted, so such a signature never expires) and refuses to sign bodies that are not UTF-8
//! (a correctly signed binary body would be answered 401 instead of 400). Key and header
//! parsing follow the reference libraries (`libraries/python`, `javascript`, `go`, `rust`): the
//! `whsec_` prefix is optional, base64 padding is optional, entries of other versions are
//! skipped. The crate stays in the tests as an independent signer.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use subtle::ConstantTimeEq;

/// Standard alphabet; padding and trailing bits as lenient as the Python reference library.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Shortest key accepted, in bytes (the spec generates 24 to 64; 16 is the floor for HMAC).
const MIN_KEY_BYTES: usize = 16;

/// Most digits a timestamp may have: Unix seconds stay 10 digits until the year 2286.
const MAX_TIMESTAMP_DIGITS: usize = 12;

/// A Standard Webhooks key, decoded once.
pub struct WebhookKey(SecretBox<Vec<u8>>);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(<redacted>)")
    }
}

impl WebhookKey {
    /// Decodes `whsec_<base64>` (the prefix and padding optional).
    ///
    /// # Errors
    /// A message naming the problem, never the key.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let b64 = raw.trim();
        let b64 = b64.strip_prefix("whsec_").unwrap_or(b64);
        let bytes = LENIENT
            .decode(b64)
            .map_err(|_| "a Standard Webhooks key must be whsec_ followed by base64".to_owned())?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "a Standard Webhooks key must decode to at least {MIN_KEY_BYTES} bytes"
            ));
        }
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(self.0.expose_secret()).expect("any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `webhook-signature` value for a message: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.mac(id, &timestamp.to_string(), body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        )
    }
}

/// Why a message did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The timestamp is not Unix seconds.
    MalformedTimestamp,
    /// The timestamp is more than [`TOLERANCE_SECS`] away from now.
    Stale,
    /// No key made any of the `v1` signatures.
    Mismatch,
}

/// Accepted distance between the message's timestamp and now (every reference library: 5 min).
pub const TOLERANCE_SECS: u64 = 300;

/// Checks a message against any of `keys`: `id`, `timestamp` and `signatures` are the
/// `webhook-id`, `webhook-timestamp` and `webhook-signature` values, `body` the raw bytes.
///
/// # Errors
/// [`Failure`] saying which check failed.
pub fn verify<'a>(
    keys: impl IntoIterator<Item = &'a WebhookKey>,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), Failure> {
    let ts = parse_timestamp(timestamp)?;
    // A distance, which can't overflow whatever the two values are.
    if ts.abs_diff(now_unix) > TOLERANCE_SECS {
        return Err(Failure::Stale);
    }
    let candidates = v1_signatures(signatures);
    let canonical = ts.to_string();
    let mut ok = subtle::Choice::from(0u8);
    for key in keys {
        let expected = key.mac(id, &canonical, body);
        for sig in &candidates {
            ok |= expected.ct_eq(sig);
        }
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(Failure::Mismatch)
    }
}

/// Unix seconds: digits only (no sign, no fraction), bounded.
fn parse_timestamp(raw: &str) -> Result<i64, Failure> {
    if raw.is_empty()
        || raw.len() > MAX_TIMESTAMP_DIGITS
        || !raw.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Failure::MalformedTimestamp);
    }
    raw.parse().map_err(|_| Failure::MalformedTimestamp)
}

/// The decoded `v1` signatures of a `webhook-signature` value. Entries are separated by spaces;
/// a duplicated header that a Function URL or HTTP API joined with commas (`v1,a,v1,b`) reads
/// the same, since neither a version nor base64 contains a comma. Other versions, and
/// signatures that are not 32 bytes of base64, are skipped.
fn v1_signatures(value: &str) -> Vec<[u8; 32]> {
    let tokens: Vec<&str> = value
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    tokens
        .chunks(2)
        .filter(|pair| pair.len() == 2 && pair[0] == "v1")
        .filter_map(|pair| LENIENT.decode(pair[1]).ok())
        .filter_map(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .collect()
}
