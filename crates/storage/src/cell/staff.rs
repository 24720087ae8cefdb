//! Operator staff: principals of the region (not of any workspace), their sessions, and their
//! just-in-time grants to workspaces (docs/staff-access.md).
//!
//! Invariants:
//! - A staff member's email and TOTP secret are sealed under the region's master key, bound to
//!   the row; only pseudonymous ids (`sf_…`, `sg_…`) reach a workspace's activity log.
//! - A session is bound to the trusted device it was opened from and works from no other.
//! - A grant's token is stored as a SHA-256 hash; whether it works is decided at each request
//!   from the stored times ([`GrantState::status`]): approvals, expiry, revocation and the
//!   break-glass confirmation need no process to run.
//! - Every change to a grant is written in the same transaction as its activity entry in the
//!   workspace's log; reason and ticket are sealed under the workspace key.
//! - Approval by the grant's own staff member is refused; only approvers approve or confirm.

use interlock_crypto::totp::TotpSecret;
use interlock_crypto::{RegionToken, TokenHash, TokenKind};
use interlock_domain::{
    AccessAsk, ActivityType, Actor, ActorType, Email, GrantKind, GrantState, GrantStatus,
    NewActivity, PermissionSet, StaffAccessApproval, StaffGrantId, StaffId, StaffRole, Target,
    WorkspaceId,
};
use serde_json::json;
use sqlx::any::AnyRow;

use super::{Cell, Sealer, col, parse_id, ws_key_id};
use crate::StoreError;
use crate::db::{Arg, Stmt};

/// A staff session lasts at most this long: 8 hours.
pub const STAFF_SESSION_MS: i64 = 8 * 3_600_000;

/// Failed sign-ins a staff member may have before sign-in locks.
pub const STAFF_FREE_FAILURES: i64 = 5;
/// The longest sign-in lock: 15 minutes.
pub const STAFF_MAX_LOCK_MS: i64 = 15 * 60 * 1000;

/// A member of the operator's staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffMember {
    pub id: StaffId,
    pub email: String,
    pub role: StaffRole,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

/// The staff member behind a session, on the device the session was opened from.
#[derive(Debug, Clone)]
pub struct StaffPrincipal {
    pub staff_id: StaffId,
    pub role: StaffRole,
    pub device_serial: String,
}

/// A grant (or a request for one), as staff and workspace admins see it.
#[derive(Debug, Clone)]
pub struct StaffGrant {
    pub id: StaffGrantId,
    pub workspace_id: WorkspaceId,
    pub staff_id: StaffId,
    pub kind: GrantKind,
    pub permissions: PermissionSet,
    pub reason: String,
    pub ticket: String,
    pub duration_s: i64,
    pub state: GrantState,
    pub staff_approved_by: Option<String>,
    pub workspace_approved_by: Option<String>,
    pub confirmed_by: Option<String>,
    pub revoked_by: Option<String>,
}

impl StaffGrant {
    pub fn status(&self, now_ms: i64) -> GrantStatus {
        self.state.status(now_ms)
    }
}

/// An active grant behind a request's grant token.
#[derive(Debug, Clone)]
pub struct GrantPrincipal {
    pub workspace: WorkspaceId,
    pub grant_id: StaffGrantId,
    pub staff_id: StaffId,
    pub permissions: PermissionSet,
    pub reason: String,
    pub ticket: String,
    pub expires_at: i64,
}

/// The columns a [`StaffGrant`] is read from.
macro_rules! grant_columns {
    () => {
        "workspace_id, id, staff_id, kind, permissions, reason_ct, ticket_ct, ws_key_version, duration_s, workspace_approval_required, created_at, staff_approved_by, staff_approved_at, workspace_approved_by, workspace_approved_at, starts_at, expires_at, confirmed_by, confirmed_at, revoked_at, revoked_by"
    };
}

/// An activity entry about grant `id` of staff member `staff`.
fn grant_entry(
    kind: ActivityType,
    actor: &Actor,
    id: &StaffGrantId,
    staff: &StaffId,
) -> NewActivity {
    NewActivity::new(kind, actor, Target::new("staff_grant", id.as_str()))
        .with("grant_id", id.as_str())
        .with("staff_id", staff.as_str())
}

/// Who acted on a grant, for the row (`sf_…`, `tm_…`, or `system`).
fn actor_label(actor: &Actor) -> String {
    actor
        .id
        .clone()
        .unwrap_or_else(|| actor.kind.as_str().to_owned())
}

fn staff_actor(staff: &StaffId) -> Actor {
    Actor::new(ActorType::Staff, Some(staff.to_string()), None, None)
}

impl Cell {
    // ------------------------------------------------------------------ staff members

