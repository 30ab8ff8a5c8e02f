//! GitHub-style `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`, used by many tools.
//! There is no timestamp: replays are caught by the delivery id and event id records.

use super::{Key, SignatureError, Signed, any_hmac_matches, header};

pub(super) fn verify(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
    let sig = header(req.headers, "x-hub-signature-256")?;
    let hex_tag = sig
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Mismatch)?;
    let tag = hex::decode(hex_tag).map_err(|_| SignatureError::Mismatch)?;
    if any_hmac_matches(keys, &[req.body], &tag) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Scheme, SignatureError};

    const S: Scheme = Scheme::HubSignature256;
    const SECRET: &str = "It's a Secret to Everybody";
    const VECTOR: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    /// GitHub docs, "Validating webhook deliveries" (FACTS.md).
    #[test]
    fn known_answer_and_tampering() {
        let k = [key(S, "another-secret"), key(S, SECRET)];
        let check = |sig: &str, body: &[u8]| {
            S.verify(
                &k,
                &signed(&headers(&[("x-hub-signature-256", sig)]), body, "", now()),
            )
        };
        assert_eq!(check(VECTOR, b"Hello, World!"), Ok(()));
        assert_eq!(
            check(VECTOR, b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&VECTOR.replace("757107", "757108"), b"Hello, World!"),
            Err(SignatureError::Mismatch)
        );
        assert!(check(&VECTOR[..VECTOR.len() - 2], b"Hello, World!").is_err());
        assert!(check("v1,", b"Hello, World!").is_err());
        assert!(check(VECTOR.trim_start_matches("sha256="), b"Hello, World!").is_err());
        let only_wrong = [key(S, "another-secret")];
        assert!(
            S.verify(
                &only_wrong,
                &signed(
                    &headers(&[("x-hub-signature-256", VECTOR)]),
                    b"Hello, World!",
                    "",
                    now()
                )
            )
            .is_err()
        );
        assert_eq!(
            S.verify(&k, &signed(&headers(&[]), b"Hello, World!", "", now())),
            Err(SignatureError::MissingHeaders)
        );
    }
}
