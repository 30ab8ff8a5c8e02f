//! Salesforce Outbound Messages are not signed, and the `OrganizationId` they carry is public
//! (Salesforce prints it as the hidden `oid` field of every Web-to-Lead form), so it can't be
//! the only check. The endpoint URL Salesforce calls carries a long random key in its query
//! (`?key=…`; Outbound Message endpoints may have a query string), compared in constant time
//! before the body is even parsed; the body's `notifications/OrganizationId` must then be the
//! org's (compared on the case-sensitive 15-character form, in constant time) as a second
//! factor, so a leaked URL alone does not let another org's messages in.
//! <https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_understanding.htm>

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::{Key, SignatureError, Signed};

/// Shortest URL key accepted: 32 characters (`openssl rand -hex 32` gives 64).
const MIN_URL_KEY_CHARS: usize = 32;

/// An org id is `00D` + 12 (or 15, with the case-insensitive suffix) alphanumerics.
pub(super) fn valid_org_id(raw: &str) -> bool {
    (raw.len() == 15 || raw.len() == 18)
        && raw.starts_with("00D")
        && raw.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The URL key: long, random, and made of characters a URL carries as they are.
pub(super) fn url_key(raw: &str) -> Result<SecretString, String> {
    let k = raw.trim();
    if k.len() < MIN_URL_KEY_CHARS
        || !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    {
        return Err(format!(
            "a Salesforce Outbound Message URL key must be at least {MIN_URL_KEY_CHARS} letters, digits, '-', '_', '.' or '~' (e.g. openssl rand -hex 32)"
        ));
    }
    Ok(SecretString::from(k.to_owned()))
}

pub(super) fn verify(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
    // The cheap check first: nothing of a stranger's body is parsed.
    super::credentials::verify_query_key(keys, req)?;
    let body =
        crate::inbound::xml::to_json(req.body).map_err(|_| SignatureError::MissingHeaders)?;
    let org = body["Envelope"]["Body"]["notifications"]["OrganizationId"]
        .as_str()
        .ok_or(SignatureError::MissingHeaders)?;
    if !valid_org_id(org) {
        return Err(SignatureError::Mismatch);
    }
    let mut ok = subtle::Choice::from(0u8);
    for k in keys {
        if let Key::Organization(expected) = k {
            let expected = expected.expose_secret();
            if valid_org_id(expected) {
                ok |= expected.as_bytes()[..15].ct_eq(&org.as_bytes()[..15]);
            }
        }
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Key, Scheme, SignatureError, Signed, organization_key};
    use secrecy::SecretString;

    const URL_KEY: &str = "0123456789abcdef0123456789abcdef";

    fn envelope(org: &str) -> String {
        format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{org}</OrganizationId><Notification><Id>04l1</Id></Notification></notifications></soapenv:Body></soapenv:Envelope>"#
        )
    }

    fn keys() -> Vec<Key> {
        vec![
            key(Scheme::SalesforceOutbound, URL_KEY),
            organization_key(&SecretString::from("00D5e000000ABCD")).unwrap(),
        ]
    }

    fn check(uri: &str, body: &str) -> Result<(), SignatureError> {
        let h = headers(&[]);
        let req = Signed {
            key_name: Some("key"),
            ..signed(&h, body.as_bytes(), uri, now())
        };
        Scheme::SalesforceOutbound.verify(&keys(), &req)
    }

    #[test]
    fn the_url_key_comes_first_and_the_org_id_second() {
        let with_key = format!("https://h/webhooks/salesforce-outbound?key={URL_KEY}");
        assert_eq!(
            check(&with_key, &envelope("00D5e000000ABCDEAU")),
            Ok(()),
            "18-character form"
        );
        assert_eq!(check(&with_key, &envelope("00D5e000000ABCD")), Ok(()));
        // The org's own (public) id without the URL key: refused.
        let no_key = "https://h/webhooks/salesforce-outbound";
        assert_eq!(
            check(no_key, &envelope("00D5e000000ABCD")),
            Err(SignatureError::MissingHeaders)
        );
        let wrong_key =
            "https://h/webhooks/salesforce-outbound?key=0123456789abcdef0123456789abcdeF";
        assert_eq!(
            check(wrong_key, &envelope("00D5e000000ABCD")),
            Err(SignatureError::Mismatch)
        );
        // Without the key, the body is not even parsed: invalid XML is the same refusal.
        assert_eq!(
            check(no_key, "<<<not xml"),
            Err(SignatureError::MissingHeaders)
        );
        assert_eq!(
            check(wrong_key, "<<<not xml"),
            Err(SignatureError::Mismatch)
        );
        // With the key, the org id must still be the org's.
        assert_eq!(
            check(&with_key, &envelope("00D5e000000ABCE")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&with_key, &envelope("00d5e000000abcd")),
            Err(SignatureError::Mismatch),
            "case-sensitive"
        );
        assert_eq!(
            check(&with_key, &envelope("not-an-org")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&with_key, "<x/>"),
            Err(SignatureError::MissingHeaders)
        );
    }

    #[test]
    fn keys_are_long_and_org_ids_well_formed() {
        let s = Scheme::SalesforceOutbound;
        assert!(
            s.key(&SecretString::from("00D5e000000ABCD")).is_err(),
            "an org id is not a URL key"
        );
        assert!(s.key(&SecretString::from("short")).is_err());
        assert!(
            s.key(&SecretString::from("a b c d e f g h i j k l m n o p q r s"))
                .is_err()
        );
        assert!(s.key(&SecretString::from(URL_KEY)).is_ok());
        assert!(organization_key(&SecretString::from("00Dshort")).is_err());
    }
}