    /// Add a staff member; returns them with their new TOTP secret (show it once).
    pub async fn add_staff(
        &self,
        email: &Email,
        role: StaffRole,
    ) -> Result<(StaffMember, TotpSecret), StoreError> {
        let taken = self
            .list_staff()
            .await?
            .iter()
            .any(|s| s.email.eq_ignore_ascii_case(email.as_str()) && s.disabled_at.is_none());
        if taken {
            return Err(StoreError::Conflict("staff_email_taken"));
        }
        let id = StaffId::new();
        let secret = TotpSecret::generate()?;
        let master = self.keyring.active()?;
        let now = crate::now_ms();
        self.writer
            .write(vec![Stmt::new(
                "INSERT INTO staff (id, email_ct, role, totp_secret_ct, master_version, totp_last_step, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6)",
                vec![
                    Arg::Text(id.to_string()),
                    Arg::Bytes(master.seal_region_record("staff", id.as_str(), "email", email.as_str().as_bytes())?),
                    Arg::Text(role.as_str().to_owned()),
                    Arg::Bytes(master.seal_region_record("staff", id.as_str(), "totp_secret", secret.expose())?),
                    Arg::Int(master.version),
                    Arg::Int(now),
                ],
            )])
            .await?;
        self.staff_audit(
            "staff.added",
            Some(id.as_str()),
            super::staff_audit::meta(json!({ "role": role.as_str() })),
            now,
        )
        .await?;
        Ok((
            StaffMember {
                id,
                email: email.as_str().to_owned(),
                role,
                created_at: now,
                disabled_at: None,
            },
            secret,
        ))
    }

    fn staff_from_row(&self, row: &AnyRow) -> Result<StaffMember, StoreError> {
        let id: String = col(row, "id")?;
        let master = self.keyring.get(col(row, "master_version")?)?;
        let email = master
            .open_region_record("staff", &id, "email", &col::<Vec<u8>>(row, "email_ct")?)
            .map_err(super::integrity)?;
        Ok(StaffMember {
            id: parse_id(StaffId::parse(&id))?,
            email: super::text(&email)?,
            role: StaffRole::parse(&col::<String>(row, "role")?).map_err(StoreError::Invalid)?,
            created_at: col(row, "created_at")?,
            disabled_at: col(row, "disabled_at")?,
        })
    }

