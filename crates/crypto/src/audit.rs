//! The cryptographic half of the tamper-evident activity log: a SHA-256 hash chain over the
//! entries, Ed25519-signed checkpoints of its head, and the offline verifier of an export.
//!
//! Everything below is a stable, versioned format: auditors reimplement it from this text.
//! SHA-256 and Ed25519 come from aws-lc-rs; nothing here is a hand-written primitive.
//!
//! # Chain
//!
//! Each workspace has its own chain. Entries are numbered by `seq`, starting at 1, with no
//! gaps. With `entry` the entry's canonical bytes
//! ([`ActivityEntry::canonical_bytes`]: JSON, keys sorted by UTF-8 bytes, no whitespace):
//!
//! ```text
//! leaf(entry)           = SHA-256( "interlock.activity.leaf.v1\n"  || entry )
//! hash(seq)             = SHA-256( "interlock.activity.chain.v1\n" || prev || u64_be(seq) || leaf(entry) )
//! prev of seq 1         = GENESIS = 32 zero bytes
//! prev of seq n (n > 1) = hash(n - 1)
//! ```
//!
//! The two labels are ASCII and end with one `\n` byte (0x0a); `u64_be` is 8 bytes,
//! big-endian. Hashes are written as 64 lowercase hex digits.
//!
//! # Checkpoints
//!
//! A checkpoint signs the chain's head. The signed message is this UTF-8 text, each line
//! ended by `\n` (including the last):
//!
//! ```text
//! interlock.activity.checkpoint.v1
//! workspace <workspace id>
//! kind <periodic|export>
//! tree_size <decimal u64: seq of the newest entry covered, 0 for an empty chain>
//! head <64 lowercase hex: hash(tree_size), or the anchor/GENESIS when nothing is covered>
//! time_ms <decimal i64: Unix time of signing, milliseconds>
//! first_seq <decimal u64>          (export checkpoints only)
//! anchor <64 lowercase hex>        (export checkpoints only)
//! checkpoints <decimal u64>        (export checkpoints only)
//! ```
//!
//! Decimals have no sign (except a leading `-` for a negative time), no leading zeros and no
//! separators. A workspace id is 1 to 128 printable ASCII characters without spaces.
//! The signature is pure Ed25519 (RFC 8032, no pre-hash, no context) over those bytes.
//!
//! A `periodic` checkpoint is signed from time to time as the log grows. An `export`
//! checkpoint is signed when an export is made: it covers the exported range
//! `first_seq..=tree_size`, and `anchor` is the hash that precedes `first_seq` (GENESIS when
//! `first_seq` is 1); an export of nothing has `tree_size = first_seq - 1` and `head = anchor`;
//! `checkpoints` is how many periodic checkpoints the export carries, so dropping one of them
//! from the file is caught too.
//!
//! A signed checkpoint travels as JSON (fields in this order, absent ones omitted, unknown
//! fields refused):
//!
//! ```text
//! {"workspace_id":"ws_eu_…","kind":"periodic"|"export","tree_size":<u64>,
//!  "head_hash":"<hex>","created_at_ms":<i64>,"first_seq":<u64>,"anchor_hash":"<hex>",
//!  "checkpoints":<u64>,
//!  "key_id":"<16 hex>","signature":"<standard base64 with padding, 64 bytes>"}
//! ```
//!
//! `key_id` is the first 16 lowercase hex digits of SHA-256 of the raw 32-byte Ed25519 public
//! key. The public key is published as a PEM `PUBLIC KEY` (X.509 SubjectPublicKeyInfo,
//! RFC 8410: DER `302a300506032b6570032100 || raw key`) or as the standard base64 of the raw
//! 32 bytes.
//!
//! The signing key is a PKCS#8 DER file `<key_dir>/<region>/activity-signing-ed25519.key`,
//! mode 0600 in a 0700 folder; a file that group or others can read is refused.
//!
//! # Export (JSON Lines)
//!
//! One record per line, each line ended by `\n`. An entry line is exactly (no spaces):
//!
//! ```text
//! {"seq":<u64>,"prev_hash":"<64 hex>","hash":"<64 hex>","entry":<canonical entry bytes>}
//! ```
//!
//! and a checkpoint line is `{"checkpoint":<signed checkpoint JSON>}`. An export holds the
//! entries `first_seq..=last` of one workspace in order; each periodic checkpoint whose
//! `tree_size` lies in that range stands right after the entry at its `tree_size` (several at
//! one position are in strictly increasing `created_at_ms`); the file ends with the export
//! checkpoint.
//!
//! # Export (CSV)
//!
//! RFC 4180 CSV (a record may end with `\r\n`, `\n` or `\r`) with the header [`CSV_HEADER`].
//! An entry row has `record` = `entry`, the
//! entry's fields (an absent optional is an empty cell; `metadata` is the canonical JSON of the
//! metadata object), its `prev_hash` and `hash`, and an empty `checkpoint`. A checkpoint row has
//! `record` = `checkpoint`, the signed checkpoint JSON in `checkpoint`, and every other cell
//! empty. The verifier rebuilds each entry from its cells and hashes its canonical bytes
//! (so an optional field that holds an empty string cannot be told from an absent one in CSV:
//! use JSON Lines for such entries).
//!
//! # Verifying an export ([`verify_export`])
//!
//! - every line is an entry or a checkpoint in the layout above (a blank line, any other text,
//!   an empty file: refused; a `\r` before a `\n`, and a missing `\n` after the last line, are
//!   tolerated). A JSON Lines entry is hashed exactly as its bytes appear, never re-encoded;
//! - seqs are consecutive; each `prev_hash` is the previous entry's `hash`, and the first one's
//!   is the export checkpoint's `anchor_hash` (its seq its `first_seq`);
//!   each `hash` = `hash(seq)` recomputed from `prev_hash` and the entry bytes;
//! - each checkpoint verifies under the given key, names the export's workspace, and a periodic
//!   one stands right after the entry at its `tree_size`, with that entry's hash as its head;
//! - the last record is an export checkpoint whose `tree_size`/`head_hash` are the last entry's
//!   seq/hash and whose `checkpoints` is the number of periodic checkpoints before it; nothing
//!   may follow it.
//!
//! The first record that breaks a rule is named. Compare the periodic checkpoints against
//! those an external sink received earlier: they are what the operator cannot re-sign.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, ParsedPublicKey, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use interlock_domain::activity::write_canonical;
use interlock_domain::{ActivityEntry, Actor, ActorType, Region, Target};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::CryptoError;

/// The `prev` of the first entry of every chain.
pub const GENESIS: [u8; 32] = [0; 32];

/// Domain label of a leaf hash.
pub const LEAF_LABEL: &[u8] = b"interlock.activity.leaf.v1\n";

/// Domain label of a chain hash.
pub const CHAIN_LABEL: &[u8] = b"interlock.activity.chain.v1\n";

/// First line of a checkpoint's signed message.
pub const CHECKPOINT_LABEL: &str = "interlock.activity.checkpoint.v1";

/// File name of a region's signing key, under `<key_dir>/<region>/`.
pub const SIGNING_KEY_FILE: &str = "activity-signing-ed25519.key";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The CSV export's header row.
pub const CSV_HEADER: [&str; 15] = [
    "record",
    "seq",
    "id",
    "type",
    "created_at_ms",
    "actor_type",
    "actor_id",
    "actor_ip",
    "actor_user_agent",
    "target_type",
    "target_id",
    "metadata",
    "prev_hash",
    "hash",
    "checkpoint",
];

const MAX_WORKSPACE_ID: usize = 128;

// ---------------------------------------------------------------------------------------------
// Chain hashing

fn digest32(d: digest::Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `SHA-256("interlock.activity.leaf.v1\n" || entry_canonical)`.
pub fn leaf_hash(entry_canonical: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(LEAF_LABEL);
    ctx.update(entry_canonical);
    digest32(ctx.finish())
}

/// Domain separation of the leaves of the region's staff audit chain.
pub const STAFF_LEAF_LABEL: &[u8] = b"interlock.staff_audit.leaf.v1\n";

/// `SHA-256("interlock.staff_audit.leaf.v1\n" || entry_canonical)`: a leaf of the staff audit
/// chain (chained with [`chain_hash`] like the activity log's).
pub fn staff_leaf_hash(entry_canonical: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(STAFF_LEAF_LABEL);
    ctx.update(entry_canonical);
    digest32(ctx.finish())
}

/// `SHA-256("interlock.activity.chain.v1\n" || prev || u64_be(seq) || leaf)`.
pub fn chain_hash(prev: &[u8; 32], seq: u64, leaf: &[u8; 32]) -> [u8; 32] {
    const L: usize = CHAIN_LABEL.len();
    let mut buf = [0u8; L + 32 + 8 + 32];
    buf[..L].copy_from_slice(CHAIN_LABEL);
    buf[L..L + 32].copy_from_slice(prev);
    buf[L + 32..L + 40].copy_from_slice(&seq.to_be_bytes());
    buf[L + 40..].copy_from_slice(leaf);
    digest32(digest::digest(&digest::SHA256, &buf))
}

/// The chain hash of the entry at `seq`: `chain_hash(prev, seq, leaf_hash(entry_canonical))`.
pub fn entry_hash(prev: &[u8; 32], seq: u64, entry_canonical: &[u8]) -> [u8; 32] {
    chain_hash(prev, seq, &leaf_hash(entry_canonical))
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// 64 lowercase hex digits.
fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[usize::from(b >> 4)];
        pair[1] = HEX_DIGITS[usize::from(b & 0x0f)];
    }
    out
}

fn hex32_string(bytes: &[u8; 32]) -> String {
    hex32(bytes).iter().map(|&b| char::from(b)).collect()
}

/// Value of each lowercase hex digit; 0xff for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 16 {
        table[HEX_DIGITS[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn hex_nibble(c: u8) -> Option<u8> {
    Some(HEX_VALUES[usize::from(c)]).filter(|&v| v != 0xff)
}

/// Parse exactly 64 lowercase hex digits. Branch-free per digit (a table lookup), since
/// hash digits are random and a branch per digit would mispredict half the time.
fn parse_hex32(text: &[u8]) -> Option<[u8; 32]> {
    let text: &[u8; 64] = text.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let hi = HEX_VALUES[usize::from(pair[0])];
        let lo = HEX_VALUES[usize::from(pair[1])];
        bad |= (hi | lo) & 0xf0;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad == 0).then_some(out)
}

/// A decimal `u64` without sign or leading zeros.
fn parse_canonical_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || (text.len() > 1 && text[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

/// Why a checkpoint was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// Signed from time to time as the log grows.
    Periodic,
    /// Signed when an export is made; covers the exported range.
    Export,
}

impl CheckpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Periodic => "periodic",
            CheckpointKind::Export => "export",
        }
    }
}

impl fmt::Display for CheckpointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A statement about a workspace's chain: its head after `tree_size` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub workspace_id: String,
    pub kind: CheckpointKind,
    /// Seq of the newest entry covered (0: an empty chain).
    pub tree_size: u64,
    /// `hash(tree_size)`; for an export of nothing, the anchor.
    pub head_hash: [u8; 32],
    pub created_at_ms: i64,
    /// Export only: the first exported seq.
    pub first_seq: Option<u64>,
    /// Export only: the hash preceding `first_seq` (GENESIS when `first_seq` is 1).
    pub anchor_hash: Option<[u8; 32]>,
    /// Export only: how many periodic checkpoints the export carries before this one.
    pub checkpoints: Option<u64>,
}

