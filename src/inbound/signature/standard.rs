//! Standard Webhooks (and Svix, which sends the same scheme under `svix-*` header names),
//! verified with the `standardwebhooks` crate: `{id}.{timestamp}.{body}`, HMAC-SHA256 with the
//! base64-decoded `whsec_` key, a space-separated `v1,<base64>` list, ±5 minutes.

use http::{HeaderMap, HeaderValue};

use super::{Key, SignatureError, Signed};

pub(super) fn key(raw: &str) -> Result<Key, String> {
    if !raw.starts_with("whsec_") {
        return Err("a Standard Webhooks key must start with whsec_".into());
    }
    standardwebhooks::Webhook::new(raw)
        .map(Key::StandardWebhooks)
        .map_err(|_| "the Standard Webhooks key is not valid base64 after whsec_".into())
}

pub(super) fn verify(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
    let svix;
    let headers = if req.headers.contains_key("webhook-id") {
        req.headers
    } else {
        svix = svix_as_standard(req.headers);
        &svix
    };
    let mut last = SignatureError::Mismatch;
    for key in keys {
        let Key::StandardWebhooks(wh) = key else {
            continue;
        };
        match wh.verify(req.body, headers) {
            Ok(()) => return Ok(()),
            Err(e) => last = classify(&e),
        }
    }
    Err(last)
}

/// Svix sends `svix-id`, `svix-timestamp` and `svix-signature`.
fn svix_as_standard(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (from, to) in [
        ("svix-id", "webhook-id"),
        ("svix-timestamp", "webhook-timestamp"),
        ("svix-signature", "webhook-signature"),
    ] {
        if let Some(v) = h.get(from) {
            out.insert(to, HeaderValue::clone(v));
        }
    }
    out
}

fn classify(e: &standardwebhooks::WebhookError) -> SignatureError {
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
    use super::super::test_support::*;
    use super::super::{Scheme, SignatureError};
    use secrecy::SecretString;

    const S: Scheme = Scheme::StandardWebhooks;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    /// Published vectors (FACTS.md): the Svix docs and the standard-webhooks Rust library test.
    /// Their timestamps are years old, so they are checked through `sign`, which is what
    /// `verify` compares against.
    #[test]
    fn known_answers() {
        let wh = standardwebhooks::Webhook::new(SECRET).unwrap();
        assert_eq!(
            wh.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            )
            .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let wh = standardwebhooks::Webhook::new(OTHER).unwrap();
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

    fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .sign(id, ts, body)
            .unwrap()
    }

    #[test]
    fn accepts_fresh_signatures_under_either_header_set_and_rotation_keys() {
        let now = now();
        let body = br#"{"id":"evt_1"}"#;
        let sig = sign(SECRET, "msg_1", now, body);
        let ts = now.to_string();
        let std_h = headers(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &sig),
        ]);
        let svix_h = headers(&[
            ("svix-id", "msg_1"),
            ("svix-timestamp", &ts),
            ("svix-signature", &sig),
        ]);
        for h in [&std_h, &svix_h] {
            assert_eq!(
                S.verify(&[key(S, SECRET)], &signed(h, body, "", now)),
                Ok(())
            );
            assert_eq!(
                S.verify(&[key(S, OTHER), key(S, SECRET)], &signed(h, body, "", now)),
                Ok(())
            );
        }
        // A signature list (the sender rotating its key) verifies when any entry matches.
        let list = format!("v1,bm9wZQ== {sig}");
        let h = headers(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &list),
        ]);
        assert_eq!(
            S.verify(&[key(S, SECRET)], &signed(&h, body, "", now)),
            Ok(())
        );
        assert_eq!(S.delivery_id(&std_h).as_deref(), Some("msg_1"));
        assert_eq!(S.delivery_id(&svix_h).as_deref(), Some("msg_1"));
    }

    #[test]
    fn refuses_every_tampering() {
        let now = now();
        let body = br#"{"id":"evt_1"}"#;
        let sig = sign(SECRET, "msg_1", now, body);
        let ts = now.to_string();
        let k = [key(S, SECRET)];
        let check = |id: &str, ts: &str, sig: &str, body: &[u8]| {
            let h = headers(&[
                ("webhook-id", id),
                ("webhook-timestamp", ts),
                ("webhook-signature", sig),
            ]);
            S.verify(&k, &signed(&h, body, "", now))
        };
        assert_eq!(
            check("msg_1", &ts, &sig, br#"{"id":"evt_2"}"#),
            Err(SignatureError::Mismatch),
            "tampered body"
        );
        let mut bad = sig.clone().into_bytes();
        let i = bad.len() - 3;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            check("msg_1", &ts, std::str::from_utf8(&bad).unwrap(), body),
            Err(SignatureError::Mismatch),
            "tampered signature"
        );
        assert!(
            check("msg_1", &ts, &sig[..sig.len() - 4], body).is_err(),
            "truncated"
        );
        assert!(check("msg_1", &ts, "v1,", body).is_err(), "bare v1,");
        assert!(check("msg_2", &ts, &sig, body).is_err(), "other id");
        assert_eq!(
            check("msg_1", &ts, &sign(OTHER, "msg_1", now, body), body),
            Err(SignatureError::Mismatch),
            "wrong secret"
        );
        for skew in [-301, 301] {
            let t = now + skew;
            assert_eq!(
                check(
                    "msg_1",
                    &t.to_string(),
                    &sign(SECRET, "msg_1", t, body),
                    body
                ),
                Err(SignatureError::Timestamp),
                "{skew}"
            );
        }
        let h = headers(&[("webhook-id", "msg_1"), ("webhook-timestamp", &ts)]);
        assert_eq!(
            S.verify(&k, &signed(&h, body, "", now)),
            Err(SignatureError::MissingHeaders)
        );
        assert!(S.verify(&k, &signed(&headers(&[]), body, "", now)).is_err());
    }

    #[test]
    fn keys_must_be_whsec_base64() {
        assert!(S.key(&SecretString::from("plain")).is_err());
        assert!(S.key(&SecretString::from("whsec_!!!")).is_err());
    }
}
