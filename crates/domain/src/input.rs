//! Validated customer-data inputs. Every type here is built by a `parse` function that checks
//! shape and size; the storage layer accepts only these types, so an unchecked value cannot be
//! written. Error messages never repeat the rejected value.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ContactId, DomainError};

/// Largest serialised size of a JSON object field (custom attributes, event metadata).
pub const MAX_JSON_FIELD_BYTES: usize = 64 * 1024;
/// Largest number of keys in a JSON object field.
pub const MAX_JSON_KEYS: usize = 200;

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

macro_rules! text_field {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(s: &str) -> Result<Self, DomainError> {
                let trimmed = s.trim();
                if trimmed.is_empty() {
                    return Err(DomainError::new($field, "empty", concat!($field, " must not be empty")));
                }
                if trimmed.chars().count() > Self::MAX_CHARS {
                    return Err(DomainError::new($field, "too_long", concat!($field, " is too long")));
                }
                if has_control(trimmed) {
                    return Err(DomainError::new(
                        $field,
                        "invalid_characters",
                        concat!($field, " must not contain control characters"),
                    ));
                }
                Ok(Self(trimmed.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        // Personal data: Debug never shows the value.
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

text_field!(
    /// The id a workspace's own system gives a user. Matched exactly.
    ExternalId, "external_id", 255
);
text_field!(
    /// The label of a messenger verification secret ("web 2026", "ios").
    SecretName, "name", 100
);
text_field!(
    /// A person's display name.
    PersonName, "name", 255
);
text_field!(
    /// The name of a tracked event.
    EventName, "name", 255
);

/// An attachment's file name: no path separators, no control characters.
#[derive(Clone, PartialEq, Eq)]
pub struct AttachmentName(String);

impl AttachmentName {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let t = s.trim();
        if t.is_empty() || t.chars().count() > 255 {
            return Err(DomainError::new(
                "filename",
                "invalid_filename",
                "filename must be 1 to 255 characters",
            ));
        }
        if has_control(t) || t.contains('/') || t.contains('\\') || t == "." || t == ".." {
            return Err(DomainError::new(
                "filename",
                "invalid_filename",
                "filename must not contain path separators or control characters",
            ));
        }
        Ok(Self(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AttachmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttachmentName(<redacted>)")
    }
}

/// An email address, normalised (trimmed, lower-cased) so exact-match lookups find it however
/// it was typed.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let err = |code, message| Err(DomainError::new("email", code, message));
        let normalised = s.trim().to_lowercase();
        if normalised.is_empty() {
            return err("empty", "email must not be empty");
        }
        if normalised.len() > 254 {
            return err("too_long", "email is too long");
        }
        if normalised
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return err("invalid_email", "email must not contain spaces");
        }
        match normalised.rsplit_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(Self(normalised))
            }
            _ => err("invalid_email", "email must look like name@domain"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

/// A phone number: digits and the usual punctuation, at most 64 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let t = s.trim();
        let digits = t.chars().filter(char::is_ascii_digit).count();
        if t.is_empty() || t.len() > 64 || digits < 3 {
            return Err(DomainError::new(
                "phone",
                "invalid_phone",
                "phone must hold 3 to 64 characters with at least 3 digits",
            ));
        }
        if !t
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            return Err(DomainError::new(
                "phone",
                "invalid_phone",
                "phone may hold only digits, spaces and + - ( ) .",
            ));
        }
        Ok(Self(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Phone(<redacted>)")
    }
}

fn bounded_object(
    field: &'static str,
    value: Map<String, Value>,
) -> Result<Map<String, Value>, DomainError> {
    if value.len() > MAX_JSON_KEYS {
        return Err(DomainError::new(field, "too_many_keys", "too many keys"));
    }
    if value
        .keys()
        .any(|k| k.is_empty() || k.chars().count() > 190)
    {
        return Err(DomainError::new(
            field,
            "invalid_key",
            "keys must be 1 to 190 characters",
        ));
    }
    let size = serde_json::to_vec(&value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_JSON_FIELD_BYTES {
        return Err(DomainError::new(
            field,
            "too_large",
            "object is larger than 64 KiB",
        ));
    }
    Ok(value)
}

/// A contact's custom attributes: a JSON object of at most 200 keys and 64 KiB.
#[derive(Clone, PartialEq, Default)]
pub struct CustomAttributes(Map<String, Value>);

impl CustomAttributes {
    pub fn parse(value: Map<String, Value>) -> Result<Self, DomainError> {
        bounded_object("custom_attributes", value).map(Self)
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

impl std::fmt::Debug for CustomAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomAttributes(<redacted>)")
    }
}

/// An event's metadata: a JSON object of at most 200 keys and 64 KiB.
#[derive(Clone, PartialEq, Default)]
pub struct EventMetadata(Map<String, Value>);

impl EventMetadata {
    pub fn parse(value: Map<String, Value>) -> Result<Self, DomainError> {
        bounded_object("metadata", value).map(Self)
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

impl std::fmt::Debug for EventMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventMetadata(<redacted>)")
    }
}

/// A message body: not blank. Its size is bounded by the request body limit.
#[derive(Clone, PartialEq, Eq)]
pub struct Body(String);

impl Body {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.trim().is_empty() {
            return Err(DomainError::new("body", "empty", "body must not be empty"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Body(<redacted>)")
    }
}

/// Whether a contact is an identified user or an anonymous visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactRole {
    User,
    Visitor,
}

impl ContactRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            ContactRole::User => "user",
            ContactRole::Visitor => "visitor",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "user" => Ok(Self::User),
            "visitor" => Ok(Self::Visitor),
            _ => Err(DomainError::new(
                "role",
                "invalid_role",
                "role must be user or visitor",
            )),
        }
    }
}

/// Who wrote a conversation part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorType {
    Teammate,
    Contact,
}

impl AuthorType {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthorType::Teammate => "teammate",
            AuthorType::Contact => "contact",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "teammate" => Ok(Self::Teammate),
            "contact" => Ok(Self::Contact),
            _ => Err(DomainError::new(
                "author.type",
                "invalid_author",
                "author.type must be teammate or contact",
            )),
        }
    }
}

