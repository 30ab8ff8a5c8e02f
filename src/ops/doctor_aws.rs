//! The doctor's checks of the AWS side: the idempotency table and the queues against the
//! settings `template.yaml` gives them, the SES identities and quota, and the delivery URLs
//! against the outbound guard (resolved, never posted to).

use secrecy::ExposeSecret as _;

use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;

use super::aws_failure;
use super::doctor::Check;
use crate::config::Config;
use crate::delivery::{Channel, ChannelKind};
use crate::secrets::SecretValues;

/// The template's queue visibility: at least six times the worker's 30 s timeout.
const MIN_VISIBILITY_S: u64 = 180;
/// The template's dead-letter retention: 14 days, SQS's longest.
const DEAD_LETTER_RETENTION_S: u64 = 1_209_600;

pub(super) async fn table(config: &Config, sdk: &aws_config::SdkConfig, checks: &mut Vec<Check>) {
    let Some(table) = &config.store.table else {
        checks.push(Check::note(
            "table",
            "IDEMPOTENCY_TABLE",
            "not set: idempotency records live in memory, so a retry after a restart may invite again; the sweep, follow-ups, managed links and offboarding need the table",
        ));
        return;
    };
    let db = aws_sdk_dynamodb::Client::new(sdk);
    let described = match db.describe_table().table_name(table).send().await {
        Ok(d) => d,
        Err(e) => {
            checks.push(Check::fail(
                "table",
                table.clone(),
                aws_failure("dynamodb:DescribeTable", table, &e),
                "deploy template.yaml (IdempotencyTable) and set IDEMPOTENCY_TABLE to its name",
            ));
            return;
        }
    };
    let Some(t) = described.table() else { return };
    let key_ok = t.key_schema().len() == 1 && t.key_schema()[0].attribute_name() == "id";
    let index_ok = t
        .global_secondary_indexes()
        .iter()
        .any(|g| g.index_name() == Some(crate::store::TRACKING_INDEX));
    let ttl = db
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .ok()
        .and_then(|t| t.time_to_live_description().cloned());
    let ttl_ok = ttl.as_ref().is_some_and(|d| {
        d.attribute_name() == Some("expiration")
            && matches!(
                d.time_to_live_status().map(|s| s.as_str()),
                Some("ENABLED" | "ENABLING")
            )
    });
    let mut missing = Vec::new();
    if !key_ok {
        missing.push("partition key `id` (string)");
    }
    if !index_ok {
        missing.push("the tracking-index global secondary index");
    }
    if !ttl_ok {
        missing.push("TTL on `expiration`");
    }
    checks.push(if missing.is_empty() {
        Check::pass(
            "table",
            table.clone(),
            "key, tracking-index and TTL as the template sets them",
        )
    } else {
        Check::fail(
            "table",
            table.clone(),
            format!("missing {}", missing.join(", ")),
            "create the table from template.yaml (IdempotencyTable)",
        )
    });
}

async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map(|o| {
            o.attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        })
        .map_err(|e| aws_failure("sqs:GetQueueAttributes", url, &e))
}

