//! Managed invitation links: the relay's own short link to its landing page, in place of
//! Graph's redeem link, which is minted only when the partner presses Accept.
//!
//! The token in the link is 256 random bits (base64url, 43 characters). The relay stores only
//! its keyed hash (HMAC-SHA-256), so the table can't be turned back into working links; the
//! partner's address and name, which the page and the re-invitation need, are stored sealed
//! (AES-256-GCM) under a key from the relay's secret. The Accept form carries a nonce bound to
//! the token and its issue time, checked in constant time.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Length of a token as it appears in the link.
pub const TOKEN_CHARS: usize = 43;
/// How long the page's Accept form stays valid.
pub const NONCE_MAX_AGE_SECS: u64 = 3600;

/// The keys derived from the secret's `link_key`.
pub struct LinkKeys {
    hash: [u8; 32],
    csrf: [u8; 32],
    seal: LessSafeKey,
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKeys(redacted)")
    }
}

/// What is sealed in a link's record: what the page shows and the re-invitation needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

fn derive(master: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("any key length");
    mac.update(b"invite-relay link ");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl LinkKeys {
    /// Derives the keys from the secret's `link_key` (at least 32 characters).
    ///
    /// # Errors
    /// The key is too short.
    pub fn new(master: &[u8]) -> Result<Self, String> {
        if master.len() < 32 {
            return Err("link_key: at least 32 characters (e.g. `openssl rand -hex 32`)".into());
        }
        let seal = UnboundKey::new(&AES_256_GCM, &derive(master, b"seal"))
            .map_err(|_| "link_key: unusable".to_owned())?;
        Ok(Self {
            hash: derive(master, b"hash"),
            csrf: derive(master, b"csrf"),
            seal: LessSafeKey::new(seal),
        })
    }

    /// The keyed hash a token is stored under (hex).
    pub fn hash(&self, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.hash).expect("any key length");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The Accept form's nonce for the token stored under `hash`, issued at `now`.
    pub fn nonce(&self, hash: &str, now: u64) -> String {
        let mut out = now.to_be_bytes().to_vec();
        out.extend_from_slice(&self.nonce_mac(hash, now));
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Whether `nonce` was issued for `hash` within [`NONCE_MAX_AGE_SECS`] of `now`.
    pub fn verify_nonce(&self, hash: &str, nonce: &str, now: u64) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce.as_bytes()) else {
            return false;
        };
        if raw.len() != 8 + 16 {
            return false;
        }
        let issued = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        let fresh = issued <= now + 60 && now.saturating_sub(issued) <= NONCE_MAX_AGE_SECS;
        let expected = self.nonce_mac(hash, issued);
        bool::from(expected.ct_eq(&raw[8..])) && fresh
    }

    fn nonce_mac(&self, hash: &str, issued: u64) -> [u8; 16] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.csrf).expect("any key length");
        mac.update(hash.as_bytes());
        mac.update(&issued.to_be_bytes());
        let full = mac.finalize().into_bytes();
        full[..16].try_into().expect("16 bytes")
    }

    /// Seals the record's personal values, bound to the token's hash.
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn seal(&self, hash: &str, value: &Sealed) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness".to_owned())?;
        let mut data = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(hash.as_bytes()),
                &mut data,
            )
            .map_err(|_| "sealing failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`LinkKeys::seal`] sealed for `hash` (None when it was sealed under another
    /// key or for another token).
    pub fn open(&self, hash: &str, sealed: &str) -> Option<Sealed> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.as_bytes()).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let mut data = rest.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(hash.as_bytes()), &mut data)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

/// A new token: 256 random bits, base64url.
///
/// # Errors
/// The system's random source failed.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness".to_owned())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `s` could be a token (checked before anything is looked up).
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == TOKEN_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The address as the page shows it: the first character of the user name, then dots, then
/// the domain (`a•••@fabrikam.example`).
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((user, domain)) => {
            let first: String = user.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> LinkKeys {
        LinkKeys::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn tokens_are_random_and_shaped() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert!(is_token_shaped(&a), "{a}");
        assert!(!is_token_shaped(&a[1..]));
        assert!(!is_token_shaped(&format!("{}=", &a[1..])));
        assert!(LinkKeys::new(b"short").is_err());
    }

    #[test]
    fn the_hash_is_keyed() {
        let other = LinkKeys::new(b"another key of at least 32 chars!").unwrap();
        assert_ne!(keys().hash("t"), other.hash("t"));
        assert_eq!(keys().hash("t"), keys().hash("t"));
        assert_eq!(keys().hash("t").len(), 64);
    }

    #[test]
    fn nonces_are_bound_to_the_token_and_expire() {
        let k = keys();
        let n = k.nonce("h1", 1_000_000);
        assert!(k.verify_nonce("h1", &n, 1_000_100));
        assert!(!k.verify_nonce("h2", &n, 1_000_100), "another token's");
        assert!(
            !k.verify_nonce("h1", &n, 1_000_000 + NONCE_MAX_AGE_SECS + 1),
            "stale"
        );
        assert!(!k.verify_nonce("h1", "", 1_000_100));
        let mut forged = URL_SAFE_NO_PAD.decode(&n).unwrap();
        forged[0..8].copy_from_slice(&2_000_000u64.to_be_bytes());
        assert!(
            !k.verify_nonce("h1", &URL_SAFE_NO_PAD.encode(forged), 2_000_000),
            "re-dated"
        );
    }

    #[test]
    fn sealed_values_open_only_for_their_token_and_key() {
        let k = keys();
        let v = Sealed {
            email: "ada@fabrikam.example".into(),
            name: Some("Ada".into()),
            language: Some("de".into()),
        };
        let s = k.seal("h1", &v).unwrap();
        assert!(!s.contains("ada"));
        assert_eq!(k.open("h1", &s), Some(v.clone()));
        assert_eq!(k.open("h2", &s), None);
        let other = LinkKeys::new(b"another key of at least 32 chars!").unwrap();
        assert_eq!(other.open("h1", &s), None);
        assert_ne!(k.seal("h1", &v).unwrap(), s, "a fresh nonce each time");
    }

    #[test]
    fn addresses_are_masked() {
        assert_eq!(mask_email("ada@fabrikam.example"), "a•••@fabrikam.example");
        assert_eq!(mask_email("nope"), "•••");
    }
}
