//! `invite-relay doctor`: checks a deployment before the first partner signs, with the same
//! configuration and secret as the functions — the configuration, every secret key the sources
//! and channels name, the Graph token and the permissions in it against what the enabled
//! features need, the groups, the SES identities and quota, the table and queues against the
//! template's settings, and each delivery URL against the outbound guard. It never invites,
//! sends or posts; the exit code is 0 only when every check passes.

use std::process::ExitCode;

use secrecy::ExposeSecret as _;
use serde::Serialize;

use super::permissions::{covered, needs, roles_of};
use super::{Flags, aws_failure, doctor_aws};
use crate::app::key_checks;
use crate::config::{Config, Role};
use crate::graph::{ClientCredential, GraphClient};
use crate::secrets::SecretValues;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub area: &'static str,
    pub name: String,
    pub ok: bool,
    /// What was found (never a secret value, URL path or address).
    pub detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Informational: reported, but not a failure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub note: bool,
}

impl Check {
    pub(crate) fn pass(
        area: &'static str,
        name: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            area,
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            note: false,
        }
    }

    pub(crate) fn fail(
        area: &'static str,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            area,
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
            note: false,
        }
    }

    /// Something the operator should know that doesn't fail the deployment.
    pub(crate) fn note(
        area: &'static str,
        name: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            note: true,
            ..Self::pass(area, name, detail)
        }
    }
}

/// Runs `doctor [--json]`.
///
/// # Errors
/// Only for a bad command line; every finding is a check.
pub async fn run(args: &[String]) -> Result<ExitCode, String> {
    let flags = Flags::parse(args, &[], &["json"])?;
    let checks = check_all(|k| std::env::var(k).ok()).await;
    let ok = checks.iter().all(|c| c.ok);
    if flags.on("json") {
        let out = serde_json::json!({"ok": ok, "checks": checks});
        println!("{out}");
    } else {
        print!("{}", render(&checks));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The human report: one ✓/✗ line per check, what to do under each ✗, and a summary.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match (c.ok, c.note) {
            (true, true) => "!",
            (true, false) => "✓",
            (false, _) => "✗",
        };
        out.push_str(&format!(
            "{mark} {:<11} {} — {}\n",
            c.area, c.name, c.detail
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("  {:<11} → {fix}\n", ""));
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        out.push_str(&format!("all {} checks passed\n", checks.len()));
    } else {
        out.push_str(&format!("{failed} of {} checks failed\n", checks.len()));
    }
    out
}

/// Every check, with the environment read through `get`.
pub async fn check_all(get: impl Fn(&str) -> Option<String>) -> Vec<Check> {
    let config = match Config::from_lookup(&get)
        .and_then(|c| c.require_for(Role::Webhook).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::fail(
                "config",
                "configuration",
                e.to_string(),
                "set the variable (or fix the RELAY_CONFIG line) named; the README's Configuration lists them",
            )];
        }
    };
    let mut checks = vec![Check::pass("config", "configuration", summary(&config))];
    let sdk = match super::sdk(&config).await {
        Ok(s) => s,
        Err(e) => {
            checks.push(Check::fail(
                "config",
                "TLS and AWS settings",
                e,
                "fix the named setting",
            ));
            return checks;
        }
    };
    let values = read_secret(&config, &sdk, &mut checks).await;
    if let Some(values) = &values {
        secret_keys(&config, values, &mut checks);
        graph(&config, values, &mut checks).await;
    }
    doctor_aws::table(&config, &sdk, &mut checks).await;
    doctor_aws::queues(&config, &sdk, &mut checks).await;
    doctor_aws::ses(&config, &sdk, &mut checks).await;
    if let Some(values) = &values {
        doctor_aws::delivery_urls(&config, values, &mut checks).await;
    }
    checks
}

fn summary(config: &Config) -> String {
    let sources: Vec<&str> = config.sources.keys().map(String::as_str).collect();
    let channels: Vec<&str> = config
        .delivery
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    format!(
        "sources {}; channels {}; {} mode",
        sources.join(", "),
        channels.join(", "),
        match config.processing.mode {
            crate::config::Mode::Sync => "sync",
            crate::config::Mode::Queue => "queue",
        }
    )
}

