//! Message templates: one language (minijinja, as in the mappings) for every channel, with
//! built-in defaults per language, overrides in configuration, and escaping chosen by the
//! channel and part, never by the template author: HTML for the email body, Slack mrkdwn for
//! Slack text, Adaptive Card markdown for Teams text, none for plain parts.
//!
//! Every template of the operator's is compiled and rendered with a sample message at start-up,
//! so a syntax error, an unknown language or an email without the link fails the deployment, not
//! an event. The built-in ones are compiled on first use; the tests render every one of them.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{Environment, UndefinedBehavior, Value};

pub use super::escape::{escape_adaptive_card, escape_html, escape_mrkdwn};
use super::escape::{escaping_for_name, formatter};

use super::ChannelKind;

/// Built-in templates: (kind, language, part, source).
const BUILTIN: &[(ChannelKind, &str, &str, &str)] = &[
    (
        ChannelKind::Email,
        "en",
        "subject",
        include_str!("../../templates/email/en/subject.j2"),
    ),
    (
        ChannelKind::Email,
        "en",
        "html",
        include_str!("../../templates/email/en/html.j2"),
    ),
    (
        ChannelKind::Email,
        "en",
        "text",
        include_str!("../../templates/email/en/text.j2"),
    ),
    (
        ChannelKind::Email,
        "de",
        "subject",
        include_str!("../../templates/email/de/subject.j2"),
    ),
    (
        ChannelKind::Email,
        "de",
        "html",
        include_str!("../../templates/email/de/html.j2"),
    ),
    (
        ChannelKind::Email,
        "de",
        "text",
        include_str!("../../templates/email/de/text.j2"),
    ),
    (
        ChannelKind::Email,
        "fr",
        "subject",
        include_str!("../../templates/email/fr/subject.j2"),
    ),
    (
        ChannelKind::Email,
        "fr",
        "html",
        include_str!("../../templates/email/fr/html.j2"),
    ),
    (
        ChannelKind::Email,
        "fr",
        "text",
        include_str!("../../templates/email/fr/text.j2"),
    ),
    (
        ChannelKind::Email,
        "es",
        "subject",
        include_str!("../../templates/email/es/subject.j2"),
    ),
    (
        ChannelKind::Email,
        "es",
        "html",
        include_str!("../../templates/email/es/html.j2"),
    ),
    (
        ChannelKind::Email,
        "es",
        "text",
        include_str!("../../templates/email/es/text.j2"),
    ),
    (
        ChannelKind::Slack,
        "en",
        "summary",
        "Guest invitation ready for {{ invitee.name or invitee.email }}",
    ),
    (
        ChannelKind::Slack,
        "en",
        "body",
        include_str!("../../templates/slack/en/body.j2"),
    ),
    (ChannelKind::Slack, "en", "button", "Accept the invitation"),
    (
        ChannelKind::Slack,
        "de",
        "summary",
        "Gasteinladung bereit für {{ invitee.name or invitee.email }}",
    ),
    (
        ChannelKind::Slack,
        "de",
        "body",
        include_str!("../../templates/slack/de/body.j2"),
    ),
    (ChannelKind::Slack, "de", "button", "Einladung annehmen"),
    (
        ChannelKind::Teams,
        "en",
        "title",
        "Guest invitation ready for {{ invitee.name or invitee.email }}",
    ),
    (
        ChannelKind::Teams,
        "en",
        "body",
        include_str!("../../templates/teams/en/body.j2"),
    ),
    (ChannelKind::Teams, "en", "button", "Accept the invitation"),
    (
        ChannelKind::Teams,
        "de",
        "title",
        "Gasteinladung bereit für {{ invitee.name or invitee.email }}",
    ),
    (
        ChannelKind::Teams,
        "de",
        "body",
        include_str!("../../templates/teams/de/body.j2"),
    ),
    (ChannelKind::Teams, "de", "button", "Einladung annehmen"),
];

/// The language used when nothing else matches.
pub const FALLBACK_LANGUAGE: &str = "en";

