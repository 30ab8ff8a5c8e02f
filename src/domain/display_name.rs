//! The invitee's display name: printable, single-line, bounded.

use std::fmt;

/// Longest display name kept, in characters (Entra's `displayName` allows 256).
pub const MAX_CHARS: usize = 256;

/// A display name with control characters and line breaks removed, runs of white space folded
/// to one space, and at most [`MAX_CHARS`] characters. Per-channel escaping happens at render
/// time; this type only guarantees a single printable line.
#[derive(Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Cleans `raw`; `None` when nothing printable remains.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut out = String::with_capacity(raw.len().min(MAX_CHARS * 4));
        let mut pending_space = false;
        let mut count = 0;
        for c in raw.chars() {
            if c.is_whitespace() || c.is_control() || super::text::is_invisible(c) {
                pending_space = !out.is_empty();
                continue;
            }
            if count + usize::from(pending_space) + 1 > MAX_CHARS {
                break;
            }
            if pending_space {
                out.push(' ');
                count += 1;
                pending_space = false;
            }
            out.push(c);
            count += 1;
        }
        (!out.is_empty()).then_some(Self(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DisplayName(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strips_controls_and_line_breaks() {
        let n = DisplayName::parse("  Ada\r\n\tLovelace\u{0007} \u{202E}Ltd ").unwrap();
        assert_eq!(n.as_str(), "Ada Lovelace Ltd");
        assert_eq!(DisplayName::parse(" \n\t "), None);
    }

    #[test]
    fn invisible_and_blank_characters_are_removed() {
        for c in [
            '\u{E0041}', // a tag character (invisible "A")
            '\u{E0001}',
            '\u{061C}', // Arabic letter mark
            '\u{2060}', // word joiner
            '\u{00AD}', // soft hyphen
            '\u{180E}', // Mongolian vowel separator
            '\u{3164}', // Hangul filler: renders blank
            '\u{115F}',
            '\u{FFA0}',
            '\u{2800}', // braille blank
            '\u{202E}',
            '\u{2066}',
            '\u{200B}',
            '\u{FEFF}',
        ] {
            let n = DisplayName::parse(&format!("Ada{c}Lovelace")).unwrap();
            assert_eq!(n.as_str(), "Ada Lovelace", "U+{:04X}", c as u32);
            assert_eq!(
                DisplayName::parse(&c.to_string()),
                None,
                "U+{:04X} alone",
                c as u32
            );
        }
        assert_eq!(
            DisplayName::parse("Zoë Ødegård 李").unwrap().as_str(),
            "Zoë Ødegård 李"
        );
    }

    #[test]
    fn bounded_length() {
        let n = DisplayName::parse(&"é".repeat(1000)).unwrap();
        assert_eq!(n.as_str().chars().count(), MAX_CHARS);
    }

    proptest! {
        #[test]
        fn always_one_printable_bounded_line(raw in "\\PC{0,400}|[\\x00-\\x7f]{0,400}") {
            if let Some(n) = DisplayName::parse(&raw) {
                let s = n.as_str();
                prop_assert!(s.chars().count() <= MAX_CHARS);
                prop_assert!(!s.chars().any(|c| c.is_control() || c == '\n' || c == '\r'));
                prop_assert!(!s.chars().any(crate::domain::text::is_invisible));
                prop_assert!(!s.starts_with(' ') && !s.ends_with(' ') && !s.contains("  "));
            }
        }
    }
}
