//! The managed link's landing page: in the organisation's brand and the partner's language,
//! with the operator's own wording (`[landing.templates.<language>]`) over the built-in one.
//!
//! The page works without JavaScript and carries none: one form whose POST (never the GET)
//! mints the redeem link. Its only style is one stylesheet fixed at start-up, allowed by its
//! hash in the Content-Security-Policy; every value is HTML-escaped.

use std::collections::BTreeMap;

use base64::Engine as _;
use minijinja::{Environment, context};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::delivery::Brand;

/// `[landing]` in `RELAY_CONFIG`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandingSpec {
    /// The language used when the partner's isn't available (default `en`).
    pub default_language: Option<String>,
    /// language → text → template (`title`, `greeting`, `intro`, `button`, `accepted`,
    /// `continue`, `gone_title`, `gone`, `limited`).
    #[serde(default)]
    pub templates: BTreeMap<String, BTreeMap<String, String>>,
}

/// The texts a page is made of.
const PARTS: &[&str] = &[
    "title",
    "greeting",
    "intro",
    "button",
    "accepted",
    "continue",
    "gone_title",
    "gone",
    "limited",
];

/// The built-in wording. `name` is the partner's name (may be empty), `brand` the
/// organisation's, `email` the masked address, `support` the support address (may be empty).
const BUILT_IN: &str = r#"
[en]
title = "{{ brand }} invites you"
greeting = "Hello{% if name %} {{ name }}{% endif %},"
intro = "{{ brand }} has invited you to work together as a guest in its Microsoft organisation. Accept to continue to Microsoft's sign-in, where you join with your own account ({{ email }})."
button = "Accept the invitation"
accepted = "You have already accepted this invitation."
continue = "Continue to {{ brand }}"
gone_title = "This invitation link no longer works"
gone = "It has expired or was withdrawn. Please ask your contact at {{ brand }} for a new invitation{% if support %} ({{ support }}){% endif %}."
limited = "Too many attempts. Please wait a minute and try again."

[de]
title = "{{ brand }} lädt Sie ein"
greeting = "Hallo{% if name %} {{ name }}{% endif %},"
intro = "{{ brand }} hat Sie eingeladen, als Gast in seiner Microsoft-Organisation mitzuarbeiten. Nehmen Sie an, um zur Microsoft-Anmeldung zu gelangen, wo Sie mit Ihrem eigenen Konto beitreten ({{ email }})."
button = "Einladung annehmen"
accepted = "Sie haben diese Einladung bereits angenommen."
continue = "Weiter zu {{ brand }}"
gone_title = "Dieser Einladungslink ist nicht mehr gültig"
gone = "Er ist abgelaufen oder wurde zurückgezogen. Bitten Sie Ihren Kontakt bei {{ brand }} um eine neue Einladung{% if support %} ({{ support }}){% endif %}."
limited = "Zu viele Versuche. Bitte warten Sie eine Minute und versuchen Sie es erneut."

[fr]
title = "{{ brand }} vous invite"
greeting = "Bonjour{% if name %} {{ name }}{% endif %},"
intro = "{{ brand }} vous a invité à collaborer en tant qu'invité dans son organisation Microsoft. Acceptez pour continuer vers la connexion Microsoft, où vous rejoignez avec votre propre compte ({{ email }})."
button = "Accepter l'invitation"
accepted = "Vous avez déjà accepté cette invitation."
continue = "Continuer vers {{ brand }}"
gone_title = "Ce lien d'invitation ne fonctionne plus"
gone = "Il a expiré ou a été retiré. Demandez une nouvelle invitation à votre contact chez {{ brand }}{% if support %} ({{ support }}){% endif %}."
limited = "Trop de tentatives. Veuillez patienter une minute et réessayer."

[es]
title = "{{ brand }} le invita"
greeting = "Hola{% if name %} {{ name }}{% endif %}:"
intro = "{{ brand }} le ha invitado a colaborar como invitado en su organización de Microsoft. Acepte para continuar al inicio de sesión de Microsoft, donde se une con su propia cuenta ({{ email }})."
button = "Aceptar la invitación"
accepted = "Ya ha aceptado esta invitación."
continue = "Continuar a {{ brand }}"
gone_title = "Este enlace de invitación ya no funciona"
gone = "Ha caducado o se ha retirado. Pida una nueva invitación a su contacto en {{ brand }}{% if support %} ({{ support }}){% endif %}."
limited = "Demasiados intentos. Espere un minuto y vuelva a intentarlo."
"#;

const LAYOUT: &str = r#"<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>{{ title }}</title>
<style>{{ css|safe }}</style>
</head>
<body>
<main>
{% if logo %}<img class="logo" src="{{ logo }}" alt="{{ brand }}">{% endif %}
<h1>{{ title }}</h1>
{% for p in paragraphs %}<p>{{ p }}</p>
{% endfor %}
{% if nonce %}<form method="post">
<input type="hidden" name="nonce" value="{{ nonce }}">
<button type="submit">{{ button }}</button>
</form>
{% endif %}
{% if continue_url %}<p><a class="button" href="{{ continue_url }}">{{ continue }}</a></p>
{% endif %}
</main>
</body>
</html>
"#;

