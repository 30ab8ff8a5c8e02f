//! What free text from an event may contain: characters that render as nothing, or that
//! rearrange the text around them, are not text a person should see in a message.

/// Unicode format characters (general category Cf: bidirectional controls, zero-width
/// characters, the soft hyphen, invisible operators, interlinear annotation, tag characters)
/// and letters that render as a blank (Hangul fillers, the braille blank).
/// A table of ranges, as the Unicode Character Database lists them (Unicode 15.1).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{115F}'..='\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// An event id as it may be stored, logged and shown: visible ASCII and spaces. Ids come from
/// CRMs' record ids, UUIDs and the like; anything else (a right-to-left override shown
/// reversed in Slack and Teams, a lookalike letter) is refused rather than passed on.
pub fn is_plain_id(id: &str) -> bool {
    !id.trim().is_empty() && id.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_visible_ascii() {
        assert!(is_plain_id("evt_01JD2K7Q9Z3X4Y5W6V7U8T9S0R"));
        assert!(is_plain_id("deal-42-won"));
        for bad in ["", "  ", "evt\u{202E}1", "evt_1\n", "évt", "evt\u{200B}"] {
            assert!(!is_plain_id(bad), "{bad:?}");
        }
    }
}
