//! The region's staff audit log (docs/staff-access.md): what happened to and by the operator's
//! staff outside any workspace — members added and disabled, sign-ins and failed sign-ins,
//! passkeys registered and removed, devices issued and revoked. (What staff do inside a
//! workspace is in that workspace's activity log.)
//!
//! Invariants:
//! - Entries are sealed under the region's master key (bound to table, entry id and field);
//!   the plain columns are the sequence number, id, type, time and the staff member's
//!   pseudonymous id.
//! - Entries form one hash chain per region: `hash = chain_hash(prev, seq,
//!   staff_leaf_hash(canonical))` from the all-zero genesis, so a changed, removed or
//!   reordered entry breaks [`Cell::verify_staff_audit`] at that sequence number.
//! - Appends are serialised in this process; a second process appending at the same moment
//!   loses the race on the sequence number's primary key and retries on the new head.
//! - An entry is written after what it records has happened (a failed sign-in is recorded as
//!   such); it is not in the same transaction.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Cell, col};
use crate::StoreError;
use crate::db::{Arg, Stmt};

const TABLE: &str = "staff_audit";

/// One entry, opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaffAuditEntry {
    pub seq: i64,
    pub id: String,
    /// `staff.added`, `staff.signed_in`, … (docs/staff-access.md).
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at_ms: i64,
    /// The staff member the entry is about (`sf_…`), if any.
    pub staff_id: Option<String>,
    pub metadata: Map<String, Value>,
}

/// The canonical bytes of an entry: its JSON with keys in a fixed (sorted) order.
fn canonical(e: &StaffAuditEntry) -> Result<Vec<u8>, StoreError> {
    let v = serde_json::json!({
        "created_at_ms": e.created_at_ms,
        "id": e.id,
        "metadata": e.metadata,
        "seq": e.seq,
        "staff_id": e.staff_id,
        "type": e.kind,
    });
    serde_json::to_vec(&v).map_err(|e| StoreError::Config(format!("staff audit entry: {e}")))
}

/// Where verification found the chain broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffAuditBreak {
    /// The first sequence number that does not verify (missing, changed or out of order).
    pub seq: i64,
    pub reason: &'static str,
}

