//! Typed identifiers. Each id is a prefix and 32 lowercase hex digits of a UUIDv7 (so ids sort
//! by creation time, which cursor pagination relies on). Workspace ids also carry their region:
//! `ws_eu_0190…`. An id can only be made by `new()` or by `parse()`, so a malformed id never
//! reaches storage.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{DomainError, Region};

const HEX_LEN: usize = 32;

fn is_lower_hex(s: &str) -> bool {
    s.len() == HEX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn fresh_hex() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(format!("{}_{}", $prefix, fresh_hex()))
            }

            pub fn parse(s: &str) -> Result<Self, DomainError> {
                match s.strip_prefix(concat!($prefix, "_")) {
                    Some(rest) if is_lower_hex(rest) => Ok(Self(s.to_owned())),
                    _ => Err(DomainError::new(
                        $field,
                        "invalid_id",
                        concat!("not a valid ", $field, " (expected ", $prefix, "_ and 32 hex digits)"),
                    )),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A contact: an identified user or an anonymous visitor (a data subject).
    ContactId, "ct", "contact_id"
);
typed_id!(
    /// A conversation between a contact and the workspace.
    ConversationId, "cv", "conversation_id"
);
typed_id!(
    /// One message (part) of a conversation.
    PartId, "pt", "part_id"
);
typed_id!(
    /// A tracked event about a contact.
    EventId, "ev", "event_id"
);
typed_id!(
    /// A file attached to a conversation.
    AttachmentId, "at", "attachment_id"
);
typed_id!(
    /// A workspace teammate (support staff or admin).
    TeammateId, "tm", "teammate_id"
);
typed_id!(
    /// A teammate's passkey (WebAuthn credential).
    PasskeyId, "pk", "passkey_id"
);
typed_id!(
    /// A custom role of a workspace.
    RoleId, "rl", "role_id"
);
typed_id!(
    /// A teammate's signed-in session (its metadata; the cookie value is stored hashed).
    SessionId, "ss", "session_id"
);
typed_id!(
    /// A workspace API token (its metadata; the token itself is shown once and stored hashed).
    ApiTokenId, "tk", "token_id"
);
typed_id!(
    /// A messenger identity verification secret (its metadata; the value is never shown again).
    MessengerSecretId, "ms", "secret_id"
);
typed_id!(
    /// One data subject's encryption key. Destroying it shreds the subject's data.
    SubjectKeyId, "sk", "subject_key_id"
);
typed_id!(
    /// One activity log entry.
    ActivityId, "al", "activity_id"
);
typed_id!(
    /// A sub-processor of a region's registry (an outside party that may receive data).
    SubprocessorId, "sp", "subprocessor_id"
);
typed_id!(
    /// A workspace's webhook subscription.
    WebhookId, "wh", "webhook_id"
);
typed_id!(
    /// A member of the operator's staff (support or on-call engineer, approver): a principal
    /// of the region, never of a workspace. Pseudonymous in every log.
    StaffId, "sf", "staff_id"
);
typed_id!(
    /// A staff member's just-in-time (or break-glass) grant to one workspace.
    StaffGrantId, "sg", "grant_id"
);
typed_id!(
    /// An access review campaign.
    ReviewCampaignId, "rv", "campaign_id"
);
typed_id!(
    /// One item (a holder of standing access) of an access review campaign.
    ReviewItemId, "ri", "item_id"
);
typed_id!(
    /// One outbound delivery (a webhook message or an erasure notice); its id is the
    /// `webhook-id` header receivers deduplicate by.
    DeliveryId, "msg", "delivery_id"
);
typed_id!(
    /// A data subject request (access or erasure).
    DataRequestId, "dr", "data_request_id"
);
typed_id!(
    /// A signed deletion receipt (an erasure's or a workspace deletion's).
    ReceiptId, "rc", "receipt_id"
);

/// A workspace id: `ws_<region>_<32 hex>`. The region is part of the id so a request can be
/// routed (or refused with 421) before any store is read.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceId {
    raw: String,
    region: Region,
}

impl WorkspaceId {
    pub fn new(region: Region) -> Self {
        Self {
            raw: format!("ws_{}_{}", region.as_str(), fresh_hex()),
            region,
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let err = || {
            DomainError::new(
                "workspace_id",
                "invalid_id",
                "not a valid workspace_id (expected ws_<region>_ and 32 hex digits)",
            )
        };
        let rest = s.strip_prefix("ws_").ok_or_else(err)?;
        let (region, hex) = rest.split_once('_').ok_or_else(err)?;
        let region: Region = region.parse().map_err(|_| err())?;
        if !is_lower_hex(hex) {
            return Err(err());
        }
        Ok(Self {
            raw: s.to_owned(),
            region,
        })
    }

    pub fn region(&self) -> Region {
        self.region
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for WorkspaceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for WorkspaceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fresh_ids_parse_and_sort_by_time() {
        let a = ContactId::new();
        let b = ContactId::new();
        assert_eq!(ContactId::parse(a.as_str()), Ok(a.clone()));
        assert!(a < b);
    }

    #[test]
    fn rejects_wrong_prefix_and_bad_hex() {
        let c = ContactId::new();
        assert!(ConversationId::parse(c.as_str()).is_err());
        assert!(ContactId::parse("ct_XYZ").is_err());
        assert!(ContactId::parse(&c.as_str().to_uppercase()).is_err());
        assert!(ContactId::parse("").is_err());
    }

    #[test]
    fn workspace_ids_carry_region() {
        for r in Region::ALL {
            let w = WorkspaceId::new(r);
            let parsed = WorkspaceId::parse(w.as_str()).expect("parses");
            assert_eq!(parsed.region(), r);
        }
        assert!(WorkspaceId::parse("ws_xx_0123456789abcdef0123456789abcdef").is_err());
        assert!(WorkspaceId::parse("ws_us").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = ContactId::parse(&s);
            let _ = WorkspaceId::parse(&s);
        }
    }
}
