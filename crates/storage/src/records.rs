//! Decrypted records as the store hands them out. They hold personal data, so their `Debug`
//! shows ids only.

use interlock_domain::{
    AttachmentId, AuthorType, ContactId, ContactRole, ConversationId, EventId, PartId, Region,
    WorkspaceId,
};
use serde_json::{Map, Value};

macro_rules! redacted_debug {
    ($t:ty, $($id:ident),+) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($id), &self.$id))+
                    .finish_non_exhaustive()
            }
        }
    };
}

pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub region: Region,
    pub created_at: i64,
}
redacted_debug!(Workspace, id, region);

pub struct Contact {
    pub id: ContactId,
    pub role: ContactRole,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub custom_attributes: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
}
redacted_debug!(Contact, id, role);

pub struct Part {
    pub id: PartId,
    pub author_type: AuthorType,
    pub author_id: String,
    pub body: String,
    pub created_at: i64,
}
redacted_debug!(Part, id, author_type);

pub struct Conversation {
    pub id: ConversationId,
    pub contact_id: ContactId,
    pub created_at: i64,
    pub updated_at: i64,
    /// Filled by `get_conversation`; empty in lists.
    pub parts: Vec<Part>,
}
redacted_debug!(Conversation, id, contact_id);

pub struct Event {
    pub id: EventId,
    pub contact_id: ContactId,
    pub name: String,
    pub metadata: Map<String, Value>,
    pub created_at: i64,
}
redacted_debug!(Event, id, contact_id);

pub struct Attachment {
    pub id: AttachmentId,
    pub conversation_id: ConversationId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub created_at: i64,
}
redacted_debug!(Attachment, id, conversation_id);

/// A page of a list, with the id to continue after.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}
