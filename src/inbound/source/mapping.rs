//! A source's field mapping, compiled, and how each mapped value is read: required ones
//! strictly, optional ones as absent when missing, each of its expected type.

use std::collections::BTreeMap;

use minijinja::Value;

use super::event::{Action, CrmEvent};
use super::spec::{MAX_PARAM_CHARS, MapSpec, Requirement};
use super::{MAX_FIELD_CHARS, MAX_FIELDS, MapError};
use crate::domain::{PROFILE_PROPERTIES, is_profile_property};
use crate::expr::{EvalError, Expr};

#[derive(Debug)]
pub(super) struct Mapping {
    pub event_id: Expr,
    pub event_type: Option<Expr>,
    pub email: Expr,
    pub display_name: Option<Expr>,
    pub user_type: Option<Expr>,
    pub redirect_url: Option<Expr>,
    pub channels: Option<Expr>,
    pub occurred_at: Option<Expr>,
    pub company: Option<Expr>,
    pub language: Option<Expr>,
    pub owner_email: Option<Expr>,
    pub owner_id: Option<Expr>,
    pub fields: Vec<(String, Expr)>,
    pub action: Option<Expr>,
    pub record_id: Option<Expr>,
    pub contract_end: Option<Expr>,
    pub profile: Vec<(String, Expr)>,
}

impl Mapping {
    /// The event, from its id and type (already read) and the rest of the mapping.
    pub fn event(
        &self,
        ctx: &Value,
        event_id: String,
        event_type: Option<String>,
    ) -> Result<CrmEvent, MapError> {
        let action = match &self.action {
            None => Action::Invite,
            Some(e) => {
                let raw = required_string(e, ctx)?;
                Action::parse(&raw)
                    .ok_or_else(|| MapError::Invalid("action".into(), "invite or offboard"))?
            }
        };
        let pairs = |list: &[(String, Expr)]| -> Result<BTreeMap<String, String>, MapError> {
            list.iter()
                .filter_map(|(k, e)| {
                    scalar(e, ctx)
                        .transpose()
                        .map(|v| v.map(|v| (k.clone(), v)))
                })
                .collect()
        };
        Ok(CrmEvent {
            event_id,
            event_type,
            email: required_string(&self.email, ctx)?,
            display_name: optional_string(self.display_name.as_ref(), ctx)?,
            user_type: optional_string(self.user_type.as_ref(), ctx)?,
            redirect_url: optional_string(self.redirect_url.as_ref(), ctx)?,
            channels: optional_list(self.channels.as_ref(), ctx)?,
            occurred_at: optional_string(self.occurred_at.as_ref(), ctx)?,
            company: optional_string(self.company.as_ref(), ctx)?,
            language: optional_string(self.language.as_ref(), ctx)?,
            owner_email: optional_string(self.owner_email.as_ref(), ctx)?,
            owner_id: optional_string(self.owner_id.as_ref(), ctx)?,
            fields: pairs(&self.fields)?,
            action,
            record_id: self
                .record_id
                .as_ref()
                .map(|e| scalar(e, ctx))
                .transpose()?
                .flatten(),
            contract_end: optional_string(self.contract_end.as_ref(), ctx)?,
            profile: pairs(&self.profile)?,
        })
    }
}

/// Compiles one expression of `field` (lenient, or strict for `required` values).
pub(super) fn compile_expr(
    field: &str,
    s: &toml::Spanned<String>,
    locate: &dyn Fn(std::ops::Range<usize>) -> String,
    required: bool,
) -> Result<Expr, String> {
    let compiled = if required {
        Expr::compile_required(s.get_ref())
    } else {
        Expr::compile(s.get_ref())
    };
    compiled.map_err(|e| format!("{field} ({}): invalid expression: {e}", locate(s.span())))
}