/// The built-in texts with the operator's over them (a language of the operator's own starts
/// from the English texts).
fn texts(spec: LandingSpec) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let mut texts: BTreeMap<String, BTreeMap<String, String>> =
        toml::from_str(BUILT_IN).map_err(|e| format!("built-in landing texts: {e}"))?;
    for (lang, parts) in spec.templates {
        if !crate::domain::is_language_tag(&lang) {
            return Err(format!(
                "landing.templates.{lang}: a language tag such as en or fr-CA"
            ));
        }
        for (part, text) in parts {
            if !PARTS.contains(&part.as_str()) {
                return Err(format!(
                    "landing.templates.{lang}.{part}: one of {}",
                    PARTS.join(", ")
                ));
            }
            let english = texts.get("en").cloned().unwrap_or_default();
            texts
                .entry(lang.clone())
                .or_insert(english)
                .insert(part, text);
        }
    }
    Ok(texts)
}

/// The page's stylesheet (with the brand's colour) and the policy that allows exactly it.
fn style(brand: &Brand) -> (String, String) {
    let color = brand.color.clone().unwrap_or_else(|| "#0f6cbd".into());
    let css = format!(
        "body{{margin:0;font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f5f5f5;color:#1b1b1b}}\
         main{{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px}}\
         .logo{{max-height:40px;margin-bottom:1rem}}h1{{font-size:1.5rem}}p{{line-height:1.5}}\
         button,.button{{display:inline-block;background:{color};color:#fff;border:0;border-radius:4px;\
         padding:.75rem 1.5rem;font-size:1rem;text-decoration:none;cursor:pointer}}"
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(css.as_bytes()));
    let img = if brand.logo_url.is_some() {
        "https:"
    } else {
        "'none'"
    };
    // No `form-action`: browsers apply it to the whole redirect chain after Accept, which goes
    // on from this page to Microsoft's sign-in and its own redirects.
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src {img}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    (css, csp)
}

/// Which page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page<'a> {
    /// The invitation, with the Accept form.
    Invite {
        name: Option<&'a str>,
        masked_email: &'a str,
        nonce: &'a str,
    },
    /// Already accepted: a link to where the guest works.
    Accepted { continue_url: &'a str },
    /// Expired, revoked or unknown.
    Gone,
    /// Rate-limited.
    Limited,
}

/// The compiled landing page.
#[derive(Debug)]
pub struct Landing {
    env: Environment<'static>,
    languages: Vec<String>,
    default_language: String,
    brand: Brand,
    css: String,
    csp: String,
}

