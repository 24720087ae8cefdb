//! Interlock's domain: the vocabulary every other layer speaks.
//!
//! This crate does no IO and knows nothing of HTTP, SQL or keys. It holds regions, typed
//! identifiers that are parsed (never merely validated) at the edge, and validated inputs for
//! customer data. A value of one of these types is proof that its checks ran.

pub mod activity;
pub mod error;
pub mod id;
pub mod input;
pub mod messenger;
pub mod permission;
pub mod region;
pub mod retention;
pub mod staff;
pub mod teammate;

pub use activity::{ActivityEntry, ActivityType, Actor, ActorType, NewActivity, Target};
pub use error::DomainError;
pub use id::{
    ActivityId, ApiTokenId, AttachmentId, ContactId, ConversationId, DataRequestId, EventId,
    MessengerSecretId, PartId, PasskeyId, ReceiptId, RoleId, SessionId, SubjectKeyId, TeammateId,
    WorkspaceId,
};
pub use id::{DeliveryId, SubprocessorId, WebhookId};
pub use id::{ReviewCampaignId, ReviewItemId, StaffGrantId, StaffId};
pub use input::{
    AttachmentName, Author, AuthorType, Body, ContactPatch, ContactRole, CustomAttributes, Email,
    EventMetadata, EventName, ExternalId, NewContact, NewEvent, PersonName, Phone, SecretName,
};
pub use messenger::{IdentityVerification, MessengerSettings, Platform, Platforms};
pub use permission::{BuiltinRole, Decision, Permission, PermissionSet, authorize};
pub use region::Region;
pub use retention::RetentionSettings;
pub use staff::{AccessAsk, GrantKind, GrantState, GrantStatus, StaffAccessApproval, StaffRole};
pub use teammate::{IpAllowlist, SecuritySettings, TeammateRole};
