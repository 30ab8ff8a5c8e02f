//! Configuration: typed, validated once at start-up, one settings struct per component (each
//! is what that component's constructor takes). Holds the secret's id, never secret values.
//!
//! - [`env`]: the environment variables, one reader per settings struct;
//! - [`relay`]: `RELAY_CONFIG` and the built-in presets (sources, channels, routes, policy).

pub mod env;
pub mod relay;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

pub use relay::{PRESETS, Relay, load_relay};

use crate::delivery::DeliveryConfig;
use crate::domain::{DomainPolicy, RedirectPolicy};
use crate::graph::GraphSettings;
use crate::inbound::Source;
use crate::policy::Policy;

/// How the webhook processes a verified event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Invite and deliver within the webhook request.
    Sync,
    /// Enqueue to SQS and answer 202; the worker invites and delivers.
    Queue,
}

/// Everything the function needs to know before its first event, one field per concern.
#[derive(Debug)]
pub struct Config {
    pub secrets: SecretSettings,
    pub graph: GraphSettings,
    pub gate: GateSettings,
    pub invitees: InviteePolicy,
    pub inbound: InboundSettings,
    pub outbound: OutboundSettings,
    pub processing: Processing,
    pub store: StoreSettings,
    pub follow_up: FollowUpSettings,
    pub links: LinkSettings,
    pub metrics: MetricsSettings,
    pub sources: BTreeMap<String, Source>,
    /// Channels, routes and templates (`[channels.*]`, `[[routes]]`, `[brand]`).
    pub delivery: Arc<DeliveryConfig>,
    /// Existing users, sponsors and groups (`[invitations]`).
    pub policy: Policy,
    /// The managed links' landing page (`[landing]`).
    pub landing: Arc<crate::landing::Landing>,
}

/// The Secrets Manager secret: its id, how long a read is cached, and whether start-up reads it.
#[derive(Debug, Clone)]
pub struct SecretSettings {
    /// Name or ARN (`RELAY_SECRET_ID`).
    pub id: String,
    pub ttl: Duration,
    /// Read (and check) the secret during init, or on the first event.
    pub read_at_start: bool,
}

/// Invitation pacing and the circuit breaker.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// Graph invitations per container and minute.
    pub per_minute: std::num::NonZeroU32,
    /// Pause after Graph blocks invitations.
    pub cooldown: Duration,
}

/// Who may be invited, and where they land.
#[derive(Debug, Clone)]
pub struct InviteePolicy {
    pub domains: DomainPolicy,
    pub redirect: RedirectPolicy,
    /// Events may ask for `userType: Member`.
    pub allow_members: bool,
}

/// The HTTP edge.
#[derive(Debug, Clone)]
pub struct InboundSettings {
    pub max_body_bytes: usize,
    /// The public base URL senders call, when it differs from the Function URL's own host
    /// (custom domain, CloudFront); HubSpot v3 signs the full URI.
    pub public_base_url: Option<Url>,
}

/// Calls out of the function: Graph, the channels and AWS.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Timeout of each call (and the longest wait between reads from AWS).
    pub timeout: Duration,
    /// Delivery URLs may be http and private (local receivers only).
    pub allow_private_networks: bool,
}

/// Sync or queue processing, and the queues.
#[derive(Debug, Clone)]
pub struct Processing {
    pub mode: Mode,
    /// Where the webhook enqueues events in queue mode.
    pub queue_url: Option<String>,
    /// Where the worker parks events that can't succeed.
    pub dead_letter_url: Option<String>,
    /// The queue's maxReceiveCount: on the last receive a failing event is parked.
    pub max_receives: u32,
}

/// The idempotency records.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The DynamoDB table; without it, records live in the container's memory.
    pub table: Option<String>,
    /// How long completed events are remembered.
    pub retention: Duration,
}

/// Reminders for pending invitations.
#[derive(Debug, Clone)]
pub struct FollowUpSettings {
    /// Guests pending this long get a fresh link (and once per such period after).
    pub after_days: u64,
}

/// Managed links: where the landing page is, how long a link lives, the rate limits.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The Function URL (or the domain in front of it) the links point to (`LINK_BASE_URL`);
    /// required when a channel delivers managed links.
    pub base_url: Option<url::Url>,
    pub ttl: Duration,
    /// Page views and Accepts per source IP and minute.
    pub per_ip_per_minute: u64,
    /// Accepts (each a re-invitation) per link and hour.
    pub accepts_per_hour: u64,
}

/// The CloudWatch metrics the functions emit.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// The CloudWatch namespace (`METRICS_NAMESPACE`); one per deployment keeps two stacks
    /// in one account apart.
    pub namespace: String,
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
        let (queue, table, dlq) = (
            self.processing.queue_url.is_some(),
            self.store.table.is_some(),
            self.processing.dead_letter_url.is_some(),
        );
        match role {
            Role::Webhook if self.processing.mode == Mode::Queue && !queue => {
                err("QUEUE_URL is required with PROCESSING_MODE=queue")
            }
            Role::Webhook if self.processing.mode == Mode::Queue && !table => {
                err("IDEMPOTENCY_TABLE is required with PROCESSING_MODE=queue")
            }
            Role::Webhook => Ok(()),
            Role::Worker if !table => err("IDEMPOTENCY_TABLE is required by the worker"),
            Role::Worker if !dlq => err("DEAD_LETTER_QUEUE_URL is required by the worker"),
            Role::Worker => Ok(()),
        }
    }

    /// The source that takes EventBridge events whose `source` is `origin` (its
    /// `eventbridge_source` is a prefix of it).
    pub fn eventbridge_source(&self, origin: &str) -> Option<&crate::inbound::Source> {
        self.sources.values().find(|s| {
            s.eventbridge_source
                .as_deref()
                .is_some_and(|p| origin.starts_with(p))
        })
    }

    /// The secret keys each source needs.
    pub fn source_keys(&self) -> Vec<crate::app::SourceKeys> {
        self.sources
            .values()
            .map(|s| crate::app::SourceKeys {
                name: s.name.clone(),
                scheme: s.scheme,
                keys: s.secret_keys.clone(),
                organization: s.organization_secret.clone(),
            })
            .collect()
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
        let env = env::Env(get);
        let tenant_domains = env.tenant_domains();
        let graph = env.graph()?;
        let invitees = env.invitees(tenant_domains.clone())?;
        let Relay {
            sources,
            delivery,
            policy,
            landing,
        } = load_relay(env.relay_config().as_deref(), &tenant_domains)?;
        Ok(Self {
            secrets: env.secrets()?,
            graph,
            gate: env.gate()?,
            invitees,
            inbound: env.inbound()?,
            outbound: env.outbound()?,
            processing: env.processing()?,
            store: env.store()?,
            follow_up: env.follow_up()?,
            links: env.links(delivery.managed_links())?,
            metrics: env.metrics()?,
            sources,
            delivery: Arc::new(delivery),
            policy,
            landing: Arc::new(landing),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(c.inbound.max_body_bytes, 262_144);
        assert_eq!(c.secrets.ttl, Duration::from_secs(300));
        assert!(!c.outbound.allow_private_networks && !c.invitees.allow_members);
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
