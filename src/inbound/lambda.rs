//! The Lambda HTTP event turned into an `http::Request`, and the answer turned back into the
//! event source's response object, without panicking on any input.
//!
//! Two payload formats reach the webhook function: 2.0 (Lambda Function URLs and API Gateway
//! HTTP APIs) and 1.0 (API Gateway REST APIs).
//! <https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html>,
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>,
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html>.
//!
//! Why not `lambda_http::run`: its conversion (1.3.2, `request.rs`) builds the URI with
//! `expect`/`unwrap`, so a query string with a space or `"`, a `Host` or `X-Forwarded-Proto`
//! that is not URL-valid, an over-long URI, invalid base64 under `isBase64Encoded`, or a header
//! count beyond `HeaderMap`'s capacity panics; with `panic = "abort"` one unauthenticated request
//! then ends the process (and the in-memory idempotency records with it). Here every such input
//! is a problem+json answer. The request keeps lambda_http's types and extensions
//! ([`lambda_http::RequestExt`]), so the handler is the same for both.

use std::collections::BTreeMap;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use lambda_http::{Body, Request, RequestExt as _, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::problem::{Problem, ProblemKind};

/// Most header values one request may carry. API Gateway caps the request line and headers at
/// 10,240 bytes, so real senders stay far below; `HeaderMap` itself panics past 32,768.
pub const MAX_HEADERS: usize = 200;

/// Longest path plus query accepted (API Gateway REST: 10,240 bytes for the whole URL; `http`
/// refuses URIs of 64 KiB and more).
pub const MAX_URI_BYTES: usize = 10_240;

/// Which payload format the event came in, and so which response object it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Payload format 2.0: Function URLs and HTTP APIs.
    V2,
    /// Payload format 1.0: REST APIs (and HTTP APIs configured for 1.0).
    V1,
}

/// How the request was called, kept as a request extension for routing.
#[derive(Debug, Clone)]
pub struct Called {
    pub origin: Origin,
    /// The API Gateway stage, when the event names one other than `$default`.
    pub stage: Option<String>,
    /// The caller's address as the Function URL or API Gateway saw it (`requestContext`), for
    /// rate limits.
    pub source_ip: Option<String>,
}

