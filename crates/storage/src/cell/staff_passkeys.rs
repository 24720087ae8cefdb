//! Staff members' passkeys (WebAuthn credentials, user verification required) and their
//! pending ceremonies (docs/staff-access.md). As for teammates, the WebAuthn protocol lives in
//! the HTTP layer (webauthn-rs); this module stores its serialised values and hands them back.
//!
//! Invariants:
//! - Credentials, their names and ceremony states are sealed under the region's master key,
//!   bound to table, row and field; staff belong to no workspace, so no workspace key applies.
//! - A ceremony is single use (taking it deletes it), expires after five minutes, and belongs
//!   to one staff member on one trusted device: it is taken only from that device.
//! - A passkey sign-in opens the same device-bound session as a TOTP sign-in, and only for a
//!   member who is not disabled.

use interlock_crypto::{RegionToken, TokenHash, TokenKind};
use interlock_domain::{PasskeyId, StaffId};
use zeroize::Zeroizing;

use super::{CEREMONY_TTL_MS, Cell, col, parse_id};
use crate::db::{Arg, Stmt};
use crate::{StoreError, now_ms};

/// A stored staff passkey: its metadata and the serialised credential.
pub struct StoredStaffPasskey {
    pub id: PasskeyId,
    pub name: String,
    pub created_at: i64,
    pub credential: Zeroizing<Vec<u8>>,
}

/// A staff ceremony taken back: whose, from which device, and its state.
pub struct StaffCeremony {
    pub staff_id: StaffId,
    pub device_serial: String,
    pub state: Zeroizing<Vec<u8>>,
}

const TABLE: &str = "staff_passkeys";
const CEREMONIES: &str = "staff_ceremonies";

impl Cell {
    /// Store a new passkey of a staff member (who must not be disabled).
    pub async fn add_staff_passkey(
        &self,
        staff: &StaffId,
        name: &str,
        credential: &[u8],
    ) -> Result<(PasskeyId, i64), StoreError> {
        let master = self.keyring.active()?;
        let id = PasskeyId::new();
        let now = now_ms();
        self.writer
            .write(vec![
                Stmt::new(
                    "INSERT INTO staff_passkeys (id, staff_id, name_ct, passkey_ct, master_version, created_at) SELECT $1, id, $3, $4, $5, $6 FROM staff WHERE id = $2 AND disabled_at IS NULL",
                    vec![
                        Arg::Text(id.to_string()),
                        Arg::Text(staff.to_string()),
                        Arg::Bytes(master.seal_region_record(TABLE, id.as_str(), "name", name.as_bytes())?),
                        Arg::Bytes(master.seal_region_record(TABLE, id.as_str(), "credential", credential)?),
                        Arg::Int(master.version),
                        Arg::Int(now),
                    ],
                )
                .expect(1),
            ])
            .await?;
        self.staff_audit(
            "staff.passkey_added",
            Some(staff.as_str()),
            super::staff_audit::meta(serde_json::json!({ "passkey_id": id.as_str() })),
            now,
        )
        .await?;
        Ok((id, now))
    }

