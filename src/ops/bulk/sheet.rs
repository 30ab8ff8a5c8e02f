//! A bulk file read: its header (Entra's bulk-invite template or plain names), then each row
//! as the generic source's event, or the reason it can't be one.
//!
//! Entra's template (<https://learn.microsoft.com/entra/external-id/tutorial-bulk-invite>,
//! "Understand the CSV template") starts with a `version:v1.0` line, then headings shaped
//! `<Item name> [PropertyName] <Required or blank>` — `Email address to invite [inviteeEmail]
//! Required`, `Redirection url [inviteRedirectURL] Required`, `Send invitation message (true or
//! false) [sendEmail]`, `Customized invitation message [customizedMessageBody]` — and a row of
//! examples. Each heading counts by its bracketed property name; a plain heading by itself.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::header::{self, Column, Field};

/// The event type every row is sent as: the generic source's invitation.
const EVENT_TYPE: &str = "partner.signed";
/// Prefix of the event id made from a row's content.
const CONTENT_ID_PREFIX: &str = "bulk-";
/// Bytes of the content hash kept in an event id (128 bits: no two different rows collide).
const CONTENT_ID_BYTES: usize = 16;

/// A file that can't be read as a bulk file: nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SheetError(pub String);

/// What one line of the file is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    /// A row that makes an event: the generic source's JSON body.
    Event(RowEvent),
    /// The template's example row: passed over.
    Example,
    /// A row that can't make an event (its reason names columns, never values).
    Bad {
        email: Option<String>,
        reason: String,
    },
}

/// One row's event, and what the result file says about it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowEvent {
    pub event_id: String,
    pub email: String,
    pub body: Value,
    /// Entra columns read but not applied, for the row's note.
    pub unapplied: Vec<&'static str>,
}

/// One row, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub line: u64,
    pub entry: Entry,
}

/// A read file: its columns and rows.
#[derive(Debug)]
pub(crate) struct Sheet {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// Reads a whole bulk file.
///
/// # Errors
/// [`SheetError`] when there is no usable header (no email column, a column twice, nothing at
/// all), or the file can't be read: the run stops before anything is sent.
pub(crate) fn read(data: &[u8]) -> Result<Sheet, SheetError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut records = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                records.push((line, record.clone()));
            }
            Ok(false) => break,
            Err(e) => return Err(SheetError(format!("the file can't be read as CSV: {e}"))),
        }
    }
    let mut records = records.into_iter().peekable();
    if records
        .peek()
        .is_some_and(|(_, r)| cell(r, 0).to_ascii_lowercase().starts_with("version:"))
    {
        records.next();
    }
    let (header_line, header) = records
        .next()
        .ok_or_else(|| SheetError("the file is empty: no header row".into()))?;
    let columns = header::columns(header_line, &header)?;
    let width = columns
        .iter()
        .rposition(|c| *c != Column::Blank)
        .map_or(0, |i| i + 1);
    let rows = records
        .enumerate()
        .map(|(i, (line, r))| Row {
            line,
            entry: entry(&columns, width, &r, i == 0),
        })
        .collect();
    Ok(Sheet { columns, rows })
}

/// One cell as text (a BOM and surrounding spaces removed).
fn cell(r: &csv::ByteRecord, i: usize) -> String {
    let raw = r.get(i).unwrap_or_default();
    String::from_utf8_lossy(raw)
        .trim_start_matches('\u{feff}')
        .trim()
        .to_owned()
}

/// One data row: its event, or why it has none.
fn entry(columns: &[Column], width: usize, r: &csv::ByteRecord, first: bool) -> Entry {
    let email = columns
        .iter()
        .position(|c| *c == Column::Field(Field::Email))
        .map(|i| cell(r, i))
        .filter(|e| !e.is_empty());
    let bad = |reason: String| Entry::Bad {
        email: email.clone(),
        reason,
    };
    let filled = (0..r.len())
        .rposition(|i| !cell(r, i).is_empty())
        .map_or(0, |i| i + 1);
    if r.len() < width || filled > width {
        let fields = if filled > width { filled } else { r.len() };
        return bad(format!(
            "wrong number of fields: {fields} where the header has {width}"
        ));
    }
    if first && is_example(r) {
        return Entry::Example;
    }
    let (cells, attributes) = match values(columns, r) {
        Ok(v) => v,
        Err(reason) => return bad(reason),
    };
    let Some(email) = cells.get(&Field::Email).cloned() else {
        return bad("no email address (the email column is empty)".into());
    };
    let send_email = match cells.get(&Field::SendEmail).map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if matches!(v.as_str(), "true" | "yes" | "1") => true,
        Some(v) if matches!(v.as_str(), "false" | "no" | "0") => false,
        Some(_) => return bad("sendEmail is not true or false".into()),
    };
    let mut unapplied = Vec::new();
    if send_email {
        unapplied.push("sendEmail");
    }
    if cells.contains_key(&Field::MessageBody) {
        unapplied.push("customizedMessageBody");
    }
    let event_id = cells
        .get(&Field::EventId)
        .cloned()
        .unwrap_or_else(|| content_id(&cells, &attributes));
    Entry::Event(RowEvent {
        body: body(&event_id, &cells, &attributes),
        event_id,
        email,
        unapplied,
    })
}