/// An event that can't become a request: answered with `problem` in `origin`'s format.
#[derive(Debug)]
pub struct Refused {
    pub origin: Origin,
    pub problem: Problem,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Event {
    #[serde(default)]
    raw_path: Option<String>,
    #[serde(default)]
    raw_query_string: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    request_context: V2Context,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Context {
    http: V2Http,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    domain_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Http {
    method: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    source_ip: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1Event {
    http_method: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    multi_value_headers: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    query_string_parameters: Option<BTreeMap<String, String>>,
    #[serde(default)]
    multi_value_query_string_parameters: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    request_context: V1Context,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct V1Context {
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    domain_name: Option<String>,
    #[serde(default)]
    identity: V1Identity,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct V1Identity {
    #[serde(default)]
    source_ip: Option<String>,
}

/// The parts both formats share, before the request is built.
struct Parts {
    origin: Origin,
    method: String,
    raw_path: String,
    /// The path as the sender called it (with the REST API stage).
    uri_path: String,
    query: String,
    headers: Vec<(String, String)>,
    domain_name: Option<String>,
    stage: Option<String>,
    source_ip: Option<String>,
    body: Option<String>,
    base64: bool,
}

fn refused(origin: Origin, kind: ProblemKind, detail: &str) -> Refused {
    Refused {
        origin,
        problem: Problem::new(kind, detail),
    }
}

/// Turns a Lambda HTTP event into the request the handler takes, with `context` (the
/// invocation's deadline) attached.
///
/// # Errors
/// [`Refused`]: the event's answer, for an event that is not an HTTP event of a known format
/// or carries a request no HTTP server would accept.
pub fn to_request(
    event: Value,
    context: Option<lambda_runtime::Context>,
) -> Result<Request, Refused> {
    let parts = parts(event)?;
    let origin = parts.origin;
    let bad = |detail: &str| refused(origin, ProblemKind::Malformed, detail);
    let method = Method::from_bytes(parts.method.as_bytes())
        .map_err(|_| bad("the request method is not a valid HTTP method"))?;
    if !parts.raw_path.starts_with('/') {
        return Err(bad("the request path must start with /"));
    }
    let path_and_query = if parts.query.is_empty() {
        encode(&parts.uri_path, PATH)
    } else {
        format!(
            "{}?{}",
            encode(&parts.uri_path, PATH),
            encode(&parts.query, QUERY)
        )
    };
    if path_and_query.len() > MAX_URI_BYTES || parts.raw_path.len() > MAX_URI_BYTES {
        return Err(refused(
            origin,
            ProblemKind::UriTooLong,
            "the request URI is longer than accepted",
        ));
    }
    if parts.headers.len() > MAX_HEADERS {
        return Err(refused(
            origin,
            ProblemKind::HeadersTooLarge,
            "the request carries more headers than accepted",
        ));
    }
    let headers = header_map(&parts.headers).ok_or_else(|| bad("a request header is not valid"))?;
    let uri = uri(&headers, parts.domain_name.as_deref(), &path_and_query).map_err(&bad)?;
    let body = match (parts.body, parts.base64) {
        (None, _) => Body::Empty,
        (Some(b), false) if b.is_empty() => Body::Empty,
        (Some(b), false) => Body::Text(b),
        (Some(b), true) => Body::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|_| bad("the body is marked base64-encoded but is not valid base64"))?,
        ),
    };
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .map_err(|_| bad("the request could not be read"))?;
    *req.headers_mut() = headers;
    req.extensions_mut().insert(Called {
        origin,
        stage: parts.stage,
        source_ip: parts.source_ip,
    });
    let req = req.with_raw_http_path(parts.raw_path);
    Ok(match context {
        Some(c) => req.with_lambda_context(c),
        None => req,
    })
}

fn not_http(origin: Origin) -> Refused {
    refused(
        origin,
        ProblemKind::Malformed,
        "the invocation is not a Function URL or API Gateway HTTP event",
    )
}

fn too_many_headers(origin: Origin) -> Refused {
    refused(
        origin,
        ProblemKind::HeadersTooLarge,
        "the request carries more headers than accepted",
    )
}

fn parts(event: Value) -> Result<Parts, Refused> {
    if event.get("version").and_then(Value::as_str) == Some("2.0") {
        v2_parts(event)
    } else if event.get("httpMethod").is_some() {
        v1_parts(event)
    } else {
        Err(not_http(Origin::V2))
    }
}

/// Payload format 2.0.
fn v2_parts(event: Value) -> Result<Parts, Refused> {
    // Counted before deserialising: nothing below grows with a hostile header count.
    if count_values(event.get("headers")) > MAX_HEADERS {
        return Err(too_many_headers(Origin::V2));
    }
    let e: V2Event = serde_json::from_value(event).map_err(|_| not_http(Origin::V2))?;
    let raw_path = e
        .raw_path
        .or(e.request_context.http.path)
        .unwrap_or_default();
    Ok(Parts {
        origin: Origin::V2,
        method: e.request_context.http.method,
        uri_path: raw_path.clone(),
        raw_path,
        query: e.raw_query_string.unwrap_or_default(),
        headers: e.headers.unwrap_or_default().into_iter().collect(),
        domain_name: e.request_context.domain_name,
        stage: e.request_context.stage.filter(|s| s != "$default"),
        source_ip: e.request_context.http.source_ip,
        body: e.body,
        base64: e.is_base64_encoded,
    })
}

/// Payload format 1.0.
fn v1_parts(event: Value) -> Result<Parts, Refused> {
    if count_values(event.get("headers")) + count_values(event.get("multiValueHeaders"))
        > MAX_HEADERS
    {
        return Err(too_many_headers(Origin::V1));
    }
    if count_values(event.get("multiValueQueryStringParameters"))
        + count_values(event.get("queryStringParameters"))
        > MAX_URI_BYTES
    {
        return Err(refused(
            Origin::V1,
            ProblemKind::UriTooLong,
            "the request URI is longer than accepted",
        ));
    }
    let e: V1Event = serde_json::from_value(event).map_err(|_| not_http(Origin::V1))?;
    let raw_path = e.path.unwrap_or_default();
    let stage = e.request_context.stage.filter(|s| s != "$default");
    // A REST API's URL carries the stage; the event's `path` does not.
    let uri_path = match &stage {
        Some(s) if !raw_path.starts_with(&format!("/{s}/")) => format!("/{s}{raw_path}"),
        _ => raw_path.clone(),
    };
    Ok(Parts {
        origin: Origin::V1,
        method: e.http_method,
        raw_path,
        uri_path,
        query: v1_query(
            e.multi_value_query_string_parameters,
            e.query_string_parameters,
        ),
        headers: v1_headers(e.multi_value_headers, e.headers),
        domain_name: e.request_context.domain_name,
        stage,
        source_ip: e.request_context.identity.source_ip,
        body: e.body,
        base64: e.is_base64_encoded,
    })
}

/// Multi-value headers are the canonical set when present (single values are their last).
fn v1_headers(
    multi: Option<BTreeMap<String, Vec<String>>>,
    single: Option<BTreeMap<String, String>>,
) -> Vec<(String, String)> {
    let multi = multi.unwrap_or_default();
    let mut headers: Vec<(String, String)> = Vec::new();
    for (k, vs) in &multi {
        headers.extend(vs.iter().map(|v| (k.clone(), v.clone())));
    }
    for (k, v) in single.unwrap_or_default() {
        if !multi.keys().any(|m| m.eq_ignore_ascii_case(&k)) {
            headers.push((k, v));
        }
    }
    headers
}

/// A REST API event carries the query as decoded parameters: encoded again.
fn v1_query(
    multi: Option<BTreeMap<String, Vec<String>>>,
    single: Option<BTreeMap<String, String>>,
) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    match (multi, single) {
        (Some(m), _) if !m.is_empty() => {
            for (k, vs) in m {
                for v in vs {
                    q.append_pair(&k, &v);
                }
            }
        }
        (_, Some(s)) => {
            for (k, v) in s {
                q.append_pair(&k, &v);
            }
        }
        _ => {}
    }
    q.finish()
}

/// Values in a JSON object of strings or lists of strings (headers, query parameters).
fn count_values(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Object(m)) => m
            .values()
            .map(|v| match v {
                Value::Array(a) => a.len(),
                _ => 1,
            })
            .sum(),
        _ => 0,
    }
}

fn header_map(pairs: &[(String, String)]) -> Option<HeaderMap> {
    let mut map = HeaderMap::try_with_capacity(pairs.len()).ok()?;
    for (k, v) in pairs {
        let name = HeaderName::from_bytes(k.as_bytes()).ok()?;
        let value = HeaderValue::from_str(v).ok()?;
        map.try_append(name, value).ok()?;
    }
    Some(map)
}

/// The absolute URI the sender called: the `Host` header (else the event's domain name) and
/// `X-Forwarded-Proto` (default https), both checked; relative when neither names a host.
fn uri(
    headers: &HeaderMap,
    domain: Option<&str>,
    path_and_query: &str,
) -> Result<http::Uri, &'static str> {
    let host = match headers.get(http::header::HOST) {
        Some(h) => Some(h.to_str().map_err(|_| "the Host header is not valid")?),
        None => domain,
    };
    let path_and_query = http::uri::PathAndQuery::try_from(path_and_query)
        .map_err(|_| "the request path or query is not valid")?;
    let Some(host) = host else {
        return Ok(http::Uri::from(path_and_query));
    };
    // Valid for both `http` and the URL standard (ports, IPv6 brackets, IDNA).
    let authority = http::uri::Authority::try_from(host.trim())
        .ok()
        .filter(|a| !a.as_str().is_empty() && !a.as_str().contains('@'))
        .filter(|a| url::Url::parse(&format!("https://{a}/")).is_ok_and(|u| u.host().is_some()))
        .ok_or("the Host header is not valid")?;
    let scheme = match headers.get("x-forwarded-proto").map(HeaderValue::to_str) {
        None => http::uri::Scheme::HTTPS,
        Some(Ok(p)) if p.trim().eq_ignore_ascii_case("https") => http::uri::Scheme::HTTPS,
        Some(Ok(p)) if p.trim().eq_ignore_ascii_case("http") => http::uri::Scheme::HTTP,
        Some(_) => return Err("the X-Forwarded-Proto header is not http or https"),
    };
    http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| "the request URI is not valid")
}

