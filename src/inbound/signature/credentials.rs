//! Static credentials: HTTP Basic (Pipedrive webhooks let you set a user name and password), a
//! bearer token, a key in a named header, or a key in a query parameter (Dynamics 365 webhooks:
//! "WebhookKey" sends `?code=<key>`, "HttpHeader" a header of your choice). All are compared in
//! constant time on SHA-256 digests, so neither the content nor the length of the expected value
//! shows in the timing.

use base64::Engine;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Key, SignatureError, Signed, header};

fn matches_any(keys: &[Key], presented: &[u8]) -> bool {
    let presented = Sha256::digest(presented);
    let mut ok = subtle::Choice::from(0u8);
    for k in keys {
        if let Key::Credential(expected) = k {
            ok |= Sha256::digest(expected.expose_secret().as_bytes()).ct_eq(&presented);
        }
    }
    ok.into()
}

pub(super) fn verify_basic(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
    let value = header(req.headers, "authorization")?;
    let (scheme, b64) = value
        .split_once(' ')
        .ok_or(SignatureError::MissingHeaders)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(SignatureError::MissingHeaders);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| SignatureError::Mismatch)?;
    if matches_any(keys, &decoded) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

pub(super) fn verify_header_key(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
    let name = req.key_name.unwrap_or("code");
    let value = header(req.headers, name)?;
    if matches_any(keys, value.as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Also the first check of `salesforce-outbound`.
pub(super) fn verify_query_key(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
    let name = req.key_name.unwrap_or("code");
    let query = req.uri.split_once('?').map_or("", |(_, q)| q);
    let mut values = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v);
    let value = values.next().ok_or(SignatureError::MissingHeaders)?;
    if values.next().is_some() {
        return Err(SignatureError::Mismatch);
    }
    if matches_any(keys, value.as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

pub(super) fn verify_bearer(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
    let value = header(req.headers, "authorization")?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(SignatureError::MissingHeaders)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(SignatureError::MissingHeaders);
    }
    if matches_any(keys, token.trim().as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Scheme, SignatureError};
    use base64::Engine;
    use secrecy::SecretString;

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn basic_credentials_with_rotation() {
        let s = Scheme::Basic;
        let k = [
            key(s, "pipedrive:old-password-1"),
            key(s, "pipedrive:new-password-2"),
        ];
        let check = |auth: &str| {
            s.verify(
                &k,
                &signed(&headers(&[("authorization", auth)]), b"{}", "", now()),
            )
        };
        assert_eq!(check(&basic("pipedrive:new-password-2")), Ok(()));
        assert_eq!(check(&basic("pipedrive:old-password-1")), Ok(()));
        assert_eq!(
            check(&basic("pipedrive:new-password-3")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&basic("pipedrive:new-password-")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&basic("other:new-password-2")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("Bearer pipedrive:new-password-2"),
            Err(SignatureError::MissingHeaders)
        );
        assert_eq!(check("Basic !!!"), Err(SignatureError::Mismatch));
        assert!(
            s.verify(&k, &signed(&headers(&[]), b"{}", "", now()))
                .is_err()
        );
        assert!(s.key(&SecretString::from("nopassword")).is_err());
        assert!(s.key(&SecretString::from("user:short")).is_err());
    }

    #[test]
    fn header_and_query_keys() {
        let k = [key(Scheme::HeaderKey, "dynamics-webhook-key-1")];
        let h = headers(&[("x-relay-key", "dynamics-webhook-key-1")]);
        let mut req = signed(&h, b"{}", "https://h.example/webhooks/dynamics", now());
        req.key_name = Some("x-relay-key");
        assert_eq!(Scheme::HeaderKey.verify(&k, &req), Ok(()));
        let wrong = headers(&[("x-relay-key", "dynamics-webhook-key-2")]);
        let mut req = signed(&wrong, b"{}", "", now());
        req.key_name = Some("x-relay-key");
        assert_eq!(
            Scheme::HeaderKey.verify(&k, &req),
            Err(SignatureError::Mismatch)
        );

        let q = Scheme::QueryKey;
        let k = [key(q, "dynamics-webhook-key-1")];
        let none = headers(&[]);
        let check = |uri: &str| q.verify(&k, &signed(&none, b"{}", uri, now()));
        assert_eq!(
            check("https://h.example/webhooks/dynamics?code=dynamics-webhook-key-1"),
            Ok(())
        );
        assert_eq!(
            check("https://h.example/webhooks/dynamics?x=1&code=dynamics%2Dwebhook%2Dkey%2D1"),
            Ok(())
        );
        assert_eq!(
            check("https://h.example/webhooks/dynamics?code=dynamics-webhook-key-2"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("https://h.example/webhooks/dynamics?code=dynamics-webhook-key-1&code=x"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("https://h.example/webhooks/dynamics"),
            Err(SignatureError::MissingHeaders)
        );
    }

    #[test]
    fn bearer_token() {
        let s = Scheme::Bearer;
        let k = [key(s, "s3cr3t-static-token")];
        let check = |auth: &str| {
            s.verify(
                &k,
                &signed(&headers(&[("authorization", auth)]), b"{}", "", now()),
            )
        };
        assert_eq!(check("Bearer s3cr3t-static-token"), Ok(()));
        assert_eq!(check("bearer s3cr3t-static-token"), Ok(()));
        assert_eq!(
            check("Bearer s3cr3t-static-toke"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("Bearer s3cr3t-static-tokenX"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("Basic s3cr3t-static-token"),
            Err(SignatureError::MissingHeaders)
        );
        assert!(check("Bearer").is_err());
    }
}
