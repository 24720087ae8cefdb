//! The backup file format and the list of tables a backup holds.
//!
//! A backup is one region's store at one moment, sealed so that it is useless without that
//! region's master keys (which it never contains):
//!
//! ```text
//! "ILBACKUP" | u32 header length | header (JSON, plaintext: no customer data, no counts)
//! frame*     = u32 length | u8 flag (0 = more, 1 = final) | AES-256-GCM sealed frame (JSON)
//! ```
//!
//! - The header names the backup id (random), region, schema version, creation time, the
//!   master key version and the backup key: a random 256-bit key wrapped under that master key
//!   (AES-256-GCM, associated data binding the backup id). The master key stays in the key
//!   folder; without it the backup key cannot be unwrapped.
//! - Every frame is sealed under the backup key with associated data binding the backup id,
//!   the SHA-256 of the header bytes, the frame's index and its flag. So an edited header, a
//!   changed, removed, duplicated or reordered frame, a flipped flag and a truncated file (no
//!   final frame) are all refused; nothing may follow the final frame.
//! - Frames: a manifest (tables, their columns and row counts, the number of blob files) first,
//!   then rows table by table (in creation order, so foreign keys hold while restoring), then
//!   attachment files in pieces, then an end frame with totals (the only final frame).
//!
//! [`TABLES`] lists every table with static SQL to read, insert and purge it; the test below
//! checks it against the data map, and `tests/backup.rs` against the migrated schema, so a new
//! table or column cannot be left out of backups.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use interlock_crypto::{Aad, AeadKey, CryptoError, KeyMaterial, Keyring};
use interlock_domain::Region;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::db::RowInsert;

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"ILBACKUP";
/// The format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Rows per frame (frames are also cut at about [`FRAME_BYTES`] of plaintext).
pub const ROWS_PER_FRAME: usize = 500;
/// A frame's plaintext is cut at about this size.
pub const FRAME_BYTES: usize = 1 << 20;
/// Attachment files are carried in pieces of at most this size.
pub const BLOB_PIECE: usize = 1 << 20;
/// Largest sealed frame a reader accepts (a damaged length cannot make it allocate more).
const MAX_FRAME: usize = 16 << 20;
/// Largest header a reader accepts.
const MAX_HEADER: usize = 64 << 10;
const AAD_TABLE: &str = "interlock-backup-v1";

/// The SQL type of a column, for reading and for binding (typed NULLs for PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bytes,
}

/// One table: static SQL to read it in primary-key order, insert rows and purge a workspace.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// `SELECT <columns> FROM <table> ORDER BY <primary key>`.
    pub select: &'static str,
    /// `SELECT COUNT(*) FROM <table>`.
    pub count: &'static str,
    /// `INSERT INTO <table> (<columns>) VALUES ` (placeholders are added per batch).
    pub insert: RowInsert,
    /// `DELETE FROM <table> WHERE <workspace column> = $1`, or `None` for region-wide tables.
    pub purge: Option<&'static str>,
}

macro_rules! table {
    (
        $name:ident, pk($pk0:ident $(, $pk:ident)*), purge($($purge:tt)?),
        $c0:ident: $k0:ident $(, $c:ident: $k:ident)* $(,)?
    ) => {
        TableSpec {
            name: stringify!($name),
            columns: &[(stringify!($c0), Kind::$k0) $(, (stringify!($c), Kind::$k))*],
            select: concat!(
                "SELECT ", stringify!($c0) $(, ", ", stringify!($c))*,
                " FROM ", stringify!($name),
                " ORDER BY ", stringify!($pk0) $(, ", ", stringify!($pk))*
            ),
            count: concat!("SELECT COUNT(*) FROM ", stringify!($name)),
            insert: RowInsert {
                head: concat!(
                    "INSERT INTO ", stringify!($name),
                    " (", stringify!($c0) $(, ", ", stringify!($c))*, ") VALUES "
                ),
                columns: [stringify!($c0) $(, stringify!($c))*].len(),
            },
            purge: table!(@purge $name $($purge)?),
        }
    };
    (@purge $name:ident) => {
        Some(concat!("DELETE FROM ", stringify!($name), " WHERE workspace_id = $1"))
    };
    (@purge $name:ident "none") => { None };
    (@purge $name:ident $sql:literal) => { Some($sql) };
}

