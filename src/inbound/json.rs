//! Strict JSON: valid UTF-8, no duplicate object keys, bounded nesting. serde_json alone keeps
//! the last of duplicate keys, which lets a sender show one value to a signature-checking proxy
//! and another to us.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deepest nesting accepted (objects and arrays).
pub const MAX_DEPTH: usize = 32;

/// Parses `bytes` strictly.
///
/// # Errors
/// A message with line and column, never the content.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict(0).deserialize(&mut de).map_err(describe)?;
    de.end().map_err(describe)?;
    Ok(v)
}

fn describe(e: serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io | serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Data => "unacceptable JSON",
    };
    // serde_json's own message can quote input (e.g. an unknown escape); ours is fixed text
    // plus our custom reasons, which never contain input.
    let reason = e.to_string();
    let custom = [
        "duplicate key",
        "nesting deeper",
        "invalid unicode",
        "control character",
    ]
    .into_iter()
    .find(|r| reason.contains(r));
    match custom {
        Some(r) => format!("{what}: {r} at line {} column {}", e.line(), e.column()),
        None => format!("{what} at line {} column {}", e.line(), e.column()),
    }
}

struct Strict(usize);

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(A::Error::custom("nesting deeper than allowed"));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict(self.0 + 1))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(A::Error::custom("nesting deeper than allowed"));
        }
        let mut seen = HashSet::new();
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(A::Error::custom("duplicate key"));
            }
            let v = map.next_value_seed(Strict(self.0 + 1))?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_json() {
        let v = parse(br#"{"a":[1,2.5,"x",null,true],"b":{"c":{}}}"#).unwrap();
        assert_eq!(v["a"][2], "x");
    }

    #[test]
    fn refuses_duplicates_depth_garbage_without_echo() {
        let e = parse(br#"{"id":"a","id":"secret-value"}"#).unwrap_err();
        assert!(
            e.contains("duplicate key") && !e.contains("secret-value"),
            "{e}"
        );
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(deep.as_bytes()).unwrap_err().contains("nesting"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        assert!(parse(b"{\"a\":1} trailing").is_err());
        assert!(parse(b"\xff\xfe").is_err());
        let e = parse(br#"{"x":"\q-leak@example.com"}"#).unwrap_err();
        assert!(!e.contains("leak"), "{e}");
        assert!(parse(b"").unwrap_err().contains("truncated"));
    }
}
