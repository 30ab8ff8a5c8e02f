//! `RELAY_CONFIG` and the built-in presets: sources, channels, routes, brand and the
//! invitation policy, with errors that name the line.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, err};
use crate::delivery::{Brand, ChannelSpec, DeliveryConfig, RouteSpec};
use crate::inbound::{Source, SourceSpec};
use crate::landing::{Landing, LandingSpec};
use crate::policy::{InvitationSpec, OffboardingSpec, Policy};

/// Built-in source presets, compiled into the binary. `RELAY_CONFIG` may add sources or
/// override fields of these.
pub const PRESETS: &[(&str, &str)] = &[
    ("generic", include_str!("../../presets/generic.toml")),
    ("hubspot", include_str!("../../presets/hubspot.toml")),
    ("zendesk", include_str!("../../presets/zendesk.toml")),
    ("pipedrive", include_str!("../../presets/pipedrive.toml")),
    ("dynamics", include_str!("../../presets/dynamics.toml")),
    ("salesforce", include_str!("../../presets/salesforce.toml")),
    ("servicenow", include_str!("../../presets/servicenow.toml")),
    ("jira", include_str!("../../presets/jira.toml")),
];

/// Presets active without being named in `RELAY_CONFIG` (the others are enabled by naming
/// them: `[sources.hubspot]`, or `preset = "hubspot"` under another name).
const ENABLED_BY_DEFAULT: &[&str] = &["generic"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayFile {
    #[serde(default)]
    sources: BTreeMap<String, SourceSpec>,
    #[serde(default)]
    channels: BTreeMap<String, ChannelSpec>,
    #[serde(default)]
    routes: Vec<RouteSpec>,
    #[serde(default)]
    brand: Brand,
    #[serde(default)]
    invitations: InvitationSpec,
    #[serde(default)]
    offboarding: OffboardingSpec,
    #[serde(default)]
    landing: LandingSpec,
}

/// What `RELAY_CONFIG` (with the presets) defines.
#[derive(Debug)]
pub struct Relay {
    pub sources: BTreeMap<String, Source>,
    pub delivery: DeliveryConfig,
    pub policy: Policy,
    /// The managed links' landing page.
    pub landing: Landing,
}

/// Sources and delivery from `RELAY_CONFIG` (and the presets), as the functions load them.
/// `RELAY_CONFIG` is inline TOML when it starts with `[` or contains a newline or `=`,
/// otherwise a file path.
///
/// # Errors
/// [`ConfigError`] naming the setting and line at fault.
pub fn load_relay(
    relay_config: Option<&str>,
    tenant_domains: &[String],
) -> Result<Relay, ConfigError> {
    let (label, text) = read_relay_config(relay_config)?;
    let user = if text.is_empty() {
        RelayFile::default()
    } else {
        parse_file(&label, &text)?
    };
    let labelled = |e: String| {
        ConfigError(if label.is_empty() {
            e
        } else {
            format!("{label}: {e}")
        })
    };
    let delivery = DeliveryConfig::compile(
        user.channels,
        user.routes,
        &user.brand,
        tenant_domains,
        &|r| locate(&label, &text, r),
    )
    .map_err(labelled)?;
    let policy = Policy::compile(user.invitations, user.offboarding).map_err(labelled)?;
    let landing = Landing::compile(user.landing, &user.brand).map_err(labelled)?;
    let sources = compile_sources(user.sources, &label, &text)?;
    Ok(Relay {
        sources,
        delivery,
        policy,
        landing,
    })
}

/// `RELAY_CONFIG`'s text and how to name it in messages.
fn read_relay_config(relay_config: Option<&str>) -> Result<(String, String), ConfigError> {
    Ok(match relay_config {
        None => (String::new(), String::new()),
        Some(v) if v.contains('\n') || v.contains('=') || v.starts_with('[') => {
            ("RELAY_CONFIG".to_owned(), v.to_owned())
        }
        Some(path) => (
            format!("RELAY_CONFIG file {path}"),
            std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("RELAY_CONFIG file {path}: {e}")))?,
        ),
    })
}

/// The preset that defines `[sources.NAME]`, with its file name and text (for line numbers).
/// Only the presets in use are parsed: the default ones and those `RELAY_CONFIG` names (every
/// preset parses and compiles: a test checks).
fn parse_preset(
    name: &str,
) -> Result<Option<(SourceSpec, &'static str, &'static str)>, ConfigError> {
    let header = format!("[sources.{name}]");
    let Some((file_name, text)) = PRESETS.iter().find(|(_, text)| text.contains(&header)) else {
        return Ok(None);
    };
    let file = parse_file(&format!("preset {file_name}"), text)?;
    Ok(file
        .sources
        .into_iter()
        .find(|(source, _)| source == name)
        .map(|(_, spec)| (spec, *file_name, *text)))
}

