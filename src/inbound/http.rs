//! The HTTP edge: route, method, size and content type, checked before anything is parsed.

use lambda_http::{Body, Request, RequestExt};

use super::BodyFormat;
use crate::problem::{Problem, ProblemKind};

/// The path as called (`raw_http_path`) less the API Gateway stage: a REST API (v1) event's
/// path has no stage, but an HTTP API (v2) event on a named stage carries it in `rawPath`
/// (`/prod/webhooks/generic`), and a Function URL has none.
fn route_path(req: &Request) -> &str {
    let path = req.raw_http_path();
    let path = if path.is_empty() {
        req.uri().path()
    } else {
        path
    };
    let stage = req
        .extensions()
        .get::<super::lambda::Called>()
        .and_then(|c| c.stage.as_deref());
    stage
        .filter(|s| *s != "$default")
        .and_then(|s| path.strip_prefix('/')?.strip_prefix(s))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path)
}

/// The source named by `POST /webhooks/{source}`.
pub fn source_name(req: &Request) -> Option<&str> {
    let rest = route_path(req).strip_prefix("/webhooks/")?;
    let name = rest.strip_suffix('/').unwrap_or(rest);
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// The token of a managed link's page, `/i/{token}` (any shape: checked by the page).
pub fn link_token(req: &Request) -> Option<&str> {
    let rest = route_path(req).strip_prefix("/i/")?;
    (!rest.contains('/')).then_some(rest)
}

/// The caller's address, as the Function URL or API Gateway reported it.
pub fn source_ip(req: &Request) -> &str {
    req.extensions()
        .get::<super::lambda::Called>()
        .and_then(|c| c.source_ip.as_deref())
        .unwrap_or("unknown")
}

/// The raw body bytes as received (Lambda has already undone `isBase64Encoded`), after the
/// method, size and content-type checks.
///
/// # Errors
/// 405, 413 or 415 as a [`Problem`].
pub fn checked_body(req: &Request, max_bytes: usize, format: BodyFormat) -> Result<&[u8], Problem> {
    if req.method() != http::Method::POST {
        return Err(Problem::new(
            ProblemKind::MethodNotAllowed,
            "only POST is accepted",
        ));
    }
    let body: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if body.len() > max_bytes {
        return Err(Problem::new(
            ProblemKind::PayloadTooLarge,
            format!("the body exceeds {max_bytes} bytes"),
        )
        .with("maxBytes", max_bytes));
    }
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (ok, expected) = match format {
        BodyFormat::Json => (is_json(content_type), "application/json"),
        BodyFormat::Xml => (is_xml(content_type), "text/xml"),
    };
    if !ok {
        return Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            format!("send Content-Type: {expected}"),
        ));
    }
    Ok(body)
}

fn is_xml(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/xml" | "application/xml" | "application/soap+xml"
    )
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.rsplit_once('+').is_some_and(|(ty, suffix)| {
            ty.to_ascii_lowercase().starts_with("application/")
                && suffix.eq_ignore_ascii_case("json")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/cloudevents+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonp",
            "text/json+xml",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }
}
