//! Directory object ids (users, groups): GUIDs.

/// Whether `s` is a directory object id: a GUID (`8-4-4-4-12` hexadecimal digits).
pub fn is_object_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks a list of object ids from configuration.
///
/// # Errors
/// Names the setting and the first value that is not a GUID.
pub fn check_ids(at: &str, ids: &[String]) -> Result<(), String> {
    match ids.iter().find(|id| !is_object_id(id)) {
        Some(bad) => Err(format!("{at}: {bad:?} is not an object id (a GUID)")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_only() {
        assert!(is_object_id("1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6"));
        for bad in [
            "",
            "1e2d3c4b5a6947889a0bc1d2e3f4a5b6",
            "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5bz",
        ] {
            assert!(!is_object_id(bad), "{bad}");
        }
        assert!(
            check_ids("x", &["nope".into()])
                .unwrap_err()
                .contains("x: \"nope\"")
        );
    }
}