/// Every table of the schema, in creation order (parents before children). A table added by
/// a migration must be added here too (a test fails until it is), at its place in the data
/// map's order.
pub static TABLES: &[TableSpec] = &[
    table!(workspaces, pk(id), purge("DELETE FROM workspaces WHERE id = $1"),
        id: Text, region: Text, name_ct: Bytes, key_version: Int, created_at: Int,
        last_active_at: Int, inactivity_notice_at: Int, deleted_at: Int),
    table!(workspace_keys, pk(workspace_id, version), purge(),
        workspace_id: Text, version: Int, master_version: Int, wrapped: Bytes, created_at: Int),
    table!(api_tokens, pk(token_hash), purge(),
        token_hash: Bytes, workspace_id: Text, created_at: Int, id: Text, name_ct: Bytes,
        ws_key_version: Int, permissions: Text, expires_at: Int, created_by: Text),
    table!(subject_keys, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, ws_key_version: Int, wrapped: Bytes, created_at: Int,
        owner_id: Text),
    table!(contacts, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, role: Text, subject_key_id: Text,
        external_id_ct: Bytes, external_id_bidx: Bytes, email_ct: Bytes, email_bidx: Bytes,
        name_ct: Bytes, phone_ct: Bytes, custom_attributes_ct: Bytes, created_at: Int,
        updated_at: Int, last_seen_at: Int),
    table!(conversations, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, contact_id: Text, subject_key_id: Text, created_at: Int,
        updated_at: Int),
    table!(conversation_parts, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, conversation_id: Text, author_type: Text,
        author_id: Text, body_ct: Bytes, created_at: Int),
    table!(events, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, contact_id: Text, subject_key_id: Text, name_ct: Bytes,
        metadata_ct: Bytes, created_at: Int),
    table!(attachments, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, conversation_id: Text, subject_key_id: Text,
        filename_ct: Bytes, content_type_ct: Bytes, size_bytes: Int, created_at: Int),
    table!(messenger_settings, pk(workspace_id), purge(),
        workspace_id: Text, identity_verification: Text, jwt_max_lifetime_s: Int,
        updated_at: Int),
    table!(messenger_secrets, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, name_ct: Bytes, platforms: Text, value_ct: Bytes,
        ws_key_version: Int, created_at: Int),
    table!(visitor_tokens, pk(token_hash), purge(),
        token_hash: Bytes, workspace_id: Text, contact_id: Text, created_at: Int),
    table!(messenger_sessions, pk(token_hash), purge(),
        token_hash: Bytes, workspace_id: Text, contact_id: Text, scope: Text, expires_at: Int,
        created_at: Int),
    table!(messenger_session_conversations, pk(token_hash, conversation_id), purge(),
        token_hash: Bytes, workspace_id: Text, conversation_id: Text),
    table!(roles, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, name_ct: Bytes, ws_key_version: Int, permissions: Text,
        created_at: Int),
    table!(teammates, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, email_ct: Bytes, email_bidx: Bytes, name_ct: Bytes,
        ws_key_version: Int, role: Text, password_hash: Text, totp_secret_ct: Bytes,
        totp_enabled: Int, totp_last_step: Int, removed_at: Int, created_at: Int),
    table!(invitations, pk(token_hash), purge(),
        token_hash: Bytes, workspace_id: Text, teammate_id: Text, expires_at: Int,
        created_at: Int),
    table!(teammate_sessions, pk(token_hash), purge(),
        token_hash: Bytes, id: Text, workspace_id: Text, teammate_id: Text, csrf_hash: Bytes,
        created_at: Int, last_seen_at: Int),
    table!(recovery_codes, pk(workspace_id, teammate_id, code_hash), purge(),
        workspace_id: Text, teammate_id: Text, code_hash: Bytes),
    table!(workspace_security, pk(workspace_id), purge(),
        workspace_id: Text, require_two_factor: Int, session_idle_s: Int,
        session_absolute_s: Int, ip_allowlist: Text, updated_at: Int),
    table!(workspace_retention, pk(workspace_id), purge(),
        workspace_id: Text, conversation_days: Int, visitor_days: Int, updated_at: Int),
    table!(login_throttle, pk(workspace_id, subject), purge(),
        workspace_id: Text, subject: Bytes, failures: Int, locked_until: Int, updated_at: Int),
    table!(teammate_passkeys, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, teammate_id: Text, name_ct: Bytes, passkey_ct: Bytes,
        ws_key_version: Int, created_at: Int),
    table!(webauthn_ceremonies, pk(token_hash), purge(),
        token_hash: Bytes, workspace_id: Text, teammate_id: Text, kind: Text, state_ct: Bytes,
        ws_key_version: Int, expires_at: Int),
    table!(activity_log, pk(workspace_id, seq), purge(),
        workspace_id: Text, seq: Int, id: Text, type: Text, created_at: Int, actor_type: Text,
        actor_id: Text, target_type: Text, target_id: Text, body_ct: Bytes,
        ws_key_version: Int, hash: Text),
    table!(activity_heads, pk(workspace_id), purge(),
        workspace_id: Text, seq: Int, hash: Text, first_seq: Int, anchor_hash: Text,
        checkpoint_seq: Int, checkpoint_at: Int),
    table!(activity_checkpoints, pk(workspace_id, tree_size), purge(),
        workspace_id: Text, tree_size: Int, head_hash: Text, created_at: Int, key_id: Text,
        signature: Text),
    table!(activity_sink_cursors, pk(sink, workspace_id), purge(),
        sink: Text, workspace_id: Text, seq: Int),
    table!(subprocessors, pk(id), purge("none"),
        id: Text, name: Text, purpose: Text, data_categories: Text, regions: Text, hosts: Text,
        deletion_notice_url: Text, created_at: Int, updated_at: Int),
    table!(webhooks, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, url_ct: Bytes, secret_ct: Bytes, events: Text,
        ws_key_version: Int, created_at: Int),
    table!(outbox, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, kind: Text, event: Text, webhook_id: Text,
        subprocessor_id: Text, payload_ct: Bytes, ws_key_version: Int, document: Text,
        subject_id: Text, attempts: Int, next_attempt_at: Int, status: Text, last_error: Text,
        created_at: Int, updated_at: Int),
    table!(subject_disclosures, pk(workspace_id, contact_id, subprocessor_id), purge(),
        workspace_id: Text, contact_id: Text, subprocessor_id: Text, first_at: Int),
    table!(data_requests, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, type: Text, status: Text, subject_id: Text,
        requested_by: Text, archive_key_ct: Bytes, ws_key_version: Int, archive_bytes: Int,
        pending_blobs: Text, receipt_id: Text, created_at: Int, completed_at: Int,
        expires_at: Int),
    // A workspace's own deletion receipt outlives it (it is proof of the deletion).
    table!(deletion_receipts, pk(id),
        purge("DELETE FROM deletion_receipts WHERE workspace_id = $1 AND kind <> 'workspace'"),
        id: Text, workspace_id: Text, kind: Text, subject_id: Text, receipt: Text,
        created_at: Int),
    // Operator staff (region-wide) and their grants to workspaces.
    table!(staff, pk(id), purge("none"),
        id: Text, email_ct: Bytes, role: Text, totp_secret_ct: Bytes, master_version: Int,
        totp_last_step: Int, created_at: Int, disabled_at: Int, failed_sign_ins: Int,
        sign_in_locked_until: Int),
    table!(staff_devices, pk(serial), purge("none"),
        serial: Text, staff_id: Text, fingerprint: Text, name: Text, issued_at: Int,
        expires_at: Int, revoked_at: Int),
    table!(staff_sessions, pk(token_hash), purge("none"),
        token_hash: Bytes, staff_id: Text, device_serial: Text, created_at: Int, expires_at: Int),
    table!(staff_passkeys, pk(id), purge("none"),
        id: Text, staff_id: Text, name_ct: Bytes, passkey_ct: Bytes, master_version: Int,
        created_at: Int),
    table!(staff_audit, pk(seq), purge("none"),
        seq: Int, id: Text, type: Text, created_at: Int, staff_id: Text, body_ct: Bytes,
        master_version: Int, hash: Text),
    table!(staff_ceremonies, pk(token_hash), purge("none"),
        token_hash: Bytes, staff_id: Text, device_serial: Text, kind: Text, state_ct: Bytes,
        master_version: Int, expires_at: Int),
    table!(staff_grants, pk(workspace_id, id), purge(),
        workspace_id: Text, id: Text, staff_id: Text, kind: Text, permissions: Text,
        reason_ct: Bytes, ticket_ct: Bytes, ws_key_version: Int, duration_s: Int,
        workspace_approval_required: Int, created_at: Int, staff_approved_by: Text,
        staff_approved_at: Int, workspace_approved_by: Text, workspace_approved_at: Int,
        starts_at: Int, expires_at: Int, confirmed_by: Text, confirmed_at: Int, revoked_at: Int,
        revoked_by: Text, token_hash: Bytes, ended_logged_at: Int),
    table!(workspace_staff_access, pk(workspace_id), purge(),
        workspace_id: Text, approval: Text, updated_at: Int),
    table!(access_review_campaigns, pk(id), purge("none"),
        id: Text, started_at: Int, deadline_at: Int, closed_at: Int),
    table!(access_review_items, pk(campaign_id, id),
        purge("DELETE FROM access_review_items WHERE workspace_id = $1"),
        campaign_id: Text, id: Text, kind: Text, holder_id: Text, workspace_id: Text, role: Text,
        permissions: Text, baseline: Text, decision: Text, decided_by: Text, decided_at: Int),
];