/// The redeem URL of the sample message rendered at start-up and by `invite-relay render`.
pub const SAMPLE_REDEEM_URL: &str = "https://login.microsoftonline.com/redeem?rd=https%3a%2f%2finvitations.microsoft.com%2fredeem%2f%3ftenant%3d00000000-0000-0000-0000-000000000000%26ticket%3dSAMPLE";

impl ChannelKind {
    /// The template parts this kind of channel renders.
    pub fn parts(self) -> &'static [&'static str] {
        match self {
            ChannelKind::Email => &["subject", "html", "text"],
            ChannelKind::Slack => &["summary", "body", "button"],
            ChannelKind::Teams => &["title", "body", "button"],
            ChannelKind::Webhook => &[],
            ChannelKind::Microsoft => &["message"],
        }
    }
}

/// Template names are `kind:owner/lang/part`; the owner is `builtin` or a channel's name.
fn template_name(kind: ChannelKind, owner: &str, lang: &str, part: &str) -> String {
    format!("{}:{owner}/{lang}/{part}", kind.name())
}

/// The source of the built-in template called `name` (as [`template_name`] spells it).
fn builtin_source(name: &str) -> Option<&'static str> {
    let (kind, rest) = name.split_once(':')?;
    let (lang, part) = rest.strip_prefix("builtin/")?.split_once('/')?;
    BUILTIN
        .iter()
        .find(|(k, l, p, _)| k.name() == kind && *l == lang && *p == part)
        .map(|(_, _, _, src)| *src)
}

/// Brand values available to every template as `brand.*`.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Brand {
    /// The organisation's name, e.g. "Contoso".
    pub name: Option<String>,
    /// An accent colour for buttons (`#0F6CBD`).
    pub color: Option<String>,
    /// An https URL of a logo for the email header.
    pub logo_url: Option<String>,
    /// Where partners can ask for help.
    pub support_email: Option<String>,
}

/// What one channel renders with.
#[derive(Debug, Clone)]
struct ChannelTemplates {
    /// Languages this channel speaks: its configured ones, or the built-in ones.
    languages: BTreeSet<String>,
    default_language: String,
    custom: bool,
}

/// Templates for a channel, as written in configuration: language → part → template.
pub type TemplateSpec = BTreeMap<String, BTreeMap<String, String>>;

/// All templates, compiled.
pub struct Templates {
    env: Environment<'static>,
    brand: Value,
    channels: BTreeMap<String, ChannelTemplates>,
    /// The built-in languages of each kind (implicit channels speak these).
    builtin: BTreeMap<ChannelKind, BTreeSet<String>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

fn builtin_languages(kind: ChannelKind) -> BTreeSet<String> {
    BUILTIN
        .iter()
        .filter(|(k, ..)| *k == kind)
        .map(|(_, l, ..)| (*l).to_owned())
        .collect()
}

fn valid_language(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 35
        && l.split('-')
            .all(|p| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl Templates {
    /// Compiles the built-ins and each channel's overrides, and renders every template of every
    /// channel once with a sample message.
    ///
    /// # Errors
    /// One line naming the channel, language and part at fault.
    pub fn build(
        channels: &[(String, ChannelKind, Option<String>, TemplateSpec)],
        brand: &Brand,
    ) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_recursion_limit(64);
        env.set_auto_escape_callback(escaping_for_name);
        env.set_formatter(formatter);
        // Escaping belongs to the channel: no filter may mark a value as already escaped.
        env.remove_filter("safe");
        env.add_filter("tojson", |v: Value| {
            serde_json::to_string(&v).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })
        });
        // Built-ins are compiled when first used: they are constant, and every one of them is
        // compiled and rendered by the tests (`docs/examples`), so start-up skips the work.
        env.set_loader(|name| Ok(builtin_source(name).map(str::to_owned)));
        let mut out = Self {
            env,
            brand: Value::from(minijinja::value::Serde(brand)),
            channels: BTreeMap::new(),
            builtin: ChannelKind::ALL
                .into_iter()
                .map(|k| (k, builtin_languages(k)))
                .collect(),
        };
        for (name, kind, default_language, spec) in channels {
            out.add_channel(name, *kind, default_language.as_deref(), spec)?;
        }
        Ok(out)
    }

