//! A bulk file's header: what each column holds, from Entra's bulk-invite template's
//! property names (`Email address to invite [inviteeEmail] Required`), the relay's own names
//! or their usual spellings; any other named column is a route attribute.

use super::sheet::SheetError;

/// Longest route attribute name taken from a heading.
const MAX_ATTRIBUTE_NAME: usize = 64;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Field {
    EventId,
    Email,
    DisplayName,
    GivenName,
    Surname,
    Company,
    Language,
    JobTitle,
    Department,
    UsageLocation,
    UserType,
    RedirectUrl,
    OwnerEmail,
    OwnerId,
    Channels,
    RecordId,
    ContractEnd,
    /// Entra's `sendEmail`: read, never applied (the deployment's channels deliver the link).
    SendEmail,
    /// Entra's `customizedMessageBody`: read, never applied (the templates write messages).
    MessageBody,
}

/// Headings each field answers to, lower-cased with everything but letters and digits removed.
/// A flat table: one line per field.
const NAMES: &[(Field, &[&str])] = &[
    (Field::EventId, &["eventid", "id"]),
    (
        Field::Email,
        &[
            "inviteeemail",
            "email",
            "emailaddress",
            "inviteduseremailaddress",
            "mail",
        ],
    ),
    (
        Field::DisplayName,
        &[
            "displayname",
            "name",
            "inviteduserdisplayname",
            "inviteedisplayname",
        ],
    ),
    (Field::GivenName, &["givenname", "firstname"]),
    (Field::Surname, &["surname", "lastname", "familyname"]),
    (
        Field::Company,
        &["company", "companyname", "organization", "organisation"],
    ),
    (Field::Language, &["language", "messagelanguage", "locale"]),
    (Field::JobTitle, &["jobtitle", "title"]),
    (Field::Department, &["department"]),
    (Field::UsageLocation, &["usagelocation"]),
    (Field::UserType, &["usertype", "invitedusertype"]),
    (
        Field::RedirectUrl,
        &[
            "inviteredirecturl",
            "redirecturl",
            "redirectionurl",
            "redirect",
        ],
    ),
    (Field::OwnerEmail, &["owner", "owneremail"]),
    (Field::OwnerId, &["ownerid"]),
    (Field::Channels, &["channels", "deliverychannels"]),
    (Field::RecordId, &["recordid"]),
    (Field::ContractEnd, &["contractend"]),
    (Field::SendEmail, &["sendemail", "sendinvitationmessage"]),
    (
        Field::MessageBody,
        &["customizedmessagebody", "invitationmessage", "message"],
    ),
];

/// One column of the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Column {
    Field(Field),
    /// A route attribute (`attributes.NAME`, or any other named heading): the event's
    /// `attributes.NAME`, which a source maps into `fields` for routes and templates.
    Attribute(String),
    /// A blank heading: its cells are not read.
    Blank,
}

/// The header's columns.
///
/// # Errors
/// [`SheetError`] when there is no email column, or two columns hold the same thing.
pub(crate) fn columns(line: u64, header: &csv::ByteRecord) -> Result<Vec<Column>, SheetError> {
    let mut columns = Vec::new();
    for i in 0..header.len() {
        let heading = std::str::from_utf8(header.get(i).unwrap_or_default())
            .map_err(|_| SheetError(format!("line {line}: the header is not UTF-8 text")))?;
        let column = column(heading);
        if column != Column::Blank && columns.contains(&column) {
            return Err(SheetError(format!(
                "line {line}: column {} says again what an earlier column says ({})",
                i + 1,
                heading.trim()
            )));
        }
        columns.push(column);
    }
    if !columns.contains(&Column::Field(Field::Email)) {
        return Err(SheetError(format!(
            "line {line}: no usable header: no email column (e.g. `email`, or Entra's \
             `Email address to invite [inviteeEmail] Required`)"
        )));
    }
    Ok(columns)
}

/// What a heading means: its bracketed property name when it has one (Entra's template),
/// else the heading itself.
pub(crate) fn column(heading: &str) -> Column {
    let heading = heading.trim_start_matches('\u{feff}').trim();
    let name = match (heading.find('['), heading.find(']')) {
        (Some(a), Some(b)) if a < b => heading[a + 1..b].trim(),
        _ => heading,
    };
    if name.is_empty() {
        return Column::Blank;
    }
    let attribute = name
        .strip_prefix("attributes.")
        .or_else(|| name.strip_prefix("attribute."));
    if let Some(attribute) = attribute {
        return Column::Attribute(attribute.trim().to_owned());
    }
    let key: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    NAMES
        .iter()
        .find(|(_, names)| names.contains(&key.as_str()))
        .map_or_else(
            || Column::Attribute(name.to_owned()),
            |(f, _)| Column::Field(*f),
        )
}

/// Whether `name` can be a route attribute's name (as an expression reads it).
pub(crate) fn attribute_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ATTRIBUTE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_by_bracket_alias_or_attribute() {
        assert_eq!(
            column("Email address to invite [inviteeEmail] Required"),
            Column::Field(Field::Email)
        );
        assert_eq!(column("E-Mail"), Column::Field(Field::Email));
        assert_eq!(column("Redirect URL"), Column::Field(Field::RedirectUrl));
        assert_eq!(
            column("attributes.pipeline"),
            Column::Attribute("pipeline".into())
        );
        assert_eq!(column("region"), Column::Attribute("region".into()));
        assert_eq!(column("  "), Column::Blank);
    }
}
