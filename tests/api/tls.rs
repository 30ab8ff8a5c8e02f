//! The function's one TLS configuration: the compiled-in Mozilla roots, plus the certificate
//! authorities of `EXTRA_CA_CERTS`. Checked with real TLS handshakes against a local server
//! whose certificate comes from a throw-away test authority (`devkit/fixtures`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use invite_relay::net::tls_config_with;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("devkit/fixtures")
        .join(name)
}

/// An HTTPS server on loopback presenting `localhost`'s certificate from the test authority;
/// answers every request with `200 ok`.
async fn https_server() -> std::net::SocketAddr {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(fixture("test-server-cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("test-server-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

async fn get(extra: Option<&Path>, addr: std::net::SocketAddr) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config_with(extra)?)
        .no_proxy()
        .resolve("localhost", addr)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("https://localhost:{}/", addr.port()))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    response.text().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn an_unknown_authority_is_refused_and_an_extra_one_is_trusted() {
    let addr = https_server().await;
    // The compiled-in roots don't know the test authority: the handshake fails.
    let refused = get(None, addr).await.unwrap_err();
    assert!(
        refused.contains("UnknownIssuer"),
        "expected an unknown-issuer failure, got {refused}"
    );
    // With the authority named as an extra one, the same server is trusted.
    assert_eq!(
        get(Some(&fixture("test-ca-cert.pem")), addr).await.unwrap(),
        "ok"
    );
    // A server certificate is not an authority: naming it does not make the server trusted.
    let not_a_ca = get(Some(&fixture("test-server-cert.pem")), addr)
        .await
        .unwrap_err();
    assert!(
        not_a_ca.contains("UnknownIssuer") || not_a_ca.contains("CaUsedAsEndEntity"),
        "{not_a_ca}"
    );
}

#[test]
fn unusable_extra_authority_files_fail_closed() {
    let dir = std::env::temp_dir().join(format!("invite-relay-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let err = tls_config_with(Some(&empty)).unwrap_err();
    assert!(
        err.starts_with("EXTRA_CA_CERTS: the file holds no certificate"),
        "{err}"
    );
    let err = tls_config_with(Some(&dir.join("missing.pem"))).unwrap_err();
    assert!(
        err.starts_with("EXTRA_CA_CERTS: can't read certificates"),
        "{err}"
    );
    // A key is not a certificate.
    let err = tls_config_with(Some(&fixture("test-app-key.pem"))).unwrap_err();
    assert!(
        err.starts_with("EXTRA_CA_CERTS: the file holds no certificate"),
        "{err}"
    );
    // The message names the setting, never the file's contents.
    assert!(!err.contains("PRIVATE KEY"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The webhook function as Lambda starts it: an unusable `EXTRA_CA_CERTS` (or `SSL_CERT_FILE`)
/// stops start-up with a message naming the setting; a usable one gets past TLS to the next step (here the secret,
/// which this environment does not offer).
#[test]
fn the_function_fails_closed_on_an_unusable_extra_authority_file() {
    let start = |setting: &str, extra: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_webhook"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("GRAPH_TENANT_ID", "7b8f2c1e-0d4a-4e6b-9c3f-5a1d2e3f4a5b")
            .env("GRAPH_CLIENT_ID", "0f1e2d3c-4b5a-4968-8776-655443322110")
            .env("RELAY_SECRET_ID", "invite-relay/tls-test")
            .env("INVITE_REDIRECT_URL", "https://myapps.microsoft.com/")
            .env(setting, extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let missing = start("EXTRA_CA_CERTS", &fixture("no-such-file.pem"));
    assert!(missing.contains("cannot start"), "{missing}");
    assert!(
        missing.contains("EXTRA_CA_CERTS: can't read certificates"),
        "{missing}"
    );
    // SSL_CERT_FILE, the conventional variable, is honoured the same way when set alone.
    let missing = start("SSL_CERT_FILE", &fixture("no-such-file.pem"));
    assert!(
        missing.contains("SSL_CERT_FILE: can't read certificates"),
        "{missing}"
    );
    let usable = start("EXTRA_CA_CERTS", &fixture("test-ca-cert.pem"));
    assert!(usable.contains("cannot start"), "{usable}");
    assert!(!usable.contains("EXTRA_CA_CERTS"), "{usable}");
    assert!(usable.contains("secret"), "{usable}");
}
