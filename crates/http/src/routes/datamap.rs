//! The data map: every data element Interlock stores, with its category, protection, retention
//! and erasure (`interlock_storage::datamap`). A catalogue, like `/v1/permissions`: any
//! authenticated caller of a workspace may read it, no permission needed.
//!
//! The handler serves the registry's own serialisation; the types below only describe it for
//! the OpenAPI document, and a test checks they read the served JSON back exactly.

use interlock_storage::datamap::{self, DataMap};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Json, WorkspaceAuth};

/// The data map.
#[utoipa::path(get, path = "/v1/data-map", tag = "privacy",
    responses((status = 200, body = DataMapOut)),
    security(("workspace_token" = []), ("teammate_session" = [])))]
pub async fn get(_auth: WorkspaceAuth) -> Json<DataMap> {
    Json(datamap::document())
}

/// Every stored data element: the tables of the region database, the attachment files and the
/// key files.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataMapOut {
    pub collections: Vec<CollectionOut>,
}

/// A table, or a set of files.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionOut {
    pub name: String,
    /// `table`, `blobs` or `key_files`.
    #[schema(example = "table")]
    pub kind: String,
    /// Where it lives, per region.
    pub location: String,
    pub description: String,
    /// Primary-key columns in order (empty for files).
    pub primary_key: Vec<String>,
    pub fields: Vec<FieldOut>,
    /// Secondary indexes (tables only).
    pub indexes: Vec<IndexOut>,
}

/// One data element: a column, or a part of a file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldOut {
    pub name: String,
    /// A fideslang data category key.
    #[schema(example = "user.contact.email")]
    pub data_category: String,
    /// `customer`, `anonymous_user`, `employee`, or null for data about no person.
    #[schema(example = "customer")]
    pub data_subject: Option<String>,
    /// A fideslang data use key.
    #[schema(example = "essential.service")]
    pub data_use: String,
    /// `none`, `subject_key`, `workspace_key`, `master_key`, `hmac_blind_index`,
    /// `sha256_hash` or `argon2id`.
    #[schema(example = "subject_key")]
    pub encryption: String,
    pub retention: RetentionOut,
    /// `shredded_with_subject_key`, `deleted_with_subject`, `deleted_on_removal`,
    /// `cleared_on_removal`, `deleted_after_removal`, `kept_pseudonymous`,
    /// `deleted_with_workspace` or `not_personal`.
    #[schema(example = "shredded_with_subject_key")]
    pub erasure: String,
    pub description: String,
}

/// How long a data element is kept.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionOut {
    /// `workspace_inactivity` (days), `while_workspace_exists`, `visitor_inactivity` (days),
    /// `conversation_inactivity`, `while_teammate_is_member`, `removed_teammate` (days),
    /// `expires` (seconds), `activity_log` (days), `until_retired` or `operator_managed`.
    #[schema(example = "visitor_inactivity")]
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
}

/// A named secondary index.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexOut {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The OpenAPI types read the served JSON with nothing left over, and write it back the
    /// same: the document describes what is served.
    #[test]
    fn the_schema_types_describe_the_served_json() {
        let served = serde_json::to_value(datamap::document()).unwrap();
        let read: DataMapOut = serde_json::from_value(served.clone()).unwrap();
        assert_eq!(serde_json::to_value(&read).unwrap(), served);
        assert!(read.collections.iter().any(|c| c.name == "contacts"));
    }

    /// The map's activity-log retention is the server's default.
    #[test]
    fn activity_log_retention_matches_the_server_default() {
        assert_eq!(
            crate::activity_tasks::ActivitySettings::default().retention_days,
            datamap::ACTIVITY_LOG_DAYS
        );
        assert_eq!(
            crate::messenger::MessengerLimits::default().session_ttl_s,
            datamap::MESSENGER_SESSION_SECONDS as i64
        );
    }
}
