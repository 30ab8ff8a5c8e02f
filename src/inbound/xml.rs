//! XML bodies (Salesforce Outbound Messages are SOAP) turned into the same JSON shape the
//! mappings read: an element with child elements becomes an object keyed by local name (a
//! repeated name becomes a list), an element with only text becomes a string, an empty or
//! `xsi:nil` element becomes null. Attributes and namespaces are dropped; DTDs are refused
//! (no entity expansion of any kind), and nesting is bounded.

use quick_xml::events::Event;
use serde_json::{Map, Value};

use super::json::MAX_DEPTH;

struct Frame {
    name: String,
    children: Map<String, Value>,
    text: String,
    nil: bool,
}

/// Parses `bytes` as XML into JSON.
///
/// # Errors
/// A message without content from the body.
pub fn to_json(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the XML body is not UTF-8".to_owned())?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|_| format!("invalid XML at byte {}", reader.buffer_position()))?;
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err("content after the XML document's root element".into());
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("XML nesting deeper than allowed".into());
                }
                stack.push(frame(&e));
            }
            Event::Empty(e) => {
                let f = frame(&e);
                close(&mut stack, &mut root, Frame { nil: true, ..f })?;
            }
            Event::End(_) => {
                let f = stack.pop().ok_or("unbalanced XML")?;
                close(&mut stack, &mut root, f)?;
            }
            Event::Text(t) => {
                if let Some(f) = stack.last_mut() {
                    f.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(c) => {
                if let Some(f) = stack.last_mut() {
                    f.text.push_str(&c);
                }
            }
            Event::GeneralRef(r) => {
                let ch =
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => c,
                        _ => match r.xml10_content().as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            _ => return Err(
                                "XML entity references other than the predefined five are refused"
                                    .into(),
                            ),
                        },
                    };
                if let Some(f) = stack.last_mut() {
                    f.text.push(ch);
                }
            }
            Event::DocType(_) => return Err("XML document type declarations are refused".into()),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("truncated XML".into());
    }
    let (name, value) = root.ok_or("empty XML document")?;
    Ok(Value::Object(Map::from_iter([(name, value)])))
}

fn frame(e: &quick_xml::events::BytesStart<'_>) -> Frame {
    // Attributes are read only for `xsi:nil`, so quick-xml's duplicate check (which compares
    // each attribute with every earlier one: quadratic in their number) is off.
    let mut attributes = e.attributes();
    attributes.with_checks(false);
    let nil = attributes
        .flatten()
        .any(|a| a.key.local_name().as_ref() == "nil" && a.value.as_ref() == "true");
    Frame {
        name: e.local_name().as_ref().to_owned(),
        children: Map::new(),
        text: String::new(),
        nil,
    }
}

fn close(stack: &mut [Frame], root: &mut Option<(String, Value)>, f: Frame) -> Result<(), String> {
    let value = if f.nil && f.children.is_empty() && f.text.trim().is_empty() {
        Value::Null
    } else if f.children.is_empty() {
        Value::String(f.text.trim().to_owned())
    } else {
        Value::Object(f.children)
    };
    match stack.last_mut() {
        Some(parent) => {
            match parent.children.get_mut(&f.name) {
                Some(Value::Array(list)) => list.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
                None => {
                    parent.children.insert(f.name, value);
                }
            }
            Ok(())
        }
        None => {
            *root = Some((f.name, value));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soap_envelope_to_json() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5e000000ABCDEAU</OrganizationId>
   <SessionId xsi:nil="true"/>
   <Notification><Id>04l1</Id><sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Email>ada@partner.example</sf:Email><sf:LastName>Lovelace &amp; Co &#x41;</sf:LastName></sObject></Notification>
   <Notification><Id>04l2</Id><sObject><sf:Email>grace@partner.example</sf:Email></sObject></Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;
        let v = to_json(xml.as_bytes()).unwrap();
        let n = &v["Envelope"]["Body"]["notifications"];
        assert_eq!(n["OrganizationId"], "00D5e000000ABCDEAU");
        assert_eq!(n["SessionId"], Value::Null);
        assert_eq!(
            n["Notification"][0]["sObject"]["Email"],
            "ada@partner.example"
        );
        assert_eq!(
            n["Notification"][0]["sObject"]["LastName"],
            "Lovelace & Co A"
        );
        assert_eq!(n["Notification"][1]["Id"], "04l2");
    }

    #[test]
    fn refuses_dtds_unknown_entities_garbage_and_depth() {
        assert!(
            to_json(br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>"#)
                .is_err()
        );
        assert!(to_json(b"<x>&custom;</x>").is_err());
        assert!(to_json(b"<x><y></x>").is_err());
        assert!(to_json(b"<x>").is_err());
        assert!(to_json(b"").is_err());
        assert!(to_json(b"<a/><b/>").is_err());
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(to_json(deep.as_bytes()).is_err());
        assert!(to_json(b"\xff<x/>").is_err());
    }
}