/// A table by name.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// The plaintext header (no customer data, no counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    /// `bk_` and 32 hex digits.
    pub backup_id: String,
    pub region: Region,
    pub created_at_ms: i64,
    /// The newest migration the source had applied; a restore needs the same.
    pub schema_version: i64,
    /// The master key version the backup key is wrapped under.
    pub master_key_version: i64,
    /// The backup key wrapped under that master key (base64).
    pub wrapped_key: String,
}

/// One table in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableManifest {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: u64,
}

/// A frame's plaintext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Frame {
    /// Always frame 0: what follows.
    Manifest {
        tables: Vec<TableManifest>,
        blobs: u64,
    },
    /// Rows of one table, each a list of values in the manifest's column order: `null`, an
    /// integer, a string, or base64 for bytes.
    Rows {
        table: String,
        rows: Vec<Vec<serde_json::Value>>,
    },
    /// A piece of one attachment file (its sealed bytes, base64); `last` on its final piece.
    Blob {
        workspace_id: String,
        attachment_id: String,
        data: String,
        last: bool,
    },
    /// Always the final frame.
    End { rows: u64, blobs: u64 },
}

/// What can go wrong with a backup file.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not an Interlock backup (bad magic bytes)")]
    NotABackup,
    #[error(
        "backup format {0} is not supported by this version (it reads format {FORMAT_VERSION})"
    )]
    UnsupportedFormat(u32),
    #[error("the backup is damaged or was altered: {0}")]
    Damaged(String),
    #[error("the backup is truncated: {0}")]
    Truncated(String),
    #[error("{0}")]
    Keys(String),
    #[error("{0}")]
    Refused(String),
    #[error("backup file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CryptoError> for BackupError {
    fn from(e: CryptoError) -> Self {
        BackupError::Store(StoreError::Crypto(e))
    }
}