impl Checkpoint {
    /// A periodic checkpoint of the head after `tree_size` entries.
    pub fn periodic(
        workspace_id: impl Into<String>,
        tree_size: u64,
        head_hash: [u8; 32],
        created_at_ms: i64,
    ) -> Self {
        Self {
            workspace_id: workspace_id.into(),
            kind: CheckpointKind::Periodic,
            tree_size,
            head_hash,
            created_at_ms,
            first_seq: None,
            anchor_hash: None,
            checkpoints: None,
        }
    }

    /// The checkpoint closing an export of `first_seq..=tree_size`, whose first entry's
    /// `prev` is `anchor_hash`. For an export of nothing, `tree_size = first_seq - 1` and
    /// `head_hash = anchor_hash`.
    pub fn export(
        workspace_id: impl Into<String>,
        first_seq: u64,
        anchor_hash: [u8; 32],
        tree_size: u64,
        head_hash: [u8; 32],
        created_at_ms: i64,
        checkpoints: u64,
    ) -> Self {
        Self {
            workspace_id: workspace_id.into(),
            kind: CheckpointKind::Export,
            tree_size,
            head_hash,
            created_at_ms,
            first_seq: Some(first_seq),
            anchor_hash: Some(anchor_hash),
            checkpoints: Some(checkpoints),
        }
    }

    /// The bytes that are signed (see the module documentation for the format).
    pub fn signed_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(256);
        m.extend_from_slice(CHECKPOINT_LABEL.as_bytes());
        m.push(b'\n');
        line(&mut m, "workspace", self.workspace_id.as_bytes());
        line(&mut m, "kind", self.kind.as_str().as_bytes());
        line(&mut m, "tree_size", self.tree_size.to_string().as_bytes());
        line(&mut m, "head", &hex32(&self.head_hash));
        line(&mut m, "time_ms", self.created_at_ms.to_string().as_bytes());
        if let Some(first) = self.first_seq {
            line(&mut m, "first_seq", first.to_string().as_bytes());
        }
        if let Some(anchor) = &self.anchor_hash {
            line(&mut m, "anchor", &hex32(anchor));
        }
        if let Some(n) = self.checkpoints {
            line(&mut m, "checkpoints", n.to_string().as_bytes());
        }
        return m;

        fn line(m: &mut Vec<u8>, name: &str, value: &[u8]) {
            m.extend_from_slice(name.as_bytes());
            m.push(b' ');
            m.extend_from_slice(value);
            m.push(b'\n');
        }
    }

    /// The structural rules: a well-formed workspace id; `first_seq`/`anchor_hash` present
    /// exactly on export checkpoints; an export's `tree_size >= first_seq - 1`.
    fn check_shape(&self) -> Result<(), AuditError> {
        let ws = self.workspace_id.as_bytes();
        if ws.is_empty() || ws.len() > MAX_WORKSPACE_ID || !ws.iter().all(u8::is_ascii_graphic) {
            return Err(AuditError::MalformedCheckpoint("workspace_id"));
        }
        match (
            self.kind,
            self.first_seq,
            self.anchor_hash,
            self.checkpoints,
        ) {
            (CheckpointKind::Periodic, None, None, None) => Ok(()),
            (CheckpointKind::Periodic, _, _, _) => Err(AuditError::MalformedCheckpoint(
                "a periodic checkpoint carries no first_seq, anchor_hash or checkpoints",
            )),
            (CheckpointKind::Export, Some(first), Some(_), Some(_)) => {
                if first == 0 || self.tree_size < first - 1 {
                    Err(AuditError::MalformedCheckpoint(
                        "an export checkpoint needs 1 <= first_seq <= tree_size + 1",
                    ))
                } else {
                    Ok(())
                }
            }
            (CheckpointKind::Export, _, _, _) => Err(AuditError::MalformedCheckpoint(
                "an export checkpoint needs first_seq, anchor_hash and checkpoints",
            )),
        }
    }
}

/// A checkpoint with its signer's key id and Ed25519 signature. Serializes as one flat JSON
/// object (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// 16 lowercase hex digits, see [`AuditPublicKey::key_id`].
    pub key_id: String,
    /// Standard base64 (with padding) of the 64-byte signature.
    pub signature: String,
}

impl SignedCheckpoint {
    /// The JSON object, fields in the documented order, absent ones omitted.
    pub fn to_json(&self) -> String {
        let c = &self.checkpoint;
        let mut s = String::with_capacity(384);
        s.push_str("{\"workspace_id\":");
        s.push_str(&Value::String(c.workspace_id.clone()).to_string());
        s.push_str(",\"kind\":\"");
        s.push_str(c.kind.as_str());
        s.push_str("\",\"tree_size\":");
        s.push_str(&c.tree_size.to_string());
        s.push_str(",\"head_hash\":\"");
        s.push_str(&hex32_string(&c.head_hash));
        s.push_str("\",\"created_at_ms\":");
        s.push_str(&c.created_at_ms.to_string());
        if let Some(first) = c.first_seq {
            s.push_str(",\"first_seq\":");
            s.push_str(&first.to_string());
        }
        if let Some(anchor) = &c.anchor_hash {
            s.push_str(",\"anchor_hash\":\"");
            s.push_str(&hex32_string(anchor));
            s.push('"');
        }
        if let Some(n) = c.checkpoints {
            s.push_str(",\"checkpoints\":");
            s.push_str(&n.to_string());
        }
        s.push_str(",\"key_id\":");
        s.push_str(&Value::String(self.key_id.clone()).to_string());
        s.push_str(",\"signature\":");
        s.push_str(&Value::String(self.signature.clone()).to_string());
        s.push('}');
        s
    }
}

/// A hash as 64 lowercase hex digits in JSON.
#[derive(Clone, Copy)]
struct HexHash([u8; 32]);

impl Serialize for HexHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex32_string(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        parse_hex32(text.as_bytes())
            .map(HexHash)
            .ok_or_else(|| D::Error::custom("expected 64 lowercase hex digits"))
    }
}

#[derive(Serialize)]
struct SignedCheckpointOut<'a> {
    workspace_id: &'a str,
    kind: CheckpointKind,
    tree_size: u64,
    head_hash: HexHash,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anchor_hash: Option<HexHash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoints: Option<u64>,
    key_id: &'a str,
    signature: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedCheckpointIn {
    workspace_id: String,
    kind: CheckpointKind,
    tree_size: u64,
    head_hash: HexHash,
    created_at_ms: i64,
    #[serde(default)]
    first_seq: Option<u64>,
    #[serde(default)]
    anchor_hash: Option<HexHash>,
    #[serde(default)]
    checkpoints: Option<u64>,
    key_id: String,
    signature: String,
}

impl Serialize for SignedCheckpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = &self.checkpoint;
        SignedCheckpointOut {
            workspace_id: &c.workspace_id,
            kind: c.kind,
            tree_size: c.tree_size,
            head_hash: HexHash(c.head_hash),
            created_at_ms: c.created_at_ms,
            first_seq: c.first_seq,
            anchor_hash: c.anchor_hash.map(HexHash),
            checkpoints: c.checkpoints,
            key_id: &self.key_id,
            signature: &self.signature,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SignedCheckpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = SignedCheckpointIn::deserialize(d)?;
        let checkpoint = Checkpoint {
            workspace_id: w.workspace_id,
            kind: w.kind,
            tree_size: w.tree_size,
            head_hash: w.head_hash.0,
            created_at_ms: w.created_at_ms,
            first_seq: w.first_seq,
            anchor_hash: w.anchor_hash.map(|h| h.0),
            checkpoints: w.checkpoints,
        };
        checkpoint.check_shape().map_err(D::Error::custom)?;
        if !is_key_id(&w.key_id) {
            return Err(D::Error::custom("key_id must be 16 lowercase hex digits"));
        }
        Ok(Self {
            checkpoint,
            key_id: w.key_id,
            signature: w.signature,
        })
    }
}

fn is_key_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|c| hex_nibble(c).is_some())
}

/// Why a checkpoint or a public key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuditError {
    #[error("checkpoint is signed by key {found}, not by the expected key {expected}")]
    WrongKey { expected: String, found: String },
    #[error("checkpoint signature is not the standard base64 of 64 bytes")]
    MalformedSignature,
    #[error("checkpoint signature does not verify (altered, or signed by another key)")]
    BadSignature,
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    #[error("not an Ed25519 public key in PEM (SubjectPublicKeyInfo) form")]
    Pem,
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
}

/// An Ed25519 public key that verifies checkpoints.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuditPublicKey(pub(crate) [u8; 32]);

impl fmt::Debug for AuditPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AuditPublicKey")
            .field(&self.key_id())
            .finish()
    }
}

impl AuditPublicKey {
    /// The raw 32-byte key (RFC 8032 encoding).
    pub fn from_raw(raw: &[u8]) -> Result<Self, AuditError> {
        let key: [u8; 32] = raw.try_into().map_err(|_| AuditError::InvalidPublicKey)?;
        ParsedPublicKey::new(&ED25519, key).map_err(|_| AuditError::InvalidPublicKey)?;
        Ok(Self(key))
    }

    /// The standard base64 of the raw 32 bytes (as [`Self::raw_base64`] writes it).
    pub fn from_raw_base64(text: &str) -> Result<Self, AuditError> {
        let raw = BASE64
            .decode(text.trim())
            .map_err(|_| AuditError::InvalidPublicKey)?;
        Self::from_raw(&raw)
    }

    pub fn raw(&self) -> &[u8; 32] {
        &self.0
    }

    /// The standard base64 (with padding) of the raw 32 bytes.
    pub fn raw_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// The first 16 lowercase hex digits of SHA-256 of the raw key.
    pub fn key_id(&self) -> String {
        let h = digest::digest(&digest::SHA256, &self.0);
        let mut id = hex32_string(&digest32(h));
        id.truncate(16);
        id
    }

    /// DER SubjectPublicKeyInfo (RFC 8410): [`ED25519_SPKI_PREFIX`] followed by the raw key.
    pub fn to_spki_der(&self) -> [u8; 44] {
        let mut der = [0u8; 44];
        der[..12].copy_from_slice(&ED25519_SPKI_PREFIX);
        der[12..].copy_from_slice(&self.0);
        der
    }

