//! The one expression language of the product: minijinja expressions, used by source mappings
//! and filters (e.g. `event.invitee.email`, `event.type in ['partner.signed']`).

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior, Value};

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // `event.a.b` on a payload without `a` is undefined, not an error: the mapping decides
        // whether that field was required.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_recursion_limit(64);
        env
    })
}

/// A compiled expression and its source text (the text names the field in error messages).
pub struct Expr {
    source: String,
    compiled: minijinja::Expression<'static, 'static>,
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
        let compiled = env()
            .compile_expression_owned(source.to_owned())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.to_owned(),
            compiled,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against `ctx`; evaluation errors (e.g. comparing a list to a number) are
    /// reported without the values involved.
    pub fn eval(&self, ctx: &Value) -> Result<Value, String> {
        self.compiled
            .eval(ctx)
            .map_err(|e| format!("{:?}", e.kind()))
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
}