fn header_hash(bytes: &[u8]) -> String {
    hex::encode(interlock_crypto::sha256(bytes))
}

/// The associated data of frame `index`: binds the backup, its header, the position and the
/// final flag.
fn frame_aad(backup_id: &str, header_hash: &str, index: u64, last: bool) -> Aad {
    Aad::new(
        backup_id,
        AAD_TABLE,
        &format!("{index}/{header_hash}"),
        if last { "final" } else { "frame" },
        "",
    )
}

/// The pseudo-workspace name the backup key is wrapped for (never a real workspace id, which
/// starts `ws_`), so a wrapped backup key cannot stand in for a workspace key or the reverse.
fn wrap_name(backup_id: &str) -> String {
    format!("backup/{backup_id}")
}

/// Writes a backup: header, then sealed frames.
pub struct BackupWriter<W: Write> {
    out: W,
    key: AeadKey,
    backup_id: String,
    header_hash: String,
    next: u64,
    done: bool,
}

impl<W: Write> std::fmt::Debug for BackupWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupWriter")
            .field("backup_id", &self.backup_id)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<W: Write> BackupWriter<W> {
    /// Start a backup of `region` under the keyring's active master key: a fresh backup id
    /// and key, and the header written.
    pub fn start(
        mut out: W,
        keyring: &Keyring,
        region: Region,
        schema_version: i64,
    ) -> Result<(Self, Header), BackupError> {
        let backup_id = format!(
            "bk_{}",
            hex::encode(interlock_crypto::random_bytes::<16>()?)
        );
        let master = keyring.active()?;
        let material = KeyMaterial::generate()?;
        let wrapped = master.wrap_workspace_key(&wrap_name(&backup_id), 0, &material)?;
        let header = Header {
            format: FORMAT_VERSION,
            backup_id: backup_id.clone(),
            region,
            created_at_ms: crate::now_ms(),
            schema_version,
            master_key_version: master.version,
            wrapped_key: B64.encode(wrapped),
        };
        let bytes = serde_json::to_vec(&header)
            .map_err(|e| BackupError::Damaged(format!("header: {e}")))?;
        out.write_all(MAGIC)?;
        out.write_all(&(bytes.len() as u32).to_be_bytes())?;
        out.write_all(&bytes)?;
        Ok((
            Self {
                out,
                key: AeadKey::new(&material)?,
                backup_id,
                header_hash: header_hash(&bytes),
                next: 0,
                done: false,
            },
            header,
        ))
    }

    /// Seal and write one frame; `last` only for the end frame.
    pub fn frame(&mut self, frame: &Frame, last: bool) -> Result<(), BackupError> {
        if self.done {
            return Err(BackupError::Refused("a frame after the final frame".into()));
        }
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(frame).map_err(|e| BackupError::Damaged(format!("frame: {e}")))?,
        );
        let aad = frame_aad(&self.backup_id, &self.header_hash, self.next, last);
        let sealed = self.key.seal(&aad, &plain)?;
        self.out.write_all(&(sealed.len() as u32).to_be_bytes())?;
        self.out.write_all(&[u8::from(last)])?;
        self.out.write_all(&sealed)?;
        self.next += 1;
        self.done = last;
        Ok(())
    }

    /// The underlying writer (after the final frame).
    pub fn finish(mut self) -> Result<W, BackupError> {
        if !self.done {
            return Err(BackupError::Refused("no final frame written".into()));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a backup: the header, then (with the key) frames in order, refusing any damage.
pub struct BackupReader<R: Read> {
    input: R,
    header: Header,
    header_hash: String,
    key: Option<AeadKey>,
    next: u64,
    done: bool,
}

impl<R: Read> std::fmt::Debug for BackupReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupReader")
            .field("backup_id", &self.header.backup_id)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

fn read_full<R: Read>(input: &mut R, buf: &mut [u8], what: &str) -> Result<(), BackupError> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            BackupError::Truncated(format!("it ends inside {what}"))
        } else {
            BackupError::Io(e)
        }
    })
}

