//! Sources: a named webhook endpoint (`POST /webhooks/{name}`) with its signature scheme,
//! secret keys, event filter and field mapping, all from configuration.
//!
//! Adding a CRM is a preset file under `presets/` (or a `RELAY_CONFIG` entry), not code.

use std::collections::BTreeMap;

use minijinja::Value;
use serde::Deserialize;

use super::signature::Scheme;
use crate::domain::object_id::is_object_id;
use crate::domain::{DisplayName, EventDetails, InviteeEmail};
use crate::expr::{EvalError, Expr};

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
const MAX_PARAM_CHARS: usize = 200;

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

/// A source ready to use: expressions compiled, scheme known.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub scheme: Scheme,
    pub secret_keys: Vec<String>,
    pub eventbridge_source: Option<String>,
    pub key_name: Option<String>,
    /// The secret key holding the Salesforce org id (`salesforce-outbound` only).
    pub organization_secret: Option<String>,
    pub format: BodyFormat,
    pub reply: Reply,
    each: Option<Expr>,
    filter: Option<Expr>,
    map: Mapping,
    /// The operator's preset parameters, as the expressions' `params`.
    params: Value,
}

impl Mapping {
    /// Every expression besides the id and the email.
    fn optional(&self) -> impl Iterator<Item = &Expr> {
        [
            &self.event_type,
            &self.display_name,
            &self.user_type,
            &self.redirect_url,
            &self.channels,
            &self.occurred_at,
            &self.company,
            &self.language,
            &self.owner_email,
            &self.owner_id,
        ]
        .into_iter()
        .flatten()
        .chain(self.fields.iter().map(|(_, e)| e))
    }
}

#[derive(Debug)]
struct Mapping {
    event_id: Expr,
    event_type: Option<Expr>,
    email: Expr,
    display_name: Option<Expr>,
    user_type: Option<Expr>,
    redirect_url: Option<Expr>,
    channels: Option<Expr>,
    occurred_at: Option<Expr>,
    company: Option<Expr>,
    language: Option<Expr>,
    owner_email: Option<Expr>,
    owner_id: Option<Expr>,
    fields: Vec<(String, Expr)>,
}

/// What a verified, parsed body means.
#[derive(Debug)]
pub enum Interpretation {
    /// The filter said no: answer 200 "ignored".
    Ignored {
        event_id: String,
        event_type: Option<String>,
    },
    Invite(Box<CrmEvent>),
}

/// A CRM event reduced to what an invitation needs. Values are still raw strings; the domain
/// types parse them (again in the worker, which trusts nothing it reads from a queue).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmEvent {
    pub event_id: String,
    pub event_type: Option<String>,
    pub email: String,
    pub display_name: Option<String>,
    pub user_type: Option<String>,
    pub redirect_url: Option<String>,
    pub channels: Option<Vec<String>>,
    pub occurred_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl CrmEvent {
    /// The event's details, checked: the company cleaned as a display name, the language a
    /// tag, the owner a valid address and a GUID.
    ///
    /// # Errors
    /// When the owner's address or id is not valid (the message names which).
    pub fn details(&self) -> Result<EventDetails, &'static str> {
        Ok(EventDetails {
            event_type: self.event_type.clone(),
            company: self
                .company
                .as_deref()
                .and_then(DisplayName::parse)
                .map(|c| c.as_str().to_owned()),
            language: self
                .language
                .as_deref()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && l.len() <= 35
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
                .map(str::to_owned),
            owner_email: self
                .owner_email
                .as_deref()
                .map(|raw| {
                    InviteeEmail::parse(raw)
                        .map(|e| e.as_str().to_owned())
                        .map_err(|_| "the owner email is not a valid address")
                })
                .transpose()?,
            owner_id: self
                .owner_id
                .as_deref()
                .map(|id| {
                    let id = id.trim().to_ascii_lowercase();
                    if is_object_id(&id) {
                        Ok(id)
                    } else {
                        Err("the owner id is not an object id (a GUID)")
                    }
                })
                .transpose()?,
            fields: self.fields.clone(),
        })
    }
}

