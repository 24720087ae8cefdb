//! Trusted staff devices: the client certificates the region's device CA issued
//! (`interlock_crypto::device_ca`), one row each in `staff_devices`. Region-level, like the
//! staff themselves: no workspace owns a device.
//!
//! A row holds what the request layer needs to recognise a device and refuse it: the
//! certificate's serial and SHA-256 fingerprint, the staff member it names, the device name,
//! and when it was issued, expires and (if so) was revoked. The certificate's key is never
//! stored. Revocation is a conditional update, so a device is revoked once and the answer says
//! whether this call did it.

use interlock_crypto::IssuedDevice;
use serde::Serialize;

use super::{Cell, col};
use crate::db::{Arg, Stmt};
use crate::{StoreError, now_ms};

/// A device as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffDevice {
    /// The certificate's serial number (lower-case hex).
    pub serial: String,
    pub staff_id: String,
    /// Lower-case hex SHA-256 of the certificate's DER.
    pub fingerprint: String,
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub issued_at: i64,
    /// The certificate's `notAfter`, in milliseconds since the Unix epoch.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl StaffDevice {
    /// Whether the device may be used at `now_ms`: not revoked and not expired.
    pub fn usable_at(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && now_ms < self.expires_at
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<StaffDevice, StoreError> {
    Ok(StaffDevice {
        serial: col(row, "serial")?,
        staff_id: col(row, "staff_id")?,
        fingerprint: col(row, "fingerprint")?,
        name: col(row, "name")?,
        issued_at: col(row, "issued_at")?,
        expires_at: col(row, "expires_at")?,
        revoked_at: col(row, "revoked_at")?,
    })
}

impl Cell {
    /// Record a device certificate this region's CA just issued. The staff member must exist
    /// and not be disabled (else `NotFound`); a serial or fingerprint already recorded is a
    /// `Conflict`.
    pub async fn register_staff_device(
        &self,
        device: &IssuedDevice,
    ) -> Result<StaffDevice, StoreError> {
        let record = StaffDevice {
            serial: device.serial.clone(),
            staff_id: device.staff_id.clone(),
            fingerprint: device.fingerprint.clone(),
            name: device.name.clone(),
            issued_at: device.issued_at_ms,
            expires_at: device.not_after_ms,
            revoked_at: None,
        };
        // Inserted from the staff row itself, so a missing or disabled staff member inserts
        // nothing and the unit fails with NotFound.
        let stmt = Stmt::new(
            "INSERT INTO staff_devices (serial, staff_id, fingerprint, name, issued_at, expires_at, revoked_at) SELECT $1, id, $3, $4, $5, $6, NULL FROM staff WHERE id = $2 AND disabled_at IS NULL",
            vec![
                Arg::Text(record.serial.clone()),
                Arg::Text(record.staff_id.clone()),
                Arg::Text(record.fingerprint.clone()),
                Arg::Text(record.name.clone()),
                Arg::Int(record.issued_at),
                Arg::Int(record.expires_at),
            ],
        )
        .expect(1);
        self.writer.write(vec![stmt]).await?;
        self.staff_audit(
            "staff.device_issued",
            Some(&record.staff_id),
            super::staff_audit::meta(serde_json::json!({
                "serial": record.serial,
                "expires_at_ms": record.expires_at,
            })),
            now_ms(),
        )
        .await?;
        Ok(record)
    }

    /// Revoke a device by serial. Returns `false` when there is no such device or it was
    /// already revoked.
    pub async fn revoke_staff_device(&self, serial: &str) -> Result<bool, StoreError> {
        let stmt = Stmt::new(
            "UPDATE staff_devices SET revoked_at = $2 WHERE serial = $1 AND revoked_at IS NULL",
            vec![Arg::Text(serial.to_owned()), Arg::Int(now_ms())],
        )
        .expect(1);
        match self.writer.write(vec![stmt]).await {
            Ok(()) => {
                let owner = self.staff_device(serial).await?.map(|d| d.staff_id);
                self.staff_audit(
                    "staff.device_revoked",
                    owner.as_deref(),
                    super::staff_audit::meta(serde_json::json!({ "serial": serial })),
                    now_ms(),
                )
                .await?;
                Ok(true)
            }
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The region's devices (of one staff member when given), oldest first, revoked and
    /// expired ones included.
    pub async fn staff_devices(
        &self,
        staff_id: Option<&str>,
    ) -> Result<Vec<StaffDevice>, StoreError> {
        const ALL: &str = "SELECT serial, staff_id, fingerprint, name, issued_at, expires_at, revoked_at FROM staff_devices ORDER BY issued_at, serial";
        const ONE: &str = "SELECT serial, staff_id, fingerprint, name, issued_at, expires_at, revoked_at FROM staff_devices WHERE staff_id = $1 ORDER BY issued_at, serial";
        let rows = match staff_id {
            None => sqlx::query(ALL).fetch_all(&self.pool).await,
            Some(id) => sqlx::query(ONE).bind(id).fetch_all(&self.pool).await,
        }
        .map_err(StoreError::Db)?;
        rows.iter().map(decode).collect()
    }

    /// The device whose certificate has this fingerprint (lower-case hex SHA-256 of its DER).
    pub async fn staff_device_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<StaffDevice>, StoreError> {
        const Q: &str = "SELECT serial, staff_id, fingerprint, name, issued_at, expires_at, revoked_at FROM staff_devices WHERE fingerprint = $1";
        let row = sqlx::query(Q)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        row.as_ref().map(decode).transpose()
    }

    /// One device by serial.
    pub async fn staff_device(&self, serial: &str) -> Result<Option<StaffDevice>, StoreError> {
        const Q: &str = "SELECT serial, staff_id, fingerprint, name, issued_at, expires_at, revoked_at FROM staff_devices WHERE serial = $1";
        let row = sqlx::query(Q)
            .bind(serial)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        row.as_ref().map(decode).transpose()
    }
}