impl<R: Read> BackupReader<R> {
    /// Read and check the header.
    pub fn open(mut input: R) -> Result<Self, BackupError> {
        let mut magic = [0u8; 8];
        read_full(&mut input, &mut magic, "the magic bytes").map_err(|e| match e {
            BackupError::Truncated(_) => BackupError::NotABackup,
            other => other,
        })?;
        if &magic != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let mut len = [0u8; 4];
        read_full(&mut input, &mut len, "the header")?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_HEADER {
            return Err(BackupError::Damaged("header too long".into()));
        }
        let mut bytes = vec![0u8; len];
        read_full(&mut input, &mut bytes, "the header")?;
        let format = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64))
            .ok_or_else(|| BackupError::Damaged("the header is not readable".into()))?;
        if format != u64::from(FORMAT_VERSION) {
            return Err(BackupError::UnsupportedFormat(
                u32::try_from(format).unwrap_or(u32::MAX),
            ));
        }
        let header: Header = serde_json::from_slice(&bytes)
            .map_err(|_| BackupError::Damaged("the header is not readable".into()))?;
        Ok(Self {
            input,
            header_hash: header_hash(&bytes),
            header,
            key: None,
            next: 0,
            done: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Unwrap the backup key with the region's master key from `keyring` (the source
    /// deployment's key folder).
    pub fn unlock(&mut self, keyring: &Keyring) -> Result<(), BackupError> {
        let h = &self.header;
        if keyring.region() != h.region {
            return Err(BackupError::Keys(format!(
                "the backup is of region {}, the keys are of region {}",
                h.region,
                keyring.region()
            )));
        }
        let master = keyring.get(h.master_key_version).map_err(|_| {
            BackupError::Keys(format!(
                "the key folder has no master key v{} for region {}: the backup was made with \
                 another deployment's keys (give its --key-dir), or that key version was retired",
                h.master_key_version, h.region
            ))
        })?;
        let wrapped = B64
            .decode(&h.wrapped_key)
            .map_err(|_| BackupError::Damaged("the wrapped key is not base64".into()))?;
        let material = master
            .unwrap_workspace_key(&wrap_name(&h.backup_id), 0, &wrapped)
            .map_err(|_| {
                BackupError::Keys(format!(
                    "the key folder's master key v{} of region {} does not open this backup: \
                     it was made with another deployment's keys (wrong --key-dir?) or its \
                     header was altered",
                    h.master_key_version, h.region
                ))
            })?;
        self.key = Some(AeadKey::new(&material)?);
        Ok(())
    }

    /// The next frame, `None` after the final one (which must be the end of the file).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, BackupError> {
        let Some(key) = &self.key else {
            return Err(BackupError::Keys("the backup is locked".into()));
        };
        if self.done {
            let mut one = [0u8; 1];
            return match self.input.read(&mut one)? {
                0 => Ok(None),
                _ => Err(BackupError::Damaged(
                    "there are bytes after the final frame".into(),
                )),
            };
        }
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = self.input.read(&mut len[got..])?;
            if n == 0 {
                return Err(BackupError::Truncated(format!(
                    "{} frames and no final frame",
                    self.next
                )));
            }
            got += n;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(BackupError::Damaged(format!(
                "frame {} has an impossible length",
                self.next
            )));
        }
        let mut flag = [0u8; 1];
        read_full(&mut self.input, &mut flag, "a frame")?;
        let last = match flag[0] {
            0 => false,
            1 => true,
            _ => {
                return Err(BackupError::Damaged(format!(
                    "frame {} has a bad flag",
                    self.next
                )));
            }
        };
        let mut sealed = vec![0u8; len];
        read_full(&mut self.input, &mut sealed, "a frame")?;
        let aad = frame_aad(&self.header.backup_id, &self.header_hash, self.next, last);
        let plain = key.open(&aad, &sealed).map_err(|_| {
            BackupError::Damaged(format!(
                "frame {} does not authenticate (changed, moved or from another backup)",
                self.next
            ))
        })?;
        let frame: Frame = serde_json::from_slice(&plain)
            .map_err(|_| BackupError::Damaged(format!("frame {} is not readable", self.next)))?;
        let is_end = matches!(frame, Frame::End { .. });
        if is_end != last || (self.next == 0) != matches!(frame, Frame::Manifest { .. }) {
            return Err(BackupError::Damaged(format!(
                "frame {} is out of place",
                self.next
            )));
        }
        self.next += 1;
        self.done = last;
        Ok(Some(frame))
    }
}

