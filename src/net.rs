//! The function's HTTP stack: one TLS configuration and one client builder for Graph, the
//! delivery channels and the AWS SDK (see [`crate::aws`]), so the root store loads once.

use std::sync::Arc;
use std::time::Duration;

/// Longest wait to connect: a dependency that doesn't accept within this is treated as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Who a client talks to, which decides its safety settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Microsoft Graph and its token endpoint: fixed, configured hosts.
    Graph,
    /// Delivery channels: URLs from the secret, so no proxy from the environment (a proxy would
    /// resolve the target itself, past the resolver's check) and, unless private networks are
    /// explicitly allowed, the public-only resolver.
    Delivery { allow_private: bool },
    /// AWS APIs through the SDK: `timeout` bounds each read, not the whole call (the SDK sets
    /// its own attempt timeouts).
    Aws,
}

/// An HTTP client for `peer`: the shared TLS configuration, no redirects, `timeout` per call.
///
/// # Errors
/// The TLS configuration can't be built (an unusable `EXTRA_CA_CERTS` file).
pub fn client(peer: Peer, timeout: Duration) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(CONNECT_TIMEOUT))
        .user_agent(concat!("invite-relay/", env!("CARGO_PKG_VERSION")));
    let builder = match peer {
        Peer::Graph => builder.timeout(timeout),
        Peer::Delivery { allow_private } => {
            let b = builder.no_proxy().timeout(timeout);
            if allow_private {
                b
            } else {
                b.dns_resolver(Arc::new(crate::delivery::guard::PublicOnlyResolver))
            }
        }
        Peer::Aws => builder.no_proxy().read_timeout(timeout),
    };
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// The TLS configuration of every HTTP client of the function, the AWS SDK's included (see
/// [`crate::aws`]): rustls with aws-lc, trusting the Mozilla root program's certificates
/// compiled into the binary (`webpki-roots`) plus the certificates of the PEM file named by
/// `EXTRA_CA_CERTS` (or, without it, by `SSL_CERT_FILE`). Built once per process and shared; no
/// certificate directory is scanned at start-up (measured in `BENCHMARKS.md`).
///
/// # Errors
/// The named file can't be read or holds no usable certificate.
pub fn tls_config() -> Result<rustls::ClientConfig, String> {
    static TLS: std::sync::OnceLock<Result<rustls::ClientConfig, String>> =
        std::sync::OnceLock::new();
    TLS.get_or_init(|| {
        let extra = extra_ca_file(|k| std::env::var_os(k));
        build_tls_config(
            extra
                .as_ref()
                .map(|(setting, path)| (*setting, path.as_path())),
        )
    })
    .clone()
}

/// Names a PEM file of certificate authorities to trust besides the compiled-in roots (a
/// private CA, or a TLS-inspecting egress proxy's).
pub const EXTRA_CA_CERTS: &str = "EXTRA_CA_CERTS";
/// The conventional variable for the same, honoured when `EXTRA_CA_CERTS` is not set, so
/// environments that already point it at their authorities keep working.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// The setting that names extra authorities, and its file; empty values count as unset.
fn extra_ca_file(
    get: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<(&'static str, std::path::PathBuf)> {
    [EXTRA_CA_CERTS, SSL_CERT_FILE]
        .into_iter()
        .find_map(|k| get(k).filter(|v| !v.is_empty()).map(|v| (k, v.into())))
}

/// [`tls_config`] with the extra certificate authorities of `extra` (a PEM file, reported as
/// `EXTRA_CA_CERTS`), built anew.
///
/// # Errors
/// `extra` can't be read or holds no usable certificate.
pub fn tls_config_with(extra: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    build_tls_config(extra.map(|p| (EXTRA_CA_CERTS, p)))
}

fn build_tls_config(
    extra: Option<(&str, &std::path::Path)>,
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some((setting, path)) = extra {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{setting}: can't read certificates: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{setting}: the file holds no certificate"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{setting}: unusable certificate: {e}"))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_authorities_come_from_extra_ca_certs_then_ssl_cert_file() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(extra_ca_file(env(&[])), None);
        assert_eq!(
            extra_ca_file(env(&[("SSL_CERT_FILE", "/etc/ssl/corp.pem")])),
            Some(("SSL_CERT_FILE", "/etc/ssl/corp.pem".into()))
        );
        assert_eq!(
            extra_ca_file(env(&[
                ("SSL_CERT_FILE", "/etc/ssl/corp.pem"),
                ("EXTRA_CA_CERTS", "/opt/ca.pem")
            ])),
            Some(("EXTRA_CA_CERTS", "/opt/ca.pem".into()))
        );
        // Empty values count as unset, like every other setting.
        assert_eq!(
            extra_ca_file(env(&[("EXTRA_CA_CERTS", ""), ("SSL_CERT_FILE", "/x.pem")])),
            Some(("SSL_CERT_FILE", "/x.pem".into()))
        );
        assert_eq!(extra_ca_file(env(&[("EXTRA_CA_CERTS", "")])), None);
    }
}