fn number(attrs: &std::collections::HashMap<String, String>, name: &str) -> u64 {
    attrs.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub(super) async fn queues(config: &Config, sdk: &aws_config::SdkConfig, checks: &mut Vec<Check>) {
    let p = &config.processing;
    if p.queue_url.is_none() && p.dead_letter_url.is_none() {
        return;
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut dlq_arn = None;
    if let Some(url) = &p.dead_letter_url {
        let (check, arn) = dead_letter_queue(&sqs, url).await;
        checks.push(check);
        dlq_arn = arn;
    }
    let Some(url) = &p.queue_url else { return };
    let attrs = match queue_attributes(&sqs, url).await {
        Ok(a) => a,
        Err(e) => {
            checks.push(Check::fail(
                "queue",
                "invitation queue",
                e,
                "deploy template.yaml's InvitationQueue and set QUEUE_URL",
            ));
            return;
        }
    };
    let redrive: serde_json::Value = attrs
        .get("RedrivePolicy")
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default();
    let receives = redrive["maxReceiveCount"].as_u64().or_else(|| {
        redrive["maxReceiveCount"]
            .as_str()
            .and_then(|s| s.parse().ok())
    });
    let mut wrong = Vec::new();
    if number(&attrs, "VisibilityTimeout") < MIN_VISIBILITY_S {
        wrong.push(format!(
            "visibility timeout {} s (the template: {MIN_VISIBILITY_S} s, six times the worker's timeout)",
            number(&attrs, "VisibilityTimeout")
        ));
    }
    if dlq_arn.is_some() && redrive["deadLetterTargetArn"].as_str() != dlq_arn.as_deref() {
        wrong.push("its redrive policy does not send to DEAD_LETTER_QUEUE_URL".to_owned());
    }
    if receives != Some(u64::from(p.max_receives)) {
        wrong.push(format!(
            "maxReceiveCount {} (MAX_RECEIVES is {})",
            receives.map_or("unset".to_owned(), |r| r.to_string()),
            p.max_receives
        ));
    }
    checks.push(if wrong.is_empty() {
        Check::pass(
            "queue",
            "invitation queue",
            "visibility and redrive as the template sets them",
        )
    } else {
        Check::fail(
            "queue",
            "invitation queue",
            wrong.join("; "),
            "set the queue's attributes as template.yaml does",
        )
    });
}

/// The dead-letter queue's check, and its ARN (for the invitation queue's redrive policy).
async fn dead_letter_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> (Check, Option<String>) {
    let name = "dead-letter queue";
    match queue_attributes(sqs, url).await {
        Ok(a) => {
            let arn = a.get("QueueArn").cloned();
            let kept = number(&a, "MessageRetentionPeriod");
            let check = if kept >= DEAD_LETTER_RETENTION_S {
                Check::pass("queue", name, "exists; keeps messages 14 days")
            } else {
                Check::fail(
                    "queue",
                    name,
                    format!("keeps messages {kept} s"),
                    "set MessageRetentionPeriod to 1209600 (14 days) as the template does",
                )
            };
            (check, arn)
        }
        Err(e) => (
            Check::fail(
                "queue",
                name,
                e,
                "deploy template.yaml's DeadLetterQueue and set DEAD_LETTER_QUEUE_URL",
            ),
            None,
        ),
    }
}

/// The identities that may send as `from`: the address, then its domain.
fn identities(from: &str) -> Vec<String> {
    let addr = from
        .rsplit_once('<')
        .map_or(from, |(_, a)| a.trim_end_matches('>'))
        .trim()
        .to_owned();
    let domain = addr.rsplit_once('@').map(|(_, d)| d.to_owned());
    std::iter::once(addr).chain(domain).collect()
}

pub(super) async fn ses(config: &Config, sdk: &aws_config::SdkConfig, checks: &mut Vec<Check>) {
    let mut regions = Vec::new();
    for c in &config.delivery.channels {
        let (ChannelKind::Email, Some(email)) = (c.kind, &c.email) else {
            continue;
        };
        let client = match &email.region {
            Some(r) => aws_sdk_sesv2::Client::from_conf(
                aws_sdk_sesv2::config::Builder::from(sdk)
                    .region(aws_sdk_sesv2::config::Region::new(r.clone()))
                    .build(),
            ),
            None => aws_sdk_sesv2::Client::new(sdk),
        };
        checks.push(identity(&client, &c.name, &email.from).await);
        let region = email.region.clone().unwrap_or_default();
        if !regions.contains(&region) {
            regions.push(region);
            checks.push(quota(&client, &c.name).await);
        }
    }
}

async fn identity(ses: &aws_sdk_sesv2::Client, channel: &str, from: &str) -> Check {
    let name = format!("channel {channel}: sender identity");
    for id in identities(from) {
        match ses.get_email_identity().email_identity(&id).send().await {
            Ok(o) => {
                let verified = o.verified_for_sending_status()
                    || o.verification_status().map(|s| s.as_str()) == Some("SUCCESS");
                return if verified {
                    Check::pass("ses", name, format!("{id} is verified for sending"))
                } else {
                    Check::fail(
                        "ses",
                        name,
                        format!(
                            "{id} is not verified (status {})",
                            o.verification_status().map_or("unknown", |s| s.as_str())
                        ),
                        "finish the identity's verification (DNS records for a domain, the link for an address) in the SES console",
                    )
                };
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) => {}
            Err(e) => {
                return Check::fail(
                    "ses",
                    name,
                    aws_failure("ses:GetEmailIdentity", &id, &e),
                    "allow ses:GetEmailIdentity, or check the region",
                );
            }
        }
    }
    Check::fail(
        "ses",
        name,
        "SES has no identity for the sender's address or domain in this region",
        "verify the domain in SES (aws sesv2 create-email-identity --email-identity DOMAIN, then publish its DKIM records)",
    )
}

async fn quota(ses: &aws_sdk_sesv2::Client, channel: &str) -> Check {
    let name = format!("channel {channel}: sending quota");
    match ses.get_account().send().await {
        Ok(a) => {
            let q = a.send_quota();
            let (max, sent) = (
                q.map_or(0.0, |q| q.max24_hour_send()),
                q.map_or(0.0, |q| q.sent_last24_hours()),
            );
            let sandbox = if a.production_access_enabled() {
                ""
            } else {
                "; in the sandbox: only verified recipients receive mail"
            };
            if !a.sending_enabled() {
                Check::fail(
                    "ses",
                    name,
                    "sending is paused for this account",
                    "resume sending in the SES console (account dashboard)",
                )
            } else if max > 0.0 && sent >= max {
                Check::fail(
                    "ses",
                    name,
                    format!("{sent:.0} of {max:.0} sent in 24 h"),
                    "wait, or ask AWS for a higher sending quota",
                )
            } else if sandbox.is_empty() {
                Check::pass("ses", name, format!("{sent:.0} of {max:.0} per 24 h used"))
            } else {
                Check::fail(
                    "ses",
                    name,
                    format!("{sent:.0} of {max:.0} per 24 h used{sandbox}"),
                    "request production access for SES in this region",
                )
            }
        }
        Err(e) if e.code().is_some_and(|c| c.starts_with("AccessDenied")) => Check::fail(
            "ses",
            name,
            aws_failure("ses:GetAccount", "*", &e),
            "allow ses:GetAccount to read the quota",
        ),
        Err(e) => Check::note(
            "ses",
            name,
            format!(
                "not available from this endpoint ({})",
                aws_failure("ses:GetAccount", "*", &e)
            ),
        ),
    }
}

pub(super) async fn delivery_urls(config: &Config, values: &SecretValues, checks: &mut Vec<Check>) {
    let allow_private = config.outbound.allow_private_networks;
    for c in &config.delivery.channels {
        let Ok(Some(channel)) = Channel::resolve_one(c, values, allow_private) else {
            continue;
        };
        let Some(url) = channel.url() else { continue };
        checks.push(url_check(&c.name, url.expose_secret(), allow_private).await);
    }
}

/// A delivery URL passes the guard when it is https and every address its host resolves to is
/// public (what the delivery client enforces at connect time); only the host is reported.
async fn url_check(channel: &str, raw: &str, allow_private: bool) -> Check {
    use crate::delivery::guard::{check_url, is_public};
    let name = format!("channel {channel}: delivery URL");
    let url = match check_url(raw, allow_private) {
        Ok(u) => u,
        Err(e) => {
            return Check::fail(
                "delivery",
                name,
                e.to_string(),
                "put an https URL on the public internet in the secret",
            );
        }
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    if allow_private {
        return Check::pass(
            "delivery",
            name,
            format!("{host} (private networks allowed: DELIVERY_ALLOW_PRIVATE_NETWORKS=true)"),
        );
    }
    let port = url.port_or_known_default().unwrap_or(443);
    match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            if !addrs.is_empty() && addrs.iter().all(|a| is_public(a.ip())) {
                Check::pass(
                    "delivery",
                    name,
                    format!("{host} resolves to public addresses"),
                )
            } else {
                Check::fail(
                    "delivery",
                    name,
                    format!("{host} resolves to a non-public address"),
                    "use the channel's public URL; the guard refuses private, loopback and metadata addresses",
                )
            }
        }
        Err(_) => Check::fail(
            "delivery",
            name,
            format!("{host} does not resolve"),
            "check the host name in the secret",
        ),
    }
}
