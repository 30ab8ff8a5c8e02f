//! Where Graph and its token endpoint are, and who the app is.

use url::Url;

/// What the Graph client needs: the tenant, the app, and the two base URLs (a national cloud's
/// or a local emulator's).
#[derive(Debug, Clone)]
pub struct GraphSettings {
    pub tenant_id: String,
    pub client_id: String,
    /// Login base URL without a path, e.g. `https://login.microsoftonline.com`.
    pub login_url: Url,
    /// Graph base URL without a path, e.g. `https://graph.microsoft.com`.
    pub api_url: Url,
}

impl GraphSettings {
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

/// The identity platform and Graph hosts of a Microsoft cloud: `global`, `usgov`, `usgov-dod`
/// or `china`.
pub fn cloud_hosts(cloud: &str) -> Option<(&'static str, &'static str)> {
    Some(match cloud.to_ascii_lowercase().as_str() {
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
        _ => return None,
    })
}
