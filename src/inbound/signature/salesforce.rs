//! Salesforce Outbound Messages are not signed; Salesforce's guidance is TLS plus checking that
//! the message's `OrganizationId` is your org's. That id is this scheme's key: the SOAP body's
//! `notifications/OrganizationId` must match it (compared on the case-sensitive 15-character
//! form, in constant time).

use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{Key, SignatureError, Signed};

/// An org id is `00D` + 12 (or 15, with the case-insensitive suffix) alphanumerics.
pub(super) fn valid_org_id(raw: &str) -> bool {
    (raw.len() == 15 || raw.len() == 18)
        && raw.starts_with("00D")
        && raw.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub(super) fn verify(keys: &[Key], req: &Signed<'_>) -> Result<(), SignatureError> {
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
        if let Key::Credential(expected) = k {
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
    use super::super::{Scheme, SignatureError};
    use secrecy::SecretString;

    fn envelope(org: &str) -> String {
        format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{org}</OrganizationId><Notification><Id>04l1</Id></Notification></notifications></soapenv:Body></soapenv:Envelope>"#
        )
    }

    #[test]
    fn organization_id_must_match() {
        let s = Scheme::SalesforceOutbound;
        let k = [key(s, "00D5e000000ABCD")];
        let h = headers(&[]);
        let check = |body: &str| s.verify(&k, &signed(&h, body.as_bytes(), "", now()));
        assert_eq!(
            check(&envelope("00D5e000000ABCDEAU")),
            Ok(()),
            "18-character form"
        );
        assert_eq!(check(&envelope("00D5e000000ABCD")), Ok(()));
        assert_eq!(
            check(&envelope("00D5e000000ABCE")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&envelope("00d5e000000abcd")),
            Err(SignatureError::Mismatch),
            "case-sensitive"
        );
        assert_eq!(
            check(&envelope("not-an-org")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check("<x/>"), Err(SignatureError::MissingHeaders));
        assert!(s.key(&SecretString::from("00Dshort")).is_err());
    }
}
