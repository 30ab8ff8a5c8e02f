//! Sources: a named webhook endpoint (`POST /webhooks/{name}`) with its signature scheme,
//! secret keys, event filter and field mapping, all from configuration.
//!
//! Adding a CRM is a preset file under `presets/` (or a `RELAY_CONFIG` entry), not code.

mod event;
mod mapping;
mod spec;

use std::collections::BTreeMap;

use minijinja::Value;

pub use event::{Action, CrmEvent};
use mapping::{Mapping, check_params, eval, required_id, required_string};
pub use spec::{BodyFormat, Reply, SourceSpec};

use super::signature::Scheme;
use crate::expr::Expr;

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
pub(super) const MAX_FIELD_CHARS: usize = 256;

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
        let auth = Auth::compile(name, &spec)?;
        let opt = |f: &str, s: &Option<toml::Spanned<String>>| {
            s.as_ref()
                .map(|s| mapping::compile_expr(&field(f), s, locate, false))
                .transpose()
        };
        let filter = opt("filter", &spec.filter)?;
        let each = opt("each", &spec.each)?;
        let m = spec
            .map
            .as_ref()
            .ok_or_else(|| format!("{}: missing", field("map")))?;
        let map = Mapping::compile(name, m, locate)?;
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
            scheme: auth.scheme,
            secret_keys: auth.secret_keys,
            eventbridge_source: auth.eventbridge_source,
            key_name: auth.key_name,
            organization_secret: auth.organization_secret,
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
    /// The guest properties this source's mapping writes (`givenName`, `mobilePhone`, …).
    pub fn profile_properties(&self) -> impl Iterator<Item = &str> {
        self.map.profile.iter().map(|(k, _)| k.as_str())
    }

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
        Ok(Interpretation::Invite(Box::new(
            m.event(&ctx, event_id, event_type)?,
        )))
    }
}

/// A source's authentication settings, each checked against its scheme.
struct Auth {
    scheme: Scheme,
    secret_keys: Vec<String>,
    key_name: Option<String>,
    eventbridge_source: Option<String>,
    organization_secret: Option<String>,
}

impl Auth {
    /// A flat table of per-scheme checks: what each scheme requires, defaults and refuses.
    fn compile(name: &str, spec: &SourceSpec) -> Result<Self, String> {
        let field = |f: &str| format!("sources.{name}.{f}");
        let only = |f: &str, schemes: &str| Err(format!("{}: only for {schemes}", field(f)));
        let scheme = spec
            .scheme
            .ok_or_else(|| format!("{}: missing (e.g. \"standard-webhooks\")", field("scheme")))?;
        let secret_keys = match (scheme, &spec.secrets) {
            (Scheme::Eventbridge, _) => Vec::new(),
            (_, Some(keys)) if !keys.is_empty() => keys.clone(),
            _ => {
                return Err(format!(
                    "{}: list at least one key of the relay secret",
                    field("secrets")
                ));
            }
        };
        let key_name = match (scheme, spec.key_name.clone()) {
            (Scheme::HeaderKey, Some(n)) if http::HeaderName::try_from(n.as_str()).is_ok() => {
                Some(n.to_ascii_lowercase())
            }
            (Scheme::HeaderKey, _) => {
                return Err(format!(
                    "{}: required with scheme = \"header-key\" (a header name)",
                    field("key_name")
                ));
            }
            (Scheme::QueryKey, n) => Some(n.unwrap_or_else(|| "code".into())),
            (Scheme::SalesforceOutbound, n) => Some(n.unwrap_or_else(|| "key".into())),
            (_, Some(_)) => {
                return only(
                    "key_name",
                    "the header-key, query-key and salesforce-outbound schemes",
                );
            }
            (_, None) => None,
        };
        let eventbridge_source = match (scheme, spec.eventbridge_source.clone()) {
            (Scheme::Eventbridge, Some(src)) if !src.trim().is_empty() => Some(src),
            (Scheme::Eventbridge, _) => {
                return Err(format!(
                    "{}: required with scheme = \"eventbridge\" (e.g. \"aws.partner/salesforce.com\")",
                    field("eventbridge_source")
                ));
            }
            (_, Some(_)) => return only("eventbridge_source", "scheme = \"eventbridge\""),
            (_, None) => None,
        };
        let organization_secret = match (scheme, spec.organization_secret.clone()) {
            (Scheme::SalesforceOutbound, n) => {
                Some(n.unwrap_or_else(|| "salesforce_organization_id".into()))
            }
            (_, Some(_)) => {
                return only("organization_secret", "scheme = \"salesforce-outbound\"");
            }
            (_, None) => None,
        };
        Ok(Self {
            scheme,
            secret_keys,
            key_name,
            eventbridge_source,
            organization_secret,
        })
    }
}