/// The default presets unless `RELAY_CONFIG` names them, then every source it names (over
/// its preset, if one has the same name or `preset` names one).
fn compile_sources(
    user: BTreeMap<String, SourceSpec>,
    label: &str,
    text: &str,
) -> Result<BTreeMap<String, Source>, ConfigError> {
    let mut sources = BTreeMap::new();
    for name in ENABLED_BY_DEFAULT {
        if user.contains_key(*name) {
            continue;
        }
        if let Some((spec, preset, ptext)) = parse_preset(name)? {
            let compiled = Source::compile(name, spec, &|r| {
                locate(&format!("preset {preset}"), ptext, r)
            })
            .map_err(ConfigError)?;
            sources.insert((*name).to_owned(), compiled);
        }
    }
    for (name, spec) in user {
        if !valid_source_name(&name) {
            return err(format!(
                "{label}: source name {name:?} must be lower-case letters, digits and '-'"
            ));
        }
        let base = spec.preset.clone().unwrap_or_else(|| name.clone());
        let merged = match parse_preset(&base)? {
            Some((p, _, _)) => spec.over(&p),
            None if spec.preset.is_some() => {
                return err(format!(
                    "{label}: sources.{name}.preset: no preset named {base:?}"
                ));
            }
            None => spec,
        };
        if merged.enabled == Some(false) {
            continue;
        }
        let s = Source::compile(&name, merged, &|r| locate(label, text, r))
            .map_err(|e| ConfigError(format!("{label}: {e}")))?;
        sources.insert(name, s);
    }
    Ok(sources)
}

fn parse_file(label: &str, text: &str) -> Result<RelayFile, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|r| locate(label, text, r))
            .unwrap_or_else(|| label.to_owned());
        ConfigError(format!("{at}: {}", e.message()))
    })
}

fn locate(label: &str, text: &str, span: std::ops::Range<usize>) -> String {
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    format!("{label} line {line}")
}

pub(crate) fn valid_source_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_compiles() {
        for (name, text) in PRESETS {
            let file = parse_file(name, text).unwrap();
            assert!(!file.sources.is_empty(), "{name}");
            for (source, spec) in file.sources {
                // Found by its table header when RELAY_CONFIG names it, in one file only.
                let header = format!("[sources.{source}]");
                assert_eq!(
                    PRESETS.iter().filter(|(_, t)| t.contains(&header)).count(),
                    1,
                    "{header}"
                );
                if spec.requires.is_empty() {
                    Source::compile(&source, spec, &|r| locate(name, text, r))
                        .unwrap_or_else(|e| panic!("preset {name}: {e}"));
                    continue;
                }
                // A preset that needs the operator's values refuses to start without them,
                // saying what to set, and starts with them.
                let e = Source::compile(&source, spec.clone(), &|r| locate(name, text, r))
                    .expect_err(name);
                let (first, req) = spec.requires.iter().next().unwrap();
                assert!(
                    e.contains(&format!("sources.{source}.params.{first}"))
                        && e.contains(&req.help),
                    "{e}"
                );
                let mut with = spec.clone();
                for (k, r) in &spec.requires {
                    with.params
                        .insert(k.clone(), "a".repeat(r.hex_length.unwrap_or(8)));
                }
                Source::compile(&source, with, &|r| locate(name, text, r))
                    .unwrap_or_else(|e| panic!("preset {name} with its parameters: {e}"));
            }
        }
    }

    #[test]
    fn preset_parameters_are_checked() {
        let compile = |extra: &str| {
            load_relay(Some(&format!("[sources.pipedrive]\n{extra}")), &[]).map(|_| ())
        };
        let e = compile("").unwrap_err().0;
        assert!(
            e.contains("sources.pipedrive.params.email_field: required"),
            "{e}"
        );
        assert!(
            e.contains("Data fields"),
            "the help says where to find it: {e}"
        );
        let e = compile("[sources.pipedrive.params]\nemail_field = \"invitee_email\"\n")
            .unwrap_err()
            .0;
        assert!(e.contains("40 hexadecimal characters"), "{e}");
        let e = compile("[sources.pipedrive.params]\nemail_fild = \"5d2c1e7a9b3f4a6c8e0d2b4f6a8c0e2d4f6a8b0c\"\n")
            .unwrap_err()
            .0;
        assert!(e.contains("no such parameter"), "{e}");
        compile("[sources.pipedrive.params]\nemail_field = \"5d2c1e7a9b3f4a6c8e0d2b4f6a8c0e2d4f6a8b0c\"\n")
            .unwrap();
        // A mapping the operator wrote themselves no longer needs the parameter.
        compile("[sources.pipedrive.map]\nemail = \"event.data.custom_fields['5d2c1e7a9b3f4a6c8e0d2b4f6a8c0e2d4f6a8b0c'].value\"\n")
            .unwrap();
    }
}
