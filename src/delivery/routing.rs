//! Routing rules: which channels receive an event's link, chosen by expressions over the
//! message context (`fields.region == 'emea'`, `source == 'hubspot'`). The first rule whose
//! `when` holds (or that has none) wins.

use minijinja::Value;
use serde::Deserialize;

use super::notice::NoticeKind;
use crate::expr::Expr;

/// A rule as written in `[[routes]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// A label for logs and responses; defaults to `route-N`.
    pub name: Option<String>,
    /// An expression over the message context; omitted means "always".
    pub when: Option<toml::Spanned<String>>,
    /// The channels this rule delivers to, by name.
    pub channels: Vec<String>,
    /// Groups (object ids) guests on this route join, besides `[invitations] groups`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The events this rule routes: `invitation.created` (the link, the default) and the
    /// lifecycle notices (`invitation.redeemed`, `guest.offboarded`, …).
    #[serde(default)]
    pub on: Vec<String>,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    when: Option<Expr>,
    pub channels: Vec<String>,
    pub groups: Vec<String>,
    pub on: Vec<NoticeKind>,
}

/// The compiled rules, in order.
#[derive(Debug, Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// Compiles the rules, checking each names only `known` channels (when `known` is given:
    /// implicit channels are only known once the secret is read).
    ///
    /// # Errors
    /// One line naming the rule and what is wrong.
    pub fn compile(
        specs: Vec<RouteSpec>,
        known: Option<&[String]>,
        locate: &dyn Fn(std::ops::Range<usize>) -> String,
    ) -> Result<Self, String> {
        let mut out = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let at = format!("routes[{i}]");
            if spec.channels.is_empty() {
                return Err(format!("{at}.channels: list at least one channel"));
            }
            let when = spec
                .when
                .as_ref()
                .map(|w| {
                    Expr::compile(w.get_ref()).map_err(|e| {
                        format!("{at}.when ({}): invalid expression: {e}", locate(w.span()))
                    })
                })
                .transpose()?;
            crate::domain::object_id::check_ids(&format!("{at}.groups"), &spec.groups)?;
            let on = route_events(&at, &spec.on)?;
            if !spec.groups.is_empty() && !on.contains(&NoticeKind::InvitationCreated) {
                return Err(format!(
                    "{at}.groups: only a route of invitation.created adds groups"
                ));
            }
            let route = Route {
                name: spec.name.unwrap_or_else(|| format!("route-{}", i + 1)),
                when,
                channels: spec.channels,
                groups: spec.groups,
                on,
            };
            if let Some(known) = known {
                route
                    .check(known)
                    .map_err(|e| format!("{at}.channels: {e}"))?;
            }
            out.push(route);
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks every rule against the channels that exist.
    ///
    /// # Errors
    /// The first rule naming an unknown channel.
    pub fn check(&self, known: &[String]) -> Result<(), String> {
        for r in &self.0 {
            r.check(known)
                .map_err(|e| format!("route {}: {e}", r.name))?;
        }
        Ok(())
    }

    /// The first rule for the link (`invitation.created`) that matches `ctx`.
    ///
    /// # Errors
    /// A rule's expression failed to evaluate (the message names the rule, not the values).
    pub fn choose(&self, ctx: &Value) -> Result<Option<&Route>, String> {
        self.choose_for(NoticeKind::InvitationCreated, ctx)
    }

    /// Whether any rule routes `kind`.
    pub fn routes(&self, kind: NoticeKind) -> bool {
        self.0.iter().any(|r| r.on.contains(&kind))
    }

    /// Every rule, for start-up checks.
    pub fn all(&self) -> impl Iterator<Item = &Route> {
        self.0.iter()
    }

    /// The first rule for `kind` that matches `ctx`.
    ///
    /// # Errors
    /// A rule's expression failed to evaluate.
    pub fn choose_for(&self, kind: NoticeKind, ctx: &Value) -> Result<Option<&Route>, String> {
        for r in self.0.iter().filter(|r| r.on.contains(&kind)) {
            let Some(when) = &r.when else {
                return Ok(Some(r));
            };
            let hit = when
                .eval(ctx)
                .map_err(|e| format!("route {}: the `when` expression failed: {e}", r.name))?;
            if hit.is_true() {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }
}

/// `on`: the events a rule routes (default: the link, `invitation.created`).
fn route_events(at: &str, on: &[String]) -> Result<Vec<NoticeKind>, String> {
    if on.is_empty() {
        return Ok(vec![NoticeKind::InvitationCreated]);
    }
    on.iter()
        .map(|e| {
            NoticeKind::parse(e).ok_or_else(|| {
                format!(
                    "{at}.on: {e:?} is not an event (one of {})",
                    NoticeKind::ALL.map(NoticeKind::name).join(", ")
                )
            })
        })
        .collect()
}

impl Route {
    fn check(&self, known: &[String]) -> Result<(), String> {
        match self.channels.iter().find(|c| !known.contains(c)) {
            Some(c) => Err(format!(
                "no channel named {c:?} (channels: {})",
                known.join(", ")
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(text: &str) -> Result<Routes, String> {
        #[derive(Deserialize)]
        struct F {
            routes: Vec<RouteSpec>,
        }
        let f: F = toml::from_str(text).unwrap();
        let known = ["slack".to_owned(), "email".to_owned(), "teams".to_owned()];
        Routes::compile(f.routes, Some(&known), &|_| "line ?".into())
    }

    #[test]
    fn first_matching_rule_wins() {
        let r = routes(
            "[[routes]]\nwhen = \"fields.region == 'emea'\"\nchannels = ['teams', 'email']\n\
             [[routes]]\nname = 'rest'\nchannels = ['slack']\n",
        )
        .unwrap();
        let ctx = |region: &str| {
            Value::from(minijinja::value::Serde(
                serde_json::json!({"fields": {"region": region}}),
            ))
        };
        let emea = r.choose(&ctx("emea")).unwrap().unwrap();
        assert_eq!(emea.channels, ["teams", "email"]);
        assert_eq!(emea.name, "route-1");
        assert_eq!(r.choose(&ctx("amer")).unwrap().unwrap().name, "rest");
    }

    #[test]
    fn no_match_and_bad_rules() {
        let r = routes("[[routes]]\nwhen = \"source == 'x'\"\nchannels = ['slack']\n").unwrap();
        assert!(
            r.choose(&Value::from(minijinja::value::Serde(serde_json::json!({}))))
                .unwrap()
                .is_none()
        );
        let e = routes("[[routes]]\nchannels = ['pager']\n").unwrap_err();
        assert!(
            e.contains("routes[0].channels") && e.contains("pager"),
            "{e}"
        );
        let e = routes("[[routes]]\nwhen = 'a =='\nchannels = ['slack']\n").unwrap_err();
        assert!(e.contains("routes[0].when"), "{e}");
        let e = routes("[[routes]]\nchannels = []\n").unwrap_err();
        assert!(e.contains("at least one"), "{e}");
    }
}