    /// PEM `PUBLIC KEY` (base64 of the SPKI DER, 64 characters a line, trailing newline);
    /// `openssl pkey -pubin` reads it.
    pub fn to_pem(&self) -> String {
        let b64 = BASE64.encode(self.to_spki_der());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.extend(chunk.iter().map(|&b| char::from(b)));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// Read a PEM `PUBLIC KEY` holding an Ed25519 SubjectPublicKeyInfo. Text around the block
    /// is ignored.
    pub fn from_pem(pem: &str) -> Result<Self, AuditError> {
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        const END: &str = "-----END PUBLIC KEY-----";
        let start = pem.find(BEGIN).ok_or(AuditError::Pem)? + BEGIN.len();
        let len = pem[start..].find(END).ok_or(AuditError::Pem)?;
        let body: String = pem[start..start + len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = BASE64.decode(body).map_err(|_| AuditError::Pem)?;
        // aws-lc-rs parses the SubjectPublicKeyInfo and checks it is an Ed25519 key; the one
        // DER encoding of such a key is the fixed prefix and the raw key.
        ParsedPublicKey::new(&ED25519, &der).map_err(|_| AuditError::Pem)?;
        match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            Some(raw) if raw.len() == 32 => Self::from_raw(raw),
            _ => Err(AuditError::Pem),
        }
    }

    /// Check that `signed` is signed by this key (its `key_id` and its Ed25519 signature over
    /// [`Checkpoint::signed_message`]) and well formed; returns the checkpoint.
    pub fn verify(&self, signed: &SignedCheckpoint) -> Result<Checkpoint, AuditError> {
        let expected = self.key_id();
        if signed.key_id != expected {
            let mut found: String = signed.key_id.chars().take(16).collect();
            if !is_key_id(&found) {
                found = "(malformed)".to_owned();
            }
            return Err(AuditError::WrongKey { expected, found });
        }
        let sig = BASE64
            .decode(&signed.signature)
            .map_err(|_| AuditError::MalformedSignature)?;
        if sig.len() != 64 {
            return Err(AuditError::MalformedSignature);
        }
        signed.checkpoint.check_shape()?;
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&signed.checkpoint.signed_message(), &sig)
            .map_err(|_| AuditError::BadSignature)?;
        Ok(signed.checkpoint.clone())
    }
}

/// A region's checkpoint signing key (Ed25519). Its `Debug` shows only the key id.
pub struct AuditSigningKey {
    pub(crate) pair: Ed25519KeyPair,
    public: AuditPublicKey,
}

impl fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigningKey")
            .field("key_id", &self.public.key_id())
            .field("private", &"<redacted>")
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CryptoError + '_ {
    move |source| CryptoError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl AuditSigningKey {
    /// A fresh key (not stored).
    pub fn generate() -> Result<Self, CryptoError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| CryptoError::Random)?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: Ed25519KeyPair) -> Result<Self, CryptoError> {
        let public = AuditPublicKey::from_raw(pair.public_key().as_ref())
            .map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self { pair, public })
    }

    /// Where a region's key lives: `<key_dir>/<region>/activity-signing-ed25519.key`.
    pub fn path(key_dir: &Path, region: Region) -> PathBuf {
        key_dir.join(region.as_str()).join(SIGNING_KEY_FILE)
    }

    /// Load the region's key, creating it (PKCS#8 v1 DER, mode 0600, folder 0700) when there
    /// is none. Processes racing to create it all end up with the one that was linked into
    /// place first. A key file that group or others can read is refused.
    pub fn load_or_create(key_dir: &Path, region: Region) -> Result<Self, CryptoError> {
        let dir = key_dir.join(region.as_str());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        let path = dir.join(SIGNING_KEY_FILE);
        match Self::load(&path) {
            Ok(key) => return Ok(key),
            Err(CryptoError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }

        let key = Self::generate()?;
        let pkcs8 = key.pair.to_pkcs8v1().map_err(|_| CryptoError::InvalidKey)?;
        let nonce: [u8; 8] = crate::random_bytes()?;
        let tmp = dir.join(format!(
            ".{SIGNING_KEY_FILE}.{}.{}.tmp",
            std::process::id(),
            hex::encode(nonce)
        ));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(pkcs8.as_ref())?;
            f.sync_all()
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&tmp)(source));
        }
        // A hard link publishes the complete file atomically and fails if another process
        // published one first; then that one is the key.
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err(&dir))?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(&path),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Load a key file (PKCS#8 v1 or v2 DER), refusing one that group or others can read.
    fn load(path: &Path) -> Result<Self, CryptoError> {
        let mut f = fs::File::open(path).map_err(io_err(path))?;
        let meta = f.metadata().map_err(io_err(path))?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(CryptoError::KeyFilePermissions {
                path: path.display().to_string(),
                mode: mode & 0o777,
            });
        }
        // Sized up front so the buffer never grows (a grown buffer would leave an unzeroized
        // copy behind); an Ed25519 PKCS#8 document is under 100 bytes.
        let len = usize::try_from(meta.len())
            .ok()
            .filter(|&n| n <= 1024)
            .ok_or(CryptoError::InvalidKey)?;
        let mut der = Zeroizing::new(Vec::with_capacity(len + 1));
        f.read_to_end(&mut der).map_err(io_err(path))?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| CryptoError::InvalidKey)?;
        Self::from_pair(pair)
    }

    pub fn public_key(&self) -> AuditPublicKey {
        self.public
    }

    /// Sign a checkpoint. (Only well-formed checkpoints verify: a workspace id of printable
    /// ASCII, and `first_seq`/`anchor_hash` exactly on export checkpoints.)
    pub fn sign(&self, checkpoint: &Checkpoint) -> SignedCheckpoint {
        let sig = self.pair.sign(&checkpoint.signed_message());
        SignedCheckpoint {
            checkpoint: checkpoint.clone(),
            key_id: self.public.key_id(),
            signature: BASE64.encode(sig.as_ref()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Export: writing

/// Append one JSON Lines entry record and its `\n`:
/// `{"seq":<seq>,"prev_hash":"<hex>","hash":"<hex>","entry":<entry_canonical>}`.
pub fn export_entry_line(
    seq: u64,
    prev: &[u8; 32],
    hash: &[u8; 32],
    entry_canonical: &[u8],
    out: &mut Vec<u8>,
) {
    out.reserve(entry_canonical.len() + 180);
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"prev_hash\":\"");
    out.extend_from_slice(&hex32(prev));
    out.extend_from_slice(b"\",\"hash\":\"");
    out.extend_from_slice(&hex32(hash));
    out.extend_from_slice(b"\",\"entry\":");
    out.extend_from_slice(entry_canonical);
    out.extend_from_slice(b"}\n");
}

/// Append one JSON Lines checkpoint record and its `\n`: `{"checkpoint":<signed checkpoint>}`.
pub fn export_checkpoint_line(checkpoint: &SignedCheckpoint, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"checkpoint\":");
    out.extend_from_slice(checkpoint.to_json().as_bytes());
    out.extend_from_slice(b"}\n");
}

/// The CSV export's header row.
pub fn csv_header() -> &'static [&'static str] {
    &CSV_HEADER
}

/// The CSV cells of an entry row (write them with a `csv::Writer`).
pub fn export_entry_csv_record(
    seq: u64,
    prev: &[u8; 32],
    hash: &[u8; 32],
    entry: &ActivityEntry,
) -> Vec<String> {
    let mut metadata = Vec::with_capacity(64);
    write_canonical(&Value::Object(entry.metadata.clone()), &mut metadata);
    vec![
        "entry".to_owned(),
        seq.to_string(),
        entry.id.clone(),
        entry.kind.clone(),
        entry.created_at_ms.to_string(),
        entry.actor.kind.as_str().to_owned(),
        entry.actor.id.clone().unwrap_or_default(),
        entry.actor.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        entry.actor.user_agent.clone().unwrap_or_default(),
        entry.target.kind.clone(),
        entry.target.id.clone().unwrap_or_default(),
        String::from_utf8_lossy(&metadata).into_owned(),
        hex32_string(prev),
        hex32_string(hash),
        String::new(),
    ]
}

/// The CSV cells of a checkpoint row: `checkpoint` in the first cell, the signed checkpoint
/// JSON in the last, the others empty.
pub fn export_checkpoint_csv_record(checkpoint: &SignedCheckpoint) -> Vec<String> {
    let mut row = vec![String::new(); CSV_HEADER.len()];
    row[0] = "checkpoint".to_owned();
    row[CSV_HEADER.len() - 1] = checkpoint.to_json();
    row
}

// ---------------------------------------------------------------------------------------------
// Export: verifying

/// What a verified export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub workspace_id: String,
    /// The export checkpoint's `first_seq`.
    pub first_seq: u64,
    /// The last exported seq (`first_seq - 1` when nothing was exported).
    pub last_seq: u64,
    pub entries: u64,
    /// Checkpoints verified, the closing export checkpoint included.
    pub checkpoints: u64,
    /// The hash preceding `first_seq`.
    pub anchor_hash: [u8; 32],
    /// The hash of `last_seq` (the anchor when nothing was exported).
    pub head_hash: [u8; 32],
    /// When the export checkpoint was signed.
    pub exported_at_ms: i64,
}

/// The first record of an export that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFailure {
    /// 1-based line of the file (the CSV header is line 1). One past the last line when the
    /// file ends too early.
    pub line: usize,
    /// The seq of the entry at that line, when it could be read.
    pub seq: Option<u64>,
    /// The id of the entry at that line, when it could be read.
    pub entry_id: Option<String>,
    pub reason: String,
}

impl fmt::Display for ExportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        match (self.seq, &self.entry_id) {
            (Some(seq), Some(id)) => write!(f, " (seq {seq}, {id})")?,
            (Some(seq), None) => write!(f, " (seq {seq})")?,
            (None, Some(id)) => write!(f, " ({id})")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ExportFailure {}

/// Verify an export (JSON Lines, or CSV when it starts with `record,`) against the
/// checkpoint signing key. Returns what it holds, or the first record that breaks a rule.
pub fn verify_export(input: &[u8], key: &AuditPublicKey) -> Result<ExportSummary, ExportFailure> {
    if input.starts_with(b"record,") {
        verify_csv(input, key)
    } else {
        verify_jsonl(input, key)
    }
}

fn fail(line: usize, reason: impl Into<String>) -> ExportFailure {
    ExportFailure {
        line,
        seq: None,
        entry_id: None,
        reason: reason.into(),
    }
}

/// An id fit to print: short, printable.
fn printable_id(id: &str) -> Option<String> {
    (!id.is_empty() && id.len() <= 64 && id.chars().all(|c| !c.is_control())).then(|| id.to_owned())
}

#[derive(Clone, Copy)]
struct Link {
    line: usize,
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
}

/// Where a failure points: a line, and whether it is an entry line (then the caller names
/// the entry).
struct Broken {
    line: usize,
    entry: bool,
    reason: String,
}

/// The rules, fed one record at a time.
struct Verifier<'k> {
    key: &'k AuditPublicKey,
    /// The export checkpoint read ahead from the last line, when it verified: lets the
    /// first entry be checked against the anchor in order.
    closing: Option<Checkpoint>,
    workspace: Option<String>,
    first: Option<Link>,
    last: Option<Link>,
    entries: u64,
    checkpoints: u64,
    /// tree_size and time of the latest checkpoint, to refuse a repeated periodic one.
    last_checkpoint: Option<(u64, i64)>,
    done: Option<Checkpoint>,
}

impl<'k> Verifier<'k> {
    fn new(key: &'k AuditPublicKey, closing: Option<Checkpoint>) -> Self {
        Self {
            key,
            workspace: closing.as_ref().map(|c| c.workspace_id.clone()),
            closing,
            first: None,
            last: None,
            entries: 0,
            checkpoints: 0,
            last_checkpoint: None,
            done: None,
        }
    }

    /// Read ahead the last line as an export checkpoint (signature and kind only).
    fn read_closing(key: &AuditPublicKey, signed: Option<SignedCheckpoint>) -> Option<Checkpoint> {
        let cp = key.verify(&signed?).ok()?;
        (cp.kind == CheckpointKind::Export).then_some(cp)
    }

