//! The AWS SDK's HTTP transport: the function's own reqwest client, with the one TLS
//! configuration and root store the Graph and delivery clients use.
//!
//! The SDK's built-in HTTPS client would load and parse the root certificates again for every
//! SDK client it serves, and bring a second HTTP stack into the binary; measured in
//! `BENCHMARKS.md`. This adapter implements the SDK's public `HttpClient` extension point, so
//! signing, retries, timeouts and error classification stay the SDK's own.
//!
//! Written here rather than taken from a crate: the published reqwest adapters for the SDK are
//! young single-maintainer 0.1 releases, and the adapter is small. What matters in it (which
//! transport failures the SDK may retry, how its timeouts map onto reqwest's) is kept in view
//! here and exercised by every end-to-end test, all of which reach the AWS emulator through it.

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;

/// SDK configuration from the standard sources (`AWS_REGION`, `AWS_ENDPOINT_URL`, the
/// credential chain), sending over `http`.
///
/// Lambda puts the region and the execution role's credentials in the environment, where the
/// default chains look first; taking them from there directly gives the same values without
/// building the rest of the chains (their profile providers, and STS clients for web identity
/// and assumed roles), which start-up would otherwise pay for. The SDK still looks for profile
/// files for its other settings. Elsewhere (the operator's command line with a profile or SSO)
/// the default chains apply.
pub fn loader(http: reqwest::Client) -> aws_config::ConfigLoader {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client(http));
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(region) = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION")) {
        loader = loader.region(aws_config::Region::new(region));
    }
    if set("AWS_ACCESS_KEY_ID").is_some() && set("AWS_SECRET_ACCESS_KEY").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader
}

/// The SDK's HTTP client backed by `http`.
pub fn http_client(http: reqwest::Client) -> SharedHttpClient {
    ReqwestHttpClient { http }.into_shared()
}

/// An HTTP client for the SDK: no redirects (AWS APIs don't redirect), no proxy from the
/// environment, the shared TLS configuration; `timeout` between reads (and at most 3 s to
/// connect), so a stalled AWS endpoint can't hold an invocation until Lambda's own timeout.
///
/// # Errors
/// The TLS configuration can't be built.
pub fn default_client(timeout: Duration) -> Result<reqwest::Client, String> {
    crate::net::client(crate::net::Peer::Aws, timeout)
}

#[derive(Debug)]
struct ReqwestHttpClient {
    http: reqwest::Client,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ReqwestConnector {
            http: self.http.clone(),
            timeout: exchange_timeout(settings),
        })
    }
}

/// reqwest has no per-request read timeout: a set read timeout bounds the whole exchange
/// together with the connect timeout. Without one, the client's own timeout and the SDK's
/// operation timeouts apply.
fn exchange_timeout(settings: &HttpConnectorSettings) -> Option<Duration> {
    settings
        .read_timeout()
        .map(|read| read + settings.connect_timeout().unwrap_or_default())
}

#[derive(Debug)]
struct ReqwestConnector {
    http: reqwest::Client,
    timeout: Option<Duration>,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let http = self.http.clone();
        let timeout = self.timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            let body = body
                .bytes()
                .ok_or_else(|| {
                    ConnectorError::user("streaming request bodies are not supported".into())
                })?
                .to_vec();
            let url = parts.uri.to_string();
            let mut builder = http
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body);
            if let Some(timeout) = timeout {
                builder = builder.timeout(timeout);
            }
            let response = builder.send().await.map_err(classify)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(classify)?;
            let mut out = http::Response::new(SdkBody::from(body));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            HttpResponse::try_from(out).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Maps a transport failure to the SDK's kinds, which decide retries: timeouts and I/O
/// failures are transient.
fn classify(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_failures_keep_the_kinds_the_sdk_retries_on() {
        // Nothing listens: an I/O failure, which the SDK's standard retry treats as transient.
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            drop(l);
            default_client(Duration::from_secs(2))
                .unwrap()
                .get(format!("http://127.0.0.1:{port}/"))
                .send()
                .await
                .unwrap_err()
        };
        let e = classify(refused);
        assert!(e.is_io() && !e.is_timeout(), "{e:?}");

        // Accepted but never answered: the production client's read timeout, a timeout.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _held = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let silent = default_client(Duration::from_millis(100))
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let e = classify(silent);
        assert!(e.is_timeout(), "{e:?}");
    }

    #[test]
    fn a_read_timeout_bounds_the_exchange_with_the_connect_timeout() {
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_secs(3))
            .read_timeout(Duration::from_secs(2))
            .build();
        assert_eq!(exchange_timeout(&settings), Some(Duration::from_secs(5)));
        let connect_only = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_secs(3))
            .build();
        assert_eq!(exchange_timeout(&connect_only), None);
    }
}
