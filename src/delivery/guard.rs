//! Outbound safety for delivery URLs: https only, and never an address inside the network the
//! function runs in (loopback, private, link-local — the instance metadata service among them —
//! unique-local, and other non-public ranges). Checked on the URL and again on every address
//! DNS returns at connect time, so a name that later resolves inward (DNS rebinding) is refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Why a delivery target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("delivery URLs must use https")]
    NotHttps,
    #[error("the delivery URL is not valid")]
    Invalid,
    #[error("the delivery URL points to a non-public address")]
    NonPublic,
}

/// Checks a delivery URL before use. With `allow_private`, http and any address are accepted
/// (local demos and tests only).
///
/// # Errors
/// The [`TargetError`] found.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, TargetError> {
    let url = Url::parse(raw).map_err(|_| TargetError::Invalid)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Invalid);
    }
    if allow_private {
        return if matches!(url.scheme(), "https" | "http") && url.host().is_some() {
            Ok(url)
        } else {
            Err(TargetError::Invalid)
        };
    }
    if url.scheme() != "https" {
        return Err(TargetError::NotHttps);
    }
    match url.host() {
        None => Err(TargetError::Invalid),
        Some(Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => Err(TargetError::NonPublic),
        Some(Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => Err(TargetError::NonPublic),
        Some(Host::Domain(d))
            if {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            } =>
        {
            Err(TargetError::NonPublic)
        }
        Some(_) => Ok(url),
    }
}

/// True for addresses on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b) // NAT64: embeds an IPv4 address
                || (seg[0] == 0x2002) // 6to4: embeds an IPv4 address
                || (seg[0] == 0x2001 && seg[1] == 0) // Teredo: embeds an IPv4 address
                || (seg[0] == 0x2001 && seg[1] == 2 && seg[2] == 0) // benchmarking
                || (seg[0] == 0x2001 && (0x10..0x30).contains(&seg[1])) // ORCHID
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || seg[..4] == [0x0100, 0, 0, 0] // discard
                || seg[..6] == [0, 0, 0, 0, 0xffff, 0] // IPv4-translated (SIIT)
                || seg[..6] == [0; 6]) // IPv4-compatible (deprecated) and other ::/96
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
        || o[0] >= 240) // reserved
}

/// A DNS resolver for the delivery client that drops non-public addresses and fails when none
/// remain.
#[derive(Debug, Default, Clone)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(
                    Box::new(TargetError::NonPublic) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
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

/// Whether a failed request was stopped by [`PublicOnlyResolver`].
pub fn refused_by_guard(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.downcast_ref::<TargetError>().is_some() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Builds the HTTP client used for deliveries: no redirects, no proxy from the environment (a
/// proxy would resolve the target itself, past the resolver's check), a timeout on every call,
/// and the public-only resolver unless private networks are explicitly allowed.
pub fn delivery_http_client(
    timeout: std::time::Duration,
    allow_private: bool,
    tls: rustls::ClientConfig,
) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(std::time::Duration::from_secs(3)))
        .user_agent(concat!("invite-relay/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnlyResolver))
    };
    builder
        .build()
        .expect("static client configuration is valid")
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

    #[test]
    fn refuses_inward_and_plain_targets() {
        let bad = [
            "http://hooks.slack.com/services/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://172.16.0.1/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://2130706433/x",
            "https://0x7f000001/x",
            "https://0177.0.0.1/x",
            "https://localhost/x",
            "https://localhost./x",
            "https://api.LOCALHOST./x",
            "https://[::ffff:0:7f00:1]/x",
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",
            "https://[fec0::1]/x",
            "https://[100::1]/x",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://user:pw@hooks.slack.com/x",
            "ftp://hooks.slack.com/x",
        ];
        for raw in bad {
            assert!(check_url(raw, false).is_err(), "{raw} should be refused");
        }
        assert!(check_url("https://hooks.slack.com/services/T/B/X", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_inward() {
        let r = PublicOnlyResolver;
        let name: Name = "localhost".parse().unwrap();
        assert!(r.resolve(name).await.is_err());
    }
}
