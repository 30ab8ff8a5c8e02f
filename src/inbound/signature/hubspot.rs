//! HubSpot request signature v3: `X-HubSpot-Signature-v3` is the base64 HMAC-SHA256, keyed with
//! the app's client secret, of `method + uri + body + timestamp`, where the timestamp is
//! `X-HubSpot-Request-Timestamp` in milliseconds and must be within 5 minutes. v1 and v2 carry
//! no timestamp and are refused.

use base64::Engine;

use super::{Key, SignatureError, Signed, any_hmac_matches, header, within_tolerance};

pub(super) fn verify(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
    let Ok(sig) = header(req.headers, "x-hubspot-signature-v3") else {
        if req.headers.contains_key("x-hubspot-signature") {
            return Err(SignatureError::Version);
        }
        return Err(SignatureError::MissingHeaders);
    };
    let ts_raw = header(req.headers, "x-hubspot-request-timestamp")?;
    let ts_ms: i64 = ts_raw.parse().map_err(|_| SignatureError::MissingHeaders)?;
    within_tolerance(ts_ms.div_euclid(1000), req.now_unix)?;
    let tag = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .map_err(|_| SignatureError::Mismatch)?;
    let uri = decode_uri(req.uri);
    let parts: [&[u8]; 4] = [
        req.method.as_bytes(),
        uri.as_bytes(),
        req.body,
        ts_raw.as_bytes(),
    ];
    if any_hmac_matches(keys, &parts, &tag) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// HubSpot signs the URI with these percent-encodings decoded (its request-validation guide).
fn decode_uri(uri: &str) -> String {
    const DECODE: &[(&str, &str)] = &[
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = uri.to_owned();
    for (enc, dec) in DECODE {
        out = out
            .replace(enc, dec)
            .replace(&enc.to_ascii_lowercase(), dec);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Scheme, SignatureError};
    use base64::Engine;
    use hmac::{Hmac, Mac};

    const S: Scheme = Scheme::HubspotV3;
    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const URI: &str = "https://www.example.com/webhook_uri";

    fn sign(secret: &str, uri: &str, body: &str, ts: &str) -> String {
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        m.update(format!("POST{uri}{body}{ts}").as_bytes());
        base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
    }

    /// hubspot-api-python `tests/spec/utils/test_signature.py` (FACTS.md). The vector's timestamp
    /// (15000000 ms) is from 1970, so it verifies with the clock set to then.
    #[test]
    fn known_answer() {
        let body = "{'example_field':'example_value'}";
        assert_eq!(
            sign(SECRET, URI, body, "15000000"),
            "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="
        );
        let h = headers(&[
            (
                "x-hubspot-signature-v3",
                "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
            ),
            ("x-hubspot-request-timestamp", "15000000"),
        ]);
        assert_eq!(
            S.verify(&[key(S, SECRET)], &signed(&h, body.as_bytes(), URI, 15_000)),
            Ok(())
        );
        // ...and not with today's clock.
        assert_eq!(
            S.verify(&[key(S, SECRET)], &signed(&h, body.as_bytes(), URI, now())),
            Err(SignatureError::Timestamp)
        );
    }

    #[test]
    fn refuses_tampering_staleness_and_old_versions() {
        let now = now();
        let body = r#"[{"objectId":1}]"#;
        let ts = (now * 1000).to_string();
        let sig = sign(SECRET, URI, body, &ts);
        let k = [key(S, "other-secret-value"), key(S, SECRET)];
        let check = |sig: &str, ts: &str, body: &str, uri: &str| {
            let h = headers(&[
                ("x-hubspot-signature-v3", sig),
                ("x-hubspot-request-timestamp", ts),
            ]);
            S.verify(&k, &signed(&h, body.as_bytes(), uri, now))
        };
        assert_eq!(
            check(&sig, &ts, body, URI),
            Ok(()),
            "rotation: the second key verifies"
        );
        assert_eq!(
            check(&sig, &ts, r#"[{"objectId":2}]"#, URI),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&sig, &ts, body, "https://www.example.com/other"),
            Err(SignatureError::Mismatch)
        );
        assert!(check(&sig[..sig.len() - 4], &ts, body, URI).is_err());
        assert_eq!(
            check(&flip(&sig), &ts, body, URI),
            Err(SignatureError::Mismatch),
            "tampered signature"
        );
        assert!(check("v1,", &ts, body, URI).is_err());
        assert_eq!(
            check(&sign("wrong-secret", URI, body, &ts), &ts, body, URI),
            Err(SignatureError::Mismatch)
        );
        for skew in [-301, 301] {
            let t = ((now + skew) * 1000).to_string();
            assert_eq!(
                check(&sign(SECRET, URI, body, &t), &t, body, URI),
                Err(SignatureError::Timestamp)
            );
        }
        let h = headers(&[("x-hubspot-signature-v3", &sig)]);
        assert_eq!(
            S.verify(&k, &signed(&h, body.as_bytes(), URI, now)),
            Err(SignatureError::MissingHeaders)
        );
        let v2 = headers(&[
            ("x-hubspot-signature", "abc"),
            ("x-hubspot-signature-version", "v2"),
        ]);
        assert_eq!(
            S.verify(&k, &signed(&v2, body.as_bytes(), URI, now)),
            Err(SignatureError::Version)
        );
    }

    #[test]
    fn percent_encoded_uri_characters_are_decoded_as_hubspot_does() {
        let now = now();
        let ts = (now * 1000).to_string();
        let sig = sign(
            SECRET,
            "https://h.example/webhooks/hubspot?a=b:c",
            "{}",
            &ts,
        );
        let h = headers(&[
            ("x-hubspot-signature-v3", &sig),
            ("x-hubspot-request-timestamp", &ts),
        ]);
        let req = signed(&h, b"{}", "https://h.example/webhooks/hubspot?a=b%3Ac", now);
        assert_eq!(S.verify(&[key(S, SECRET)], &req), Ok(()));
    }
}