impl Landing {
    /// Checks the operator's wording over the built-in one.
    ///
    /// # Errors
    /// One line naming the template at fault.
    pub fn compile(spec: LandingSpec, brand: &Brand) -> Result<Self, String> {
        let default_language = spec.default_language.clone().unwrap_or_else(|| "en".into());
        let texts = texts(spec)?;
        if !texts.contains_key(&default_language) {
            return Err(format!(
                "landing.default_language: no texts for {default_language:?}"
            ));
        }
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name == "layout" {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        env.add_template("layout", LAYOUT)
            .map_err(|e| format!("landing layout: {e}"))?;
        let mut languages = Vec::new();
        for (lang, parts) in texts {
            for part in PARTS {
                let text = parts.get(*part).cloned().unwrap_or_default();
                env.add_template_owned(format!("{lang}.{part}"), text)
                    .map_err(|e| format!("landing.templates.{lang}.{part}: {e}"))?;
            }
            languages.push(lang);
        }
        let (css, csp) = style(brand);
        let landing = Self {
            env,
            languages,
            default_language,
            brand: brand.clone(),
            css,
            csp,
        };
        landing.check()?;
        Ok(landing)
    }

    /// Every language's every page renders (a template that fails on the values would fail
    /// a partner).
    fn check(&self) -> Result<(), String> {
        for lang in &self.languages {
            for page in [
                Page::Invite {
                    name: Some("Ada"),
                    masked_email: "a•••@fabrikam.example",
                    nonce: "n",
                },
                Page::Invite {
                    name: None,
                    masked_email: "a•••@fabrikam.example",
                    nonce: "n",
                },
                Page::Accepted {
                    continue_url: "https://myapps.microsoft.com",
                },
                Page::Gone,
                Page::Limited,
            ] {
                self.render(&page, Some(lang))
                    .map_err(|e| format!("landing.templates.{lang}: {e}"))?;
            }
        }
        Ok(())
    }

    /// The page's `Content-Security-Policy`.
    pub fn csp(&self) -> &str {
        &self.csp
    }

    /// The language the page is written in for a partner who speaks `wanted`.
    pub fn language(&self, wanted: Option<&str>) -> &str {
        let wanted = wanted.map(str::to_ascii_lowercase);
        let find = |tag: &str| self.languages.iter().find(|l| l.eq_ignore_ascii_case(tag));
        wanted
            .as_deref()
            .and_then(|w| find(w).or_else(|| find(w.split('-').next().unwrap_or(w))))
            .map_or(self.default_language.as_str(), String::as_str)
    }

    /// The page as HTML.
    ///
    /// # Errors
    /// A template failed on these values.
    pub fn render(&self, page: &Page<'_>, language: Option<&str>) -> Result<String, String> {
        let lang = self.language(language);
        let brand = self.brand.name.as_deref().unwrap_or("Our organisation");
        let (name, email) = match page {
            Page::Invite {
                name, masked_email, ..
            } => (name.unwrap_or_default(), *masked_email),
            _ => ("", ""),
        };
        let values = context! {
            brand => brand,
            name => name,
            email => email,
            support => self.brand.support_email.as_deref().unwrap_or_default(),
        };
        let text = |part: &str| -> Result<String, String> {
            self.env
                .get_template(&format!("{lang}.{part}"))
                .and_then(|t| t.render(&values))
                .map_err(|e| format!("{part}: {e}"))
        };
        let (title, paragraphs, nonce, continue_url) = match page {
            Page::Invite { nonce, .. } => (
                text("title")?,
                vec![text("greeting")?, text("intro")?],
                Some(*nonce),
                None,
            ),
            Page::Accepted { continue_url } => (
                text("title")?,
                vec![text("accepted")?],
                None,
                Some(*continue_url),
            ),
            Page::Gone => (text("gone_title")?, vec![text("gone")?], None, None),
            Page::Limited => (text("title")?, vec![text("limited")?], None, None),
        };
        self.env
            .get_template("layout")
            .and_then(|t| {
                t.render(context! {
                    lang => lang,
                    title => title,
                    paragraphs => paragraphs,
                    nonce => nonce,
                    button => text("button").unwrap_or_default(),
                    continue_url => continue_url,
                    continue => text("continue").unwrap_or_default(),
                    logo => self.brand.logo_url.as_deref(),
                    brand => brand,
                    css => self.css.as_str(),
                })
            })
            .map_err(|e| format!("layout: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landing(spec: LandingSpec) -> Landing {
        let brand = Brand {
            name: Some("Contoso <b>".into()),
            color: Some("#0f6cbd".into()),
            logo_url: None,
            support_email: Some("partners@contoso.example".into()),
        };
        Landing::compile(spec, &brand).unwrap()
    }

    #[test]
    fn pages_escape_every_value_and_carry_no_script() {
        let l = landing(LandingSpec::default());
        let html = l
            .render(
                &Page::Invite {
                    name: Some("<script>alert(1)</script>"),
                    masked_email: "a•••@fabrikam.example",
                    nonce: "abc\"><x",
                },
                Some("en"),
            )
            .unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("Contoso &lt;b&gt; invites you"));
        assert!(!html.contains("abc\"><x"));
        assert!(html.contains(r#"<form method="post">"#));
        assert!(l.csp().contains("default-src 'none'"));
        assert!(l.csp().contains("frame-ancestors 'none'"));
        assert!(!l.csp().contains("unsafe-inline"));
    }

    #[test]
    fn the_partners_language_then_the_default() {
        let l = landing(LandingSpec::default());
        assert_eq!(l.language(Some("de-AT")), "de");
        assert_eq!(l.language(Some("FR")), "fr");
        assert_eq!(l.language(Some("ja")), "en");
        assert_eq!(l.language(None), "en");
        let de = l.render(&Page::Gone, Some("de")).unwrap();
        assert!(de.contains("nicht mehr gültig"));
        assert!(de.contains(r#"<html lang="de">"#));
    }

    #[test]
    fn the_operators_wording_wins_and_is_checked() {
        let mut spec = LandingSpec::default();
        spec.templates.insert(
            "en".into(),
            BTreeMap::from([("button".into(), "Join {{ brand }} now".into())]),
        );
        let html = landing(spec)
            .render(
                &Page::Invite {
                    name: None,
                    masked_email: "a•••@x.example",
                    nonce: "n",
                },
                None,
            )
            .unwrap();
        assert!(html.contains("Join Contoso &lt;b&gt; now"));
        let mut bad = LandingSpec::default();
        bad.templates
            .insert("en".into(), BTreeMap::from([("footer".into(), "x".into())]));
        assert!(
            Landing::compile(bad, &Brand::default())
                .unwrap_err()
                .contains("footer")
        );
        let mut broken = LandingSpec::default();
        broken.templates.insert(
            "en".into(),
            BTreeMap::from([("intro".into(), "{{ x(".into())]),
        );
        assert!(Landing::compile(broken, &Brand::default()).is_err());
    }
}
