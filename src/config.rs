//! Configuration: typed, validated once at start-up. Holds the secret's id, never secret values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::delivery::{Brand, ChannelSpec, DeliveryConfig, RouteSpec};
use crate::domain::{DomainPolicy, RedirectPolicy, RedirectUrl};
use crate::inbound::{Source, SourceSpec};
use crate::lifecycle::{InvitationSpec, Lifecycle};

/// Built-in source presets, compiled into the binary. `RELAY_CONFIG` may add sources or
/// override fields of these.
pub const PRESETS: &[(&str, &str)] = &[
    ("generic", include_str!("../presets/generic.toml")),
    ("hubspot", include_str!("../presets/hubspot.toml")),
    ("zendesk", include_str!("../presets/zendesk.toml")),
    ("pipedrive", include_str!("../presets/pipedrive.toml")),
    ("dynamics", include_str!("../presets/dynamics.toml")),
    ("salesforce", include_str!("../presets/salesforce.toml")),
    ("servicenow", include_str!("../presets/servicenow.toml")),
    ("jira", include_str!("../presets/jira.toml")),
];

/// Presets active without being named in `RELAY_CONFIG` (the others are enabled by naming
/// them: `[sources.hubspot]`, or `preset = "hubspot"` under another name).
const ENABLED_BY_DEFAULT: &[&str] = &["generic"];

/// How the webhook processes a verified event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Invite and deliver within the webhook request.
    Sync,
    /// Enqueue to SQS and answer 202; the worker invites and delivers.
    Queue,
}

/// Everything the function needs to know before its first event.
#[derive(Debug)]
pub struct Config {
    /// Secrets Manager secret name or ARN (`RELAY_SECRET_ID`).
    pub secret_id: String,
    pub secret_ttl: Duration,
    /// `SECRET_READ_AT_START`: read the secret during init (fail fast on a bad secret), or on
    /// the first event (a shorter init, a longer first event).
    pub secret_read_at_start: bool,
    pub graph: GraphConfig,
    pub redirect: RedirectPolicy,
    /// `INVITEE_DOMAIN_ALLOWLIST`, `INVITEE_DOMAIN_DENYLIST`, `TENANT_VERIFIED_DOMAINS`.
    pub invitee_domains: DomainPolicy,
    pub allow_member_invitations: bool,
    pub max_body_bytes: usize,
    pub outbound_timeout: Duration,
    pub delivery_allow_private_networks: bool,
    /// The public base URL senders call, when it differs from the Function URL's own host
    /// (custom domain, CloudFront); HubSpot v3 signs the full URI (`PUBLIC_BASE_URL`).
    pub public_base_url: Option<Url>,
    /// `PROCESSING_MODE`.
    pub mode: Mode,
    /// `QUEUE_URL`: where the webhook enqueues events in queue mode.
    pub queue_url: Option<String>,
    /// `DEAD_LETTER_QUEUE_URL`: where the worker parks events that can't succeed.
    pub dead_letter_queue_url: Option<String>,
    /// `IDEMPOTENCY_TABLE`: the DynamoDB table; without it, records live in memory.
    pub idempotency_table: Option<String>,
    /// `IDEMPOTENCY_RETENTION_SECONDS`: how long completed events are remembered.
    pub idempotency_retention: Duration,
    /// `INVITE_RATE_PER_MINUTE`: Graph invitations per container and minute.
    pub invite_rate_per_minute: std::num::NonZeroU32,
    /// `GRAPH_COOLDOWN_SECONDS`: pause after Graph blocks invitations.
    pub graph_cooldown: Duration,
    /// `MAX_RECEIVES`: the queue's maxReceiveCount; on the last receive a failing event is
    /// parked with its reason.
    pub max_receives: u32,
    /// `FOLLOW_UP_AFTER_DAYS`: guests still pending this long get a fresh link on the scheduled
    /// follow-up (and once per such period after).
    pub follow_up_after_days: u64,
    pub sources: BTreeMap<String, Source>,
    /// Channels, routes and templates (`[channels.*]`, `[[routes]]`, `[brand]`).
    pub delivery: std::sync::Arc<DeliveryConfig>,
    /// Existing users, sponsors and groups (`[invitations]`).
    pub lifecycle: Lifecycle,
}

#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub tenant_id: String,
    pub client_id: String,
    /// Login base URL without a path, e.g. `https://login.microsoftonline.com`.
    pub login_url: Url,
    /// Graph base URL without a path, e.g. `https://graph.microsoft.com`.
    pub api_url: Url,
}