/// Bytes kept as they are in a path: RFC 3986 `pchar` and `/`.
const PATH: &[u8] = b"/:@!$&'()*+,;=-._~";
/// Bytes kept as they are in a query: `pchar`, `/` and `?`.
const QUERY: &[u8] = b"/?:@!$&'()*+,;=-._~";

/// Percent-encodes every byte RFC 3986 does not allow here (a space, `"`, `<`, `>`, controls,
/// non-ASCII), keeping valid `%XX` escapes: a Function URL may pass a literal space (a `+` it
/// decoded) or `"` through in `rawQueryString`, and such a request is answered, not dropped.
fn encode(raw: &str, keep: &[u8]) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        let escape_ok = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if b.is_ascii_alphanumeric() || keep.contains(&b) || escape_ok {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The handler's answer as the event source's response object.
pub fn to_event_response(origin: Origin, resp: Response<Body>) -> Value {
    let (parts, body) = resp.into_parts();
    let (body, base64) = match body {
        Body::Empty => (String::new(), false),
        Body::Text(t) => (t, false),
        Body::Binary(b) => (base64::engine::general_purpose::STANDARD.encode(b), true),
        _ => (String::new(), false),
    };
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        single.insert(name.as_str().to_owned(), values.join(", ").into());
        multi.insert(name.as_str().to_owned(), json!(values));
    }
    let mut out = json!({
        "statusCode": parts.status.as_u16(),
        "headers": single,
        "body": body,
        "isBase64Encoded": base64,
    });
    match origin {
        Origin::V2 => out["cookies"] = json!([]),
        Origin::V1 => out["multiValueHeaders"] = Value::Object(multi),
    }
    out
}

