//! Start-up: configuration, the clients (built once and shared), the secret's first read, and
//! the start-up timings line the cold-start harness reads.

use std::time::Instant;

use super::{App, Keyring};
use crate::config::{Config, ConfigError, Role};
use crate::delivery::Deliverer;
use crate::graph::GraphClient;
use crate::net::{Peer, client};
use crate::queue::Queues;
use crate::resilience::GraphGate;
use crate::secrets::{SecretCache, SecretError};
use crate::store::{DynamoStore, MemoryStore, Store};

/// Start-up failure: the function should not take events.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("start-up failed: {0}")]
    Secret(#[from] SecretError),
}

fn micros(d: std::time::Duration) -> u64 {
    d.as_micros() as u64
}

impl App {
    /// Reads configuration from the environment, AWS settings from the SDK's standard sources
    /// (`AWS_ENDPOINT_URL`, region, credentials), and the secret once.
    ///
    /// # Errors
    /// [`InitError`] with one line saying what to fix.
    pub async fn from_env(role: Role) -> Result<Self, InitError> {
        let started_unix_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, micros);
        let start = Instant::now();
        let config = Config::from_env()?;
        config.require_for(role)?;
        let config_done = start.elapsed();
        // Built once here (timed) and shared by every client below.
        crate::net::tls_config().map_err(ConfigError)?;
        let tls_done = start.elapsed();
        let aws_http = crate::aws::default_client(config.outbound.timeout).map_err(ConfigError)?;
        let sdk = crate::aws::loader(aws_http).load().await;
        let sdk_done = start.elapsed();
        let app = Self::new(config, &sdk).await?;
        // Where a cold start's init time goes (the benchmarks read this line).
        tracing::info!(
            target: "invite_relay::startup",
            started_unix_us,
            config_us = micros(config_done),
            tls_us = micros(tls_done - config_done),
            aws_config_us = micros(sdk_done - tls_done),
            app_us = micros(start.elapsed() - sdk_done),
            secret_read_us = app.secret_read_us,
            "start-up timings"
        );
        Ok(app)
    }

    /// Builds the application and reads the secret, so a deployment without usable credentials
    /// or channels fails at start-up rather than on its first event.
    ///
    /// # Errors
    /// [`InitError`] with one line saying what to fix.
    pub async fn new(config: Config, sdk: &aws_config::SdkConfig) -> Result<Self, InitError> {
        let allow_private = config.outbound.allow_private_networks;
        if allow_private {
            tracing::warn!(
                "DELIVERY_ALLOW_PRIVATE_NETWORKS=true: delivery URLs may use http and private addresses"
            );
        }
        let secrets = secret_cache(&config, sdk);
        let before_secret = Instant::now();
        let keys = if config.secrets.read_at_start {
            Some(secrets.get().await?)
        } else {
            None
        };
        let secret_read_us = micros(before_secret.elapsed());
        tracing::info!(
            sources = ?config.sources.keys().collect::<Vec<_>>(),
            channels = ?keys.as_ref().map(|k| k.channels.iter().map(|c| format!("{}:{}", c.name, c.kind.name())).collect::<Vec<_>>()),
            routes = !config.delivery.routes.is_empty(),
            mode = ?config.processing.mode,
            durable_store = config.store.table.is_some(),
            "invite-relay ready"
        );
        let timeout = config.outbound.timeout;
        Ok(Self {
            graph: GraphClient::new(
                client(Peer::Graph, timeout).map_err(ConfigError)?,
                &config.graph,
            ),
            gate: GraphGate::new(config.gate.per_minute, config.gate.cooldown),
            deliverer: Deliverer::new(
                client(Peer::Delivery { allow_private }, timeout).map_err(ConfigError)?,
                allow_private,
                sdk,
                timeout,
                &config.delivery,
            ),
            queues: Queues::new(
                sdk,
                config.processing.queue_url.clone(),
                config.processing.dead_letter_url.clone(),
            ),
            store: match &config.store.table {
                Some(table) => Store::Dynamo(DynamoStore::new(
                    aws_sdk_dynamodb::Client::new(sdk),
                    table.clone(),
                    config.store.retention,
                )),
                None => Store::Memory(MemoryStore::new(config.store.retention)),
            },
            metrics: crate::metrics::Metrics::stdout(config.metrics.namespace.clone()),
            secrets,
            config,
            secret_read_us,
        })
    }
}

/// The secret, read through a cache that decodes it into a [`Keyring`] once per read.
fn secret_cache(config: &Config, sdk: &aws_config::SdkConfig) -> SecretCache<Keyring> {
    let sources = config.source_keys();
    let delivery = config.delivery.clone();
    let allow_private = config.outbound.allow_private_networks;
    SecretCache::new(
        aws_sdk_secretsmanager::Client::new(sdk),
        config.secrets.id.clone(),
        config.secrets.ttl,
        move |values| Keyring::derive(values, &sources, &delivery, allow_private),
    )
}
