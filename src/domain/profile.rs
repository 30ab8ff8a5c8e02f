//! What the relay writes onto a guest after the invitation (which takes no name parts, company
//! or title): profile properties from the CRM, and provenance — which source, record and event
//! brought the guest in, and until when — in `onPremisesExtensionAttributes` slots, where
//! lifecycle policies and access reviews can act on them.
//!
//! Properties and limits: <https://learn.microsoft.com/graph/api/user-update> and the `user`
//! resource's property descriptions (`givenName`: "Maximum length is 64 characters", …).

use std::collections::BTreeMap;

use super::text::is_invisible;

/// The user properties a source may map, with their longest value in characters. Others
/// (`accountEnabled`, `userType`, `mail`, `otherMails`, …) are not the CRM's to set.
pub const PROFILE_PROPERTIES: &[(&str, usize)] = &[
    ("givenName", 64),
    ("surname", 64),
    ("companyName", 64),
    ("jobTitle", 128),
    ("department", 64),
    ("mobilePhone", 64),
    ("officeLocation", 128),
    ("city", 128),
    ("state", 128),
    ("country", 128),
    ("postalCode", 40),
    ("streetAddress", 1024),
    ("usageLocation", 2),
    ("preferredLanguage", 35),
];

/// Whether `name` is a property a source may map.
pub fn is_profile_property(name: &str) -> bool {
    PROFILE_PROPERTIES.iter().any(|(n, _)| *n == name)
}

/// ISO 3166-1 alpha-2 codes: the values `usageLocation` takes ("A two letter country code
/// (ISO standard 3166)").
const ISO_3166: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ \
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES \
ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO \
IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK \
ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR \
PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK \
TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Profile properties, each checked against Graph's rules: what `PATCH /users/{id}` gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile(BTreeMap<String, String>);

/// Why a mapped value can't be written (the property, and the rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub property: String,
    pub rule: &'static str,
}

impl Profile {
    /// Checks every value; empty ones are left out.
    ///
    /// # Errors
    /// The first property Graph would refuse, and why.
    pub fn parse(raw: &BTreeMap<String, String>) -> Result<Self, ProfileError> {
        let mut out = BTreeMap::new();
        for (property, value) in raw {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let err = |rule| ProfileError {
                property: property.clone(),
                rule,
            };
            let max = PROFILE_PROPERTIES
                .iter()
                .find(|(n, _)| n == property)
                .map(|(_, m)| *m)
                .ok_or_else(|| err("not a property the relay writes"))?;
            if value.chars().any(|c| c.is_control() || is_invisible(c)) {
                return Err(err("control or invisible characters"));
            }
            if value.chars().count() > max {
                return Err(err("longer than Graph allows"));
            }
            let value = match property.as_str() {
                "usageLocation" => {
                    usage_location(value).ok_or_else(|| err("not an ISO 3166 country code"))?
                }
                "preferredLanguage" if !is_language_tag(value) => {
                    return Err(err("not a language tag such as en-US"));
                }
                _ => value.to_owned(),
            };
            out.insert(property.clone(), value);
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn usage_location(v: &str) -> Option<String> {
    let code = v.to_ascii_uppercase();
    (code.len() == 2 && ISO_3166.split(' ').any(|c| c == code)).then_some(code)
}

/// Whether `v` looks like a BCP 47 language tag (`de`, `fr-CA`).
pub fn is_language_tag(v: &str) -> bool {
    v.split('-')
        .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Where provenance goes: `onPremisesExtensionAttributes` slots (`extensionAttribute1`–`15`,
/// writable for cloud-only users such as B2B guests).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceSlots {
    /// The source (`generic`, `hubspot`, …): also how offboarding recognises the relay's guests.
    pub source: Option<String>,
    pub record_id: Option<String>,
    pub event_id: Option<String>,
    /// A date (`YYYY-MM-DD`) after which the partnership is over.
    pub contract_end: Option<String>,
}

impl ProvenanceSlots {
    /// Whether any provenance is written.
    pub fn any(&self) -> bool {
        self.source.is_some()
            || self.record_id.is_some()
            || self.event_id.is_some()
            || self.contract_end.is_some()
    }

    /// Every slot named is `extensionAttribute1` to `extensionAttribute15`, each used once.
    ///
    /// # Errors
    /// Names the setting at fault.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = Vec::new();
        for (name, slot) in self.named() {
            let ok = slot
                .strip_prefix("extensionAttribute")
                .and_then(|n| n.parse::<u8>().ok())
                .is_some_and(|n| (1..=15).contains(&n));
            if !ok {
                return Err(format!(
                    "invitations.provenance.{name}: extensionAttribute1 to extensionAttribute15"
                ));
            }
            if seen.contains(&slot) {
                return Err(format!(
                    "invitations.provenance.{name}: {slot} is used twice"
                ));
            }
            seen.push(slot);
        }
        Ok(())
    }

    /// The slots in use, by what they hold.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("source", &self.source),
            ("record_id", &self.record_id),
            ("event_id", &self.event_id),
            ("contract_end", &self.contract_end),
        ]
        .into_iter()
        .filter_map(|(n, s)| s.as_deref().map(|s| (n, s)))
    }

    pub fn is_empty(&self) -> bool {
        self.named().next().is_none()
    }
}

/// Which source, record and event brought a guest in, and until when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    pub source: String,
    pub record_id: Option<String>,
    pub event_id: String,
    pub contract_end: Option<String>,
}

