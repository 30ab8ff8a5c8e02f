use std::time::Duration;

/// What went wrong talking to Graph or its token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Graph refused the request for good (4xx other than 401/408/429): retrying the same
    /// event will fail the same way.
    #[error("Graph refused the request: HTTP {status}, code {code}")]
    Rejected { status: u16, code: String },
    /// Graph throttled the call (429): try again after `retry_after`.
    #[error("Graph throttled the request")]
    Throttled { retry_after: Option<Duration> },
    /// Server errors, timeouts, connection failures: try again later.
    #[error("Graph unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The token endpoint refused the app credential (wrong, expired or rotated secret).
    #[error("the token endpoint refused the app credential: {0}")]
    CredentialRefused(String),
    /// Graph answered 401 to the access token.
    #[error("Graph refused the access token: {0}")]
    TokenRefused(String),
    /// Graph answered success with a body we can't use (e.g. no `inviteRedeemUrl`).
    #[error("unexpected Graph response: {0}")]
    InvalidResponse(&'static str),
}

impl crate::resilience::Transient for GraphError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            GraphError::Throttled { .. } | GraphError::Unavailable { .. }
        )
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Throttled { retry_after } | GraphError::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// `{"error": {"code": "...", "message": "..."}}` — only the code is kept.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: String,
    }
    serde_json::from_slice::<Outer>(body)
        .ok()
        .map(|o| o.error.code)
        .filter(|c| {
            c.len() <= 100
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        })
}

/// Longest `Retry-After` honoured: an hour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After`: seconds, which Graph may send with a fraction (its throttling guidance's own
/// sample is `Retry-After: 2.128`, <https://learn.microsoft.com/graph/throttling>), or an
/// HTTP date (RFC 9110); capped at an hour.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match raw.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => {
            Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64()))
        }
        Ok(_) => return None,
        Err(_) => {
            let at =
                time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc2822)
                    .ok()?;
            let secs = (at - time::OffsetDateTime::now_utc()).as_seconds_f64();
            Duration::from_secs_f64(secs.clamp(0.0, MAX_RETRY_AFTER.as_secs_f64()))
        }
    };
    Some(wait)
}

/// Whole seconds to tell a sender, rounded up (a `Retry-After` of 2.128 s is answered 3).
pub(crate) fn whole_seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Classifies a failed HTTP answer from Graph.
pub(crate) fn classify(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> GraphError {
    let code = error_code(body);
    match status {
        401 => GraphError::TokenRefused(code.unwrap_or_else(|| "no code".into())),
        429 => GraphError::Throttled {
            retry_after: retry_after(headers),
        },
        408 | 500..=599 => GraphError::Unavailable {
            reason: format!(
                "HTTP {status}{}",
                code.map(|c| format!(" {c}")).unwrap_or_default()
            ),
            retry_after: retry_after(headers),
        },
        _ => GraphError::Rejected {
            status,
            code: code.unwrap_or_else(|| "unknown".into()),
        },
    }
}

/// Classifies a transport failure.
pub(crate) fn transport(e: &reqwest::Error) -> GraphError {
    let reason = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    GraphError::Unavailable {
        reason: reason.into(),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_by_status_and_code() {
        let h = reqwest::header::HeaderMap::new();
        let body = br#"{"error":{"code":"BadRequest","message":"ada@partner.example is invalid"}}"#;
        let e = classify(400, &h, body);
        assert_eq!(
            e,
            GraphError::Rejected {
                status: 400,
                code: "BadRequest".into()
            }
        );
        assert!(!e.to_string().contains("ada@"));
        assert!(matches!(
            classify(403, &h, b"{}"),
            GraphError::Rejected { status: 403, .. }
        ));
        assert!(matches!(
            classify(401, &h, b""),
            GraphError::TokenRefused(_)
        ));
        assert!(matches!(
            classify(429, &h, b""),
            GraphError::Throttled { .. }
        ));
        for s in [408, 500, 502, 503, 504] {
            assert!(
                matches!(classify(s, &h, b""), GraphError::Unavailable { .. }),
                "{s}"
            );
        }
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert!(
            matches!(classify(429, &h, b""), GraphError::Throttled { retry_after: Some(d) } if d.as_secs() == 7)
        );
        assert_eq!(error_code(br#"{"error":{"code":"a b <script>"}}"#), None);
    }

    #[test]
    fn retry_after_takes_fractions_and_dates() {
        let with = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert("retry-after", v.parse().unwrap());
            retry_after(&h)
        };
        assert_eq!(with("2.128"), Some(Duration::from_millis(2128)));
        assert_eq!(with("7"), Some(Duration::from_secs(7)));
        assert_eq!(with("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(with("99999"), Some(MAX_RETRY_AFTER));
        assert_eq!(with("-1"), None);
        assert_eq!(with("NaN"), None);
        assert_eq!(with("soon"), None);
        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
        let date = later
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let d = with(&date).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(31),
            "{d:?}"
        );
        assert_eq!(whole_seconds_up(Duration::from_millis(2128)), 3);
        assert_eq!(whole_seconds_up(Duration::from_secs(2)), 2);
    }
}