/// Why a body could not be interpreted. Messages name fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("required field `{0}` is missing")]
    Missing(String),
    #[error("field `{0}` has the wrong type (expected {1})")]
    WrongType(String, &'static str),
    #[error("field `{0}` is not usable: {1}")]
    Invalid(String, &'static str),
    #[error("the filter expression failed: {0}")]
    Filter(String),
}

/// Most events one request may carry.
pub const MAX_BATCH: usize = 100;

/// Longest event id accepted; ids are logged and used as keys.
const MAX_EVENT_ID: usize = 200;

/// Most `map.fields` a source may define, and the longest value kept.
pub const MAX_FIELDS: usize = 32;
const MAX_FIELD_CHARS: usize = 256;

impl Source {
    /// Validates a merged spec and compiles its expressions. `locate` turns a byte span of the
    /// configuration text into "line N" for messages.
    ///
    /// # Errors
    /// One line naming the source, the field and, where known, the line.
    pub fn compile(
        name: &str,
        spec: SourceSpec,
        locate: &dyn Fn(std::ops::Range<usize>) -> String,
    ) -> Result<Self, String> {
        let field = |f: &str| format!("sources.{name}.{f}");
        let scheme = spec
            .scheme
            .ok_or_else(|| format!("{}: missing (e.g. \"standard-webhooks\")", field("scheme")))?;
        let secret_keys = match (scheme, spec.secrets) {
            (Scheme::Eventbridge, _) => Vec::new(),
            (_, Some(keys)) if !keys.is_empty() => keys,
            _ => {
                return Err(format!(
                    "{}: list at least one key of the relay secret",
                    field("secrets")
                ));
            }
        };
        let key_name = match (scheme, spec.key_name) {
            (Scheme::HeaderKey, Some(name))
                if http::HeaderName::try_from(name.as_str()).is_ok() =>
            {
                Some(name.to_ascii_lowercase())
            }
            (Scheme::HeaderKey, _) => {
                return Err(format!(
                    "{}: required with scheme = \"header-key\" (a header name)",
                    field("key_name")
                ));
            }
            (Scheme::QueryKey, name) => Some(name.unwrap_or_else(|| "code".into())),
            (Scheme::SalesforceOutbound, name) => Some(name.unwrap_or_else(|| "key".into())),
            (_, Some(_)) => {
                return Err(format!(
                    "{}: only for the header-key, query-key and salesforce-outbound schemes",
                    field("key_name")
                ));
            }
            (_, None) => None,
        };
        let eventbridge_source = match (scheme, spec.eventbridge_source) {
            (Scheme::Eventbridge, Some(src)) if !src.trim().is_empty() => Some(src),
            (Scheme::Eventbridge, _) => {
                return Err(format!(
                    "{}: required with scheme = \"eventbridge\" (e.g. \"aws.partner/salesforce.com\")",
                    field("eventbridge_source")
                ));
            }
            (_, Some(_)) => {
                return Err(format!(
                    "{}: only for scheme = \"eventbridge\"",
                    field("eventbridge_source")
                ));
            }
            (_, None) => None,
        };
        let organization_secret = match (scheme, spec.organization_secret) {
            (Scheme::SalesforceOutbound, name) => {
                Some(name.unwrap_or_else(|| "salesforce_organization_id".into()))
            }
            (_, Some(_)) => {
                return Err(format!(
                    "{}: only for scheme = \"salesforce-outbound\"",
                    field("organization_secret")
                ));
            }
            (_, None) => None,
        };
        let compile = |f: &str, s: &toml::Spanned<String>| {
            Expr::compile(s.get_ref()).map_err(|e| {
                format!(
                    "{} ({}): invalid expression: {e}",
                    field(f),
                    locate(s.span())
                )
            })
        };
        let opt = |f: &str, s: &Option<toml::Spanned<String>>| {
            s.as_ref().map(|s| compile(f, s)).transpose()
        };
        let filter = opt("filter", &spec.filter)?;
        let each = opt("each", &spec.each)?;
        let m = spec
            .map
            .ok_or_else(|| format!("{}: missing", field("map")))?;
        let compile_required = |f: &str, s: &toml::Spanned<String>| {
            Expr::compile_required(s.get_ref()).map_err(|e| {
                format!(
                    "{} ({}): invalid expression: {e}",
                    field(f),
                    locate(s.span())
                )
            })
        };
        let req = |f: &str, s: &Option<toml::Spanned<String>>| {
            s.as_ref()
                .ok_or_else(|| format!("{}: missing", field(&format!("map.{f}"))))
                .and_then(|s| compile_required(&format!("map.{f}"), s))
        };
        let map = Mapping {
            event_id: req("event_id", &m.event_id)?,
            email: req("email", &m.email)?,
            event_type: m
                .event_type
                .as_ref()
                .map(|s| compile_required("map.event_type", s))
                .transpose()?,
            display_name: opt("map.display_name", &m.display_name)?,
            user_type: opt("map.user_type", &m.user_type)?,
            redirect_url: opt("map.redirect_url", &m.redirect_url)?,
            channels: opt("map.channels", &m.channels)?,
            occurred_at: opt("map.occurred_at", &m.occurred_at)?,
            company: opt("map.company", &m.company)?,
            language: opt("map.language", &m.language)?,
            owner_email: opt("map.owner_email", &m.owner_email)?,
            owner_id: opt("map.owner_id", &m.owner_id)?,
            fields: {
                if m.fields.len() > MAX_FIELDS {
                    return Err(format!(
                        "{}: at most {MAX_FIELDS} fields",
                        field("map.fields")
                    ));
                }
                m.fields
                    .iter()
                    .map(|(k, s)| {
                        if !valid_field_name(k) {
                            return Err(format!(
                                "{}: field names are letters, digits and '_', starting with a letter",
                                field(&format!("map.fields.{k}"))
                            ));
                        }
                        compile(&format!("map.fields.{k}"), s).map(|e| (k.clone(), e))
                    })
                    .collect::<Result<_, _>>()?
            },
        };
        let exprs: Vec<&Expr> = [&map.event_id, &map.email]
            .into_iter()
            .chain(filter.iter())
            .chain(each.iter())
            .chain(map.optional())
            .collect();
        check_params(name, &spec.requires, &spec.params, &exprs)?;
        Ok(Self {
            name: name.to_owned(),
            params: Value::from(spec.params.clone()),
            scheme,
            secret_keys,
            eventbridge_source,
            key_name,
            organization_secret,
            format: spec.format.unwrap_or_default(),
            reply: spec.reply.unwrap_or_default(),
            each,
            filter,
            map,
        })
    }

    /// Applies the mapping and filter to a parsed body.
    ///
    /// # Errors
    /// [`MapError`] naming the field that is missing or unusable.
    pub fn interpret(&self, body: &serde_json::Value) -> Result<Interpretation, MapError> {
        let whole = Value::from(minijinja::value::Serde(body));
        self.interpret_item(whole.clone(), whole)
    }

    /// The first event of `body` that invites (what a preview is written for).
    ///
    /// # Errors
    /// A message when the body can't be parsed, or nothing in it invites.
    pub fn first_invitation(&self, body: &[u8]) -> Result<CrmEvent, String> {
        let parsed = super::body::parse(self.format, body)?;
        self.interpret_all(&parsed)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find_map(|i| match i {
                Ok(Interpretation::Invite(e)) => Some(*e),
                _ => None,
            })
            .ok_or_else(|| {
                "the source's filter ignores this event, or it can't be interpreted".into()
            })
    }

    /// Whether one body may carry several events (`each` is configured).
    pub fn is_batch(&self) -> bool {
        self.each.is_some()
    }

    /// Every event of a body: one for ordinary sources, each item of `each` for batch sources
    /// (at most [`MAX_BATCH`]). An item that can't be interpreted is reported on its own.
    ///
    /// # Errors
    /// [`MapError`] when `each` doesn't give a list.
    pub fn interpret_all(
        &self,
        body: &serde_json::Value,
    ) -> Result<Vec<Result<Interpretation, MapError>>, MapError> {
        let whole = Value::from(minijinja::value::Serde(body));
        let Some(each) = &self.each else {
            return Ok(vec![self.interpret_item(whole.clone(), whole)]);
        };
        let ctx = Value::from(BTreeMap::from([
            ("body", whole.clone()),
            ("params", self.params.clone()),
        ]));
        let list = eval(each, &ctx)?;
        // XML has no lists: one repeated element is a single object.
        if list.kind() == minijinja::value::ValueKind::Map {
            return Ok(vec![self.interpret_item(list, whole)]);
        }
        if list.kind() != minijinja::value::ValueKind::Seq {
            return Err(MapError::WrongType(
                each.source().to_owned(),
                "a list of events",
            ));
        }
        let items: Vec<Value> = list
            .try_iter()
            .map_err(|_| MapError::WrongType(each.source().to_owned(), "a list of events"))?
            .collect();
        if items.len() > MAX_BATCH {
            return Err(MapError::Invalid(
                each.source().to_owned(),
                "more than 100 events in one request",
            ));
        }
        Ok(items
            .into_iter()
            .map(|item| self.interpret_item(item, whole.clone()))
            .collect())
    }

    fn interpret_item(&self, event: Value, body: Value) -> Result<Interpretation, MapError> {
        let ctx = Value::from(BTreeMap::from([
            ("event", event),
            ("body", body),
            ("params", self.params.clone()),
        ]));
        let m = &self.map;
        let event_id = required_id(&m.event_id, &ctx)?;
        if event_id.len() > MAX_EVENT_ID || !crate::domain::text::is_plain_id(&event_id) {
            return Err(MapError::Invalid(
                m.event_id.field_name().to_owned(),
                "at most 200 visible ASCII characters",
            ));
        }
        let event_type = match &m.event_type {
            Some(e) => Some(required_string(e, &ctx)?),
            None => None,
        };
        if let Some(t) = &event_type
            && t.chars()
                .any(|c| c.is_control() || crate::domain::text::is_invisible(c))
        {
            return Err(MapError::Invalid(
                m.event_type
                    .as_ref()
                    .map_or("type", |e| e.field_name())
                    .to_owned(),
                "control or invisible characters",
            ));
        }
        if let Some(filter) = &self.filter {
            let pass = filter.eval(&ctx).map_err(MapError::Filter)?;
            if !pass.is_true() {
                return Ok(Interpretation::Ignored {
                    event_id,
                    event_type,
                });
            }
        }
        Ok(Interpretation::Invite(Box::new(CrmEvent {
            event_id,
            event_type,
            email: required_string(&m.email, &ctx)?,
            display_name: optional_string(m.display_name.as_ref(), &ctx)?,
            user_type: optional_string(m.user_type.as_ref(), &ctx)?,
            redirect_url: optional_string(m.redirect_url.as_ref(), &ctx)?,
            channels: optional_list(m.channels.as_ref(), &ctx)?,
            occurred_at: optional_string(m.occurred_at.as_ref(), &ctx)?,
            company: optional_string(m.company.as_ref(), &ctx)?,
            language: optional_string(m.language.as_ref(), &ctx)?,
            owner_email: optional_string(m.owner_email.as_ref(), &ctx)?,
            owner_id: optional_string(m.owner_id.as_ref(), &ctx)?,
            fields: m
                .fields
                .iter()
                .filter_map(|(k, e)| {
                    scalar(e, &ctx)
                        .transpose()
                        .map(|v| v.map(|v| (k.clone(), v)))
                })
                .collect::<Result<_, _>>()?,
        })))
    }
}

fn eval(expr: &Expr, ctx: &Value) -> Result<Value, MapError> {
    expr.try_eval(ctx).map_err(|e| match e {
        EvalError::Undefined(path) => MapError::Missing(path),
        EvalError::Failed(_) => MapError::WrongType(
            expr.field_name().to_owned(),
            "a value the expression can read",
        ),
    })
}

/// Event ids may be strings or integers (CRMs send numeric record ids).
fn required_id(expr: &Expr, ctx: &Value) -> Result<String, MapError> {
    let v = eval(expr, ctx)?;
    if v.is_integer() {
        return Ok(v.to_string());
    }
    required_string(expr, ctx)
}

fn required_string(expr: &Expr, ctx: &Value) -> Result<String, MapError> {
    optional_string(Some(expr), ctx)?.ok_or_else(|| MapError::Missing(expr.missing_path(ctx)))
}

/// Strings pass; `null`, undefined and empty strings are absent; anything else is the wrong
/// type.
fn optional_string(expr: Option<&Expr>, ctx: &Value) -> Result<Option<String>, MapError> {
    let Some(expr) = expr else { return Ok(None) };
    let v = eval(expr, ctx)?;
    if v.is_undefined() || v.is_none() {
        return Ok(None);
    }
    if let Some(s) = v.as_str() {
        return Ok((!s.trim().is_empty()).then(|| s.to_owned()));
    }
    Err(MapError::WrongType(
        expr.field_name().to_owned(),
        "a string",
    ))
}

/// Every parameter an expression reads (`params.NAME`) that the preset requires must be set
/// (and well-formed); a mapping the operator replaced no longer needs its parameter.
fn check_params(
    name: &str,
    requires: &BTreeMap<String, Requirement>,
    params: &BTreeMap<String, String>,
    exprs: &[&Expr],
) -> Result<(), String> {
    for (key, value) in params {
        if !valid_field_name(key) || !requires.contains_key(key) {
            return Err(format!(
                "sources.{name}.params.{key}: the preset takes no such parameter"
            ));
        }
        if value.trim().is_empty()
            || value.len() > MAX_PARAM_CHARS
            || !value.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "sources.{name}.params.{key}: at most {MAX_PARAM_CHARS} visible ASCII characters"
            ));
        }
    }
    for (key, req) in requires {
        let used = exprs.iter().any(|e| e.reads(&format!("params.{key}")));
        match params.get(key) {
            None if used && !req.optional => {
                return Err(format!(
                    "sources.{name}.params.{key}: required: {}",
                    req.help
                ));
            }
            Some(v)
                if req
                    .hex_length
                    .is_some_and(|n| v.len() != n || !v.bytes().all(|b| b.is_ascii_hexdigit())) =>
            {
                return Err(format!(
                    "sources.{name}.params.{key}: must be {} hexadecimal characters: {}",
                    req.hex_length.unwrap_or(0),
                    req.help
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A routing/template field: a string, number or boolean, as text on one line, bounded.
fn scalar(expr: &Expr, ctx: &Value) -> Result<Option<String>, MapError> {
    let v = eval(expr, ctx)?;
    if v.is_undefined() || v.is_none() {
        return Ok(None);
    }
    let text = match v.kind() {
        minijinja::value::ValueKind::String
        | minijinja::value::ValueKind::Number
        | minijinja::value::ValueKind::Bool => v.to_string(),
        _ => {
            return Err(MapError::WrongType(
                expr.field_name().to_owned(),
                "a string, number or boolean",
            ));
        }
    };
    let clean: String = text
        .chars()
        .filter(|c| !crate::domain::text::is_invisible(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_FIELD_CHARS)
        .collect();
    let clean = clean.trim();
    Ok((!clean.is_empty()).then(|| clean.to_owned()))
}

fn valid_field_name(n: &str) -> bool {
    n.len() <= 64
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A list of strings, or one comma-separated string.
fn optional_list(expr: Option<&Expr>, ctx: &Value) -> Result<Option<Vec<String>>, MapError> {
    let Some(expr) = expr else { return Ok(None) };
    let v = eval(expr, ctx)?;
    if v.is_undefined() || v.is_none() {
        return Ok(None);
    }
    if let Some(s) = v.as_str() {
        return Ok(Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ));
    }
    let wrong = || MapError::WrongType(expr.field_name().to_owned(), "a list of strings");
    if v.kind() != minijinja::value::ValueKind::Seq {
        return Err(wrong());
    }
    v.try_iter()
        .map_err(|_| wrong())?
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(wrong))
        .collect::<Result<_, _>>()
        .map(Some)
}