    fn entry(
        &mut self,
        line: usize,
        seq: u64,
        prev: &[u8; 32],
        hash: &[u8; 32],
        entry: &[u8],
    ) -> Result<(), String> {
        match &self.last {
            Some(last) => {
                if last.seq.checked_add(1) != Some(seq) {
                    return Err(format!(
                        "seq {seq} follows seq {} (line {}): entries are missing, repeated or out of order",
                        last.seq, last.line
                    ));
                }
                if *prev != last.hash {
                    return Err(format!(
                        "prev_hash is not the hash of seq {} (line {})",
                        last.seq, last.line
                    ));
                }
            }
            None => {
                if seq == 0 {
                    return Err("seq 0: seqs start at 1".to_owned());
                }
                if let Some(closing) = &self.closing {
                    if Some(seq) != closing.first_seq {
                        return Err(format!(
                            "the export checkpoint says the export starts at seq {}: entries are missing or added at the start",
                            closing.first_seq.unwrap_or(0)
                        ));
                    }
                    if Some(*prev) != closing.anchor_hash {
                        return Err(
                            "prev_hash is not the export checkpoint's anchor_hash".to_owned()
                        );
                    }
                }
            }
        }
        if entry_hash(prev, seq, entry) != *hash {
            return Err(
                "hash does not match the entry (the entry or its hash was altered)".to_owned(),
            );
        }
        let link = Link {
            line,
            seq,
            prev: *prev,
            hash: *hash,
        };
        if self.first.is_none() {
            self.first = Some(link);
        }
        self.last = Some(link);
        self.entries += 1;
        Ok(())
    }

    fn checkpoint(&mut self, line: usize, signed: &SignedCheckpoint) -> Result<(), Broken> {
        let at = |reason: String| Broken {
            line,
            entry: false,
            reason,
        };
        let cp = self.key.verify(signed).map_err(|e| at(e.to_string()))?;
        match &self.workspace {
            Some(ws) if *ws != cp.workspace_id => {
                return Err(at(format!(
                    "checkpoint names workspace {}, not {ws}",
                    cp.workspace_id
                )));
            }
            Some(_) => {}
            None => self.workspace = Some(cp.workspace_id.clone()),
        }
        if let Some((size, time)) = self.last_checkpoint
            && cp.kind == CheckpointKind::Periodic
            && size == cp.tree_size
            && time >= cp.created_at_ms
        {
            return Err(at(format!(
                "checkpoint at tree_size {size} repeats or precedes the one before it"
            )));
        }
        match cp.kind {
            CheckpointKind::Periodic => {
                let Some(last) = self.last else {
                    return Err(at(format!(
                        "periodic checkpoint at tree_size {} stands before any entry",
                        cp.tree_size
                    )));
                };
                if cp.tree_size != last.seq {
                    return Err(at(format!(
                        "periodic checkpoint at tree_size {} stands after seq {}, not after its own entry",
                        cp.tree_size, last.seq
                    )));
                }
                if cp.head_hash != last.hash {
                    return Err(at(format!(
                        "periodic checkpoint's signed head is not the hash of seq {} (line {}): the chain was altered",
                        last.seq, last.line
                    )));
                }
            }
            CheckpointKind::Export => {
                let first_seq = cp.first_seq.unwrap_or(0);
                let anchor = cp.anchor_hash.unwrap_or(GENESIS);
                match (self.first, self.last) {
                    (Some(first), Some(last)) => {
                        if first.seq != first_seq {
                            return Err(Broken {
                                line: first.line,
                                entry: true,
                                reason: format!(
                                    "the export checkpoint says the export starts at seq {first_seq}: entries are missing or added at the start"
                                ),
                            });
                        }
                        if first.prev != anchor {
                            return Err(Broken {
                                line: first.line,
                                entry: true,
                                reason: "prev_hash is not the export checkpoint's anchor_hash"
                                    .to_owned(),
                            });
                        }
                        if cp.tree_size != last.seq {
                            return Err(at(format!(
                                "the export checkpoint covers up to seq {} but the last entry is seq {} (line {}): entries are missing or added at the end",
                                cp.tree_size, last.seq, last.line
                            )));
                        }
                        if cp.head_hash != last.hash {
                            return Err(at(format!(
                                "the export checkpoint's signed head is not the hash of seq {} (line {}): the chain was altered",
                                last.seq, last.line
                            )));
                        }
                    }
                    _ => {
                        if cp.tree_size.checked_add(1) != Some(first_seq) || cp.head_hash != anchor
                        {
                            return Err(at(format!(
                                "the export checkpoint covers seqs {first_seq}..={} but the export holds no entry",
                                cp.tree_size
                            )));
                        }
                    }
                }
                if cp.checkpoints != Some(self.checkpoints) {
                    return Err(at(format!(
                        "the export checkpoint says the export carries {} periodic checkpoints but it has {}: a checkpoint line was removed or added",
                        cp.checkpoints.unwrap_or(0),
                        self.checkpoints
                    )));
                }
                self.done = Some(cp.clone());
            }
        }
        self.last_checkpoint = Some((cp.tree_size, cp.created_at_ms));
        self.checkpoints += 1;
        Ok(())
    }

    fn finish(self, lines: usize) -> Result<ExportSummary, ExportFailure> {
        let Some(closing) = self.done else {
            let reason = if lines == 0 {
                "the export is empty"
            } else {
                "the export ends without its signed export checkpoint (it is truncated)"
            };
            return Err(fail(lines + 1, reason));
        };
        let first_seq = closing.first_seq.unwrap_or(0);
        Ok(ExportSummary {
            workspace_id: closing.workspace_id,
            first_seq,
            last_seq: closing.tree_size,
            entries: self.entries,
            checkpoints: self.checkpoints,
            anchor_hash: closing.anchor_hash.unwrap_or(GENESIS),
            head_hash: closing.head_hash,
            exported_at_ms: closing.created_at_ms,
        })
    }
}

// JSON Lines

const P_SEQ: &[u8] = b"{\"seq\":";
const P_PREV: &[u8] = b",\"prev_hash\":\"";
const P_HASH: &[u8] = b"\",\"hash\":\"";
const P_ENTRY: &[u8] = b"\",\"entry\":";
const P_CHECKPOINT: &[u8] = b"{\"checkpoint\":";

const NOT_AN_ENTRY_LINE: &str = "not an entry line in the export layout";

/// The fixed start of an entry line, up to `"entry":`.
struct EntryPrefix {
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
    /// Where the entry starts in the line.
    entry_start: usize,
}

/// Parse the fixed start of an entry line.
fn parse_entry_prefix(line: &[u8]) -> Result<EntryPrefix, &'static str> {
    let rest = line.strip_prefix(P_SEQ).ok_or(NOT_AN_ENTRY_LINE)?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let seq = parse_canonical_u64(&rest[..digits]).ok_or("seq is not a canonical decimal")?;
    let rest = rest[digits..]
        .strip_prefix(P_PREV)
        .ok_or(NOT_AN_ENTRY_LINE)?;
    let (prev, rest) = rest.split_at_checked(64).ok_or(NOT_AN_ENTRY_LINE)?;
    let prev = parse_hex32(prev).ok_or("prev_hash is not 64 lowercase hex digits")?;
    let rest = rest.strip_prefix(P_HASH).ok_or(NOT_AN_ENTRY_LINE)?;
    let (hash, rest) = rest.split_at_checked(64).ok_or(NOT_AN_ENTRY_LINE)?;
    let hash = parse_hex32(hash).ok_or("hash is not 64 lowercase hex digits")?;
    let rest = rest.strip_prefix(P_ENTRY).ok_or(NOT_AN_ENTRY_LINE)?;
    Ok(EntryPrefix {
        seq,
        prev,
        hash,
        entry_start: line.len() - rest.len(),
    })
}

/// The entry of an entry line, from where it starts to the line's end (without `\n`):
/// a JSON object followed by the line's closing `}`.
fn parse_entry_tail(tail: &[u8]) -> Result<&[u8], &'static str> {
    let entry = tail.strip_suffix(b"}").ok_or(NOT_AN_ENTRY_LINE)?;
    if entry.len() < 2 || entry[0] != b'{' || entry[entry.len() - 1] != b'}' {
        return Err("entry is not a JSON object");
    }
    Ok(entry)
}