impl Provenance {
    /// The value a slot holds for this guest.
    pub fn value(&self, what: &str) -> Option<&str> {
        match what {
            "source" => Some(&self.source),
            "record_id" => self.record_id.as_deref(),
            "event_id" => Some(&self.event_id),
            "contract_end" => self.contract_end.as_deref(),
            _ => None,
        }
    }
}

/// A calendar date as `YYYY-MM-DD` (the first ten characters of an ISO 8601 date or time).
pub fn parse_date(raw: &str) -> Option<String> {
    let d = raw.trim().get(..10)?;
    let b = d.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let ok = digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10);
    let (m, day): (u8, u8) = (d[5..7].parse().ok()?, d[8..10].parse().ok()?);
    (ok && (1..=12).contains(&m) && (1..=31).contains(&day)).then(|| d.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn values_graph_would_refuse_are_refused_before_any_call() {
        let ok = Profile::parse(&map(&[
            ("givenName", " Ada "),
            ("usageLocation", "gb"),
            ("jobTitle", "Countess"),
            ("department", ""),
        ]))
        .unwrap();
        let got: Vec<(&str, &str)> = ok.iter().collect();
        assert_eq!(
            got,
            [
                ("givenName", "Ada"),
                ("jobTitle", "Countess"),
                ("usageLocation", "GB")
            ]
        );
        for (property, value, rule) in [
            ("givenName", &"x".repeat(65)[..], "longer than Graph allows"),
            ("usageLocation", "XX", "not an ISO 3166 country code"),
            ("usageLocation", "GBR", "longer than Graph allows"),
            ("jobTitle", "CEO\u{202E}", "control or invisible characters"),
            ("accountEnabled", "false", "not a property the relay writes"),
            (
                "preferredLanguage",
                "en_US",
                "not a language tag such as en-US",
            ),
        ] {
            let e = Profile::parse(&map(&[(property, value)])).unwrap_err();
            assert_eq!((e.property.as_str(), e.rule), (property, rule));
        }
        assert_eq!(ISO_3166.split(' ').count(), 249);
    }

    #[test]
    fn provenance_slots_and_dates() {
        let slots = ProvenanceSlots {
            source: Some("extensionAttribute10".into()),
            contract_end: Some("extensionAttribute10".into()),
            ..ProvenanceSlots::default()
        };
        assert!(slots.check().unwrap_err().contains("used twice"));
        let slots = ProvenanceSlots {
            source: Some("extensionAttribute16".into()),
            ..ProvenanceSlots::default()
        };
        assert!(slots.check().is_err());
        assert_eq!(
            parse_date("2027-01-31T00:00:00Z").as_deref(),
            Some("2027-01-31")
        );
        assert_eq!(parse_date("2027-13-01"), None);
        assert_eq!(parse_date("31/01/2027"), None);
    }
}
