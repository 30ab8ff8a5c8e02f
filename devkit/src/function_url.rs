//! A local Lambda Function URL: plain HTTP in, a payload format 2.0 event to a handler, its
//! response object back as HTTP — what `cargo lambda watch` does for the demo, here in-process
//! for tests that need a real client (a browser) in front of the function.
//! Event shape: <https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html>.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The function: a Lambda HTTP event in, its response object out.
pub type Handler = Arc<dyn Fn(Value) -> Pin<Box<dyn Future<Output = Value> + Send>> + Send + Sync>;

/// A running Function URL on a loopback port.
pub struct FunctionUrl {
    pub url: String,
}

impl FunctionUrl {
    /// Serves `handler` on `127.0.0.1:port` (0 for any free port).
    pub async fn start(handler: Handler, port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        Self::serve(handler, listener)
    }

    /// Serves on a listener bound earlier (so its address is known, and kept, before the
    /// function that needs it is configured).
    pub fn start_on(handler: Handler, listener: std::net::TcpListener) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Self::serve(handler, tokio::net::TcpListener::from_std(listener)?)
    }

    fn serve(handler: Handler, listener: tokio::net::TcpListener) -> std::io::Result<Self> {
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().fallback(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| {
                let handler = handler.clone();
                async move { invoke(handler, peer, req).await }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Ok(Self { url })
    }
}

async fn invoke(handler: Handler, peer: SocketAddr, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body): Result<Bytes, _> = axum::body::to_bytes(body, 6 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut headers = Map::new();
    for (k, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_owned(), Value::String(v));
            }
        }
    }
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let (text, base64) = match std::str::from_utf8(&body) {
        Ok(t) => (t.to_owned(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&body),
            true,
        ),
    };
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.uri.path(),
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "domainName": host,
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": parts.headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or(""),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": text,
        "isBase64Encoded": base64,
    });
    respond(&handler(event).await)
}

fn respond(r: &Value) -> Response {
    let status = r["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match (r["body"].as_str(), r["isBase64Encoded"].as_bool()) {
        (Some(b), Some(true)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .unwrap_or_default(),
        (Some(b), _) => b.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    let mut out = (status, body).into_response();
    if let Some(h) = r["headers"].as_object() {
        for (k, v) in h {
            if let (Ok(k), Some(Ok(v))) = (
                HeaderName::try_from(k.as_str()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                out.headers_mut().insert(k, v);
            }
        }
    }
    out
}