/// The seq and entry of an entry line (without its `\n`).
fn parse_entry_line(line: &[u8]) -> Result<(u64, &[u8]), &'static str> {
    let p = parse_entry_prefix(line)?;
    Ok((p.seq, parse_entry_tail(&line[p.entry_start..])?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    checkpoint: SignedCheckpoint,
}

/// Parse a checkpoint line, which must be exactly as [`export_checkpoint_line`] writes it.
fn parse_checkpoint_line(line: &[u8]) -> Result<SignedCheckpoint, String> {
    let signed = serde_json::from_slice::<CheckpointLine>(line)
        .map(|l| l.checkpoint)
        .map_err(|e| format!("malformed checkpoint line: {e}"))?;
    let mut expected = Vec::with_capacity(line.len() + 1);
    export_checkpoint_line(&signed, &mut expected);
    if expected.strip_suffix(b"\n") != Some(line) {
        return Err("checkpoint line is not in the export layout".to_owned());
    }
    Ok(signed)
}

/// The id of an entry, for naming it in an error.
fn entry_id_of(entry: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(entry).ok()?;
    printable_id(v.get("id")?.as_str()?)
}

/// Position of the first `\n`, eight bytes at a time: in `v = word ^ 0x0a0a…`, the lowest
/// byte that is zero is the lowest one flagged by `(v - 0x0101…) & !v & 0x8080…` (a borrow can
/// only raise flags above a true zero byte).
fn find_newline(s: &[u8]) -> Option<usize> {
    const LO: u64 = u64::from_le_bytes([0x01; 8]);
    const HI: u64 = u64::from_le_bytes([0x80; 8]);
    const NL: u64 = u64::from_le_bytes([b'\n'; 8]);
    let (words, tail) = s.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let v = u64::from_le_bytes(*word) ^ NL;
        let zero = v.wrapping_sub(LO) & !v & HI;
        if zero != 0 {
            return Some(i * 8 + (zero.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter()
        .position(|&c| c == b'\n')
        .map(|i| words.len() * 8 + i)
}

/// Split into lines (each without its `\n` and an optional `\r` before it). A final `\n` ends
/// the last line; it does not start another.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let line = match find_newline(self.rest) {
            Some(i) => {
                let line = &self.rest[..i];
                self.rest = &self.rest[i + 1..];
                line
            }
            None => std::mem::take(&mut self.rest),
        };
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

fn last_line(input: &[u8]) -> &[u8] {
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    let line = match body.iter().rposition(|&c| c == b'\n') {
        Some(i) => &body[i + 1..],
        None => body,
    };
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The line starting at `start`, without its `\n` (and a `\r` before it), and where the
/// next one starts. `from` is how far into the line the `\n` can not be yet.
fn line_at(input: &[u8], start: usize, from: usize) -> (&[u8], usize) {
    let rest = &input[start..];
    let (line, next) = match find_newline(&rest[from..]) {
        Some(i) => (&rest[..from + i], start + from + i + 1),
        None => (rest, input.len()),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), next)
}

fn verify_jsonl(input: &[u8], key: &AuditPublicKey) -> Result<ExportSummary, ExportFailure> {
    let closing = Verifier::read_closing(key, parse_checkpoint_line(last_line(input)).ok());
    let mut v = Verifier::new(key, closing);
    let mut lines = 0usize;
    let mut pos = 0usize;
    while pos < input.len() {
        lines += 1;
        let line = lines;
        if v.done.is_some() {
            return Err(fail(line, "a record follows the export checkpoint"));
        }
        let rest = &input[pos..];
        if rest.starts_with(P_SEQ) {
            // The fixed start is parsed in place; only the entry is searched for the line end.
            let p = parse_entry_prefix(rest).map_err(|reason| fail(line, reason))?;
            let (text, next) = line_at(input, pos, p.entry_start);
            pos = next;
            let entry =
                parse_entry_tail(&text[p.entry_start..]).map_err(|reason| ExportFailure {
                    line,
                    seq: Some(p.seq),
                    entry_id: None,
                    reason: reason.to_owned(),
                })?;
            v.entry(line, p.seq, &p.prev, &p.hash, entry)
                .map_err(|reason| ExportFailure {
                    line,
                    seq: Some(p.seq),
                    entry_id: entry_id_of(entry),
                    reason,
                })?;
            continue;
        }
        let (text, next) = line_at(input, pos, 0);
        pos = next;
        if text.starts_with(P_CHECKPOINT) {
            let signed = parse_checkpoint_line(text).map_err(|reason| fail(line, reason))?;
            v.checkpoint(line, &signed).map_err(|b| {
                if b.entry {
                    // Only the first entry is named this way; read it again to name it.
                    jsonl_entry_failure(input, b.line, b.reason)
                } else {
                    fail(b.line, b.reason)
                }
            })?;
        } else if text.is_empty() {
            return Err(fail(line, "blank line"));
        } else {
            return Err(fail(line, "neither an entry nor a checkpoint record"));
        }
    }
    v.finish(lines)
}

fn jsonl_entry_failure(input: &[u8], line: usize, reason: String) -> ExportFailure {
    let parsed = (Lines { rest: input })
        .nth(line.saturating_sub(1))
        .and_then(|text| parse_entry_line(text).ok());
    ExportFailure {
        line,
        seq: parsed.map(|(seq, _)| seq),
        entry_id: parsed.and_then(|(_, entry)| entry_id_of(entry)),
        reason,
    }
}

// CSV

struct CsvEntry {
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
    entry: ActivityEntry,
}

fn csv_entry(rec: &csv::StringRecord) -> Result<CsvEntry, String> {
    let cell = |i: usize| rec.get(i).unwrap_or("");
    let opt = |i: usize| Some(cell(i)).filter(|s| !s.is_empty()).map(str::to_owned);
    let seq = parse_canonical_u64(cell(1).as_bytes()).ok_or("seq is not a canonical decimal")?;
    let created_at_ms: i64 = cell(4)
        .parse()
        .ok()
        .filter(|n: &i64| n.to_string() == cell(4))
        .ok_or("created_at_ms is not a canonical decimal")?;
    let kind = ActorType::parse(cell(5)).map_err(|_| "actor_type is not an actor type")?;
    let ip = match cell(7) {
        "" => None,
        text => Some(
            text.parse::<IpAddr>()
                .map_err(|_| "actor_ip is not an IP address")?,
        ),
    };
    let metadata: Map<String, Value> =
        serde_json::from_str(cell(11)).map_err(|_| "metadata is not a JSON object")?;
    let prev =
        parse_hex32(cell(12).as_bytes()).ok_or("prev_hash is not 64 lowercase hex digits")?;
    let hash = parse_hex32(cell(13).as_bytes()).ok_or("hash is not 64 lowercase hex digits")?;
    if !cell(14).is_empty() {
        return Err("an entry row has a checkpoint cell".to_owned());
    }
    Ok(CsvEntry {
        seq,
        prev,
        hash,
        entry: ActivityEntry {
            id: cell(2).to_owned(),
            kind: cell(3).to_owned(),
            created_at_ms,
            actor: Actor {
                kind,
                id: opt(6),
                ip,
                user_agent: opt(8),
            },
            target: Target {
                kind: cell(9).to_owned(),
                id: opt(10),
            },
            metadata,
        },
    })
}

fn csv_checkpoint(rec: &csv::StringRecord) -> Result<SignedCheckpoint, String> {
    if (1..CSV_HEADER.len() - 1).any(|i| !rec.get(i).unwrap_or("").is_empty()) {
        return Err("a checkpoint row has cells other than checkpoint set".to_owned());
    }
    let cell = rec.get(CSV_HEADER.len() - 1).unwrap_or("");
    let signed: SignedCheckpoint =
        serde_json::from_str(cell).map_err(|e| format!("malformed checkpoint: {e}"))?;
    if signed.to_json() != cell {
        return Err("checkpoint is not in the export layout".to_owned());
    }
    Ok(signed)
}

fn csv_entry_failure(line: usize, rec: &csv::StringRecord, reason: String) -> ExportFailure {
    ExportFailure {
        line,
        seq: rec.get(1).and_then(|s| parse_canonical_u64(s.as_bytes())),
        entry_id: rec.get(2).and_then(printable_id),
        reason,
    }
}

fn verify_csv(input: &[u8], key: &AuditPublicKey) -> Result<ExportSummary, ExportFailure> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    // (line, record); a blank line (which CSV readers skip) is refused.
    let mut records: Vec<(usize, csv::StringRecord)> = Vec::new();
    let mut next_line = 1usize;
    loop {
        let mut rec = csv::StringRecord::new();
        match reader.read_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(next_line, |p| {
                    usize::try_from(p.line()).unwrap_or(usize::MAX)
                });
                return Err(fail(line, format!("malformed CSV: {e}")));
            }
        }
        let (line, byte) = rec.position().map_or((next_line, None), |p| {
            (
                usize::try_from(p.line()).unwrap_or(usize::MAX),
                usize::try_from(p.byte()).ok(),
            )
        });
        // The reader skips blank lines silently: a record that "starts" at a line break
        // had one before it.
        if byte
            .and_then(|b| input.get(b))
            .is_some_and(|c| matches!(c, b'\n' | b'\r'))
        {
            return Err(fail(line, "blank line"));
        }
        next_line = usize::try_from(reader.position().line()).unwrap_or(usize::MAX);
        records.push((line, rec));
    }
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    if body.ends_with(b"\n") {
        return Err(fail(next_line, "blank line"));
    }

    let mut rows = records.iter();
    match rows.next() {
        Some((_, header)) if header.iter().eq(CSV_HEADER) => {}
        _ => return Err(fail(1, "not the CSV export header")),
    }
    let closing = records
        .last()
        .filter(|(_, r)| r.get(0) == Some("checkpoint"))
        .and_then(|(_, r)| csv_checkpoint(r).ok());
    let mut v = Verifier::new(key, Verifier::read_closing(key, closing));
    for (line, rec) in rows {
        let line = *line;
        if v.done.is_some() {
            return Err(fail(line, "a record follows the export checkpoint"));
        }
        if rec.len() != CSV_HEADER.len() {
            return Err(fail(
                line,
                format!("{} cells, not {}", rec.len(), CSV_HEADER.len()),
            ));
        }
        match rec.get(0) {
            Some("entry") => {
                let e = csv_entry(rec).map_err(|reason| csv_entry_failure(line, rec, reason))?;
                v.entry(line, e.seq, &e.prev, &e.hash, &e.entry.canonical_bytes())
                    .map_err(|reason| csv_entry_failure(line, rec, reason))?;
            }
            Some("checkpoint") => {
                let signed = csv_checkpoint(rec).map_err(|reason| fail(line, reason))?;
                v.checkpoint(line, &signed).map_err(|b| {
                    match records
                        .iter()
                        .find(|(l, _)| *l == b.line)
                        .filter(|_| b.entry)
                    {
                        Some((_, r)) => csv_entry_failure(b.line, r, b.reason),
                        None => fail(b.line, b.reason),
                    }
                })?;
            }
            _ => return Err(fail(line, "neither an entry nor a checkpoint row")),
        }
    }
    // The number of lines, so that a truncated file is reported one line past its end.
    let newlines = input.iter().filter(|&&c| c == b'\n').count();
    v.finish(newlines + usize::from(!input.ends_with(b"\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use interlock_domain::ActivityType;
    use serde_json::json;

    const WS: &str = "ws_eu_0123456789abcdef0123456789abcdef";

    fn key() -> AuditSigningKey {
        AuditSigningKey::generate().expect("key")
    }

    fn hx(text: &str) -> [u8; 32] {
        parse_hex32(text.as_bytes()).expect("hex")
    }

    fn sample_entry(seq: u64) -> ActivityEntry {
        let types = ActivityType::ALL;
        ActivityEntry {
            id: format!("al_{seq:032x}"),
            kind: types[(seq as usize) % types.len()].as_str().to_owned(),
            created_at_ms: 1_700_000_000_000 + seq as i64 * 1000,
            actor: Actor::new(
                ActorType::Teammate,
                Some(format!("tm_{:032x}", seq % 7)),
                Some(format!("203.0.113.{}", seq % 250).parse().expect("ip")),
                Some("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
            ),
            target: Target::new("contact", format!("ct_{seq:032x}")),
            metadata: json!({
                "reason": "requested",
                "count": seq,
                "permission": "contacts.delete",
                "nested": {"b": [1, true, null], "a": "é\"\\"}
            })
            .as_object()
            .cloned()
            .expect("object"),
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Rec {
        Entry(u64),
        Periodic,
        Final,
    }

    struct Export {
        jsonl: Vec<u8>,
        csv: Vec<u8>,
        /// What each line holds (JSONL line i+1; CSV line i+2).
        recs: Vec<Rec>,
    }

    /// A chain of `last` entries, exported from `first_seq`, with a periodic checkpoint after
    /// every `every`-th entry.
    fn build_export(key: &AuditSigningKey, first_seq: u64, last: u64, every: u64) -> Export {
        let mut jsonl = Vec::new();
        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.write_record(csv_header()).expect("header");
        let mut recs = Vec::new();
        let mut prev = GENESIS;
        let mut anchor = None;
        for seq in 1..=last {
            let entry = sample_entry(seq);
            let bytes = entry.canonical_bytes();
            let hash = entry_hash(&prev, seq, &bytes);
            if seq == first_seq {
                anchor = Some(prev);
            }
            if seq >= first_seq {
                export_entry_line(seq, &prev, &hash, &bytes, &mut jsonl);
                csv.write_record(export_entry_csv_record(seq, &prev, &hash, &entry))
                    .expect("row");
                recs.push(Rec::Entry(seq));
                if seq % every == 0 {
                    let cp = key.sign(&Checkpoint::periodic(
                        WS,
                        seq,
                        hash,
                        1_700_000_000_000 + seq as i64 * 1000 + 500,
                    ));
                    export_checkpoint_line(&cp, &mut jsonl);
                    csv.write_record(export_checkpoint_csv_record(&cp))
                        .expect("row");
                    recs.push(Rec::Periodic);
                }
            }
            prev = hash;
        }
        let anchor = anchor.unwrap_or(prev);
        let periodic = recs.iter().filter(|r| matches!(r, Rec::Periodic)).count() as u64;
        let closing = key.sign(&Checkpoint::export(
            WS,
            first_seq,
            anchor,
            last,
            prev,
            1_800_000_000_000,
            periodic,
        ));
        export_checkpoint_line(&closing, &mut jsonl);
        csv.write_record(export_checkpoint_csv_record(&closing))
            .expect("row");
        recs.push(Rec::Final);
        Export {
            jsonl,
            csv: csv.into_inner().expect("csv"),
            recs,
        }
    }

    fn lines(input: &[u8]) -> Vec<Vec<u8>> {
        input
            .split_inclusive(|&c| c == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn join(lines: &[Vec<u8>]) -> Vec<u8> {
        lines.concat()
    }

    fn failure(input: &[u8], key: &AuditSigningKey) -> ExportFailure {
        match verify_export(input, &key.public_key()) {
            Ok(s) => panic!("verified although tampered: {s:?}"),
            Err(f) => f,
        }
    }

    // --- chain -------------------------------------------------------------------------------

    #[test]
    fn chain_known_answers() {
        // Computed independently (Python hashlib) from the documented formats.
        let leaf = leaf_hash(b"{}");
        assert_eq!(
            leaf,
            hx("5f8358a6c56abb2cc8b59e1628c71b463c628d6de3394fa82f40cc6d964ef5b4")
        );
        let h1 = chain_hash(&GENESIS, 1, &leaf);
        assert_eq!(
            h1,
            hx("8f2e633cc2636d92e48aad444f6458612217c145490fc5a3ed285f9a87f1b364")
        );
        let entry = ActivityEntry {
            id: "al_1".into(),
            kind: "activity_log.retention_cut".into(),
            created_at_ms: 1_700_000_000_000,
            actor: Actor::system(),
            target: Target::kind("activity_log"),
            metadata: Map::new(),
        };
        let bytes = entry.canonical_bytes();
        assert_eq!(
            bytes,
            br#"{"actor":{"id":null,"ip":null,"type":"system","user_agent":null},"created_at_ms":1700000000000,"id":"al_1","metadata":{},"target":{"id":null,"type":"activity_log"},"type":"activity_log.retention_cut"}"#
        );
        assert_eq!(
            leaf_hash(&bytes),
            hx("069d08a0079919b33bdbc0ca73f3235bfe1502c679573702de7031cfa7eecc34")
        );
        assert_eq!(
            entry_hash(&h1, 2, &bytes),
            hx("1bda98b108b10987c703c0c3f20969f9c2fc9252fd504471b21147fd1ba4aa6d")
        );
        // Deterministic, and every input matters.
        assert_eq!(entry_hash(&h1, 2, &bytes), entry_hash(&h1, 2, &bytes));
        assert_ne!(entry_hash(&h1, 3, &bytes), entry_hash(&h1, 2, &bytes));
        assert_ne!(entry_hash(&GENESIS, 2, &bytes), entry_hash(&h1, 2, &bytes));
        assert_ne!(entry_hash(&h1, 2, b"{}"), entry_hash(&h1, 2, &bytes));
        // The leaf and chain labels separate the two hashes.
        assert_ne!(leaf_hash(b""), chain_hash(&GENESIS, 0, &GENESIS));
    }

    #[test]
    fn newline_search_agrees_with_a_plain_scan() {
        let mut text = vec![b'x'; 40];
        assert_eq!(find_newline(&text), None);
        for at in 0..40 {
            for second in [None, Some(at + 1), Some(39)] {
                let mut t = text.clone();
                t[at] = b'\n';
                if let Some(s) = second.filter(|&s| s < 40) {
                    t[s] = b'\n';
                }
                // Bytes that stress the borrow: 0x0b (newline + 1), 0x09, 0x8a, 0x00.
                t[(at + 2) % 40] = 0x0b;
                t[(at + 3) % 40] = 0x8a;
                t[(at + 5) % 40] = 0x00;
                let plain = t.iter().position(|&c| c == b'\n');
                assert_eq!(find_newline(&t), plain, "{at}");
                for start in 0..8 {
                    assert_eq!(
                        find_newline(&t[start..]),
                        t[start..].iter().position(|&c| c == b'\n')
                    );
                }
            }
        }
        text.clear();
        assert_eq!(find_newline(&text), None);
    }

    #[test]
    fn hex_parsing_is_strict() {
        let h = [0xabu8; 32];
        assert_eq!(parse_hex32(&hex32(&h)), Some(h));
        assert_eq!(hex32_string(&h), hex::encode(h));
        assert!(parse_hex32(hex::encode_upper(h).as_bytes()).is_none());
        assert!(parse_hex32(&hex32(&h)[..63]).is_none());
        assert_eq!(parse_canonical_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"01",
            b"+1",
            b"-1",
            b"18446744073709551616",
            b"1a",
        ] {
            assert_eq!(parse_canonical_u64(bad), None, "{bad:?}");
        }
    }

    // --- checkpoints -------------------------------------------------------------------------

    #[test]
    fn signed_message_layout() {
        let p = Checkpoint::periodic(WS, 42, [0x11; 32], 1_700_000_000_123);
        assert_eq!(
            String::from_utf8(p.signed_message()).expect("utf8"),
            format!(
                "interlock.activity.checkpoint.v1\nworkspace {WS}\nkind periodic\ntree_size 42\nhead {}\ntime_ms 1700000000123\n",
                "11".repeat(32)
            )
        );
        let e = Checkpoint::export(WS, 5, [0x22; 32], 9, [0x33; 32], -7, 2);
        assert_eq!(
            String::from_utf8(e.signed_message()).expect("utf8"),
            format!(
                "interlock.activity.checkpoint.v1\nworkspace {WS}\nkind export\ntree_size 9\nhead {}\ntime_ms -7\nfirst_seq 5\nanchor {}\ncheckpoints 2\n",
                "33".repeat(32),
                "22".repeat(32)
            )
        );
    }

    #[test]
    fn sign_verify_and_json_round_trip() {
        let k = key();
        let pk = k.public_key();
        for cp in [
            Checkpoint::periodic(WS, 42, [0x11; 32], 1_700_000_000_123),
            Checkpoint::export(WS, 1, GENESIS, 0, GENESIS, 1_700_000_000_124, 0),
        ] {
            let signed = k.sign(&cp);
            assert_eq!(signed.key_id, pk.key_id());
            assert_eq!(pk.verify(&signed).expect("verifies"), cp);
            let text = signed.to_json();
            assert_eq!(serde_json::to_string(&signed).expect("json"), text);
            let back: SignedCheckpoint = serde_json::from_str(&text).expect("parses");
            assert_eq!(back, signed);
            assert!(pk.verify(&back).is_ok());
        }
        let text = k.sign(&Checkpoint::periodic(WS, 1, [0; 32], 5)).to_json();
        assert!(text.starts_with(&format!(
            "{{\"workspace_id\":\"{WS}\",\"kind\":\"periodic\",\"tree_size\":1,\"head_hash\":\"{}\",\"created_at_ms\":5,\"key_id\":\"{}\",\"signature\":\"",
            "0".repeat(64),
            pk.key_id()
        )));
        assert!(!text.contains("first_seq") && !text.contains("anchor_hash"));
        // Unknown fields, a periodic with export fields, an export without them: refused.
        let extra = text.replacen('{', "{\"extra\":1,", 1);
        assert!(serde_json::from_str::<SignedCheckpoint>(&extra).is_err());
        let mixed = text.replacen(",\"key_id\"", ",\"first_seq\":1,\"key_id\"", 1);
        assert!(serde_json::from_str::<SignedCheckpoint>(&mixed).is_err());
        let bare = text.replacen("\"periodic\"", "\"export\"", 1);
        assert!(serde_json::from_str::<SignedCheckpoint>(&bare).is_err());
        let upper = text.replacen(&"0".repeat(64), &"A".repeat(64), 1);
        assert!(serde_json::from_str::<SignedCheckpoint>(&upper).is_err());
    }

    #[test]
    fn wrong_key_and_altered_fields_are_refused() {
        let k = key();
        let other = key();
        let cp = Checkpoint::export(WS, 3, [0x44; 32], 10, [0x55; 32], 1_700_000_000_000, 1);
        let signed = k.sign(&cp);
        assert!(matches!(
            other.public_key().verify(&signed),
            Err(AuditError::WrongKey { .. })
        ));
        // Another key's signature under this key's id.
        let mut forged = other.sign(&cp);
        forged.key_id = k.public_key().key_id();
        assert_eq!(
            k.public_key().verify(&forged),
            Err(AuditError::BadSignature)
        );

        let pk = k.public_key();
        let altered: [fn(&mut Checkpoint); 6] = [
            |c| c.workspace_id = "ws_eu_other".into(),
            |c| c.tree_size += 1,
            |c| c.head_hash[31] ^= 1,
            |c| c.created_at_ms += 1,
            |c| c.first_seq = Some(4),
            |c| c.anchor_hash = Some([0x45; 32]),
        ];
        for alter in &altered {
            let mut bad = signed.clone();
            alter(&mut bad.checkpoint);
            assert_eq!(pk.verify(&bad), Err(AuditError::BadSignature));
        }
        let mut kind = signed.clone();
        kind.checkpoint.kind = CheckpointKind::Periodic;
        assert!(pk.verify(&kind).is_err());
        let mut sig = signed.clone();
        sig.signature = BASE64.encode([0u8; 64]);
        assert_eq!(pk.verify(&sig), Err(AuditError::BadSignature));
        sig.signature = "not base64!".into();
        assert_eq!(pk.verify(&sig), Err(AuditError::MalformedSignature));
        sig.signature = BASE64.encode([0u8; 63]);
        assert_eq!(pk.verify(&sig), Err(AuditError::MalformedSignature));
    }

    #[test]
    fn public_key_pem_round_trip() {
        let k = key();
        let pk = k.public_key();
        // The DER is what aws-lc-rs writes for the key.
        let der = k.pair.public_key().as_der().expect("der");
        assert_eq!(der.as_ref(), &pk.to_spki_der()[..]);
        let pem = pk.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        assert_eq!(AuditPublicKey::from_pem(&pem).expect("pem"), pk);
        assert_eq!(
            AuditPublicKey::from_pem(&format!("comment\r\n{}", pem.replace('\n', "\r\n")))
                .expect("crlf"),
            pk
        );
        assert_eq!(
            AuditPublicKey::from_raw_base64(&pk.raw_base64()).expect("raw"),
            pk
        );
        assert_eq!(pk.key_id().len(), 16);
        assert_eq!(pk.key_id(), hex::encode(crate::sha256(pk.raw()))[..16]);
        assert!(format!("{pk:?}").contains(&pk.key_id()));
        assert_eq!(AuditPublicKey::from_pem("garbage"), Err(AuditError::Pem));
        // An EC P-256 key is not an Ed25519 key.
        let p256 = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----\n";
        assert_eq!(AuditPublicKey::from_pem(p256), Err(AuditError::Pem));
        assert!(AuditPublicKey::from_raw(&[1u8; 31]).is_err());
    }

    fn openssl(args: &[&str]) -> Option<std::process::Output> {
        std::process::Command::new("openssl")
            .args(args)
            .output()
            .ok()
    }

    #[test]
    fn openssl_reads_the_pem_the_key_file_and_the_signatures() {
        if openssl(&["version"]).is_none() {
            eprintln!("openssl not installed; skipped");
            return;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let k = AuditSigningKey::load_or_create(dir.path(), Region::Eu).expect("key");
        let pk = k.public_key();
        let pem = dir.path().join("key.pem");
        fs::write(&pem, pk.to_pem()).expect("write");
        let pem_s = pem.to_str().expect("path");
        let out = openssl(&["pkey", "-pubin", "-in", pem_s, "-text", "-noout"]).expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("ED25519"));

        // The private key file is PKCS#8 that openssl reads; its public half is our PEM.
        let key_file = AuditSigningKey::path(dir.path(), Region::Eu);
        let out = openssl(&[
            "pkey",
            "-inform",
            "DER",
            "-in",
            key_file.to_str().expect("path"),
            "-pubout",
        ])
        .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), pk.to_pem());

        // A checkpoint signature verifies with openssl over the documented message.
        let cp = Checkpoint::export(WS, 1, GENESIS, 3, [7; 32], 1_700_000_000_000, 0);
        let signed = k.sign(&cp);
        let msg = dir.path().join("msg");
        let sig = dir.path().join("sig");
        fs::write(&msg, cp.signed_message()).expect("write");
        fs::write(&sig, BASE64.decode(&signed.signature).expect("b64")).expect("write");
        let verify = |msg: &Path| {
            openssl(&[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                pem_s,
                "-rawin",
                "-in",
                msg.to_str().expect("path"),
                "-sigfile",
                sig.to_str().expect("path"),
            ])
            .expect("run")
        };
        let out = verify(&msg);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut altered = cp.signed_message();
        altered[40] ^= 1;
        fs::write(&msg, altered).expect("write");
        assert!(!verify(&msg).status.success());
    }

    #[test]
    fn key_file_is_private_reloads_and_loose_files_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let k = AuditSigningKey::load_or_create(dir.path(), Region::Us).expect("create");
        let file = AuditSigningKey::path(dir.path(), Region::Us);
        assert_eq!(
            fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(dir.path().join("us"))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let again = AuditSigningKey::load_or_create(dir.path(), Region::Us).expect("reload");
        assert_eq!(again.public_key(), k.public_key());
        let other = AuditSigningKey::load_or_create(dir.path(), Region::Eu).expect("eu");
        assert_ne!(other.public_key(), k.public_key());
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path().join("us")).expect("dir").count(), 1);

        // Debug never shows the private key.
        let der = k.pair.to_pkcs8v1().expect("pkcs8");
        let debug = format!("{k:?}");
        assert!(debug.contains("<redacted>") && debug.contains(&k.public_key().key_id()));
        assert!(!debug.contains(&hex::encode(&der.as_ref()[der.as_ref().len() - 32..])));

        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(
            AuditSigningKey::load_or_create(dir.path(), Region::Us),
            Err(CryptoError::KeyFilePermissions { .. })
        ));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&file, b"not a key").expect("write");
        assert!(matches!(
            AuditSigningKey::load_or_create(dir.path(), Region::Us),
            Err(CryptoError::InvalidKey)
        ));
    }

    #[test]
    fn racing_creators_share_one_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let keys: Vec<AuditPublicKey> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        AuditSigningKey::load_or_create(dir.path(), Region::Au)
                            .expect("key")
                            .public_key()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(fs::read_dir(dir.path().join("au")).expect("dir").count(), 1);
    }

    // --- exports -----------------------------------------------------------------------------

    #[test]
    fn a_generated_export_verifies_in_both_formats() {
        let k = key();
        let ex = build_export(&k, 1, 23, 5);
        for input in [&ex.jsonl, &ex.csv] {
            let s = verify_export(input, &k.public_key()).expect("verifies");
            assert_eq!(s.workspace_id, WS);
            assert_eq!((s.first_seq, s.last_seq, s.entries), (1, 23, 23));
            assert_eq!(s.checkpoints, 5);
            assert_eq!(s.anchor_hash, GENESIS);
            assert_eq!(s.exported_at_ms, 1_800_000_000_000);
        }
        // The entry line layout is exactly the documented one.
        let first = lines(&ex.jsonl)[0].clone();
        let entry = sample_entry(1).canonical_bytes();
        let hash = entry_hash(&GENESIS, 1, &entry);
        let expected = [
            format!(
                "{{\"seq\":1,\"prev_hash\":\"{}\",\"hash\":\"{}\",\"entry\":",
                "0".repeat(64),
                hex::encode(hash)
            )
            .into_bytes(),
            entry,
            b"}\n".to_vec(),
        ]
        .concat();
        assert_eq!(first, expected);
        assert!(ex.csv.starts_with(CSV_HEADER.join(",").as_bytes()));
    }

    #[test]
    fn partial_and_empty_ranges_verify() {
        let k = key();
        // After a retention cut: entries 8..=20, anchored on the hash of 7.
        let ex = build_export(&k, 8, 20, 5);
        for input in [&ex.jsonl, &ex.csv] {
            let s = verify_export(input, &k.public_key()).expect("verifies");
            assert_eq!((s.first_seq, s.last_seq, s.entries), (8, 20, 13));
            assert_ne!(s.anchor_hash, GENESIS);
        }
        // Dropping the first line of a partial export is still caught (by the anchor).
        let l = lines(&ex.jsonl);
        let f = failure(&join(&l[1..]), &k);
        assert_eq!((f.line, f.seq), (1, Some(9)), "{f}");
        // Nothing to export: only the closing checkpoint.
        for (first, last) in [(1, 0), (6, 5)] {
            let ex = build_export(&k, first, last, 4);
            assert_eq!(ex.recs, vec![Rec::Final]);
            for input in [&ex.jsonl, &ex.csv] {
                let s = verify_export(input, &k.public_key()).expect("verifies");
                assert_eq!((s.first_seq, s.last_seq, s.entries), (first, last, 0));
            }
        }
    }

    /// Replace the first occurrence of `from` in line `line` (1-based).
    fn edit(input: &[u8], line: usize, from: &str, to: &str) -> Vec<u8> {
        let mut l = lines(input);
        let text = String::from_utf8(l[line - 1].clone()).expect("utf8");
        assert!(text.contains(from), "{from} not in line {line}: {text}");
        l[line - 1] = text.replacen(from, to, 1).into_bytes();
        join(&l)
    }

    #[test]
    fn editing_any_field_of_an_entry_names_its_line() {
        let k = key();
        let ex = build_export(&k, 1, 23, 5);
        // Line 14 holds seq 12 (two periodic checkpoints precede it).
        assert_eq!(ex.recs[13], Rec::Entry(12));
        let e = sample_entry(12);
        let edits = [
            ("\"reason\":\"requested\"", "\"reason\":\"requestes\""),
            ("\"count\":12", "\"count\":13"),
            (
                &format!("\"type\":\"{}\"}}", e.kind),
                "\"type\":\"contact.deleted\"}",
            ),
            ("1700000012000", "1700000012001"),
            ("\"ip\":\"203.0.113.12\"", "\"ip\":\"203.0.113.13\""),
            ("Firefox/128.0", "Firefox/129.0"),
            ("\"id\":\"ct_", "\"id\":\"cv_"),
        ];
        for (from, to) in edits {
            let f = failure(&edit(&ex.jsonl, 14, from, to), &k);
            assert_eq!(f.line, 14, "{from}: {f}");
            assert_eq!(f.seq, Some(12));
            assert_eq!(f.entry_id.as_deref(), Some(e.id.as_str()));
            assert!(f.reason.contains("hash does not match"), "{f}");
        }
        // The hashes in the line.
        let f = failure(&edit(&ex.jsonl, 14, "\"hash\":\"", "\"hash\":\"0"), &k);
        assert_eq!(f.line, 14);
        let prev = hex32_string(&entry_hash(&GENESIS, 1, &sample_entry(1).canonical_bytes()));
        let f = failure(&edit(&ex.jsonl, 2, &prev, &"1".repeat(64)), &k);
        assert_eq!((f.line, f.seq), (2, Some(2)));
        assert!(f.reason.contains("prev_hash"), "{f}");
        // The seq.
        let f = failure(&edit(&ex.jsonl, 14, "{\"seq\":12", "{\"seq\":13"), &k);
        assert_eq!(f.line, 14);
        // Spaces break the strict layout.
        let f = failure(&edit(&ex.jsonl, 14, "\"seq\":12", "\"seq\": 12"), &k);
        assert_eq!(f.to_string(), "line 14: seq is not a canonical decimal");
        // Re-encoding the entry (same JSON, other bytes) breaks the hash: the raw bytes count.
        let f = failure(&edit(&ex.jsonl, 14, "\"count\":12", "\"count\":12.0"), &k);
        assert_eq!(f.line, 14);
    }

    #[test]
    fn failure_display_names_line_seq_and_entry() {
        let k = key();
        let ex = build_export(&k, 1, 10, 5);
        let f = failure(&edit(&ex.jsonl, 7, "requested", "requestes"), &k);
        assert_eq!(
            f.to_string(),
            format!(
                "line 7 (seq 6, al_{:032x}): hash does not match the entry (the entry or its hash was altered)",
                6
            )
        );
    }

    /// Rewrite one CSV cell of line `line` (1-based; one record per line here).
    fn edit_csv(input: &[u8], line: usize, cell: usize, value: &str) -> Vec<u8> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(input);
        let mut w = csv::Writer::from_writer(Vec::new());
        for (i, rec) in r.records().enumerate() {
            let mut rec: Vec<String> = rec.expect("rec").iter().map(str::to_owned).collect();
            if i + 1 == line {
                rec[cell] = value.to_owned();
            }
            w.write_record(&rec).expect("write");
        }
        w.into_inner().expect("csv")
    }

    #[test]
    fn editing_any_csv_cell_of_an_entry_names_its_line() {
        let k = key();
        let ex = build_export(&k, 1, 23, 5);
        // CSV line 15 holds seq 12.
        let e = sample_entry(12);
        let edits = [
            (2, "al_x"),
            (3, "contact.deleted"),
            (4, "1700000012001"),
            (4, "01700000012000"),
            (5, "staff"),
            (6, ""),
            (7, "203.0.113.13"),
            (8, "curl/8"),
            (9, "conversation"),
            (10, "ct_x"),
            (11, r#"{"count":12}"#),
            (12, &"1".repeat(64)),
            (13, &"2".repeat(64)),
            (14, "{}"),
            (1, "13"),
        ];
        for (cell, value) in edits {
            let f = failure(&edit_csv(&ex.csv, 15, cell, value), &k);
            assert_eq!(f.line, 15, "cell {cell}: {f}");
            assert!(f.entry_id.is_some(), "cell {cell}: {f}");
        }
        let f = failure(&edit_csv(&ex.csv, 15, 7, "203.0.113.13"), &k);
        assert_eq!(f.seq, Some(12));
        assert_eq!(f.entry_id.as_deref(), Some(e.id.as_str()));
        assert!(f.reason.contains("hash does not match"), "{f}");
        // A checkpoint row with an entry cell set.
        let f = failure(&edit_csv(&ex.csv, 7, 1, "5"), &k);
        assert_eq!(f.line, 7, "{f}");
        // The header.
        let f = failure(&edit_csv(&ex.csv, 1, 3, "kind"), &k);
        assert_eq!(f.line, 1);
    }

    /// Where deleting line `d` (1-based) of a JSONL export is caught, if at all.
    fn expected_on_delete(recs: &[Rec], d: usize) -> Option<usize> {
        match recs[d - 1] {
            Rec::Periodic => None,
            Rec::Entry(_) | Rec::Final => Some(d),
        }
    }

    #[test]
    fn deleting_any_line_fails_at_that_line() {
        let k = key();
        let pk = k.public_key();
        let ex = build_export(&k, 3, 23, 5);
        let jl = lines(&ex.jsonl);
        let cl = lines(&ex.csv);
        assert_eq!(jl.len(), ex.recs.len());
        assert_eq!(cl.len(), ex.recs.len() + 1);
        for d in 1..=jl.len() {
            let mut cut = jl.clone();
            cut.remove(d - 1);
            let mut cut_csv = cl.clone();
            cut_csv.remove(d);
            match expected_on_delete(&ex.recs, d) {
                Some(line) => {
                    assert_eq!(failure(&join(&cut), &k).line, line, "jsonl line {d}");
                    assert_eq!(
                        failure(&join(&cut_csv), &k).line,
                        line + 1,
                        "csv line {}",
                        d + 1
                    );
                }
                None => {
                    // A removed periodic checkpoint: the export checkpoint counts them, so
                    // the failure is reported at the last line.
                    assert_eq!(failure(&join(&cut), &k).line, cut.len(), "jsonl line {d}");
                    assert_eq!(failure(&join(&cut_csv), &k).line, cut_csv.len());
                    assert!(verify_export(&join(&cut), &pk).is_err());
                }
            }
        }
        // The CSV header.
        assert_eq!(failure(&join(&cl[1..]), &k).line, 1);
    }

    #[test]
    fn swapping_any_two_lines_fails() {
        let k = key();
        let ex = build_export(&k, 1, 12, 4);
        let jl = lines(&ex.jsonl);
        for a in 0..jl.len() {
            for b in a + 1..jl.len() {
                let mut s = jl.clone();
                s.swap(a, b);
                let f = failure(&join(&s), &k);
                assert!(
                    f.line == a + 1 || f.line == b + 1,
                    "swap {} and {}: {f}",
                    a + 1,
                    b + 1
                );
                if matches!(ex.recs[a], Rec::Entry(_)) && matches!(ex.recs[b], Rec::Entry(_)) {
                    assert_eq!(f.line, a + 1);
                }
            }
        }
    }

    #[test]
    fn inserting_a_duplicated_line_fails_at_the_copy() {
        let k = key();
        let ex = build_export(&k, 1, 12, 4);
        let jl = lines(&ex.jsonl);
        let cl = lines(&ex.csv);
        for d in 0..jl.len() {
            let mut dup = jl.clone();
            dup.insert(d + 1, jl[d].clone());
            assert_eq!(failure(&join(&dup), &k).line, d + 2, "jsonl line {}", d + 1);
            let mut dup = cl.clone();
            dup.insert(d + 2, cl[d + 1].clone());
            assert_eq!(failure(&join(&dup), &k).line, d + 3, "csv line {}", d + 2);
        }
    }

    #[test]
    fn dropping_the_tail_fails() {
        let k = key();
        let ex = build_export(&k, 1, 12, 4);
        let jl = lines(&ex.jsonl);
        let n = jl.len();
        for drop in 1..=3 {
            let f = failure(&join(&jl[..n - drop]), &k);
            assert_eq!(f.line, n - drop + 1, "{f}");
            assert!(f.reason.contains("truncated"), "{f}");
        }
        // A periodic checkpoint as the last record.
        assert_eq!(ex.recs[n - 2], Rec::Periodic);
        assert_eq!(failure(&join(&jl[..n - 1]), &k).line, n);
        // Truncated mid-line.
        let cut = &ex.jsonl[..ex.jsonl.len() - 10];
        assert_eq!(failure(cut, &k).line, n);
        let cl = lines(&ex.csv);
        let f = failure(&join(&cl[..cl.len() - 1]), &k);
        assert_eq!(f.line, cl.len());
    }

    #[test]
    fn checkpoints_must_verify_and_agree() {
        let k = key();
        let other = key();
        let ex = build_export(&k, 1, 12, 4);
        let jl = lines(&ex.jsonl);
        let n = jl.len();
        // Line 5 is the periodic checkpoint at tree_size 4; the last line the export one.
        assert_eq!(ex.recs[4], Rec::Periodic);
        for line in [5, n] {
            // An altered signature.
            let text = String::from_utf8(jl[line - 1].clone()).expect("utf8");
            let at = text.find("\"signature\":\"").expect("sig") + 13;
            let mut bytes = text.into_bytes();
            bytes[at + 5] = if bytes[at + 5] == b'A' { b'B' } else { b'A' };
            let mut l = jl.clone();
            l[line - 1] = bytes;
            let f = failure(&join(&l), &k);
            assert_eq!(f.line, line, "{f}");
            assert!(f.reason.contains("signature"), "{f}");

            // Signed by another key.
            let mut signed: CheckpointLine =
                serde_json::from_slice(&jl[line - 1]).expect("checkpoint");
            let resigned = other.sign(&signed.checkpoint.checkpoint);
            let mut l = jl.clone();
            l[line - 1].clear();
            export_checkpoint_line(&resigned, &mut l[line - 1]);
            let f = failure(&join(&l), &k);
            assert_eq!(f.line, line, "{f}");
            assert!(f.reason.contains("signed by key"), "{f}");

            // Validly signed, but for another workspace.
            signed.checkpoint.checkpoint.workspace_id = "ws_eu_other".into();
            let resigned = k.sign(&signed.checkpoint.checkpoint);
            l[line - 1].clear();
            export_checkpoint_line(&resigned, &mut l[line - 1]);
            let f = failure(&join(&l), &k);
            assert!(f.line == line || f.line == 5, "{f}");
        }
        // Validly signed, but of another head (a rewritten chain).
        let mut cp: CheckpointLine = serde_json::from_slice(&jl[4]).expect("checkpoint");
        cp.checkpoint.checkpoint.head_hash[0] ^= 1;
        let mut l = jl.clone();
        l[4].clear();
        export_checkpoint_line(&k.sign(&cp.checkpoint.checkpoint), &mut l[4]);
        let f = failure(&join(&l), &k);
        assert_eq!(f.line, 5);
        assert!(f.reason.contains("the chain was altered"), "{f}");
        // A chain rewritten from seq 6 on, with fresh hashes, is caught at the next
        // checkpoint (line 10: tree_size 8).
        let mut rewritten = Vec::new();
        let mut prev = GENESIS;
        for (i, rec) in ex.recs.iter().enumerate() {
            match rec {
                Rec::Entry(seq) => {
                    let mut e = sample_entry(*seq);
                    if *seq == 6 {
                        e.metadata.insert("reason".into(), "rewritten".into());
                    }
                    let bytes = e.canonical_bytes();
                    let hash = entry_hash(&prev, *seq, &bytes);
                    export_entry_line(*seq, &prev, &hash, &bytes, &mut rewritten);
                    prev = hash;
                }
                _ => rewritten.extend_from_slice(&jl[i]),
            }
        }
        let f = failure(&rewritten, &k);
        assert_eq!(f.line, 10, "{f}");
    }

    #[test]
    fn malformed_files_fail() {
        let k = key();
        let ex = build_export(&k, 1, 6, 3);
        let jl = lines(&ex.jsonl);
        let n = jl.len();
        assert_eq!(failure(b"", &k).line, 1);
        assert_eq!(failure(b"\n", &k).line, 1);
        // A blank line, in the middle or at the end.
        let mut l = jl.clone();
        l.insert(2, b"\n".to_vec());
        assert_eq!(failure(&join(&l), &k).to_string(), "line 3: blank line");
        let mut l = jl.clone();
        l.push(b"\n".to_vec());
        assert_eq!(failure(&join(&l), &k).line, n + 1);
        // Garbage.
        let mut l = jl.clone();
        l.insert(3, b"hello\n".to_vec());
        assert_eq!(failure(&join(&l), &k).line, 4);
        let mut l = jl.clone();
        l[3] = b"{\"checkpoint\":{}}\n".to_vec();
        assert_eq!(failure(&join(&l), &k).line, 4);
        // A checkpoint line re-encoded (same JSON, other bytes).
        let mut l = jl.clone();
        l[n - 1] = [&jl[n - 1][..jl[n - 1].len() - 1], b" \n"].concat();
        assert_eq!(failure(&join(&l), &k).line, n);
        let mut l = jl.clone();
        l[3] = String::from_utf8(jl[3].clone())
            .expect("utf8")
            .replacen("\"kind\":", "\"kind\": ", 1)
            .into_bytes();
        assert_eq!(failure(&join(&l), &k).line, 4);
        // Anything after the export checkpoint, even a valid periodic one.
        let mut l = jl.clone();
        l.push(jl[3].clone());
        assert_eq!(failure(&join(&l), &k).line, n + 1);
        // CSV: a blank line, a short row.
        let cl = lines(&ex.csv);
        let mut c = cl.clone();
        c.insert(3, b"\n".to_vec());
        assert_eq!(failure(&join(&c), &k).line, 4);
        let mut c = cl.clone();
        c.push(b"\n".to_vec());
        assert_eq!(failure(&join(&c), &k).line, cl.len() + 1);
        let mut c = cl.clone();
        c[2] = b"entry,1\n".to_vec();
        assert_eq!(failure(&join(&c), &k).line, 3);
        assert_eq!(failure(b"record,seq\n", &k).line, 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any one changed byte of an export fails verification, bar a line break turned
        /// into `\r` (tolerated: the last one in JSON Lines, any one in CSV, where `\r` ends a
        /// record), and no changed byte makes the verifier panic.
        #[test]
        fn any_changed_byte_fails(at in 0usize..usize::MAX, byte: u8, csv: bool) {
            let (k, ex) = &*MUTATION_FIXTURE;
            let input = if csv { &ex.csv } else { &ex.jsonl };
            let at = at % input.len();
            proptest::prop_assume!(input[at] != byte);
            let mut changed = input.clone();
            changed[at] = byte;
            let result = verify_export(&changed, &k.public_key());
            let line_break = input[at] == b'\n' && byte == b'\r';
            let tolerated = line_break && (csv || at == input.len() - 1);
            if !tolerated {
                proptest::prop_assert!(result.is_err(), "byte {at} -> {byte:#04x} verified");
            }
        }

        #[test]
        fn arbitrary_input_never_panics(bytes: Vec<u8>, csv: bool) {
            let k = &MUTATION_FIXTURE.0;
            let mut input = if csv { b"record,".to_vec() } else { b"{\"seq\":1,".to_vec() };
            input.extend_from_slice(&bytes);
            let _ = verify_export(&input, &k.public_key());
            let _ = verify_export(&bytes, &k.public_key());
        }
    }

    static MUTATION_FIXTURE: std::sync::LazyLock<(AuditSigningKey, Export)> =
        std::sync::LazyLock::new(|| {
            let k = key();
            let ex = build_export(&k, 2, 6, 3);
            (k, ex)
        });

    #[test]
    fn line_endings_are_tolerated() {
        let k = key();
        let ex = build_export(&k, 1, 6, 3);
        let pk = k.public_key();
        // No final newline.
        assert!(verify_export(&ex.jsonl[..ex.jsonl.len() - 1], &pk).is_ok());
        assert!(verify_export(&ex.csv[..ex.csv.len() - 1], &pk).is_ok());
        // CRLF.
        let crlf: Vec<u8> = lines(&ex.jsonl)
            .into_iter()
            .flat_map(|l| [&l[..l.len() - 1], b"\r\n"].concat())
            .collect();
        assert!(verify_export(&crlf, &pk).is_ok());
    }
}
