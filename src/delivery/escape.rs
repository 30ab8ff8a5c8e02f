//! Escaping of template values per channel and part, decided by the channel, never by the
//! template author: HTML for the email body, Slack mrkdwn, Adaptive Card markdown for Teams,
//! none for plain parts.

use minijinja::{AutoEscape, Value};

use super::ChannelKind;

/// How a part's values are escaped.
pub(super) fn escaping(kind: ChannelKind, part: &str) -> AutoEscape {
    match (kind, part) {
        (ChannelKind::Email, "html") => AutoEscape::Html,
        (ChannelKind::Slack, "summary" | "body") => AutoEscape::Custom("mrkdwn".into()),
        (ChannelKind::Teams, "title" | "body") => AutoEscape::Custom("adaptive-card".into()),
        _ => AutoEscape::None,
    }
}

pub(super) fn escaping_for_name(name: &str) -> AutoEscape {
    let Some((kind, rest)) = name.split_once(':') else {
        return AutoEscape::None;
    };
    let part = rest.rsplit('/').next().unwrap_or_default();
    ChannelKind::parse(kind).map_or(AutoEscape::None, |k| escaping(k, part))
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Escapes text for Slack mrkdwn: `&`, `<` and `>` are the control characters of Slack's
/// message formatting; escaping them defuses `<!channel>` mentions and `<url|label>` links.
/// `*`, `_`, `~` and `` ` `` (bold, italic, strike, code) have no escape in mrkdwn
/// (<https://api.slack.com/reference/surfaces/formatting#escaping>), so each is fenced with
/// zero-width spaces: it still shows, but can't open or close a style around the operator's
/// text.
pub fn escape_mrkdwn(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' | '_' | '~' | '`' => {
                out.push('\u{200B}');
                out.push(c);
                out.push('\u{200B}');
            }
            c => out.push(c),
        }
    }
}

/// Escapes text for Adaptive Card `TextBlock`s, whose text is a CommonMark subset: every ASCII
/// punctuation character is backslash-escaped (CommonMark's rule), so a value can't become a
/// link, emphasis or list, and `{{DATE(...)}}` functions can't be injected.
pub fn escape_adaptive_card(s: &str, out: &mut String) {
    for c in s.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
}

pub(super) fn formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    let escape: fn(&str, &mut String) = match state.auto_escape() {
        AutoEscape::Html => escape_html,
        AutoEscape::Custom(c) if c == "mrkdwn" => escape_mrkdwn,
        AutoEscape::Custom(c) if c == "adaptive-card" => escape_adaptive_card,
        _ => return minijinja::escape_formatter(out, state, value),
    };
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    if value.is_safe() {
        return out
            .write_str(&value.to_string())
            .map_err(minijinja::Error::from);
    }
    let mut buf = String::new();
    escape(&value.to_string(), &mut buf);
    out.write_str(&buf).map_err(minijinja::Error::from)
}