/// The answer to a refused event, in its origin's format.
pub fn refusal_response(r: Refused) -> Value {
    to_event_response(r.origin, r.problem.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(query: &str, headers: Value) -> Value {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/webhooks/generic",
            "rawQueryString": query, "headers": headers,
            "requestContext": {"http": {"method": "POST", "path": "/webhooks/generic"},
                               "domainName": "abc.lambda-url.eu-west-1.on.aws", "stage": "$default"},
            "body": "{}", "isBase64Encoded": false
        })
    }

    #[test]
    fn hostile_queries_are_encoded_not_fatal() {
        for q in [
            "x=a b", "x=\"q\"", "x=<a>", "x=\t", "x=\u{7f}", "x=é", "x=%zz", "a=%41",
        ] {
            let req = to_request(v2(q, json!({"content-type": "application/json"})), None)
                .unwrap_or_else(|_| panic!("{q:?} refused"));
            let query = req.uri().query().unwrap();
            assert!(query.bytes().all(|b| b.is_ascii_graphic()), "{query}");
        }
        let req = to_request(v2("a=%41&b=c+d", json!({})), None).unwrap();
        assert_eq!(req.uri().query(), Some("a=%41&b=c+d"), "valid escapes kept");
    }

    #[test]
    fn bad_hosts_protocols_paths_and_bodies_are_refused() {
        for host in ["h example", "[::1", "h:99999", "", "user@h"] {
            let e = to_request(v2("", json!({"host": host})), None).unwrap_err();
            assert_eq!(e.problem.kind, ProblemKind::Malformed, "{host:?}");
        }
        for proto in ["ht tp", "", "ftp"] {
            let e = to_request(v2("", json!({"x-forwarded-proto": proto})), None).unwrap_err();
            assert_eq!(e.problem.kind, ProblemKind::Malformed, "{proto:?}");
        }
        let mut e = v2("", json!({}));
        e["rawPath"] = "webhooks/generic".into();
        assert_eq!(
            to_request(e.clone(), None).unwrap_err().problem.kind,
            ProblemKind::Malformed
        );
        let mut e = v2("", json!({}));
        e["isBase64Encoded"] = true.into();
        e["body"] = "not base64!".into();
        assert_eq!(
            to_request(e.clone(), None).unwrap_err().problem.kind,
            ProblemKind::Malformed
        );
        let e = v2(&"a".repeat(70_000), json!({}));
        assert_eq!(
            to_request(e.clone(), None).unwrap_err().problem.kind,
            ProblemKind::UriTooLong
        );
        let many: Map<String, Value> = (0..40_000)
            .map(|i| (format!("x-h{i}"), json!("v")))
            .collect();
        let e = v2("", Value::Object(many));
        assert_eq!(
            to_request(e.clone(), None).unwrap_err().problem.kind,
            ProblemKind::HeadersTooLarge
        );
        let e = json!({"hello": "world"});
        assert_eq!(to_request(e.clone(), None).unwrap_err().origin, Origin::V2);
    }

    #[test]
    fn answers_take_the_origins_shape() {
        let resp = Response::builder()
            .status(202)
            .header("content-type", "application/json")
            .body(Body::Text("{}".into()))
            .unwrap();
        let v = to_event_response(Origin::V2, resp);
        assert_eq!(v["statusCode"], 202);
        assert_eq!(v["headers"]["content-type"], "application/json");
        assert_eq!(v["cookies"], json!([]));
        let resp = Response::builder()
            .status(401)
            .body(Body::Binary(vec![0, 1]))
            .unwrap();
        let v = to_event_response(Origin::V1, resp);
        assert_eq!(v["isBase64Encoded"], true);
        assert_eq!(v["body"], "AAE=");
        assert!(v["multiValueHeaders"].is_object());
    }
}
