//! The one expression language of the product: minijinja expressions, used by source mappings
//! and filters (e.g. `event.invitee.email`, `event.type in ['partner.signed']`).

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior, Value};

fn new_env(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_recursion_limit(64);
    env
}

/// For filters and optional values: `event.a.b` on a payload without `a` is undefined, not an
/// error, so an absent optional field is simply absent.
fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| new_env(UndefinedBehavior::Chainable))
}

/// For values that must come from the event (ids, emails, types): using an undefined value in
/// any way but a truth test (`x or 'default'`) or `default(...)` is an error, so
/// `'ticket-' ~ event.ticket_id` can't quietly become the constant `ticket-`.
fn strict_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| new_env(UndefinedBehavior::SemiStrict))
}

/// Why an expression gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// A required expression read a field the event does not have (its path, when known).
    Undefined(String),
    /// Any other failure (e.g. comparing a list to a number), without the values involved.
    Failed(String),
}

/// A compiled expression and its source text (the text names the field in error messages).
pub struct Expr {
    source: String,
    compiled: minijinja::Expression<'static, 'static>,
    /// The field paths it reads (`event.a.b`), to name the missing one.
    paths: Vec<String>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl Expr {
    /// Compiles `source` once, at start-up.
    ///
    /// # Errors
    /// minijinja's syntax error, which names the position in the expression.
    pub fn compile(source: &str) -> Result<Self, String> {
        Self::compile_in(env(), source)
    }

    /// Compiles a required expression: see [`strict_env`].
    ///
    /// # Errors
    /// minijinja's syntax error.
    pub fn compile_required(source: &str) -> Result<Self, String> {
        Self::compile_in(strict_env(), source)
    }

    fn compile_in(env: &'static Environment<'static>, source: &str) -> Result<Self, String> {
        let compiled = env
            .compile_expression_owned(source.to_owned())
            .map_err(|e| e.to_string())?;
        let mut paths: Vec<String> = compiled.undeclared_variables(true).into_iter().collect();
        paths.sort();
        Ok(Self {
            source: source.to_owned(),
            compiled,
            paths,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against `ctx`; evaluation errors (e.g. comparing a list to a number) are
    /// reported without the values involved.
    pub fn eval(&self, ctx: &Value) -> Result<Value, String> {
        self.try_eval(ctx).map_err(|e| match e {
            EvalError::Undefined(_) => "UndefinedError".to_owned(),
            EvalError::Failed(kind) => kind,
        })
    }

    /// [`Expr::eval`], telling a missing field from other failures.
    ///
    /// # Errors
    /// [`EvalError::Undefined`] with the first path (in sorted order) the event lacks, or
    /// [`EvalError::Failed`].
    pub fn try_eval(&self, ctx: &Value) -> Result<Value, EvalError> {
        self.compiled.eval(ctx).map_err(|e| {
            if e.kind() == minijinja::ErrorKind::UndefinedError {
                EvalError::Undefined(self.missing_path(ctx))
            } else {
                EvalError::Failed(format!("{:?}", e.kind()))
            }
        })
    }

    /// The field to name when this expression gave no value: the first path it reads (in
    /// sorted order) that is undefined, null or empty in `ctx`, else its own text.
    pub fn missing_path(&self, ctx: &Value) -> String {
        self.paths
            .iter()
            .find_map(|p| {
                let e = env().compile_expression(p).ok()?;
                let v = e.eval(ctx).ok()?;
                let absent = v.is_undefined()
                    || v.is_none()
                    || v.as_str().is_some_and(|s| s.trim().is_empty());
                absent.then(|| p.strip_prefix("event.").unwrap_or(p).to_owned())
            })
            .unwrap_or_else(|| self.field_name().to_owned())
    }

    /// Whether the expression reads `path` (e.g. `params.email_field`).
    pub fn reads(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }

    /// The field path the expression reads, for messages: `event.invitee.email` → `invitee.email`.
    pub fn field_name(&self) -> &str {
        self.source.strip_prefix("event.").unwrap_or(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_filters_and_missing_fields() {
        let ctx = Value::from(minijinja::value::Serde(serde_json::json!({
            "event": {"type": "partner.signed", "invitee": {"email": "a@b.io"}}
        })));
        assert_eq!(
            Expr::compile("event.invitee.email")
                .unwrap()
                .eval(&ctx)
                .unwrap()
                .as_str(),
            Some("a@b.io")
        );
        assert!(
            Expr::compile("event.missing.deeper")
                .unwrap()
                .eval(&ctx)
                .unwrap()
                .is_undefined()
        );
        assert!(
            Expr::compile("event.type in ['partner.signed']")
                .unwrap()
                .eval(&ctx)
                .unwrap()
                .is_true()
        );
        assert!(
            !Expr::compile("event.type == 'deal.lost'")
                .unwrap()
                .eval(&ctx)
                .unwrap()
                .is_true()
        );
        assert!(Expr::compile("event.type ==").is_err());
    }

    #[test]
    fn required_expressions_refuse_to_build_values_from_missing_fields() {
        let ctx = Value::from(minijinja::value::Serde(serde_json::json!({
            "event": {"ticket": {"id": 7}, "stage": "won", "list": []}
        })));
        let eval = |src: &str| Expr::compile_required(src).unwrap().try_eval(&ctx);
        assert_eq!(
            eval("'ticket-' ~ event.ticket_id"),
            Err(EvalError::Undefined("ticket_id".into()))
        );
        assert_eq!(
            eval("'deal-' ~ event.data.id ~ '-won'"),
            Err(EvalError::Undefined("data.id".into()))
        );
        assert!(eval("event.data.custom_fields['abc'].value").is_err());
        assert!(eval("(event.list | first).value").is_err());
        assert_eq!(
            eval("'ticket-' ~ event.ticket.id").unwrap().as_str(),
            Some("ticket-7")
        );
        // A plain missing path is undefined (the mapping then says the field is missing); a
        // truth test or an explicit default is allowed.
        assert!(eval("event.nope").unwrap().is_undefined());
        assert_eq!(
            eval("event.nope or 'closedwon'").unwrap().as_str(),
            Some("closedwon")
        );
        assert_eq!(
            eval("event.nope | default('x')").unwrap().as_str(),
            Some("x")
        );
        // The lenient form keeps building, which is why required fields don't use it.
        let lenient = Expr::compile("'ticket-' ~ event.ticket_id").unwrap();
        assert_eq!(lenient.eval(&ctx).unwrap().as_str(), Some("ticket-"));
    }
}