impl Mapping {
    /// Compiles `[sources.NAME.map]`: the id, email and type strictly, the rest leniently.
    pub fn compile(
        name: &str,
        m: &MapSpec,
        locate: &dyn Fn(std::ops::Range<usize>) -> String,
    ) -> Result<Self, String> {
        let field = |f: &str| format!("sources.{name}.map.{f}");
        let opt = |f: &str, s: &Option<toml::Spanned<String>>| {
            s.as_ref()
                .map(|s| compile_expr(&field(f), s, locate, false))
                .transpose()
        };
        let req = |f: &str, s: &Option<toml::Spanned<String>>| {
            s.as_ref()
                .ok_or_else(|| format!("{}: missing", field(f)))
                .and_then(|s| compile_expr(&field(f), s, locate, true))
        };
        if m.fields.len() > MAX_FIELDS {
            return Err(format!("{}: at most {MAX_FIELDS} fields", field("fields")));
        }
        let fields = m
            .fields
            .iter()
            .map(|(k, s)| {
                let f = field(&format!("fields.{k}"));
                if !valid_field_name(k) {
                    return Err(format!(
                        "{f}: field names are letters, digits and '_', starting with a letter"
                    ));
                }
                compile_expr(&f, s, locate, false).map(|e| (k.clone(), e))
            })
            .collect::<Result<_, _>>()?;
        let profile = m
            .profile
            .iter()
            .map(|(k, s)| {
                let f = field(&format!("profile.{k}"));
                if !is_profile_property(k) {
                    return Err(format!(
                        "{f}: not a property the relay writes (one of {})",
                        PROFILE_PROPERTIES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                compile_expr(&f, s, locate, false).map(|e| (k.clone(), e))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            action: m
                .action
                .as_ref()
                .map(|s| compile_expr(&field("action"), s, locate, true))
                .transpose()?,
            record_id: opt("record_id", &m.record_id)?,
            contract_end: opt("contract_end", &m.contract_end)?,
            profile,
            event_id: req("event_id", &m.event_id)?,
            email: req("email", &m.email)?,
            event_type: m
                .event_type
                .as_ref()
                .map(|s| compile_expr(&field("event_type"), s, locate, true))
                .transpose()?,
            display_name: opt("display_name", &m.display_name)?,
            user_type: opt("user_type", &m.user_type)?,
            redirect_url: opt("redirect_url", &m.redirect_url)?,
            channels: opt("channels", &m.channels)?,
            occurred_at: opt("occurred_at", &m.occurred_at)?,
            company: opt("company", &m.company)?,
            language: opt("language", &m.language)?,
            owner_email: opt("owner_email", &m.owner_email)?,
            owner_id: opt("owner_id", &m.owner_id)?,
            fields,
        })
    }

    /// Every expression besides the id and the email.
    pub fn optional(&self) -> impl Iterator<Item = &Expr> {
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
            &self.action,
            &self.record_id,
            &self.contract_end,
        ]
        .into_iter()
        .flatten()
        .chain(self.fields.iter().map(|(_, e)| e))
        .chain(self.profile.iter().map(|(_, e)| e))
    }
}

pub(super) fn eval(expr: &Expr, ctx: &Value) -> Result<Value, MapError> {
    expr.try_eval(ctx).map_err(|e| match e {
        EvalError::Undefined(path) => MapError::Missing(path),
        EvalError::Failed(_) => MapError::WrongType(
            expr.field_name().to_owned(),
            "a value the expression can read",
        ),
    })
}

/// Event ids may be strings or integers (CRMs send numeric record ids).
pub(super) fn required_id(expr: &Expr, ctx: &Value) -> Result<String, MapError> {
    let v = eval(expr, ctx)?;
    if v.is_integer() {
        return Ok(v.to_string());
    }
    required_string(expr, ctx)
}

pub(super) fn required_string(expr: &Expr, ctx: &Value) -> Result<String, MapError> {
    optional_string(Some(expr), ctx)?.ok_or_else(|| MapError::Missing(expr.missing_path(ctx)))
}

/// Strings pass; `null`, undefined and empty strings are absent; anything else is the wrong
/// type.
pub(super) fn optional_string(
    expr: Option<&Expr>,
    ctx: &Value,
) -> Result<Option<String>, MapError> {
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
pub(super) fn check_params(
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
pub(super) fn scalar(expr: &Expr, ctx: &Value) -> Result<Option<String>, MapError> {
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

pub(super) fn valid_field_name(n: &str) -> bool {
    n.len() <= 64
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A list of strings, or one comma-separated string.
pub(super) fn optional_list(
    expr: Option<&Expr>,
    ctx: &Value,
) -> Result<Option<Vec<String>>, MapError> {
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