    fn add_channel(
        &mut self,
        name: &str,
        kind: ChannelKind,
        default_language: Option<&str>,
        spec: &TemplateSpec,
    ) -> Result<(), String> {
        let at = |rest: &str| format!("channels.{name}.{rest}");
        if kind == ChannelKind::Microsoft && spec.is_empty() {
            // No message template: Microsoft's own text, in the invitee's language.
            return Ok(());
        }
        if kind == ChannelKind::Webhook {
            return if spec.is_empty() && default_language.is_none() {
                Ok(())
            } else {
                Err(format!(
                    "{}: webhook channels send structured JSON and have no templates",
                    at("templates")
                ))
            };
        }
        let builtin = builtin_languages(kind);
        for (lang, parts) in spec {
            self.add_language(name, kind, lang, parts, &builtin)?;
        }
        let mut languages = builtin;
        languages.extend(spec.keys().cloned());
        let default_language = choose_default_language(&at, default_language, &languages)?;
        self.channels.insert(
            name.to_owned(),
            ChannelTemplates {
                languages,
                default_language,
                custom: !spec.is_empty(),
            },
        );
        self.check_samples(name, kind, spec)
    }

    /// One language's parts of a channel: each checked and compiled; a part it leaves out
    /// needs a built-in one to fall back on.
    fn add_language(
        &mut self,
        name: &str,
        kind: ChannelKind,
        lang: &str,
        parts: &BTreeMap<String, String>,
        builtin: &BTreeSet<String>,
    ) -> Result<(), String> {
        let at = |rest: &str| format!("channels.{name}.templates.{lang}{rest}");
        if !valid_language(lang) || lang != lang.to_ascii_lowercase() {
            return Err(format!(
                "{}: language tags are lower-case BCP 47, e.g. \"de\" or \"fr-ca\"",
                at("")
            ));
        }
        for (part, src) in parts {
            if let Some(tag) = forbidden_tag(src) {
                return Err(format!(
                    "{}: `{tag}` is not available in message templates (escaping is the channel's)",
                    at(&format!(".{part}"))
                ));
            }
            if !kind.parts().contains(&part.as_str()) {
                return Err(format!(
                    "{}: unknown part (a {} channel has {})",
                    at(&format!(".{part}")),
                    kind.name(),
                    kind.parts().join(", ")
                ));
            }
            self.env
                .add_template_owned(template_name(kind, name, lang, part), src.clone())
                .map_err(|e| format!("{}: {e}", at(&format!(".{part}"))))?;
        }
        match kind
            .parts()
            .iter()
            .find(|p| !parts.contains_key(**p) && !builtin.contains(lang))
        {
            Some(part) => Err(format!(
                "{}: missing, and there is no built-in {lang} template to fall back on",
                at(&format!(".{part}"))
            )),
            None => Ok(()),
        }
    }