/// A row's filled cells: the fields, and the route attributes.
type Values = (BTreeMap<Field, String>, BTreeMap<String, String>);

/// The filled cells of a row, by what their columns hold.
fn values(columns: &[Column], r: &csv::ByteRecord) -> Result<Values, String> {
    let mut cells = BTreeMap::new();
    let mut attributes = BTreeMap::new();
    for (i, column) in columns.iter().enumerate() {
        let raw = std::str::from_utf8(r.get(i).unwrap_or_default())
            .map_err(|_| format!("column {} is not UTF-8 text", i + 1))?;
        let value = raw.trim();
        if value.is_empty() {
            continue;
        }
        match column {
            Column::Field(f) => {
                cells.insert(*f, value.to_owned());
            }
            Column::Attribute(name) if header::attribute_name_ok(name) => {
                attributes.insert(name.clone(), value.to_owned());
            }
            Column::Attribute(_) | Column::Blank => {}
        }
    }
    Ok((cells, attributes))
}

/// The template's example row: its first filled cell starts with "Example".
fn is_example(r: &csv::ByteRecord) -> bool {
    (0..r.len())
        .map(|i| cell(r, i))
        .find(|c| !c.is_empty())
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("example"))
}

/// The event id of a row without one: a hash of what the row says (the address lower-cased,
/// every other value trimmed; Entra's columns, which change nothing, left out), so the same
/// row is the same event in every run and every file.
pub(crate) fn content_id(
    cells: &BTreeMap<Field, String>,
    attributes: &BTreeMap<String, String>,
) -> String {
    let mut hasher = Sha256::new();
    for (field, value) in cells {
        if matches!(
            field,
            Field::SendEmail | Field::MessageBody | Field::EventId
        ) {
            continue;
        }
        let value = if *field == Field::Email {
            value.to_lowercase()
        } else {
            value.clone()
        };
        hasher.update(format!("{field:?}").as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    for (name, value) in attributes {
        hasher.update(b"attributes.");
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    format!(
        "{CONTENT_ID_PREFIX}{}",
        hex::encode(&digest[..CONTENT_ID_BYTES])
    )
}

/// The row as the generic source's event (`presets/generic.toml` reads this shape).
fn body(
    event_id: &str,
    cells: &BTreeMap<Field, String>,
    attributes: &BTreeMap<String, String>,
) -> Value {
    let get = |f: Field| cells.get(&f).cloned();
    let mut invitee = Map::new();
    for (f, key) in [
        (Field::Email, "email"),
        (Field::DisplayName, "displayName"),
        (Field::GivenName, "givenName"),
        (Field::Surname, "surname"),
        (Field::Company, "company"),
        (Field::Language, "language"),
        (Field::JobTitle, "jobTitle"),
        (Field::Department, "department"),
        (Field::UsageLocation, "usageLocation"),
        (Field::UserType, "userType"),
    ] {
        if let Some(v) = get(f) {
            invitee.insert(key.into(), v.into());
        }
    }
    let mut event = json!({"id": event_id, "type": EVENT_TYPE, "invitee": invitee});
    let mut set = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            event[key] = v;
        }
    };
    set("redirectUrl", get(Field::RedirectUrl).map(Value::from));
    set("contractEnd", get(Field::ContractEnd).map(Value::from));
    set("record", get(Field::RecordId).map(|id| json!({"id": id})));
    let mut owner = Map::new();
    if let Some(e) = get(Field::OwnerEmail) {
        owner.insert("email".into(), e.into());
    }
    if let Some(id) = get(Field::OwnerId) {
        owner.insert("id".into(), id.into());
    }
    set("owner", (!owner.is_empty()).then_some(Value::Object(owner)));
    set(
        "attributes",
        (!attributes.is_empty()).then(|| json!(attributes)),
    );
    set(
        "delivery",
        get(Field::Channels).map(|c| json!({"channels": channels(&c)})),
    );
    event
}

/// A channels cell: names separated by `;`, `|`, `,` or spaces.
fn channels(cell: &str) -> Vec<String> {
    cell.split([';', '|', ',', ' '])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(sheet: &Sheet) -> Vec<&RowEvent> {
        sheet
            .rows
            .iter()
            .filter_map(|r| match &r.entry {
                Entry::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn entras_template_is_read_by_its_property_names() {
        let file = "version:v1.0,,,\n\
            Email address to invite [inviteeEmail] Required,Redirection url [inviteRedirectURL] Required,\
            Send invitation message (true or false) [sendEmail],Customized invitation message [customizedMessageBody]\n\
            Example:    ,Example:    ,Example:    ,Example:    \n\
            Grace@Partner.example,https://myapps.microsoft.com,true,Welcome\n\
            alan@partner.example,https://myapps.microsoft.com,false,\n";
        let sheet = read(file.as_bytes()).unwrap();
        assert_eq!(
            sheet.columns,
            vec![
                Column::Field(Field::Email),
                Column::Field(Field::RedirectUrl),
                Column::Field(Field::SendEmail),
                Column::Field(Field::MessageBody),
            ]
        );
        assert_eq!(
            sheet.rows[0],
            Row {
                line: 3,
                entry: Entry::Example
            }
        );
        let e = events(&sheet);
        assert_eq!(e.len(), 2);
        assert_eq!(sheet.rows[1].line, 4);
        assert_eq!(e[0].unapplied, vec!["sendEmail", "customizedMessageBody"]);
        assert!(e[1].unapplied.is_empty());
        assert_eq!(
            e[0].body,
            json!({"id": e[0].event_id, "type": "partner.signed",
                   "invitee": {"email": "Grace@Partner.example"},
                   "redirectUrl": "https://myapps.microsoft.com"})
        );
        assert!(e[0].event_id.starts_with("bulk-") && e[0].event_id.len() == 37);
    }

    #[test]
    fn plain_headers_make_the_generic_event() {
        let file = "\u{feff}eventId,email,displayName,company,language,owner,channels,region,Notes (internal)\n\
            crm-1,ada@partner.example,Ada Lovelace,Analytical,en-GB,owner@contoso.example,slack;webhook,emea,x\n";
        let sheet = read(file.as_bytes()).unwrap();
        let e = events(&sheet);
        assert_eq!(e[0].event_id, "crm-1");
        assert_eq!(
            e[0].body,
            json!({"id": "crm-1", "type": "partner.signed",
                   "invitee": {"email": "ada@partner.example", "displayName": "Ada Lovelace",
                               "company": "Analytical", "language": "en-GB"},
                   "owner": {"email": "owner@contoso.example"},
                   "attributes": {"region": "emea"},
                   "delivery": {"channels": ["slack", "webhook"]}})
        );
    }

    #[test]
    fn the_content_id_follows_what_the_row_says() {
        let file = "email,displayName,sendEmail\n\
            ada@partner.example,Ada,true\n\
            ADA@partner.example, Ada ,false\n\
            ada@partner.example,Ada L.,\n";
        let sheet = read(file.as_bytes()).unwrap();
        let e = events(&sheet);
        assert_eq!(
            e[0].event_id, e[1].event_id,
            "case, spaces and sendEmail change nothing"
        );
        assert_ne!(e[0].event_id, e[2].event_id);
    }

    #[test]
    fn bad_rows_fail_alone_with_their_line() {
        let file = "email,displayName\n\
            ,No Address\n\
            ada@partner.example,Ada,extra\n\
            \"multi\nline@partner.example\",x\n\
            bob@partner.example\n\
            carol@partner.example,Carol,,\n";
        let sheet = read(file.as_bytes()).unwrap();
        let lines: Vec<u64> = sheet.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 6, 7]);
        let reason = |i: usize| match &sheet.rows[i].entry {
            Entry::Bad { reason, .. } => reason.clone(),
            other => panic!("row {i} is {other:?}"),
        };
        assert!(reason(0).contains("no email"), "{}", reason(0));
        assert_eq!(
            reason(1),
            "wrong number of fields: 3 where the header has 2"
        );
        assert_eq!(
            reason(3),
            "wrong number of fields: 1 where the header has 2"
        );
        assert!(
            matches!(sheet.rows[2].entry, Entry::Event(_)),
            "quoted newlines are data"
        );
        assert!(
            matches!(sheet.rows[4].entry, Entry::Event(_)),
            "trailing empty cells are fine"
        );
    }

    #[test]
    fn a_file_without_a_usable_header_is_refused() {
        for (file, says) in [
            ("", "empty"),
            ("version:v1.0\n", "empty"),
            ("name,company\nAda,Acme\n", "no email column"),
            ("email,mail\na@b.example,a@b.example\n", "says again"),
        ] {
            let e = read(file.as_bytes()).unwrap_err();
            assert!(e.0.contains(says), "{file:?}: {e}");
        }
    }
}
