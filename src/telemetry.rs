//! Structured JSON logs that follow Lambda's log settings, and the keyed hash that stands in for
//! an email address wherever one would help correlation.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::domain::InviteeEmail;

/// Libraries whose debug/trace output can include request or response bodies (the secret
/// value, a token, a redeem URL); they are held at `info` (or the default level, if lower)
/// whatever the configured level. Targets match by prefix: these cover every AWS SDK and
/// Smithy crate.
const CAPPED: &[&str] = &[
    "aws_sdk",
    "aws_smithy",
    "aws_config",
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
    "h2",
    "tower",
    "lambda_runtime",
    "lambda_http",
];

/// The level filter: `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced logging controls), else
/// `RUST_LOG` (`level` and `target=level` directives), else `info`; with [`CAPPED`] applied on
/// top. A per-target filter, not a regex engine: it keeps the function small.
pub fn filter_from(lambda_level: Option<&str>, rust_log: Option<&str>) -> Targets {
    let base = match lambda_level.map(str::to_ascii_lowercase).as_deref() {
        Some("fatal") => "error".to_owned(),
        Some(l @ ("trace" | "debug" | "info" | "warn" | "error")) => l.to_owned(),
        _ => rust_log
            .filter(|s| !s.trim().is_empty())
            .unwrap_or("info")
            .to_owned(),
    };
    let parsed: Targets = base
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO));
    let default = parsed.default_level().unwrap_or(LevelFilter::INFO);
    let cap = default.min(LevelFilter::INFO);
    let kept = parsed
        .iter()
        .filter(|(target, _)| !CAPPED.iter().any(|c| target.starts_with(c)))
        .map(|(t, l)| (t.to_owned(), l));
    Targets::new()
        .with_default(default)
        .with_targets(kept)
        .with_targets(CAPPED.iter().map(|c| (*c, cap)))
}

/// A JSON-lines subscriber writing to `writer`: one object per event, with the current span's
/// fields (the event id among them).
pub fn subscriber<W>(writer: W, filter: Targets) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true)
        .with_ansi(false)
        .flatten_event(true)
        .finish()
        .with(filter)
}

/// Installs the JSON subscriber on stdout for a Lambda binary.
pub fn init() {
    let filter = filter_from(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    // A second init (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout, filter));
}

/// HMAC-SHA256 of the lower-cased address under a deployment key, shortened: the same invitee
/// gives the same value in every log line, and the value can't be reversed without the key.
pub struct EmailHasher(Hmac<Sha256>);

impl EmailHasher {
    pub fn new(key: &[u8]) -> Self {
        Self(Hmac::new_from_slice(key).expect("HMAC accepts any key length"))
    }

    /// `value` as it may be logged: unchanged, unless it may hold an email address (a sender
    /// may use one as an event id or type), in which case its keyed hash stands in for it.
    pub fn loggable<'a>(&self, value: &'a str) -> std::borrow::Cow<'a, str> {
        if may_hold_address(value) {
            std::borrow::Cow::Owned(format!("redacted:{}", self.hash_str(value)))
        } else {
            std::borrow::Cow::Borrowed(value)
        }
    }

    pub fn hash(&self, email: &InviteeEmail) -> String {
        self.hash_str(email.as_str())
    }

    /// The keyed hash of any value that must not be kept or logged as is (a caller's
    /// address, for rate limits).
    pub fn hash_text(&self, value: &str) -> String {
        self.hash_str(value)
    }

    fn hash_str(&self, value: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(value.to_ascii_lowercase().as_bytes());
        let out = mac.finalize().into_bytes();
        out.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// Whether `value` has an `@` in any form it can take on the way in: as is, percent-encoded
/// (`%40`, also twice: `%2540`), as an HTML character reference (`&#64;`, `&#x40;`,
/// `&commat;`), or as one of the compatibility forms that normalise to `@` (fullwidth `＠`,
/// small `﹫`).
pub fn may_hold_address(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    value.contains(['@', '\u{FF20}', '\u{FE6B}'])
        || lower.contains("%40")
        || lower.contains("%2540")
        || lower.contains("&#64;")
        || lower.contains("&#x40;")
        || lower.contains("&commat;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_keyed_stable_and_case_insensitive() {
        let a = InviteeEmail::parse("Ada@partner.example").unwrap();
        let b = InviteeEmail::parse("ada@PARTNER.example").unwrap();
        let h = EmailHasher::new(b"k1");
        assert_eq!(h.hash(&a), h.hash(&b));
        assert_ne!(h.hash(&a), EmailHasher::new(b"k2").hash(&a));
        assert_eq!(h.hash(&a).len(), 16);
        assert!(!h.hash(&a).contains("ada"));
        assert_eq!(h.loggable("evt_123"), "evt_123");
        assert_eq!(
            h.loggable("ada@partner.example"),
            format!("redacted:{}", h.hash(&b))
        );
        for disguised in [
            "x%40partner.example",
            "x%2540partner.example",
            "x\u{FF20}partner.example",
            "x\u{FE6B}partner.example",
            "x&#64;partner.example",
            "x&#X40;partner.example",
            "x&commat;partner.example",
        ] {
            assert!(
                h.loggable(disguised).starts_with("redacted:"),
                "{disguised}"
            );
        }
        assert_eq!(h.loggable("deal-42-won"), "deal-42-won");
    }

    #[test]
    fn lambda_level_wins_and_noisy_crates_stay_capped() {
        use tracing::Level;
        let f = filter_from(Some("DEBUG"), Some("trace"));
        assert!(f.would_enable("invite_relay::app", &Level::DEBUG));
        assert!(!f.would_enable("invite_relay::app", &Level::TRACE));
        assert!(!f.would_enable("aws_smithy_runtime::client", &Level::DEBUG));
        assert!(f.would_enable("aws_sdk_secretsmanager", &Level::INFO));

        let f = filter_from(
            None,
            Some("warn,invite_relay::startup=info,aws_sdk_sqs=trace"),
        );
        assert!(!f.would_enable("invite_relay::app", &Level::INFO));
        assert!(f.would_enable("invite_relay::startup", &Level::INFO));
        assert!(
            !f.would_enable("aws_sdk_sqs", &Level::DEBUG),
            "capped even when asked"
        );
        assert!(
            !f.would_enable("aws_sdk_sqs", &Level::INFO),
            "never above the default"
        );

        let f = filter_from(None, Some("not a [filter]"));
        assert!(f.would_enable("invite_relay::app", &Level::INFO));
    }
}
