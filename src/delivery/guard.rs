//! Outbound safety for delivery URLs: https only, and never an address inside the network the
//! function runs in (loopback, private, link-local — the instance metadata service among them —
//! unique-local, and other non-public ranges). Checked on the URL and again on every address
//! DNS returns at connect time, so a name that later resolves inward (DNS rebinding) is refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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

#[cfg(test)]
mod tests {
    use super::*;

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
