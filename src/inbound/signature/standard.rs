//! Standard Webhooks (and Svix, which sends the same scheme under `svix-*` header names),
//! checked by [`crate::standard_webhooks`].

use http::HeaderMap;

use super::{Key, SignatureError, Signed};
use crate::standard_webhooks::{Failure, WebhookKey};

pub(super) fn key(raw: &str) -> Result<Key, String> {
    WebhookKey::parse(raw).map(Key::StandardWebhooks)
}

pub(super) fn verify(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
    let h = |std: &str, svix: &str| {
        header(req.headers, std)
            .or_else(|| header(req.headers, svix))
            .ok_or(SignatureError::MissingHeaders)
    };
    let id = h("webhook-id", "svix-id")?;
    let timestamp = h("webhook-timestamp", "svix-timestamp")?;
    let signatures = h("webhook-signature", "svix-signature")?;
    let keys = keys.iter().filter_map(|k| match k {
        Key::StandardWebhooks(k) => Some(k),
        _ => None,
    });
    crate::standard_webhooks::verify(keys, id, timestamp, signatures, req.body, req.now_unix)
        .map_err(|f| match f {
            Failure::MalformedTimestamp => SignatureError::MissingHeaders,
            Failure::Stale => SignatureError::Timestamp,
            Failure::Mismatch => SignatureError::Mismatch,
        })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::Key;
    use super::super::test_support::*;
    use super::super::{Scheme, SignatureError};
    use crate::standard_webhooks::WebhookKey;
    use secrecy::SecretString;

    const S: Scheme = Scheme::StandardWebhooks;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    /// The reference libraries' test fixture (python `tests/test_webhooks.py`, js
    /// `src/webhook.test.ts`, go `webhook_test.go`): the Svix docs' key and message.
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;

    fn parsed(s: &str) -> WebhookKey {
        WebhookKey::parse(s).unwrap()
    }

    /// Published known answers (FACTS.md): the Svix docs and the standard-webhooks Rust
    /// library's `test_sign`.
    #[test]
    fn known_answers() {
        assert_eq!(
            parsed(SECRET).sign(MSG_ID, 1614265330, PAYLOAD),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            parsed(OTHER).sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    /// The crate the reference implementation publishes signs exactly as this module does.
    #[test]
    fn signs_as_the_reference_crate_does() {
        let theirs = standardwebhooks::Webhook::new(OTHER).unwrap();
        for (id, ts, body) in [("msg_1", 1_700_000_000, &b"{}"[..]), ("m", 0, b"")] {
            assert_eq!(
                parsed(OTHER).sign(id, ts, body),
                theirs.sign(id, ts, body).unwrap()
            );
        }
    }

    fn check_at(
        keys: &[Key],
        id: &str,
        ts: &str,
        sig: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let h = headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ]);
        S.verify(keys, &signed(&h, body, "", now))
    }

    #[test]
    fn accepts_fresh_signatures_under_either_header_set_and_rotation_keys() {
        let now = now();
        let body = br#"{"id":"evt_1"}"#;
        let sig = parsed(SECRET).sign("msg_1", now, body);
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
    }

    /// The reference libraries' must-pass cases: a list with one valid entry among other
    /// versions and wrong ones (python `test_multi_sig_payload_is_valid`), a key without
    /// `whsec_`, unpadded keys (python), and a duplicated header joined with commas.
    #[test]
    fn accepts_what_the_reference_libraries_accept() {
        let now = now();
        let ts = now.to_string();
        let valid = parsed(SECRET).sign(MSG_ID, now, PAYLOAD);
        let wrong = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let list =
            format!("{wrong} v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {valid} {wrong}");
        let k = [key(S, SECRET)];
        assert_eq!(check_at(&k, MSG_ID, &ts, &list, PAYLOAD, now), Ok(()));
        assert_eq!(
            check_at(&k, MSG_ID, &ts, &format!("{wrong},{valid}"), PAYLOAD, now),
            Ok(())
        );
        assert_eq!(
            check_at(&k, MSG_ID, &ts, &format!("{wrong}, {valid}"), PAYLOAD, now),
            Ok(())
        );
        let bare = [key(S, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
        assert_eq!(check_at(&bare, MSG_ID, &ts, &valid, PAYLOAD, now), Ok(()));
        // Python's unpadded fixtures (non-canonical trailing bits included) decode.
        for unpadded in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
        ] {
            let k = WebhookKey::parse(unpadded).unwrap();
            let sig = k.sign(MSG_ID, now, PAYLOAD);
            assert_eq!(
                check_at(&[Key::StandardWebhooks(k)], MSG_ID, &ts, &sig, PAYLOAD, now),
                Ok(()),
                "{unpadded}"
            );
        }
        // A correctly signed body that is not UTF-8 verifies (the JSON parser then answers 400).
        let binary = [0xff, 0xfe, b'{', 0x80];
        let sig = parsed(SECRET).sign(MSG_ID, now, &binary);
        assert_eq!(check_at(&k, MSG_ID, &ts, &sig, &binary, now), Ok(()));
    }

    /// The reference libraries' must-fail cases (python `tests/test_webhooks.py`, js
    /// `src/webhook.test.ts`, go `webhook_test.go`, rust `lib.rs`), with their exact mutations.
    #[test]
    fn refuses_what_the_reference_libraries_refuse() {
        let now = now();
        let ts = now.to_string();
        let k = [key(S, SECRET)];
        let valid = parsed(SECRET).sign(MSG_ID, now, PAYLOAD);
        let fail = |id: &str, ts: &str, sig: &str| check_at(&k, id, ts, sig, PAYLOAD, now);
        // Signatures that don't match.
        for (case, sig) in [
            (
                "wrong last byte (python)",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
            ),
            ("not a signature (js)", "v1,dawfeoifkpqwoekfpqoekf"),
            (
                "well-formed but wrong (go)",
                "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            ),
            ("v1, alone (js, go, rust)", "v1,"),
            ("truncated (js, rust)", &valid[..8]),
            ("another version only", &valid.replacen("v1,", "v2,", 1)),
            (
                "several, none valid (rust)",
                "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=",
            ),
        ] {
            assert_eq!(
                fail(MSG_ID, &ts, sig),
                Err(SignatureError::Mismatch),
                "{case}"
            );
        }
        assert_eq!(
            fail("msg_other", &ts, &valid),
            Err(SignatureError::Mismatch),
            "other id"
        );
        assert_eq!(
            check_at(&k, MSG_ID, &ts, &valid, br#"{"test": 2432232315}"#, now),
            Err(SignatureError::Mismatch),
            "tampered body"
        );
        assert_eq!(
            check_at(&[key(S, OTHER)], MSG_ID, &ts, &valid, PAYLOAD, now),
            Err(SignatureError::Mismatch),
            "wrong key"
        );
        // Timestamps: old, future, unparsable, and the values that wrap an i64 subtraction.
        for skew in [-301, 301] {
            let t = now + skew;
            let sig = parsed(SECRET).sign(MSG_ID, t, PAYLOAD);
            assert_eq!(
                fail(MSG_ID, &t.to_string(), &sig),
                Err(SignatureError::Timestamp),
                "{skew}"
            );
        }
        for (t, expected) in [
            (i64::MIN, SignatureError::MissingHeaders),
            (i64::MAX, SignatureError::MissingHeaders),
            (-1, SignatureError::MissingHeaders),
            (0, SignatureError::Timestamp),
            (99_999_999_999, SignatureError::Timestamp),
        ] {
            let sig = parsed(SECRET).sign(MSG_ID, t, PAYLOAD);
            assert_eq!(fail(MSG_ID, &t.to_string(), &sig), Err(expected), "{t}");
        }
        for bad in ["hello", "+1", "1.5", " ", "１２３"] {
            assert!(fail(MSG_ID, bad, &valid).is_err(), "{bad:?}");
        }
        // Missing headers.
        for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let all = [
                ("webhook-id", MSG_ID),
                ("webhook-timestamp", ts.as_str()),
                ("webhook-signature", valid.as_str()),
            ];
            let pairs: Vec<(&str, &str)> = all.into_iter().filter(|(k, _)| *k != missing).collect();
            let h = headers(&pairs);
            assert_eq!(
                S.verify(&k, &signed(&h, PAYLOAD, "", now)),
                Err(SignatureError::MissingHeaders),
                "{missing}"
            );
        }
    }

    #[test]
    fn keys_must_be_base64_of_at_least_16_bytes() {
        for bad in [
            "",
            "whsec_",
            "whsec_!!!",
            "whsec_AAAA",
            "whsec_MfKQ9r8GKYqrTwjUPD8I-PZIo2LaLaSw",
        ] {
            assert!(S.key(&SecretString::from(bad)).is_err(), "{bad:?}");
        }
        assert!(format!("{:?}", parsed(SECRET)).contains("redacted"));
    }
}