    /// A staff member's passkeys, oldest first.
    pub async fn staff_passkeys(
        &self,
        staff: &StaffId,
    ) -> Result<Vec<StoredStaffPasskey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name_ct, passkey_ct, master_version, created_at FROM staff_passkeys WHERE staff_id = $1 ORDER BY created_at, id",
        )
        .bind(staff.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = col(row, "id")?;
            let master = self.keyring.get(col(row, "master_version")?)?;
            let name = master
                .open_region_record(TABLE, &id, "name", &col::<Vec<u8>>(row, "name_ct")?)
                .map_err(super::integrity)?;
            let credential = master
                .open_region_record(
                    TABLE,
                    &id,
                    "credential",
                    &col::<Vec<u8>>(row, "passkey_ct")?,
                )
                .map_err(super::integrity)?;
            out.push(StoredStaffPasskey {
                name: super::text(&name)?,
                credential,
                created_at: col(row, "created_at")?,
                id: parse_id(PasskeyId::parse(&id))?,
            });
        }
        Ok(out)
    }

    /// Replace a staff passkey's serialised credential (its signature counter moved on).
    pub async fn update_staff_passkey(
        &self,
        staff: &StaffId,
        id: &PasskeyId,
        credential: &[u8],
    ) -> Result<(), StoreError> {
        let master = self.keyring.active()?;
        let name = self
            .staff_passkeys(staff)
            .await?
            .into_iter()
            .find(|p| &p.id == id)
            .ok_or(StoreError::NotFound)?
            .name;
        // The name is re-sealed too, so the row stays under one master key version.
        self.exactly_one(
            "UPDATE staff_passkeys SET passkey_ct = $3, name_ct = $4, master_version = $5 WHERE staff_id = $1 AND id = $2",
            vec![
                Arg::Text(staff.to_string()),
                Arg::Text(id.to_string()),
                Arg::Bytes(master.seal_region_record(TABLE, id.as_str(), "credential", credential)?),
                Arg::Bytes(master.seal_region_record(TABLE, id.as_str(), "name", name.as_bytes())?),
                Arg::Int(master.version),
            ],
        )
        .await
    }

    /// Remove one of a staff member's passkeys (`NotFound` when it is not theirs).
    pub async fn delete_staff_passkey(
        &self,
        staff: &StaffId,
        id: &PasskeyId,
    ) -> Result<(), StoreError> {
        self.exactly_one(
            "DELETE FROM staff_passkeys WHERE staff_id = $1 AND id = $2",
            vec![Arg::Text(staff.to_string()), Arg::Text(id.to_string())],
        )
        .await?;
        self.staff_audit(
            "staff.passkey_removed",
            Some(staff.as_str()),
            super::staff_audit::meta(serde_json::json!({ "passkey_id": id.as_str() })),
            now_ms(),
        )
        .await
    }

    /// Park a staff ceremony's state for `staff` on the device `device_serial`; the returned
    /// token names it (five minutes, single use). Expired ceremonies are cleared on the way.
    pub async fn start_staff_ceremony(
        &self,
        staff: &StaffId,
        device_serial: &str,
        kind: &'static str,
        state: &[u8],
    ) -> Result<RegionToken, StoreError> {
        let master = self.keyring.active()?;
        let token = RegionToken::generate(TokenKind::Ceremony, self.region)?;
        let hash = token.hash();
        let record = hex::encode(hash.as_bytes());
        let now = now_ms();
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM staff_ceremonies WHERE expires_at <= $1",
                    vec![Arg::Int(now)],
                ),
                Stmt::new(
                    "INSERT INTO staff_ceremonies (token_hash, staff_id, device_serial, kind, state_ct, master_version, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    vec![
                        Arg::Bytes(hash.as_bytes().to_vec()),
                        Arg::Text(staff.to_string()),
                        Arg::Text(device_serial.to_owned()),
                        Arg::Text(kind.to_owned()),
                        Arg::Bytes(master.seal_region_record(CEREMONIES, &record, kind, state)?),
                        Arg::Int(master.version),
                        Arg::Int(now + CEREMONY_TTL_MS),
                    ],
                ),
            ])
            .await?;
        Ok(token)
    }

    /// Take (and delete) a live staff ceremony of this kind. `None` when unknown, used,
    /// expired, or of another kind.
    pub async fn take_staff_ceremony(
        &self,
        presented: &str,
        kind: &'static str,
    ) -> Result<Option<StaffCeremony>, StoreError> {
        let hash = TokenHash::of(presented);
        let Some(row) = self
            .take_once(
                "SELECT staff_id, device_serial, state_ct, master_version, expires_at FROM staff_ceremonies WHERE token_hash = $1 AND kind = $2",
                "DELETE FROM staff_ceremonies WHERE token_hash = $1",
                &hash,
                kind,
            )
            .await?
        else {
            return Ok(None);
        };
        let record = hex::encode(hash.as_bytes());
        let master = self.keyring.get(col(&row, "master_version")?)?;
        let state = master
            .open_region_record(
                CEREMONIES,
                &record,
                kind,
                &col::<Vec<u8>>(&row, "state_ct")?,
            )
            .map_err(super::integrity)?;
        Ok(Some(StaffCeremony {
            staff_id: parse_id(StaffId::parse(&col::<String>(&row, "staff_id")?))?,
            device_serial: col(&row, "device_serial")?,
            state,
        }))
    }

    /// Open a session for a staff member whose passkey answered a sign-in challenge on the
    /// trusted device `device_serial` (and reset their failure count). `None` when the member
    /// was disabled meanwhile or their sign-in is locked.
    pub async fn staff_passkey_sign_in(
        &self,
        staff: &StaffId,
        device_serial: &str,
        now_ms: i64,
    ) -> Result<Option<RegionToken>, StoreError> {
        let token = RegionToken::generate(TokenKind::StaffSession, self.region)?;
        let r = self
            .writer
            .write(vec![
                Self::staff_session_stmt(&token, staff, device_serial, now_ms),
                Stmt::new(
                    "UPDATE staff SET failed_sign_ins = 0, sign_in_locked_until = NULL WHERE id = $1",
                    vec![Arg::Text(staff.to_string())],
                ),
            ])
            .await;
        match r {
            Ok(()) => {
                self.staff_signed_in(staff, "passkey", device_serial, now_ms)
                    .await?;
                Ok(Some(token))
            }
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Delete expired staff sessions and ceremonies (the retention sweep). Returns how many
    /// rows went.
    pub async fn expire_staff_auth(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut gone = 0usize;
        for (count, delete) in [
            (
                "SELECT COUNT(*) FROM staff_sessions WHERE expires_at <= $1",
                "DELETE FROM staff_sessions WHERE expires_at <= $1",
            ),
            (
                "SELECT COUNT(*) FROM staff_ceremonies WHERE expires_at <= $1",
                "DELETE FROM staff_ceremonies WHERE expires_at <= $1",
            ),
        ] {
            let n: i64 = sqlx::query_scalar(count)
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::Db)?;
            if n > 0 {
                self.writer
                    .write(vec![Stmt::new(delete, vec![Arg::Int(now_ms)])])
                    .await?;
                gone += usize::try_from(n).unwrap_or(0);
            }
        }
        Ok(gone)
    }
}