/// Metadata from a JSON object literal.
pub(super) fn meta(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Cell {
    /// Append an entry to the region's staff audit chain.
    pub async fn staff_audit(
        &self,
        kind: &str,
        staff_id: Option<&str>,
        metadata: Map<String, Value>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _serial = self.staff_audit_lock.lock().await;
        let mut tries = 0;
        loop {
            let head = sqlx::query("SELECT seq, hash FROM staff_audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Db)?;
            let (prev_seq, prev) = match head {
                Some(row) => (
                    col::<i64>(&row, "seq")?,
                    crate::db::decode_hash(&col::<String>(&row, "hash")?)?,
                ),
                None => (0, interlock_crypto::audit::GENESIS),
            };
            let entry = StaffAuditEntry {
                seq: prev_seq + 1,
                id: interlock_domain::ActivityId::new().to_string(),
                kind: kind.to_owned(),
                created_at_ms: now_ms,
                staff_id: staff_id.map(str::to_owned),
                metadata: metadata.clone(),
            };
            let bytes = zeroize::Zeroizing::new(canonical(&entry)?);
            let hash = interlock_crypto::audit::chain_hash(
                &prev,
                u64::try_from(entry.seq).unwrap_or(0),
                &interlock_crypto::audit::staff_leaf_hash(&bytes),
            );
            let master = self.keyring.active()?;
            let r = self
                .writer
                .write(vec![Stmt::new(
                    "INSERT INTO staff_audit (seq, id, type, created_at, staff_id, body_ct, master_version, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    vec![
                        Arg::Int(entry.seq),
                        Arg::Text(entry.id.clone()),
                        Arg::Text(entry.kind.clone()),
                        Arg::Int(now_ms),
                        Arg::OptText(entry.staff_id.clone()),
                        Arg::Bytes(master.seal_region_record(TABLE, &entry.id, "entry", &bytes)?),
                        Arg::Int(master.version),
                        Arg::Text(hex::encode(hash)),
                    ],
                )])
                .await;
            match r {
                // Another process took this sequence number: read the new head and retry.
                Err(StoreError::Conflict(_)) if tries < 5 => tries += 1,
                other => return other,
            }
        }
    }

    /// Entries after `after_seq`, oldest first, at most `limit`. An entry that does not open
    /// is an integrity error.
    pub async fn staff_audit_entries(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StaffAuditEntry>, StoreError> {
        self.staff_audit_rows(after_seq, limit)
            .await?
            .into_iter()
            .map(|(_, r)| r.map(|(e, _)| e))
            .collect()
    }

    /// Rows after `after_seq`: each row's `seq` column and the entry opened from it (with the
    /// stored hash), or why it does not open.
    #[allow(clippy::type_complexity)]
    async fn staff_audit_rows(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Result<(StaffAuditEntry, String), StoreError>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, body_ct, master_version, hash FROM staff_audit WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = col(row, "seq")?;
            out.push((seq, self.open_staff_audit_row(row, seq)));
        }
        Ok(out)
    }

    fn open_staff_audit_row(
        &self,
        row: &sqlx::any::AnyRow,
        seq: i64,
    ) -> Result<(StaffAuditEntry, String), StoreError> {
        let malformed = || StoreError::Integrity(interlock_crypto::CryptoError::Malformed);
        let id: String = col(row, "id")?;
        let master = self.keyring.get(col(row, "master_version")?)?;
        let body = master
            .open_region_record(TABLE, &id, "entry", &col::<Vec<u8>>(row, "body_ct")?)
            .map_err(super::integrity)?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| malformed())?;
        let entry = (|| {
            Some(StaffAuditEntry {
                seq: v.get("seq")?.as_i64()?,
                id: v.get("id")?.as_str()?.to_owned(),
                kind: v.get("type")?.as_str()?.to_owned(),
                created_at_ms: v.get("created_at_ms")?.as_i64()?,
                staff_id: v.get("staff_id")?.as_str().map(str::to_owned),
                metadata: v.get("metadata")?.as_object()?.clone(),
            })
        })()
        .ok_or_else(malformed)?;
        // The sealed body names its own place: a row moved to another seq does not open as
        // that seq.
        if entry.seq != seq || entry.id != id {
            return Err(malformed());
        }
        Ok((entry, col(row, "hash")?))
    }

    /// The stored chain hash after entry `seq` (hex), if there is such an entry: with an
    /// earlier copy of it, a rewritten chain is caught even when every hash was recomputed.
    pub async fn staff_audit_hash_at(&self, seq: i64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT hash FROM staff_audit WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)
    }

    /// Walk the whole chain from genesis: `Ok(n)` with the number of entries when every entry
    /// opens and every hash follows from the one before; otherwise where it breaks.
    pub async fn verify_staff_audit(&self) -> Result<Result<i64, StaffAuditBreak>, StoreError> {
        let mut prev = interlock_crypto::audit::GENESIS;
        let mut expect = 1i64;
        loop {
            let rows = self.staff_audit_rows(expect - 1, 1000).await?;
            if rows.is_empty() {
                return Ok(Ok(expect - 1));
            }
            for (seq, opened) in rows {
                if seq != expect {
                    return Ok(Err(StaffAuditBreak {
                        seq: expect,
                        reason: "an entry is missing",
                    }));
                }
                let (entry, stored) = match opened {
                    Ok(x) => x,
                    Err(StoreError::Integrity(_)) => {
                        return Ok(Err(StaffAuditBreak {
                            seq: expect,
                            reason: "an entry does not open (changed, or moved from another place)",
                        }));
                    }
                    Err(e) => return Err(e),
                };
                if entry.seq != expect {
                    return Ok(Err(StaffAuditBreak {
                        seq: expect,
                        reason: "an entry is missing",
                    }));
                }
                let bytes = canonical(&entry)?;
                let hash = interlock_crypto::audit::chain_hash(
                    &prev,
                    u64::try_from(entry.seq).unwrap_or(0),
                    &interlock_crypto::audit::staff_leaf_hash(&bytes),
                );
                if hex::encode(hash) != stored {
                    return Ok(Err(StaffAuditBreak {
                        seq: expect,
                        reason: "the stored hash does not follow from the previous entry",
                    }));
                }
                prev = hash;
                expect += 1;
            }
        }
    }
}