async fn read_secret(
    config: &Config,
    sdk: &aws_config::SdkConfig,
    checks: &mut Vec<Check>,
) -> Option<SecretValues> {
    let id = &config.secrets.id;
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let got = match sm.get_secret_value().secret_id(id).send().await {
        Ok(v) => v,
        Err(e) => {
            checks.push(Check::fail(
                "secret",
                "read",
                aws_failure("secretsmanager:GetSecretValue", id, &e),
                "check RELAY_SECRET_ID, and that these credentials may read it (and decrypt its KMS key)",
            ));
            return None;
        }
    };
    match SecretValues::parse(got.secret_string().unwrap_or_default()) {
        Ok(v) => {
            checks.push(Check::pass("secret", "read", "a JSON object of strings"));
            Some(v)
        }
        Err(e) => {
            checks.push(Check::fail(
                "secret",
                "read",
                e,
                "store the secret as a JSON object whose values are strings",
            ));
            None
        }
    }
}

fn secret_keys(config: &Config, values: &SecretValues, checks: &mut Vec<Check>) {
    let sources = config.source_keys();
    let allow_private = config.outbound.allow_private_networks;
    for (name, result) in key_checks(values, &sources, &config.delivery, allow_private) {
        checks.push(match result {
            Ok(()) => Check::pass("secret", name, "keys present and usable"),
            Err(e) => Check::fail(
                "secret",
                name,
                e,
                "put the named key in the secret (aws secretsmanager put-secret-value), then re-run",
            ),
        });
    }
}

async fn graph(config: &Config, values: &SecretValues, checks: &mut Vec<Check>) {
    let Ok(credential) = crate::app::graph_credential(values) else {
        return; // reported with the secret's keys
    };
    let http = match crate::net::client(crate::net::Peer::Graph, config.outbound.timeout) {
        Ok(h) => h,
        Err(e) => {
            checks.push(Check::fail(
                "graph",
                "client",
                e,
                "fix the named TLS setting",
            ));
            return;
        }
    };
    let client = GraphClient::new(http, &config.graph);
    let token = match client.tokens().token(&credential).await {
        Ok(t) => t,
        Err(e) => {
            checks.push(Check::fail(
                "graph",
                "token",
                e.to_string(),
                "check GRAPH_TENANT_ID, GRAPH_CLIENT_ID and the credential in the secret (expired client secret? certificate not uploaded to the app?)",
            ));
            return;
        }
    };
    let kind = match credential {
        ClientCredential::Secret(_) => "client secret",
        ClientCredential::Certificate(_) => "certificate",
    };
    checks.push(Check::pass(
        "graph",
        "token",
        format!("issued for the app ({kind})"),
    ));
    let roles = match roles_of(token.expose_secret()) {
        Ok(r) => r,
        Err(e) => {
            checks.push(Check::fail(
                "graph",
                "permissions",
                e,
                "use an app-only (client credentials) token",
            ));
            return;
        }
    };
    permissions(config, &roles, checks);
    groups(config, &client, &credential, checks).await;
}

fn permissions(config: &Config, roles: &[String], checks: &mut Vec<Check>) {
    let mut seen = std::collections::HashSet::new();
    for need in needs(config) {
        if !seen.insert((need.feature, need.permission)) {
            continue;
        }
        let name = format!("{} for {}", need.permission, need.feature);
        checks.push(if covered(need.permission, roles) {
            Check::pass("permission", name, "consented")
        } else {
            Check::fail(
                "permission",
                name,
                format!("the app's token does not carry {}", need.permission),
                format!(
                    "Entra admin center → App registrations → the app → API permissions → Add a permission → Microsoft Graph → Application permissions → {} → Grant admin consent",
                    need.permission
                ),
            )
        });
    }
}

async fn groups(
    config: &Config,
    client: &GraphClient,
    credential: &ClientCredential,
    checks: &mut Vec<Check>,
) {
    let policy = &config.policy;
    for id in policy.groups.iter().chain(&policy.after_redemption_groups) {
        checks.push(match client.group(credential, id).await {
            Ok(Some(g)) => Check::pass(
                "group",
                id.clone(),
                format!("exists ({})", g.display_name.unwrap_or_default()),
            ),
            Ok(None) => Check::fail(
                "group",
                id.clone(),
                "no such group in the tenant",
                "fix the object id in [invitations] groups (Entra admin center → Groups → the group → Object ID)",
            ),
            Err(e) => Check::fail(
                "group",
                id.clone(),
                e.to_string(),
                "reading groups needs GroupMember.Read.All (included in GroupMember.ReadWrite.All)",
            ),
        });
    }
}