/// The author of a part: its kind and id (a `tm_…` or `ct_…` id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub kind: AuthorType,
    pub id: String,
}

impl Author {
    pub fn parse(kind: AuthorType, id: &str) -> Result<Self, DomainError> {
        let ok = match kind {
            AuthorType::Teammate => crate::TeammateId::parse(id).is_ok(),
            AuthorType::Contact => ContactId::parse(id).is_ok(),
        };
        if !ok {
            return Err(DomainError::new(
                "author.id",
                "invalid_id",
                "author.id is not a valid id for author.type",
            ));
        }
        Ok(Self {
            kind,
            id: id.to_owned(),
        })
    }
}

/// A contact to create.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub role: ContactRole,
    pub external_id: Option<ExternalId>,
    pub email: Option<Email>,
    pub name: Option<PersonName>,
    pub phone: Option<Phone>,
    pub custom_attributes: CustomAttributes,
}

impl NewContact {
    /// Cross-field rule: a user (unlike a visitor) must be identifiable.
    pub fn check(self) -> Result<Self, DomainError> {
        if self.role == ContactRole::User && self.external_id.is_none() && self.email.is_none() {
            return Err(DomainError::new(
                "role",
                "user_needs_identifier",
                "a contact with role user needs an external_id or an email",
            ));
        }
        Ok(self)
    }
}

/// Changes to a contact. `None` leaves a field as it is; `Some(None)` clears it.
/// `custom_attributes` is merged into the stored object: a key set to `null` is removed; the
/// merged object must still pass [`CustomAttributes::parse`].
#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    pub role: Option<ContactRole>,
    pub external_id: Option<Option<ExternalId>>,
    pub email: Option<Option<Email>>,
    pub name: Option<Option<PersonName>>,
    pub phone: Option<Option<Phone>>,
    pub custom_attributes: Option<Map<String, Value>>,
}

impl ContactPatch {
    /// Apply the attribute merge to `current`.
    pub fn merge_attributes(
        &self,
        mut current: Map<String, Value>,
    ) -> Result<Map<String, Value>, DomainError> {
        if let Some(changes) = &self.custom_attributes {
            for (k, v) in changes {
                if v.is_null() {
                    current.remove(k);
                } else {
                    current.insert(k.clone(), v.clone());
                }
            }
        }
        CustomAttributes::parse(current).map(CustomAttributes::into_map)
    }
}

/// An event to record about a contact.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub contact_id: ContactId,
    pub name: EventName,
    pub metadata: EventMetadata,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_is_normalised() {
        let e = Email::parse("  Alice@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "alice@example.com");
        assert!(Email::parse("no-at-sign").is_err());
        assert!(Email::parse("a@").is_err());
        assert!(Email::parse("a b@example.com").is_err());
        assert!(Email::parse(&format!("{}@x.io", "a".repeat(260))).is_err());
    }

    #[test]
    fn debug_never_shows_personal_data() {
        let e = Email::parse("secret@example.com").expect("valid");
        let n = PersonName::parse("Secret Person").expect("valid");
        let b = Body::parse("secret body").expect("valid");
        let all = format!("{e:?}{n:?}{b:?}");
        assert!(!all.contains("secret"), "{all}");
    }

    #[test]
    fn errors_do_not_echo_values() {
        let err = Email::parse("secret-marker").expect_err("invalid");
        assert!(!err.to_string().contains("secret-marker"));
    }

    #[test]
    fn user_needs_identifier() {
        let c = NewContact {
            role: ContactRole::User,
            external_id: None,
            email: None,
            name: None,
            phone: None,
            custom_attributes: CustomAttributes::default(),
        };
        assert!(c.clone().check().is_err());
        let v = NewContact {
            role: ContactRole::Visitor,
            ..c
        };
        assert!(v.check().is_ok());
    }

    #[test]
    fn phone_and_filename_rules() {
        assert!(Phone::parse("+1 (555) 010-2030").is_ok());
        assert!(Phone::parse("call me").is_err());
        assert!(AttachmentName::parse("report.pdf").is_ok());
        assert!(AttachmentName::parse("../etc/passwd").is_err());
        assert!(AttachmentName::parse("..").is_err());
    }

    #[test]
    fn json_objects_are_bounded() {
        let mut m = Map::new();
        m.insert("k".into(), Value::String("x".repeat(MAX_JSON_FIELD_BYTES)));
        assert!(CustomAttributes::parse(m).is_err());
        let mut m = Map::new();
        m.insert(String::new(), Value::Null);
        assert!(EventMetadata::parse(m).is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = Email::parse(&s);
            let _ = Phone::parse(&s);
            let _ = PersonName::parse(&s);
            let _ = AttachmentName::parse(&s);
            let _ = Body::parse(&s);
        }
    }
}