/// A column value as a backup carries it.
pub fn encode_value(
    kind: Kind,
    row: &sqlx::any::AnyRow,
    i: usize,
) -> Result<serde_json::Value, StoreError> {
    use sqlx::Row;
    Ok(match kind {
        Kind::Int => row
            .try_get::<Option<i64>, _>(i)
            .map_err(StoreError::Db)?
            .map_or(serde_json::Value::Null, serde_json::Value::from),
        Kind::Text => row
            .try_get::<Option<String>, _>(i)
            .map_err(StoreError::Db)?
            .map_or(serde_json::Value::Null, serde_json::Value::from),
        Kind::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(StoreError::Db)?
            .map_or(serde_json::Value::Null, |b| {
                serde_json::Value::from(B64.encode(b))
            }),
    })
}

/// A backup value as a bound argument of the column's type.
pub fn decode_value(kind: Kind, v: &serde_json::Value) -> Result<crate::db::Arg, BackupError> {
    use crate::db::Arg;
    let bad = || BackupError::Damaged("a value does not match its column".into());
    Ok(match (kind, v) {
        (Kind::Int, serde_json::Value::Null) => Arg::OptInt(None),
        (Kind::Text, serde_json::Value::Null) => Arg::OptText(None),
        (Kind::Bytes, serde_json::Value::Null) => Arg::OptBytes(None),
        (Kind::Int, serde_json::Value::Number(n)) => Arg::Int(n.as_i64().ok_or_else(bad)?),
        (Kind::Text, serde_json::Value::String(s)) => Arg::Text(s.clone()),
        (Kind::Bytes, serde_json::Value::String(s)) => {
            Arg::Bytes(B64.decode(s).map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    })
}

/// Base64 for blob pieces.
pub fn encode_bytes(b: &[u8]) -> String {
    B64.encode(b)
}

/// Bytes of a blob piece.
pub fn decode_bytes(s: &str) -> Result<Vec<u8>, BackupError> {
    B64.decode(s)
        .map_err(|_| BackupError::Damaged("a file piece is not base64".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::datamap::{CollectionKind, DATA_MAP};

    /// Every table of the data map is backed up, in the data map's (creation) order, with
    /// exactly the columns the map names; and the primary key the map names leads each
    /// `ORDER BY`.
    #[test]
    fn tables_cover_the_data_map_in_order() {
        let mapped: Vec<&str> = DATA_MAP
            .iter()
            .filter(|c| c.kind == CollectionKind::Table)
            .map(|c| c.name)
            .collect();
        let listed: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(
            listed, mapped,
            "backup::TABLES must list every table of the data map, in the same order"
        );
        for t in TABLES {
            let c = crate::datamap::collection(t.name).unwrap();
            let mut want: Vec<&str> = c.fields.iter().map(|f| f.name).collect();
            let mut have: Vec<&str> = t.columns.iter().map(|(n, _)| *n).collect();
            want.sort_unstable();
            have.sort_unstable();
            assert_eq!(
                have, want,
                "backup::TABLES {}: columns differ from the data map",
                t.name
            );
            assert!(
                t.select
                    .ends_with(&format!("ORDER BY {}", c.primary_key.join(", "))),
                "{}: {}",
                t.name,
                t.select
            );
            assert_eq!(t.insert.columns, t.columns.len());
            if let Some(p) = t.purge {
                assert!(
                    p.starts_with(&format!("DELETE FROM {} WHERE ", t.name)),
                    "{p}"
                );
            }
        }
    }

    #[test]
    fn generated_sql_is_as_expected() {
        let t = table("messenger_session_conversations").unwrap();
        assert_eq!(
            t.select,
            "SELECT token_hash, workspace_id, conversation_id FROM messenger_session_conversations ORDER BY token_hash, conversation_id"
        );
        assert_eq!(
            t.insert.head,
            "INSERT INTO messenger_session_conversations (token_hash, workspace_id, conversation_id) VALUES "
        );
        assert_eq!(
            t.purge,
            Some("DELETE FROM messenger_session_conversations WHERE workspace_id = $1")
        );
        assert_eq!(table("subprocessors").unwrap().purge, None);
    }

    fn keyring(dir: &std::path::Path) -> Keyring {
        Keyring::open_or_create(dir, Region::Eu).unwrap()
    }

    fn sample(ring: &Keyring) -> Vec<u8> {
        let (mut w, _) = BackupWriter::start(Vec::new(), ring, Region::Eu, 10).unwrap();
        w.frame(
            &Frame::Manifest {
                tables: vec![],
                blobs: 0,
            },
            false,
        )
        .unwrap();
        w.frame(
            &Frame::Rows {
                table: "contacts".into(),
                rows: vec![vec![serde_json::json!("x")]],
            },
            false,
        )
        .unwrap();
        w.frame(&Frame::End { rows: 1, blobs: 0 }, true).unwrap();
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8], ring: &Keyring) -> Result<Vec<Frame>, BackupError> {
        let mut r = BackupReader::open(bytes)?;
        r.unlock(ring)?;
        let mut out = Vec::new();
        while let Some(f) = r.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn round_trip_and_every_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ring = keyring(dir.path());
        let bytes = sample(&ring);
        assert_eq!(read_all(&bytes, &ring).unwrap().len(), 3);
        // Any single flipped byte, anywhere, is refused.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(read_all(&b, &ring).is_err(), "flip at {i} went unnoticed");
        }
        // Any truncation is refused.
        for n in 0..bytes.len() {
            assert!(
                read_all(&bytes[..n], &ring).is_err(),
                "cut at {n} went unnoticed"
            );
        }
        // Trailing bytes are refused.
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            read_all(&longer, &ring),
            Err(BackupError::Damaged(_))
        ));
    }

    #[test]
    fn frames_cannot_be_moved_between_backups_or_positions() {
        let dir = tempfile::tempdir().unwrap();
        let ring = keyring(dir.path());
        let a = sample(&ring);
        let b = sample(&ring);
        // Frame boundaries of `a`: header, then frames.
        let frames = |bytes: &[u8]| {
            let hlen = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
            let mut at = 12 + hlen;
            let mut out = vec![at];
            while at < bytes.len() {
                let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                at += 5 + len;
                out.push(at);
            }
            out
        };
        let fa = frames(&a);
        let fb = frames(&b);
        // b's second frame spliced into a.
        let mut spliced = a[..fa[1]].to_vec();
        spliced.extend_from_slice(&b[fb[1]..fb[2]]);
        spliced.extend_from_slice(&a[fa[2]..]);
        assert!(matches!(
            read_all(&spliced, &ring),
            Err(BackupError::Damaged(_))
        ));
        // a's frames 1 and 0 swapped.
        let mut swapped = a[..fa[0]].to_vec();
        swapped.extend_from_slice(&a[fa[1]..fa[2]]);
        swapped.extend_from_slice(&a[fa[0]..fa[1]]);
        swapped.extend_from_slice(&a[fa[2]..]);
        assert!(matches!(
            read_all(&swapped, &ring),
            Err(BackupError::Damaged(_))
        ));
        // The final frame dropped.
        assert!(matches!(
            read_all(&a[..fa[2]], &ring),
            Err(BackupError::Truncated(_))
        ));
    }

    #[test]
    fn another_key_folder_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample(&keyring(dir.path()));
        let other = tempfile::tempdir().unwrap();
        let err = read_all(&bytes, &keyring(other.path())).unwrap_err();
        assert!(matches!(err, BackupError::Keys(_)), "{err}");
        assert!(err.to_string().contains("wrong --key-dir"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let ring = Keyring::open(empty.path(), Region::Eu).unwrap();
        let err = read_all(&bytes, &ring).unwrap_err();
        assert!(err.to_string().contains("no master key v1"), "{err}");
        let us = Keyring::open_or_create(dir.path(), Region::Us).unwrap();
        assert!(
            read_all(&bytes, &us)
                .unwrap_err()
                .to_string()
                .contains("region eu")
        );
        assert!(matches!(
            BackupReader::open(&b"PK\x03\x04 not a backup"[..]),
            Err(BackupError::NotABackup)
        ));
    }

    #[test]
    fn values_round_trip_with_their_kind() {
        use crate::db::Arg;
        assert!(matches!(
            decode_value(Kind::Bytes, &serde_json::json!("AAE=")).unwrap(),
            Arg::Bytes(b) if b == vec![0, 1]
        ));
        assert!(matches!(
            decode_value(Kind::Int, &serde_json::Value::Null).unwrap(),
            Arg::OptInt(None)
        ));
        assert!(decode_value(Kind::Int, &serde_json::json!("1")).is_err());
        assert!(decode_value(Kind::Text, &serde_json::json!(1)).is_err());
        assert!(decode_value(Kind::Bytes, &serde_json::json!("***")).is_err());
    }
}
