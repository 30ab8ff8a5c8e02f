//! A source as written in TOML, before it is compiled: the fields a preset or `RELAY_CONFIG`
//! sets, and how `RELAY_CONFIG` overrides a preset.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::inbound::signature::Scheme;

/// A source as written in TOML. Every field may be omitted when the source inherits a preset
/// (`preset = "generic"`, or implicitly a preset of the same name).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub preset: Option<String>,
    /// `false` turns a source off (e.g. the default `generic` source).
    pub enabled: Option<bool>,
    /// The body's format: `json` (default) or `xml` (SOAP).
    pub format: Option<BodyFormat>,
    /// How success is answered: `json` (default) or `salesforce-ack` (the SOAP acknowledgement
    /// Salesforce Outbound Messages wait for).
    pub reply: Option<Reply>,
    pub scheme: Option<Scheme>,
    /// Keys in the relay secret holding this source's signing keys; absent keys are skipped,
    /// at least one must be present.
    pub secrets: Option<Vec<String>>,
    pub filter: Option<toml::Spanned<String>>,
    /// For bodies that carry several events (HubSpot subscriptions, batches): an expression
    /// over `body` giving the list of events; each item is then `event` in the mapping (and
    /// `body` is still the whole body).
    pub each: Option<toml::Spanned<String>>,
    /// For `scheme = "eventbridge"`: the EventBridge `source` (or a prefix of it) this source
    /// handles, e.g. `aws.partner/salesforce.com`.
    pub eventbridge_source: Option<String>,
    /// For `header-key` (required), `query-key` (default `code`) and `salesforce-outbound`
    /// (default `key`): where the key is sent.
    pub key_name: Option<String>,
    /// For `salesforce-outbound`: the key of the relay secret holding the org's id (default
    /// `salesforce_organization_id`), checked after the URL key as a second factor.
    pub organization_secret: Option<String>,
    pub map: Option<MapSpec>,
    /// What a preset needs the operator to set before it can work (a value specific to the
    /// account, such as a custom field's key), each with the help shown when it is missing.
    /// Expressions read the values as `params.NAME`.
    #[serde(default)]
    pub requires: BTreeMap<String, Requirement>,
    /// The operator's values for the preset's `requires`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// A value a preset needs from the operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// What to set, and where the operator finds it.
    pub help: String,
    /// The value is this many hexadecimal digits (e.g. a Pipedrive custom field key: 40).
    pub hex_length: Option<usize>,
    /// The preset works without it (the expressions reading it check that it is set).
    #[serde(default)]
    pub optional: bool,
}

/// Longest parameter value: keys and ids, not text.
pub(super) const MAX_PARAM_CHARS: usize = 200;

/// Field mapping: each value is an expression over `event` (the parsed body).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapSpec {
    pub event_id: Option<toml::Spanned<String>>,
    pub event_type: Option<toml::Spanned<String>>,
    pub email: Option<toml::Spanned<String>>,
    pub display_name: Option<toml::Spanned<String>>,
    pub user_type: Option<toml::Spanned<String>>,
    pub redirect_url: Option<toml::Spanned<String>>,
    pub channels: Option<toml::Spanned<String>>,
    pub occurred_at: Option<toml::Spanned<String>>,
    /// The invitee's organisation, for messages.
    pub company: Option<toml::Spanned<String>>,
    /// The invitee's preferred language (`de`, `fr-CA`): chooses message templates.
    pub language: Option<toml::Spanned<String>>,
    /// The account owner's email: CC on email deliveries, sponsor, available to templates.
    pub owner_email: Option<toml::Spanned<String>>,
    /// The account owner's Entra object id, when the CRM knows it: the sponsor.
    pub owner_id: Option<toml::Spanned<String>>,
    /// Further values for routing rules and templates (`fields.region`, `fields.pipeline`).
    #[serde(default)]
    pub fields: BTreeMap<String, toml::Spanned<String>>,
    /// What the event asks for: `invite` (the default) or `offboard`.
    pub action: Option<toml::Spanned<String>>,
    /// The CRM record behind the event (provenance).
    pub record_id: Option<toml::Spanned<String>>,
    /// When the partnership ends (provenance; a date).
    pub contract_end: Option<toml::Spanned<String>>,
    /// Guest properties written after the invitation (`givenName`, `jobTitle`, …).
    #[serde(default)]
    pub profile: BTreeMap<String, toml::Spanned<String>>,
}

impl SourceSpec {
    /// Fields set here win over `base`.
    pub fn over(self, base: &SourceSpec) -> SourceSpec {
        let map = match (self.map, &base.map) {
            (Some(m), Some(b)) => Some(m.over(b)),
            (m, b) => m.or_else(|| b.clone()),
        };
        SourceSpec {
            preset: None,
            enabled: self.enabled.or(base.enabled),
            format: self.format.or(base.format),
            reply: self.reply.or(base.reply),
            scheme: self.scheme.or(base.scheme),
            secrets: self.secrets.or_else(|| base.secrets.clone()),
            filter: self.filter.or_else(|| base.filter.clone()),
            each: self.each.or_else(|| base.each.clone()),
            eventbridge_source: self
                .eventbridge_source
                .or_else(|| base.eventbridge_source.clone()),
            key_name: self.key_name.or_else(|| base.key_name.clone()),
            organization_secret: self
                .organization_secret
                .or_else(|| base.organization_secret.clone()),
            map,
            requires: {
                let mut r = base.requires.clone();
                r.extend(self.requires);
                r
            },
            params: {
                let mut p = base.params.clone();
                p.extend(self.params);
                p
            },
        }
    }
}

impl MapSpec {
    fn over(self, b: &MapSpec) -> MapSpec {
        MapSpec {
            event_id: self.event_id.or_else(|| b.event_id.clone()),
            event_type: self.event_type.or_else(|| b.event_type.clone()),
            email: self.email.or_else(|| b.email.clone()),
            display_name: self.display_name.or_else(|| b.display_name.clone()),
            user_type: self.user_type.or_else(|| b.user_type.clone()),
            redirect_url: self.redirect_url.or_else(|| b.redirect_url.clone()),
            channels: self.channels.or_else(|| b.channels.clone()),
            occurred_at: self.occurred_at.or_else(|| b.occurred_at.clone()),
            company: self.company.or_else(|| b.company.clone()),
            language: self.language.or_else(|| b.language.clone()),
            owner_email: self.owner_email.or_else(|| b.owner_email.clone()),
            owner_id: self.owner_id.or_else(|| b.owner_id.clone()),
            fields: {
                let mut f = b.fields.clone();
                f.extend(self.fields);
                f
            },
            action: self.action.or_else(|| b.action.clone()),
            record_id: self.record_id.or_else(|| b.record_id.clone()),
            contract_end: self.contract_end.or_else(|| b.contract_end.clone()),
            profile: {
                let mut p = b.profile.clone();
                p.extend(self.profile);
                p
            },
        }
    }
}

/// The format of a source's request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyFormat {
    #[default]
    Json,
    Xml,
}

/// How a source's successful requests are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    #[default]
    Json,
    SalesforceAck,
}