    /// Every staff member of the region, oldest first.
    pub async fn list_staff(&self) -> Result<Vec<StaffMember>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, email_ct, role, master_version, created_at, disabled_at FROM staff ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        rows.iter().map(|r| self.staff_from_row(r)).collect()
    }

    pub async fn get_staff(&self, id: &StaffId) -> Result<StaffMember, StoreError> {
        let row = sqlx::query(
            "SELECT id, email_ct, role, master_version, created_at, disabled_at FROM staff WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        self.staff_from_row(&row)
    }

    /// Disable a staff member: their sessions end and their grants stop working at once.
    pub async fn disable_staff(&self, id: &StaffId, at_ms: i64) -> Result<(), StoreError> {
        self.writer
            .write(vec![
                Stmt::new(
                    "UPDATE staff SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL",
                    vec![Arg::Text(id.to_string()), Arg::Int(at_ms)],
                )
                .expect(1),
                Stmt::new(
                    "DELETE FROM staff_sessions WHERE staff_id = $1",
                    vec![Arg::Text(id.to_string())],
                ),
            ])
            .await?;
        self.staff_audit(
            "staff.disabled",
            Some(id.as_str()),
            serde_json::Map::new(),
            at_ms,
        )
        .await
    }

    /// Change a staff member's role (an access review taking approver rights away).
    pub async fn set_staff_role(&self, id: &StaffId, role: StaffRole) -> Result<(), StoreError> {
        self.exactly_one(
            "UPDATE staff SET role = $2 WHERE id = $1 AND disabled_at IS NULL",
            vec![
                Arg::Text(id.to_string()),
                Arg::Text(role.as_str().to_owned()),
            ],
        )
        .await?;
        self.staff_audit(
            "staff.role_changed",
            Some(id.as_str()),
            super::staff_audit::meta(json!({ "role": role.as_str() })),
            crate::now_ms(),
        )
        .await
    }

    // ------------------------------------------------------------------ sessions

    /// Sign a staff member in with a TOTP code from the trusted device `device_serial`
    /// (already checked to be theirs). `None` when the code is wrong or was used before, or
    /// the member is disabled.
    pub async fn staff_sign_in(
        &self,
        id: &StaffId,
        code: &str,
        device_serial: &str,
        now_ms: i64,
    ) -> Result<Option<RegionToken>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT totp_secret_ct, master_version, totp_last_step FROM staff WHERE id = $1 AND disabled_at IS NULL",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        else {
            return Ok(None);
        };
        let master = self.keyring.get(col(&row, "master_version")?)?;
        let secret = master
            .open_region_record(
                "staff",
                id.as_str(),
                "totp_secret",
                &col::<Vec<u8>>(&row, "totp_secret_ct")?,
            )
            .map_err(super::integrity)?;
        let secret = TotpSecret::from_bytes(&secret)?;
        let now_s = u64::try_from(now_ms / 1000).unwrap_or(0);
        let Some(step) = secret.verify(code, now_s) else {
            return Ok(None);
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let token = RegionToken::generate(TokenKind::StaffSession, self.region)?;
        let r = self
            .writer
            .write(vec![
                // Replay protection: a step at or before the last one accepted is refused; so
                // is any code while sign-in is locked (even a right one: no guessing on).
                Stmt::new(
                    "UPDATE staff SET totp_last_step = $2, failed_sign_ins = 0, sign_in_locked_until = NULL WHERE id = $1 AND disabled_at IS NULL AND totp_last_step < $2 AND (sign_in_locked_until IS NULL OR sign_in_locked_until <= $3)",
                    vec![Arg::Text(id.to_string()), Arg::Int(step), Arg::Int(now_ms)],
                )
                .expect(1),
                Self::staff_session_stmt(&token, id, device_serial, now_ms),
            ])
            .await;
        match r {
            Ok(()) => {
                self.staff_signed_in(id, "totp", device_serial, now_ms)
                    .await?;
                Ok(Some(token))
            }
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The audit entry of a successful sign-in.
    pub(super) async fn staff_signed_in(
        &self,
        id: &StaffId,
        method: &str,
        device_serial: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.staff_audit(
            "staff.signed_in",
            Some(id.as_str()),
            super::staff_audit::meta(json!({ "method": method, "device_serial": device_serial })),
            now_ms,
        )
        .await
    }

    /// The insert of a new session (8 hours, bound to the device); it fails with `NotFound`
    /// when the member is disabled or their sign-in is locked.
    pub(super) fn staff_session_stmt(
        token: &RegionToken,
        id: &StaffId,
        device_serial: &str,
        now_ms: i64,
    ) -> Stmt {
        Stmt::new(
            "INSERT INTO staff_sessions (token_hash, staff_id, device_serial, created_at, expires_at) SELECT $1, id, $3, $4, $5 FROM staff WHERE id = $2 AND disabled_at IS NULL AND (sign_in_locked_until IS NULL OR sign_in_locked_until <= $4)",
            vec![
                Arg::Bytes(token.hash().as_bytes().to_vec()),
                Arg::Text(id.to_string()),
                Arg::Text(device_serial.to_owned()),
                Arg::Int(now_ms),
                Arg::Int(now_ms + STAFF_SESSION_MS),
            ],
        )
        .expect(1)
    }

    /// Until when a staff member's sign-in is locked (ms since the epoch), if it is at
    /// `now_ms`.
    pub async fn staff_sign_in_locked(
        &self,
        id: &StaffId,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let until: Option<Option<i64>> =
            sqlx::query_scalar("SELECT sign_in_locked_until FROM staff WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Db)?;
        Ok(until.flatten().filter(|u| *u > now_ms))
    }

    /// Count a failed staff sign-in (a wrong or replayed TOTP code, a passkey answer that
    /// does not verify). From the fifth on, sign-in locks for 1 s, doubling with each failure,
    /// 15 minutes at most; a success resets the count.
    pub async fn record_staff_sign_in_failure(
        &self,
        id: &StaffId,
        method: &str,
        device_serial: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let failures: Option<i64> =
            sqlx::query_scalar("SELECT failed_sign_ins FROM staff WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Db)?;
        let Some(failures) = failures.map(|f| f + 1) else {
            return Ok(());
        };
        let lock_ms = if failures >= STAFF_FREE_FAILURES {
            (1000i64 << (failures - STAFF_FREE_FAILURES).min(20)).min(STAFF_MAX_LOCK_MS)
        } else {
            0
        };
        self.writer
            .write(vec![Stmt::new(
                "UPDATE staff SET failed_sign_ins = failed_sign_ins + 1, sign_in_locked_until = CASE WHEN $3 > 0 THEN $2 + $3 ELSE sign_in_locked_until END WHERE id = $1",
                vec![
                    Arg::Text(id.to_string()),
                    Arg::Int(now_ms),
                    Arg::Int(lock_ms),
                ],
            )])
            .await?;
        self.staff_audit(
            "staff.sign_in_failed",
            Some(id.as_str()),
            super::staff_audit::meta(json!({
                "method": method,
                "device_serial": device_serial,
                "failures": failures,
                "locked_until_ms": (lock_ms > 0).then_some(now_ms + lock_ms),
            })),
            now_ms,
        )
        .await
    }

    /// The staff member behind a session token presented from `device_serial`; `None` when
    /// unknown, expired, from another device, or the member is disabled.
    pub async fn staff_session(
        &self,
        token: &str,
        device_serial: &str,
        now_ms: i64,
    ) -> Result<Option<StaffPrincipal>, StoreError> {
        let row = sqlx::query(
            "SELECT s.staff_id, s.device_serial, s.expires_at, f.role FROM staff_sessions s JOIN staff f ON f.id = s.staff_id WHERE s.token_hash = $1 AND f.disabled_at IS NULL",
        )
        .bind(TokenHash::of(token).as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let bound: String = col(&row, "device_serial")?;
        // The serial is no secret (it is in the certificate): a plain comparison.
        if col::<i64>(&row, "expires_at")? <= now_ms || bound != device_serial {
            return Ok(None);
        }
        Ok(Some(StaffPrincipal {
            staff_id: parse_id(StaffId::parse(&col::<String>(&row, "staff_id")?))?,
            role: StaffRole::parse(&col::<String>(&row, "role")?).map_err(StoreError::Invalid)?,
            device_serial: bound,
        }))
    }

    /// End a staff session (sign-out).
    pub async fn end_staff_session(&self, token: &str) -> Result<(), StoreError> {
        self.writer
            .write(vec![Stmt::new(
                "DELETE FROM staff_sessions WHERE token_hash = $1",
                vec![Arg::Bytes(TokenHash::of(token).as_bytes().to_vec())],
            )])
            .await
    }

    // ------------------------------------------------------------------ workspace setting

    /// Whether a workspace admin must also approve staff grants to `ws`.
    pub async fn staff_access_approval(
        &self,
        ws: &WorkspaceId,
    ) -> Result<StaffAccessApproval, StoreError> {
        self.check_region(ws)?;
        let v: Option<String> = sqlx::query_scalar(
            "SELECT approval FROM workspace_staff_access WHERE workspace_id = $1",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        match v {
            Some(v) => StaffAccessApproval::parse(&v).map_err(StoreError::Invalid),
            None => Ok(StaffAccessApproval::default()),
        }
    }

    /// Change the setting, with its activity entry (`act`, metadata before/after added).
    pub async fn set_staff_access_approval(
        &self,
        ws: &WorkspaceId,
        value: StaffAccessApproval,
        act: &NewActivity,
    ) -> Result<StaffAccessApproval, StoreError> {
        let before = self.staff_access_approval(ws).await?;
        let act = act
            .clone()
            .with("before", before.as_str())
            .with("after", value.as_str());
        self.writer
            .write(vec![
                Stmt::new(
                    "INSERT INTO workspace_staff_access (workspace_id, approval, updated_at) VALUES ($1, $2, $3) ON CONFLICT (workspace_id) DO UPDATE SET approval = excluded.approval, updated_at = excluded.updated_at",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(value.as_str().to_owned()),
                        Arg::Int(crate::now_ms()),
                    ],
                ),
                self.activity_stmt(ws, &act).await?,
            ])
            .await?;
        Ok(value)
    }

    // ------------------------------------------------------------------ grants

    async fn grant_from_row(&self, row: &AnyRow) -> Result<StaffGrant, StoreError> {
        let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
        let id: String = col(row, "id")?;
        // Reason and ticket are sealed under the workspace key that was current when the
        // grant was made.
        let wk = self
            .workspace_keys(&ws, col(row, "ws_key_version")?)
            .await?;
        let key_id = ws_key_id(wk.version);
        let s = Sealer::new("staff_grants", &wk.aead, &ws, &id, &key_id);
        let reason = s.open_text("reason", &col::<Vec<u8>>(row, "reason_ct")?)?;
        let ticket = s.open_text("ticket", &col::<Vec<u8>>(row, "ticket_ct")?)?;
        let kind = GrantKind::parse(&col::<String>(row, "kind")?).map_err(StoreError::Invalid)?;
        Ok(StaffGrant {
            id: parse_id(StaffGrantId::parse(&id))?,
            workspace_id: ws,
            staff_id: parse_id(StaffId::parse(&col::<String>(row, "staff_id")?))?,
            kind,
            permissions: PermissionSet::decode(&col::<String>(row, "permissions")?)
                .map_err(StoreError::Invalid)?,
            reason,
            ticket,
            duration_s: col(row, "duration_s")?,
            state: GrantState {
                kind,
                created_at: col(row, "created_at")?,
                staff_approved_at: col(row, "staff_approved_at")?,
                workspace_approval_required: col::<i64>(row, "workspace_approval_required")? != 0,
                workspace_approved_at: col(row, "workspace_approved_at")?,
                starts_at: col(row, "starts_at")?,
                expires_at: col(row, "expires_at")?,
                confirmed_at: col(row, "confirmed_at")?,
                revoked_at: col(row, "revoked_at")?,
            },
            staff_approved_by: col(row, "staff_approved_by")?,
            workspace_approved_by: col(row, "workspace_approved_by")?,
            confirmed_by: col(row, "confirmed_by")?,
            revoked_by: col(row, "revoked_by")?,
        })
    }

    /// The grant after a guarded change: `refused` when the guard found it changed meanwhile.
    async fn grant_changed(
        &self,
        ws: &WorkspaceId,
        id: &StaffGrantId,
        written: Result<(), StoreError>,
        refused: &'static str,
    ) -> Result<StaffGrant, StoreError> {
        match written {
            Ok(()) => self.get_staff_grant(ws, id).await,
            Err(StoreError::NotFound) => Err(StoreError::Conflict(refused)),
            Err(e) => Err(e),
        }
    }

    async fn grants_from_rows(&self, rows: &[AnyRow]) -> Result<Vec<StaffGrant>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.grant_from_row(r).await?);
        }
        Ok(out)
    }

    /// Ask for access to `ws` (kind `Request`), or take it at once (kind `BreakGlass`).
    /// Returns the grant with its token, shown once: it works while the grant is active.
    pub async fn create_staff_grant(
        &self,
        staff: &StaffPrincipal,
        ws: &WorkspaceId,
        ask: &AccessAsk,
        kind: GrantKind,
        now_ms: i64,
    ) -> Result<(StaffGrant, RegionToken), StoreError> {
        self.check_region(ws)?;
        if !self.workspace_live(ws).await? {
            return Err(StoreError::NotFound);
        }
        let approval_required =
            self.staff_access_approval(ws).await? == StaffAccessApproval::Required;
        let id = StaffGrantId::new();
        let token = RegionToken::generate(TokenKind::StaffGrant, self.region)?;
        let wk = self.current_workspace_keys(ws).await?;
        let key_id = ws_key_id(wk.version);
        let s = Sealer::new("staff_grants", &wk.aead, ws, id.as_str(), &key_id);
        let (starts, expires) = match kind {
            GrantKind::BreakGlass => (Some(now_ms), Some(now_ms + ask.duration_s * 1000)),
            GrantKind::Request => (None, None),
        };
        let actor = staff_actor(&staff.staff_id);
        let base = |t: ActivityType| {
            NewActivity::new(t, &actor, Target::new("staff_grant", id.as_str()))
                .with("grant_id", id.as_str())
                .with("staff_id", staff.staff_id.as_str())
                .with("reason", ask.reason.as_str())
                .with("ticket", ask.ticket.as_str())
                .with("permissions", ask.permissions.encode())
                .with("duration_s", ask.duration_s)
        };
        let mut unit = vec![Stmt::new(
            "INSERT INTO staff_grants (workspace_id, id, staff_id, kind, permissions, reason_ct, ticket_ct, ws_key_version, duration_s, workspace_approval_required, created_at, starts_at, expires_at, token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $14, $8, $9, $10, $11, $12, $13)",
            vec![
                Arg::Text(ws.to_string()),
                Arg::Text(id.to_string()),
                Arg::Text(staff.staff_id.to_string()),
                Arg::Text(kind.as_str().to_owned()),
                Arg::Text(ask.permissions.encode()),
                Arg::Bytes(s.seal("reason", ask.reason.as_bytes())?),
                Arg::Bytes(s.seal("ticket", ask.ticket.as_bytes())?),
                Arg::Int(ask.duration_s),
                Arg::Int(i64::from(approval_required)),
                Arg::Int(now_ms),
                Arg::OptInt(starts),
                Arg::OptInt(expires),
                Arg::Bytes(token.hash().as_bytes().to_vec()),
                Arg::Int(wk.version),
            ],
        )];
        match kind {
            GrantKind::Request => {
                unit.push(Self::activity_stmt_with(
                    ws,
                    &wk,
                    &base(ActivityType::StaffAccessRequested)
                        .with("workspace_approval_required", approval_required),
                )?);
            }
            GrantKind::BreakGlass => {
                unit.push(Self::activity_stmt_with(
                    ws,
                    &wk,
                    &base(ActivityType::StaffAccessBreakGlass).with(
                        "confirm_by_ms",
                        now_ms + interlock_domain::staff::BREAK_GLASS_CONFIRM_MS,
                    ),
                )?);
                unit.push(Self::activity_stmt_with(
                    ws,
                    &wk,
                    &base(ActivityType::StaffAccessStarted).with("expires_at_ms", expires),
                )?);
                unit.extend(
                    self.webhook_stmts(
                        ws,
                        "staff_access.break_glass",
                        json!({
                            "grant_id": id.as_str(),
                            "staff_id": staff.staff_id.as_str(),
                            "permissions": ask.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                            "reason": ask.reason,
                            "ticket": ask.ticket,
                            "started_at_ms": now_ms,
                            "expires_at_ms": expires,
                        }),
                        None,
                    )
                    .await?,
                );
            }
        }
        self.writer.write(unit).await?;
        let grant = self.get_staff_grant(ws, &id).await?;
        Ok((grant, token))
    }

    pub async fn get_staff_grant(
        &self,
        ws: &WorkspaceId,
        id: &StaffGrantId,
    ) -> Result<StaffGrant, StoreError> {
        self.check_region(ws)?;
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            " FROM staff_grants WHERE workspace_id = $1 AND id = $2"
        );
        let row = sqlx::query(sql)
            .bind(ws.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?
            .ok_or(StoreError::NotFound)?;
        self.grant_from_row(&row).await
    }

    /// Find a grant by id alone (staff routes name grants without their workspace).
    pub async fn find_staff_grant(&self, id: &StaffGrantId) -> Result<StaffGrant, StoreError> {
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            " FROM staff_grants WHERE id = $1"
        );
        let row = sqlx::query(sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?
            .ok_or(StoreError::NotFound)?;
        self.grant_from_row(&row).await
    }

    /// A workspace's grants, newest first (what its admins see).
    pub async fn list_workspace_staff_grants(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Vec<StaffGrant>, StoreError> {
        self.check_region(ws)?;
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            " FROM staff_grants WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500"
        );
        let rows = sqlx::query(sql)
            .bind(ws.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        self.grants_from_rows(&rows).await
    }

    /// Grants in the region: one staff member's, or (for approvers) everyone's; newest first.
    pub async fn list_staff_grants(
        &self,
        staff: Option<&StaffId>,
    ) -> Result<Vec<StaffGrant>, StoreError> {
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            " FROM staff_grants WHERE ($1 = '' OR staff_id = $1) ORDER BY created_at DESC, id DESC LIMIT 500"
        );
        let rows = sqlx::query(sql)
            .bind(staff.map_or("", |s| s.as_str()))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        self.grants_from_rows(&rows).await
    }

    /// The statements that start `g` at `now_ms` when its approvals are complete.
    fn started_entry(g: &StaffGrant, actor: &Actor, now_ms: i64) -> NewActivity {
        grant_entry(ActivityType::StaffAccessStarted, actor, &g.id, &g.staff_id)
            .with("reason", g.reason.as_str())
            .with("ticket", g.ticket.as_str())
            .with("permissions", g.permissions.encode())
            .with("expires_at_ms", now_ms + g.duration_s * 1000)
    }

    /// The four-eyes rule, in one place: only an approver may approve or confirm a grant, and
    /// never their own.
    async fn grant_for_second_person(
        &self,
        ws: &WorkspaceId,
        id: &StaffGrantId,
        who: &StaffPrincipal,
    ) -> Result<StaffGrant, StoreError> {
        if !who.role.can_approve() {
            return Err(StoreError::Conflict("not_an_approver"));
        }
        let g = self.get_staff_grant(ws, id).await?;
        if g.staff_id == who.staff_id {
            return Err(StoreError::Conflict("self_approval"));
        }
        Ok(g)
    }

    /// An approver's approval of a pending request. Self-approval and approval by a member
    /// without the approver role are refused; if a workspace admin must approve too, the
    /// grant starts only when both have.
    pub async fn approve_staff_grant(
        &self,
        ws: &WorkspaceId,
        id: &StaffGrantId,
        approver: &StaffPrincipal,
        now_ms: i64,
    ) -> Result<StaffGrant, StoreError> {
        let g = self.grant_for_second_person(ws, id, approver).await?;
        if g.kind != GrantKind::Request
            || g.state.staff_approved_at.is_some()
            || g.status(now_ms) != GrantStatus::Pending
        {
            return Err(StoreError::Conflict("grant_not_pending"));
        }
        let starts =
            !g.state.workspace_approval_required || g.state.workspace_approved_at.is_some();
        let actor = staff_actor(&approver.staff_id);
        self.approve(ws, &g, "staff", &actor, starts, now_ms).await
    }

    /// A workspace admin's approval (only where the workspace requires it).
    pub async fn workspace_approve_staff_grant(
        &self,
        ws: &WorkspaceId,
        id: &StaffGrantId,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<StaffGrant, StoreError> {
        let g = self.get_staff_grant(ws, id).await?;
        if !g.state.workspace_approval_required {
            return Err(StoreError::Conflict("workspace_approval_not_required"));
        }
        if g.kind != GrantKind::Request
            || g.state.workspace_approved_at.is_some()
            || g.status(now_ms) != GrantStatus::Pending
        {
            return Err(StoreError::Conflict("grant_not_pending"));
        }
        let starts = g.state.staff_approved_at.is_some();
        self.approve(ws, &g, "workspace", actor, starts, now_ms)
            .await
    }

    async fn approve(
        &self,
        ws: &WorkspaceId,
        g: &StaffGrant,
        side: &'static str,
        actor: &Actor,
        starts: bool,
        now_ms: i64,
    ) -> Result<StaffGrant, StoreError> {
        let (starts_at, expires_at) = if starts {
            (Some(now_ms), Some(now_ms + g.duration_s * 1000))
        } else {
            (None, None)
        };
        let sql = if side == "staff" {
            "UPDATE staff_grants SET staff_approved_by = $3, staff_approved_at = $4, starts_at = $5, expires_at = $6 WHERE workspace_id = $1 AND id = $2 AND staff_approved_at IS NULL AND revoked_at IS NULL AND starts_at IS NULL"
        } else {
            "UPDATE staff_grants SET workspace_approved_by = $3, workspace_approved_at = $4, starts_at = $5, expires_at = $6 WHERE workspace_id = $1 AND id = $2 AND workspace_approved_at IS NULL AND revoked_at IS NULL AND starts_at IS NULL"
        };
        let mut unit = vec![
            Stmt::new(
                sql,
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(g.id.to_string()),
                    Arg::Text(actor_label(actor)),
                    Arg::Int(now_ms),
                    Arg::OptInt(starts_at),
                    Arg::OptInt(expires_at),
                ],
            )
            .expect(1),
            self.activity_stmt(
                ws,
                &grant_entry(ActivityType::StaffAccessApproved, actor, &g.id, &g.staff_id)
                    .with("approval", side),
            )
            .await?,
        ];
        if starts {
            unit.push(
                self.activity_stmt(ws, &Self::started_entry(g, actor, now_ms))
                    .await?,
            );
        }
        match self.writer.write(unit).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(StoreError::Conflict("grant_not_pending")),
            Err(e) => return Err(e),
        }
        self.get_staff_grant(ws, &g.id).await
    }

    /// A second person's confirmation of a break-glass grant (within the hour).
    pub async fn confirm_break_glass(
        &self,
        ws: &WorkspaceId,
        id: &StaffGrantId,
        confirmer: &StaffPrincipal,
        now_ms: i64,
    ) -> Result<StaffGrant, StoreError> {
        let g = self.grant_for_second_person(ws, id, confirmer).await?;
        if g.kind != GrantKind::BreakGlass
            || g.state.confirmed_at.is_some()
            || g.status(now_ms) != GrantStatus::Active
        {
            return Err(StoreError::Conflict("grant_not_confirmable"));
        }
        let actor = staff_actor(&confirmer.staff_id);
        let r = self
            .writer
            .write(vec![
                Stmt::new(
                    "UPDATE staff_grants SET confirmed_by = $3, confirmed_at = $4 WHERE workspace_id = $1 AND id = $2 AND confirmed_at IS NULL AND revoked_at IS NULL AND created_at > $5",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Text(confirmer.staff_id.to_string()),
                        Arg::Int(now_ms),
                        Arg::Int(now_ms - interlock_domain::staff::BREAK_GLASS_CONFIRM_MS),
                    ],
                )
                .expect(1),
                self.activity_stmt(
                    ws,
                    &grant_entry(ActivityType::StaffAccessApproved, &actor, id, &g.staff_id)
                    .with("approval", "break_glass_confirmation"),
                )
                .await?,
            ])
            .await;
        self.grant_changed(ws, id, r, "grant_not_confirmable").await
    }

    /// Revoke a grant (by a workspace admin, an approver, or the staff member); it stops
    /// working at once. Revoking an ended grant is refused.
    pub async fn revoke_staff_grant(
        &self,
        ws: &WorkspaceId,
        id: &StaffGrantId,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<StaffGrant, StoreError> {
        let g = self.get_staff_grant(ws, id).await?;
        if g.status(now_ms).is_ended() {
            return Err(StoreError::Conflict("grant_ended"));
        }
        let r = self
            .writer
            .write(vec![
                Stmt::new(
                    "UPDATE staff_grants SET revoked_at = $3, revoked_by = $4, ended_logged_at = $3 WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Int(now_ms),
                        Arg::Text(actor_label(actor)),
                    ],
                )
                .expect(1),
                self.activity_stmt(
                    ws,
                    &grant_entry(ActivityType::StaffAccessEnded, actor, id, &g.staff_id)
                    .with("reason", "revoked"),
                )
                .await?,
            ])
            .await;
        self.grant_changed(ws, id, r, "grant_ended").await
    }

    /// The active grant behind a grant token at `now_ms`; `None` when unknown, pending,
    /// expired, revoked, unconfirmed (break-glass), or its staff member is disabled.
    pub async fn staff_grant_principal(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<Option<GrantPrincipal>, StoreError> {
        // One read: the grant, whether its staff member is active and its workspace live.
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            ", (SELECT COUNT(*) FROM staff f WHERE f.id = staff_grants.staff_id AND f.disabled_at IS NULL) AS staff_active",
            ", (SELECT COUNT(*) FROM workspaces w WHERE w.id = staff_grants.workspace_id AND w.deleted_at IS NULL) AS workspace_live",
            " FROM staff_grants WHERE token_hash = $1"
        );
        let Some(row) = sqlx::query(sql)
            .bind(TokenHash::of(token).as_bytes().to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?
        else {
            return Ok(None);
        };
        if col::<i64>(&row, "staff_active")? == 0 || col::<i64>(&row, "workspace_live")? == 0 {
            return Ok(None);
        }
        let g = self.grant_from_row(&row).await?;
        if !g.state.is_active(now_ms) || g.workspace_id.region() != self.region {
            return Ok(None);
        }
        Ok(Some(GrantPrincipal {
            expires_at: g.state.expires_at.unwrap_or(now_ms),
            workspace: g.workspace_id,
            grant_id: g.id,
            staff_id: g.staff_id,
            permissions: g.permissions,
            reason: g.reason,
            ticket: g.ticket,
        }))
    }

    /// Record one request made under a grant in the workspace's log (access transparency).
    pub async fn record_staff_request(
        &self,
        p: &GrantPrincipal,
        actor: &Actor,
        method: &str,
        route: &str,
    ) -> Result<(), StoreError> {
        let act = grant_entry(
            ActivityType::StaffAccessUsed,
            actor,
            &p.grant_id,
            &p.staff_id,
        )
        .with("reason", p.reason.as_str())
        .with("ticket", p.ticket.as_str())
        .with("method", method)
        .with("route", route);
        self.record_activity(&p.workspace, &act).await
    }

    /// Record the end of grants that expired, or whose break-glass confirmation did not come
    /// in time, as `staff_access.ended` by `system` (once each). They stopped working at that
    /// moment already; this only writes it down. Returns how many were recorded.
    pub async fn staff_grant_sweep(&self, now_ms: i64) -> Result<usize, StoreError> {
        let confirm_horizon = now_ms - interlock_domain::staff::BREAK_GLASS_CONFIRM_MS;
        let rows = sqlx::query(
            "SELECT workspace_id, id, staff_id, kind, expires_at, created_at FROM staff_grants WHERE ended_logged_at IS NULL AND ((expires_at IS NOT NULL AND expires_at <= $1) OR (kind = 'break_glass' AND confirmed_at IS NULL AND created_at <= $2)) ORDER BY workspace_id, id LIMIT 500",
        )
        .bind(now_ms)
        .bind(confirm_horizon)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut done = 0;
        for row in &rows {
            let ws = parse_id(WorkspaceId::parse(&col::<String>(row, "workspace_id")?))?;
            if ws.region() != self.region || !self.workspace_live(&ws).await? {
                continue;
            }
            let id: String = col(row, "id")?;
            let kind: String = col(row, "kind")?;
            let created: i64 = col(row, "created_at")?;
            let expires: Option<i64> = col(row, "expires_at")?;
            let unconfirmed = kind == "break_glass"
                && created <= confirm_horizon
                && expires
                    .is_none_or(|e| created + interlock_domain::staff::BREAK_GLASS_CONFIRM_MS < e);
            let reason = if unconfirmed {
                "unconfirmed"
            } else {
                "expired"
            };
            let mut unit = vec![Stmt::new(
                "UPDATE staff_grants SET ended_logged_at = $3, revoked_at = CASE WHEN $4 = 1 THEN created_at + $5 ELSE revoked_at END, revoked_by = CASE WHEN $4 = 1 THEN 'system' ELSE revoked_by END WHERE workspace_id = $1 AND id = $2 AND ended_logged_at IS NULL",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.clone()),
                    Arg::Int(now_ms),
                    Arg::Int(i64::from(unconfirmed)),
                    Arg::Int(interlock_domain::staff::BREAK_GLASS_CONFIRM_MS),
                ],
            )
            .expect(1)];
            unit.push(
                self.activity_stmt(
                    &ws,
                    &NewActivity::new(
                        ActivityType::StaffAccessEnded,
                        &Actor::system(),
                        Target::new("staff_grant", id.as_str()),
                    )
                    .with("grant_id", id.as_str())
                    .with("staff_id", col::<String>(row, "staff_id")?)
                    .with("reason", reason),
                )
                .await?,
            );
            match self.writer.write(unit).await {
                Ok(()) => done += 1,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}
