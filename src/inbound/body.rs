//! A request body in its source's format, parsed into the JSON the mappings read.

use super::BodyFormat;

/// Parses `bytes` as `format` (strict JSON, or SOAP/XML turned into the same JSON shape).
///
/// # Errors
/// A message without content from the body.
pub fn parse(format: BodyFormat, bytes: &[u8]) -> Result<serde_json::Value, String> {
    match format {
        BodyFormat::Json => super::json::parse(bytes),
        BodyFormat::Xml => super::xml::to_json(bytes),
    }
}