impl GraphConfig {
    /// `{login}/{tenant}/oauth2/v2.0/token`
    pub fn token_endpoint(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            trim(&self.login_url),
            self.tenant_id
        )
    }
    /// `{graph}/.default`
    pub fn scope(&self) -> String {
        format!("{}/.default", trim(&self.api_url))
    }
    /// `{graph}/v1.0/invitations`
    pub fn invitations_endpoint(&self) -> String {
        format!("{}/v1.0/invitations", trim(&self.api_url))
    }
}

fn trim(u: &Url) -> &str {
    u.as_str().trim_end_matches('/')
}

/// A configuration problem, reported as one line at start-up.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Which function is starting: each needs different settings in queue mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Webhook,
    Worker,
}

impl Config {
    /// Checks the settings `role` needs, so a half-configured deployment fails at start-up.
    ///
    /// # Errors
    /// [`ConfigError`] naming the missing variable.
    pub fn require_for(&self, role: Role) -> Result<(), ConfigError> {
        match role {
            Role::Webhook if self.mode == Mode::Queue => {
                if self.queue_url.is_none() {
                    return err("QUEUE_URL is required with PROCESSING_MODE=queue");
                }
                if self.idempotency_table.is_none() {
                    return err("IDEMPOTENCY_TABLE is required with PROCESSING_MODE=queue");
                }
                Ok(())
            }
            Role::Webhook => Ok(()),
            Role::Worker => {
                if self.idempotency_table.is_none() {
                    return err("IDEMPOTENCY_TABLE is required by the worker");
                }
                if self.dead_letter_queue_url.is_none() {
                    return err("DEAD_LETTER_QUEUE_URL is required by the worker");
                }
                Ok(())
            }
        }
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable (or the configuration line) at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (the environment, or a map in tests).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable (or the configuration line) at fault.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |k: &str| var(k).ok_or_else(|| ConfigError(format!("{k} is required")));

        let (cloud_login, cloud_api) = cloud_hosts(var("GRAPH_CLOUD").as_deref())?;
        let graph = GraphConfig {
            tenant_id: tenant(&required("GRAPH_TENANT_ID")?)?,
            client_id: required("GRAPH_CLIENT_ID")?,
            login_url: base_url(
                "GRAPH_LOGIN_URL",
                var("GRAPH_LOGIN_URL").as_deref().unwrap_or(cloud_login),
            )?,
            api_url: base_url(
                "GRAPH_API_URL",
                var("GRAPH_API_URL").as_deref().unwrap_or(cloud_api),
            )?,
        };
        let default_redirect = RedirectUrl::parse(&required("INVITE_REDIRECT_URL")?)
            .map_err(|e| ConfigError(format!("INVITE_REDIRECT_URL: {e}")))?;
        let allowlist = var("INVITE_REDIRECT_ALLOWLIST")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|o| {
                RedirectUrl::parse(o)
                    .map_err(|e| ConfigError(format!("INVITE_REDIRECT_ALLOWLIST: {o:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let tenant_domains = list(var("TENANT_VERIFIED_DOMAINS"));
        let Relay {
            sources,
            delivery,
            lifecycle,
        } = load_relay(var("RELAY_CONFIG").as_deref(), &tenant_domains)?;
        Ok(Self {
            secret_id: required("RELAY_SECRET_ID")?,
            secret_ttl: Duration::from_secs(number(
                "SECRET_CACHE_TTL_SECONDS",
                var("SECRET_CACHE_TTL_SECONDS"),
                300,
                0..=86_400,
            )?),
            secret_read_at_start: match var("SECRET_READ_AT_START") {
                None => true,
                v => flag("SECRET_READ_AT_START", v)?,
            },
            graph,
            redirect: RedirectPolicy::new(default_redirect, allowlist),
            invitee_domains: DomainPolicy::new(
                list(var("INVITEE_DOMAIN_ALLOWLIST")),
                list(var("INVITEE_DOMAIN_DENYLIST")),
                tenant_domains,
            ),
            allow_member_invitations: flag(
                "ALLOW_MEMBER_INVITATIONS",
                var("ALLOW_MEMBER_INVITATIONS"),
            )?,
            max_body_bytes: number(
                "MAX_BODY_BYTES",
                var("MAX_BODY_BYTES"),
                256 * 1024,
                1024..=6 * 1024 * 1024,
            )? as usize,
            outbound_timeout: Duration::from_millis(number(
                "OUTBOUND_TIMEOUT_MS",
                var("OUTBOUND_TIMEOUT_MS"),
                8_000,
                100..=60_000,
            )?),
            delivery_allow_private_networks: flag(
                "DELIVERY_ALLOW_PRIVATE_NETWORKS",
                var("DELIVERY_ALLOW_PRIVATE_NETWORKS"),
            )?,
            public_base_url: var("PUBLIC_BASE_URL")
                .map(|v| {
                    Url::parse(&v)
                        .ok()
                        .filter(|u| {
                            u.scheme() == "https" && u.query().is_none() && u.username().is_empty()
                        })
                        .ok_or_else(|| {
                            ConfigError(
                                "PUBLIC_BASE_URL must be an https URL without query or credentials"
                                    .into(),
                            )
                        })
                })
                .transpose()?,
            mode: match var("PROCESSING_MODE")
                .map(|m| m.to_ascii_lowercase())
                .as_deref()
            {
                None | Some("sync") => Mode::Sync,
                Some("queue") => Mode::Queue,
                _ => return err("PROCESSING_MODE must be sync or queue"),
            },
            queue_url: var("QUEUE_URL"),
            dead_letter_queue_url: var("DEAD_LETTER_QUEUE_URL"),
            idempotency_table: var("IDEMPOTENCY_TABLE"),
            idempotency_retention: Duration::from_secs(number(
                "IDEMPOTENCY_RETENTION_SECONDS",
                var("IDEMPOTENCY_RETENTION_SECONDS"),
                7 * 24 * 3600,
                60..=365 * 24 * 3600,
            )?),
            invite_rate_per_minute: std::num::NonZeroU32::new(number(
                "INVITE_RATE_PER_MINUTE",
                var("INVITE_RATE_PER_MINUTE"),
                30,
                1..=6000,
            )? as u32)
            .expect("range starts at 1"),
            graph_cooldown: Duration::from_secs(number(
                "GRAPH_COOLDOWN_SECONDS",
                var("GRAPH_COOLDOWN_SECONDS"),
                900,
                1..=86_400,
            )?),
            max_receives: number("MAX_RECEIVES", var("MAX_RECEIVES"), 5, 1..=1000)? as u32,
            follow_up_after_days: number(
                "FOLLOW_UP_AFTER_DAYS",
                var("FOLLOW_UP_AFTER_DAYS"),
                7,
                1..=365,
            )?,
            sources,
            delivery: std::sync::Arc::new(delivery),
            lifecycle,
        })
    }
}

/// The identity platform and Graph hosts of a Microsoft cloud (`GRAPH_CLOUD`).
fn cloud_hosts(cloud: Option<&str>) -> Result<(&'static str, &'static str), ConfigError> {
    Ok(
        match cloud
            .map(str::to_ascii_lowercase)
            .as_deref()
            .unwrap_or("global")
        {
            "global" => (
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            ),
            "usgov" => (
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            "usgov-dod" => (
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            ),
            "china" => (
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
            _ => return err("GRAPH_CLOUD must be global, usgov, usgov-dod or china"),
        },
    )
}

/// A comma-separated list.
fn list(v: Option<String>) -> Vec<String> {
    v.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn tenant(v: &str) -> Result<String, ConfigError> {
    // A GUID or a domain name; both are path segments of the token URL.
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        Ok(v.to_owned())
    } else {
        err("GRAPH_TENANT_ID must be a tenant GUID or domain name")
    }
}

/// A base URL without path, query or credentials; https, or http on a loopback host (local
/// emulators).
fn base_url(name: &str, v: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(v).map_err(|_| ConfigError(format!("{name} is not a URL")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return err(format!("{name} must use https (http only for localhost)"));
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return err(format!(
            "{name} must be a base URL without path, query or credentials"
        ));
    }
    Ok(url)
}

fn number(
    name: &str,
    v: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    match v.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => err(format!(
            "{name} must be a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

fn flag(name: &str, v: Option<String>) -> Result<bool, ConfigError> {
    match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        _ => err(format!("{name} must be true or false")),
    }
}

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
}

/// What `RELAY_CONFIG` (with the presets) defines.
#[derive(Debug)]
pub struct Relay {
    pub sources: BTreeMap<String, Source>,
    pub delivery: DeliveryConfig,
    pub lifecycle: Lifecycle,
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
    // Only the presets in use are parsed: the default ones and those RELAY_CONFIG names
    // (every preset parses and compiles: a test checks).
    let parse_preset =
        |name: &str| -> Result<Option<(SourceSpec, &'static str, &'static str)>, ConfigError> {
            let header = format!("[sources.{name}]");
            let Some((file_name, text)) = PRESETS.iter().find(|(_, text)| text.contains(&header))
            else {
                return Ok(None);
            };
            let file = parse_file(&format!("preset {file_name}"), text)?;
            Ok(file
                .sources
                .into_iter()
                .find(|(source, _)| source == name)
                .map(|(_, spec)| (spec, *file_name, *text)))
        };
    let (label, text) = match relay_config {
        None => (String::new(), String::new()),
        Some(v) if v.contains('\n') || v.contains('=') || v.starts_with('[') => {
            ("RELAY_CONFIG".to_owned(), v.to_owned())
        }
        Some(path) => (
            format!("RELAY_CONFIG file {path}"),
            std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("RELAY_CONFIG file {path}: {e}")))?,
        ),
    };
    let user = if text.is_empty() {
        RelayFile::default()
    } else {
        parse_file(&label, &text)?
    };

    let delivery = DeliveryConfig::compile(
        user.channels,
        user.routes,
        &user.brand,
        tenant_domains,
        &|r| locate(&label, &text, r),
    )
    .map_err(|e| {
        ConfigError(if label.is_empty() {
            e
        } else {
            format!("{label}: {e}")
        })
    })?;
    let lifecycle = Lifecycle::compile(user.invitations).map_err(|e| {
        ConfigError(if label.is_empty() {
            e
        } else {
            format!("{label}: {e}")
        })
    })?;
    let mut sources = BTreeMap::new();
    // The default presets are sources unless RELAY_CONFIG names them; the others only when named.
    for name in ENABLED_BY_DEFAULT {
        if user.sources.contains_key(*name) {
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
    for (name, spec) in user.sources {
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
        let s = Source::compile(&name, merged, &|r| locate(&label, &text, r))
            .map_err(|e| ConfigError(format!("{label}: {e}")))?;
        sources.insert(name, s);
    }
    Ok(Relay {
        sources,
        delivery,
        lifecycle,
    })
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

fn valid_source_name(n: &str) -> bool {
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

    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, String> {
        HashMap::from([
            ("RELAY_SECRET_ID", "invite-relay".to_owned()),
            ("GRAPH_TENANT_ID", "contoso.onmicrosoft.com".to_owned()),
            (
                "GRAPH_CLIENT_ID",
                "00000000-0000-0000-0000-000000000001".to_owned(),
            ),
            (
                "INVITE_REDIRECT_URL",
                "https://myapps.microsoft.com".to_owned(),
            ),
        ])
    }

    fn load(env: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_and_endpoints() {
        let c = load(&base()).unwrap();
        assert_eq!(
            c.graph.token_endpoint(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(c.graph.scope(), "https://graph.microsoft.com/.default");
        assert_eq!(
            c.graph.invitations_endpoint(),
            "https://graph.microsoft.com/v1.0/invitations"
        );
        assert_eq!(c.max_body_bytes, 262_144);
        assert_eq!(c.secret_ttl, Duration::from_secs(300));
        assert!(!c.delivery_allow_private_networks && !c.allow_member_invitations);
        assert!(c.sources.contains_key("generic"));
    }

    #[test]
    fn national_clouds_set_login_graph_and_scope() {
        let cases = [
            (
                "global",
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            ),
            (
                "usgov",
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            (
                "usgov-dod",
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            ),
            (
                "china",
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
        ];
        for (cloud, login, graph) in cases {
            let mut env = base();
            env.insert("GRAPH_CLOUD", cloud.to_uppercase());
            let c = load(&env).unwrap();
            assert_eq!(
                c.graph.token_endpoint(),
                format!("{login}/contoso.onmicrosoft.com/oauth2/v2.0/token")
            );
            assert_eq!(c.graph.scope(), format!("{graph}/.default"));
            assert_eq!(
                c.graph.invitations_endpoint(),
                format!("{graph}/v1.0/invitations")
            );
        }
        // The explicit URLs still win (emulators, future clouds).
        let mut env = base();
        env.insert("GRAPH_CLOUD", "china".into());
        env.insert("GRAPH_API_URL", "http://127.0.0.1:4010".into());
        let c = load(&env).unwrap();
        assert_eq!(c.graph.scope(), "http://127.0.0.1:4010/.default");
        assert!(
            c.graph
                .token_endpoint()
                .starts_with("https://login.chinacloudapi.cn/")
        );
        env.insert("GRAPH_CLOUD", "mars".into());
        assert!(load(&env).unwrap_err().to_string().contains("GRAPH_CLOUD"));
    }

    #[test]
    fn each_required_variable_is_named_when_missing() {
        for k in [
            "RELAY_SECRET_ID",
            "GRAPH_TENANT_ID",
            "GRAPH_CLIENT_ID",
            "INVITE_REDIRECT_URL",
        ] {
            let mut env = base();
            env.remove(k);
            let e = load(&env).unwrap_err().to_string();
            assert!(e.contains(k), "{e}");
        }
    }

    #[test]
    fn refuses_unsafe_urls_and_bad_numbers() {
        let cases = [
            ("GRAPH_API_URL", "http://graph.example", "https"),
            (
                "GRAPH_API_URL",
                "https://graph.microsoft.com/v1.0",
                "base URL",
            ),
            (
                "INVITE_REDIRECT_URL",
                "http://myapps.microsoft.com",
                "https",
            ),
            (
                "INVITE_REDIRECT_ALLOWLIST",
                "https://ok.example,javascript:alert(1)",
                "INVITE_REDIRECT_ALLOWLIST",
            ),
            ("MAX_BODY_BYTES", "lots", "MAX_BODY_BYTES"),
            ("ALLOW_MEMBER_INVITATIONS", "maybe", "true or false"),
            ("GRAPH_TENANT_ID", "../x", "GRAPH_TENANT_ID"),
        ];
        for (k, v, expect) in cases {
            let mut env = base();
            env.insert(k, v.to_owned());
            let e = load(&env).unwrap_err().to_string();
            assert!(e.contains(expect), "{k}={v}: {e}");
        }
        let mut env = base();
        env.insert("GRAPH_API_URL", "http://127.0.0.1:8080".to_owned());
        assert!(load(&env).is_ok());
    }

    #[test]
    fn channels_and_routes_as_inline_tables_for_a_deployment_parameter() {
        let mut env = base();
        env.insert(
            "RELAY_CONFIG",
            concat!(
                r#"channels = { email = { from = "Contoso <partners@contoso.com>" }, slack = {} }"#,
                "\n",
                r#"routes = [{ when = "fields.region == 'emea'", channels = ["email"] }, { channels = ["slack"] }]"#,
            )
            .to_owned(),
        );
        let c = load(&env).unwrap();
        let names: Vec<&str> = c
            .delivery
            .channels
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["email", "slack"]);
        assert!(!c.delivery.routes.is_empty());
        assert_eq!(
            c.delivery.channels[0].email.as_ref().unwrap().from,
            "Contoso <partners@contoso.com>"
        );
    }

    #[test]
    fn relay_config_overrides_presets_and_names_the_line() {
        let mut env = base();
        env.insert(
            "RELAY_CONFIG",
            "[sources.generic]\nfilter = \"event.type in ['partner.signed', 'deal.won']\"\n"
                .to_owned(),
        );
        let c = load(&env).unwrap();
        let g = &c.sources["generic"];
        assert_eq!(g.secret_keys[0], "webhook_signing_secret");

        env.insert(
            "RELAY_CONFIG",
            "[sources.generic]\n\nfilter = \"event.type ==\"\n".to_owned(),
        );
        let e = load(&env).unwrap_err().to_string();
        assert!(
            e.contains("sources.generic.filter") && e.contains("line 3"),
            "{e}"
        );

        env.insert(
            "RELAY_CONFIG",
            "[sources.generic]\nschem = \"x\"\n".to_owned(),
        );
        let e = load(&env).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("schem"), "{e}");

        env.insert(
            "RELAY_CONFIG",
            "[sources.acme]\nscheme = \"rot13\"\n".to_owned(),
        );
        let e = load(&env).unwrap_err().to_string();
        assert!(e.contains("rot13"), "{e}");

        env.insert(
            "RELAY_CONFIG",
            "[sources.acme]\nscheme = \"standard-webhooks\"\nsecrets = [\"k\"]\n".to_owned(),
        );
        let e = load(&env).unwrap_err().to_string();
        assert!(e.contains("sources.acme.map"), "{e}");

        env.insert("RELAY_CONFIG", "/nonexistent/relay.toml".to_owned());
        assert!(
            load(&env)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/relay.toml")
        );
    }
}