    /// Renders every language with a template of the operator's once, so errors surface at
    /// start-up (built-in languages can't fail: the tests render every one).
    fn check_samples(
        &self,
        name: &str,
        kind: ChannelKind,
        spec: &TemplateSpec,
    ) -> Result<(), String> {
        let sample = sample_context();
        for lang in spec.keys() {
            for part in kind.parts() {
                let at = || format!("channels.{name}.templates.{lang}.{part}");
                let text = self
                    .render(name, kind, lang, part, &sample)
                    .map_err(|e| format!("{}: {e}", at()))?;
                if kind == ChannelKind::Email
                    && matches!(*part, "html" | "text")
                    && !text.contains(&redeem_url_as_rendered(part))
                {
                    return Err(format!(
                        "{}: must include the invitation link ({{{{ redeem_url }}}})",
                        at()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The language a message to this invitee is written in: the requested tag
    /// (`fr-CA`, then `fr`), else the channel's default.
    pub fn language_for(
        &self,
        channel: &str,
        kind: ChannelKind,
        requested: Option<&str>,
    ) -> String {
        let (languages, default) = match self.channels.get(channel) {
            Some(c) => (&c.languages, c.default_language.as_str()),
            None => (&self.builtin[&kind], FALLBACK_LANGUAGE),
        };
        if let Some(req) = requested.map(|r| r.trim().replace('_', "-").to_ascii_lowercase()) {
            let mut tag = req.as_str();
            loop {
                if languages.contains(tag) {
                    return tag.to_owned();
                }
                match tag.rsplit_once('-') {
                    Some((head, _)) => tag = head,
                    None => break,
                }
            }
        }
        default.to_owned()
    }

    /// Every language a channel can write in.
    pub fn languages(&self, channel: &str, kind: ChannelKind) -> Vec<String> {
        match self.channels.get(channel) {
            Some(c) => c.languages.iter().cloned().collect(),
            None => self.builtin[&kind].iter().cloned().collect(),
        }
    }

    /// Whether the channel has its own templates.
    pub fn has_custom(&self, channel: &str) -> bool {
        self.channels.get(channel).is_some_and(|c| c.custom)
    }

    /// Renders one part for a channel in `lang`.
    ///
    /// # Errors
    /// minijinja's message (template name and line; never the values).
    pub fn render(
        &self,
        channel: &str,
        kind: ChannelKind,
        lang: &str,
        part: &str,
        ctx: &Value,
    ) -> Result<String, String> {
        let custom = self.channels.get(channel).is_some_and(|c| c.custom);
        let own = template_name(kind, channel, lang, part);
        let name = if custom && self.env.get_template(&own).is_ok() {
            own
        } else {
            template_name(kind, "builtin", lang, part)
        };
        let template = self.env.get_template(&name).map_err(|e| e.to_string())?;
        let ctx = minijinja::context! { brand => self.brand.clone(), ..ctx.clone() };
        template
            .render(ctx)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("{:?} at line {}", e.kind(), e.line().unwrap_or(0)))
    }
}

/// A tag that would change escaping or pull in another channel's template.
fn forbidden_tag(src: &str) -> Option<&'static str> {
    src.split("{%").skip(1).find_map(|tag| {
        let word = tag
            .trim_start_matches(['-', '+', ' ', '\t', '\n'])
            .split_whitespace()
            .next()?;
        ["autoescape", "include", "import", "from", "extends"]
            .into_iter()
            .find(|f| *f == word)
    })
}

/// The channel's default language: the one set (which must have templates), else the
/// fallback when the channel speaks it.
fn choose_default_language(
    at: &dyn Fn(&str) -> String,
    set: Option<&str>,
    languages: &BTreeSet<String>,
) -> Result<String, String> {
    match set {
        Some(l) if languages.contains(l) => Ok(l.to_owned()),
        Some(l) => Err(format!(
            "{}: {l:?} has no templates (this channel has {})",
            at("default_language"),
            languages.iter().cloned().collect::<Vec<_>>().join(", ")
        )),
        None if languages.contains(FALLBACK_LANGUAGE) => Ok(FALLBACK_LANGUAGE.to_owned()),
        None => Err(format!(
            "{}: required when the templates have no \"{FALLBACK_LANGUAGE}\"",
            at("default_language")
        )),
    }
}

/// How the sample redeem URL appears in a rendered part (HTML escapes `&`).
fn redeem_url_as_rendered(part: &str) -> String {
    if part == "html" {
        let mut s = String::new();
        escape_html(SAMPLE_REDEEM_URL, &mut s);
        s
    } else {
        SAMPLE_REDEEM_URL.to_owned()
    }
}

/// What templates and routing rules see. `redeem_url` is absent while routing (before the
/// invitation exists).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Context<'a> {
    pub source: &'a str,
    pub event_id: &'a str,
    pub event_type: Option<&'a str>,
    pub invitee: Invitee<'a>,
    pub owner: Option<Owner<'a>>,
    pub fields: &'a BTreeMap<String, String>,
    pub language: Option<&'a str>,
    pub redeem_url: Option<&'a str>,
    pub invitation_id: Option<&'a str>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Invitee<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub company: Option<&'a str>,
    pub language: Option<&'a str>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Owner<'a> {
    pub email: &'a str,
}

impl Context<'_> {
    pub fn to_value(&self) -> Value {
        Value::from(minijinja::value::Serde(self))
    }
}

/// The sample message: a hostile display name and company, so previews show escaping at work.
pub fn sample_context() -> Value {
    static FIELDS: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();
    let fields = FIELDS.get_or_init(|| {
        BTreeMap::from([
            ("region".to_owned(), "emea".to_owned()),
            ("pipeline".to_owned(), "partners".to_owned()),
        ])
    });
    Context {
        source: "generic",
        event_id: "evt_sample_0001",
        event_type: Some("partner.signed"),
        invitee: Invitee {
            email: "ada@fabrikam.example",
            name: Some("Ada <b>Lovelace</b> & *Partners* [x](https://evil.example) <!channel>"),
            company: Some("Fabrikam \"Analytical\" Engines Ltd."),
            language: Some("en"),
        },
        owner: Some(Owner {
            email: "grace@contoso.example",
        }),
        fields,
        language: Some("en"),
        redeem_url: Some(SAMPLE_REDEEM_URL),
        invitation_id: Some("7f5c3b1e-2a4d-4c6e-8f90-1a2b3c4d5e6f"),
    }
    .to_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::escape::escaping;
    use minijinja::AutoEscape;

    fn build(spec: &str, kind: ChannelKind) -> Result<Templates, String> {
        let spec: TemplateSpec = toml::from_str(spec).unwrap();
        Templates::build(&[("ch".into(), kind, None, spec)], &Brand::default())
    }

    #[test]
    fn every_built_in_template_compiles_and_renders_with_the_link() {
        let t = Templates::build(&[], &Brand::default()).unwrap();
        let ctx = sample_context();
        for (kind, lang, part, _) in BUILTIN {
            assert!(builtin_source(&template_name(*kind, "builtin", lang, part)).is_some());
            let text = t
                .render("none", *kind, lang, part, &ctx)
                .unwrap_or_else(|e| panic!("{}/{lang}/{part}: {e}", kind.name()));
            assert!(!text.is_empty(), "{}/{lang}/{part} is empty", kind.name());
            if *kind == ChannelKind::Email && matches!(*part, "html" | "text") {
                assert!(
                    text.contains(&redeem_url_as_rendered(part)),
                    "{lang}/{part}"
                );
            }
        }
        assert!(builtin_source("email:builtin/xx/html").is_none());
        assert!(builtin_source("email:ch/en/html").is_none());
    }

    #[test]
    fn escapes_per_channel_and_part() {
        let t = build("", ChannelKind::Email).unwrap();
        let ctx = sample_context();
        let html = t
            .render("ch", ChannelKind::Email, "en", "html", &ctx)
            .unwrap();
        assert!(
            html.contains("Ada &lt;b&gt;Lovelace&lt;/b&gt; &amp; *Partners*"),
            "{html}"
        );
        assert!(!html.contains("<b>Lovelace"));
        let text = t
            .render("ch", ChannelKind::Email, "en", "text", &ctx)
            .unwrap();
        assert!(text.contains("Ada <b>Lovelace</b> & *Partners*"));
        assert!(text.contains(SAMPLE_REDEEM_URL));

        let slack = Templates::build(&[], &Brand::default()).unwrap();
        let body = slack
            .render("slack", ChannelKind::Slack, "en", "body", &ctx)
            .unwrap();
        assert!(
            body.contains("&lt;!channel&gt;") && !body.contains("<!channel>"),
            "{body}"
        );

        let teams = slack
            .render("teams", ChannelKind::Teams, "en", "body", &ctx)
            .unwrap();
        assert!(
            teams.contains(r"\[x\]\(https\:\/\/evil\.example\)"),
            "{teams}"
        );
        assert!(!teams.contains("[x](https"));
    }

    #[test]
    fn escapes_are_exact() {
        let mut s = String::new();
        escape_html(r#"<a href="x">'&'</a>"#, &mut s);
        assert_eq!(s, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        let mut s = String::new();
        escape_mrkdwn("<!channel> & <https://x|y>", &mut s);
        assert_eq!(s, "&lt;!channel&gt; &amp; &lt;https://x|y&gt;");
        let mut s = String::new();
        escape_mrkdwn("*b* _i_ ~s~ `c`", &mut s);
        let z = '\u{200B}';
        assert_eq!(
            s,
            format!("{z}*{z}b{z}*{z} {z}_{z}i{z}_{z} {z}~{z}s{z}~{z} {z}`{z}c{z}`{z}")
        );
        // No style marker is ever next to anything but a zero-width space.
        let chars: Vec<char> = s.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            if "*_~`".contains(*c) {
                assert_eq!(chars[i - 1], z);
                assert_eq!(chars[i + 1], z);
            }
        }
        let mut s = String::new();
        escape_adaptive_card("{{DATE(x)}} **b** é", &mut s);
        assert_eq!(s, r"\{\{DATE\(x\)\}\} \*\*b\*\* é");
    }

    #[test]
    fn language_choice_falls_back_by_subtag_then_default() {
        let t = build(
            "[nl]\nsubject = 'Uitnodiging'\nhtml = '<a href=\"{{ redeem_url }}\">x</a>'\ntext = '{{ redeem_url }}'\n[en]\n",
            ChannelKind::Email,
        )
        .unwrap();
        assert_eq!(
            t.language_for("ch", ChannelKind::Email, Some("nl-BE")),
            "nl"
        );
        // Built-in languages stay available beside the configured ones.
        assert_eq!(t.language_for("ch", ChannelKind::Email, Some("de")), "de");
        assert_eq!(t.language_for("ch", ChannelKind::Email, Some("ja")), "en");
        assert_eq!(t.language_for("ch", ChannelKind::Email, None), "en");
        let builtin = Templates::build(&[], &Brand::default()).unwrap();
        assert_eq!(
            builtin.language_for("email", ChannelKind::Email, Some("de_AT")),
            "de"
        );
        assert_eq!(
            builtin.language_for("email", ChannelKind::Email, Some("ja")),
            "en"
        );
        let nl = t
            .render("ch", ChannelKind::Email, "nl", "subject", &sample_context())
            .unwrap();
        assert_eq!(nl, "Uitnodiging");
    }

    #[test]
    fn values_cannot_be_laundered_past_the_escaping() {
        let t = build(
            "[en]\nsummary = '{{ invitee.name|tojson }}'\nbody = '{{ invitee.name|tojson }}'\nbutton = 'x'\n",
            ChannelKind::Slack,
        )
        .unwrap();
        let body = t
            .render("ch", ChannelKind::Slack, "en", "body", &sample_context())
            .unwrap();
        assert!(
            body.contains("&lt;!channel&gt;") && !body.contains("<!channel>"),
            "{body}"
        );
        for tag in [
            "{{ invitee.name|safe }}",
            "{% autoescape false %}{{ invitee.name }}{% endautoescape %}",
            "{% include 'email:builtin/en/text' %}",
            "{%- import 'x' as y %}",
        ] {
            let spec = format!("[en]\nbody = \"{tag}\"\n");
            assert!(build(&spec, ChannelKind::Slack).is_err(), "{tag}");
        }
    }

    #[test]
    fn refuses_broken_or_linkless_templates_at_start_up() {
        let cases = [
            ("[en]\nsubject = '{{ oops'\n", "templates.en.subject"),
            ("[en]\nhtml = '<p>no link</p>'\n", "invitation link"),
            ("[en]\nbogus = 'x'\n", "unknown part"),
            ("[nl]\nsubject = 'x'\n", "no built-in nl"),
            ("[EN]\nsubject = 'x'\n", "lower-case"),
        ];
        for (spec, expect) in cases {
            let e = build(spec, ChannelKind::Email).unwrap_err();
            assert!(e.contains(expect), "{spec}: {e}");
        }
    }

    #[test]
    fn every_builtin_renders_with_the_link_and_escaped_values() {
        let t = Templates::build(&[], &Brand::default()).unwrap();
        let ctx = sample_context();
        for (kind, lang, part, _) in BUILTIN {
            let out = t.render(kind.name(), *kind, lang, part, &ctx).unwrap();
            assert!(!out.is_empty(), "{kind:?} {lang} {part}");
            assert!(!out.contains("<b>Lovelace") || escaping(*kind, part) == AutoEscape::None);
        }
    }
}
