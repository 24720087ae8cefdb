//! Teammates, invitations, sign-in sessions, TOTP state, recovery codes, sign-in throttling and
//! the workspace's security settings.
//!
//! Invariants:
//! - Email and name are sealed under the workspace key; sign-in finds a teammate by the email's
//!   blind index. Passwords are Argon2id PHC strings; TOTP secrets are sealed.
//! - Invitations, sessions and CSRF tokens are stored as SHA-256 hashes only. An invitation is
//!   deleted when used (single use). A session is valid only while the teammate is not removed,
//!   within the workspace's idle timeout and absolute lifetime.
//! - Removing a teammate deletes their sessions, invitations and the API tokens they created in
//!   the same transaction, so all stop working at once.
//! - A TOTP step is accepted at most once: the update that records it requires the stored last
//!   step to be older. A recovery code is deleted by the update that accepts it.
//! - The last owner cannot be removed or demoted; the checks and the write share a transaction
//!   guard (`expect`), so two concurrent demotions cannot both pass.

use interlock_crypto::password::PasswordHash;
use interlock_crypto::totp::TotpSecret;
use interlock_crypto::{RegionToken, TokenHash, TokenKind};
use interlock_domain::{
    DomainError, Email, IpAllowlist, NewActivity, PermissionSet, PersonName, SecuritySettings,
    SessionId, TeammateId, TeammateRole, WorkspaceId,
};

use super::{Cell, Sealer, col, parse_id, ws_key_id};
use crate::db::{Arg, Stmt};
use crate::{StoreError, now_ms};

/// The columns a [`Teammate`] is decoded from, for this workspace's current teammates, with a
/// literal tail (kept a literal so every query text stays static).
macro_rules! teammate_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, email_ct, name_ct, ws_key_version, role, password_hash, totp_enabled, created_at, (SELECT COUNT(*) FROM teammate_passkeys p WHERE p.workspace_id = teammates.workspace_id AND p.teammate_id = teammates.id) AS passkeys FROM teammates WHERE workspace_id = $1 AND removed_at IS NULL",
            $tail
        )
    };
}

/// How long an invitation stays valid.
pub const INVITATION_TTL_MS: i64 = 7 * 86_400 * 1000;

/// A teammate as the API shows it.
#[derive(Debug, Clone)]
pub struct Teammate {
    pub id: TeammateId,
    pub email: String,
    pub name: String,
    pub role: TeammateRole,
    pub two_factor: bool,
    pub has_password: bool,
    pub created_at: i64,
}

/// What sign-in needs to know about a teammate.
pub struct LoginRecord {
    pub teammate_id: TeammateId,
    pub password_hash: Option<PasswordHash>,
    pub totp: Option<TotpSecret>,
    pub totp_enabled: bool,
    /// How many passkeys the teammate has.
    pub passkeys: i64,
}

/// A live teammate session.
#[derive(Debug, Clone)]
pub struct SessionPrincipal {
    pub workspace: WorkspaceId,
    pub teammate_id: TeammateId,
    pub session_id: SessionId,
    pub role: TeammateRole,
    pub permissions: PermissionSet,
    pub two_factor: bool,
    pub require_two_factor: bool,
    pub ip_allowlist: IpAllowlist,
    csrf_hash: Vec<u8>,
}

impl SessionPrincipal {
    /// Constant-time check of a presented CSRF token against the session's.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        TokenHash::from_bytes(&self.csrf_hash).is_some_and(|h| h.ct_eq(&TokenHash::of(presented)))
    }
}

/// A session as its owner sees it in the list.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: SessionId,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub current: bool,
}

const SESSION_TOUCH_MS: i64 = 60_000;

fn bool_int(b: bool) -> i64 {
    i64::from(b)
}

impl Cell {
    // ---------------------------------------------------------------- security settings

    pub async fn security_settings(
        &self,
        ws: &WorkspaceId,
    ) -> Result<SecuritySettings, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT require_two_factor, session_idle_s, session_absolute_s, ip_allowlist FROM workspace_security WHERE workspace_id = $1",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(row) = row else {
            return Ok(SecuritySettings::default());
        };
        Ok(SecuritySettings {
            require_two_factor: col::<i64>(&row, "require_two_factor")? != 0,
            session_idle_s: col(&row, "session_idle_s")?,
            session_absolute_s: col(&row, "session_absolute_s")?,
            ip_allowlist: parse_id(IpAllowlist::decode(&col::<String>(&row, "ip_allowlist")?))?,
        })
    }

    pub async fn set_security_settings(
        &self,
        ws: &WorkspaceId,
        s: &SecuritySettings,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        self.check_region(ws)?;
        let entry = self.activity_stmt(ws, act).await?;
        self.writer
            .write(vec![Stmt::new(
                "INSERT INTO workspace_security (workspace_id, require_two_factor, session_idle_s, session_absolute_s, ip_allowlist, updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id) DO UPDATE SET require_two_factor = excluded.require_two_factor, session_idle_s = excluded.session_idle_s, session_absolute_s = excluded.session_absolute_s, ip_allowlist = excluded.ip_allowlist, updated_at = excluded.updated_at",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Int(bool_int(s.require_two_factor)),
                    Arg::Int(s.session_idle_s),
                    Arg::Int(s.session_absolute_s),
                    Arg::Text(s.ip_allowlist.encode()),
                    Arg::Int(now_ms()),
                ],
            ), entry])
            .await
    }

    // ---------------------------------------------------------------- teammates

    /// The permissions a role grants (built-in, or a custom role of this workspace).
    pub async fn role_permissions(
        &self,
        ws: &WorkspaceId,
        role: &TeammateRole,
    ) -> Result<PermissionSet, StoreError> {
        match role {
            TeammateRole::Builtin(b) => Ok(b.permissions()),
            TeammateRole::Custom(id) => {
                let perms: Option<String> = sqlx::query_scalar(
                    "SELECT permissions FROM roles WHERE workspace_id = $1 AND id = $2",
                )
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Db)?;
                // A role deleted under a teammate grants nothing.
                match perms {
                    Some(p) => parse_id(PermissionSet::decode(&p)),
                    None => Ok(PermissionSet::EMPTY),
                }
            }
        }
    }

    /// Create a teammate and a one-time invitation (returned once) to set a password.
    pub async fn create_teammate(
        &self,
        ws: &WorkspaceId,
        email: &Email,
        name: &PersonName,
        role: &TeammateRole,
        act: &NewActivity,
    ) -> Result<(Teammate, RegionToken, i64), StoreError> {
        self.check_region(ws)?;
        if let TeammateRole::Custom(id) = role
            && !self.custom_role_exists(ws, id).await?
        {
            return Err(StoreError::Invalid(DomainError::new(
                "role",
                "unknown_role",
                "no such custom role in this workspace",
            )));
        }
        let wk = self.current_workspace_keys(ws).await?;
        let id = TeammateId::new();
        let key_id = ws_key_id(wk.version);
        let s = Sealer::new("teammates", &wk.aead, ws, id.as_str(), &key_id);
        let now = now_ms();
        let invitation = RegionToken::generate(TokenKind::Invitation, self.region)?;
        let expires_at = now + INVITATION_TTL_MS;
        let unit = vec![
            Stmt::new(
                "INSERT INTO teammates (workspace_id, id, email_ct, email_bidx, name_ct, ws_key_version, role, totp_enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Bytes(s.seal("email", email.as_str().as_bytes())?),
                    Arg::Bytes(wk.blind.index("teammate_email", email.as_str())),
                    Arg::Bytes(s.seal("name", name.as_str().as_bytes())?),
                    Arg::Int(wk.version),
                    Arg::Text(role.as_string()),
                    Arg::Int(now),
                ],
            ),
            Stmt::new(
                "INSERT INTO invitations (token_hash, workspace_id, teammate_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
                vec![
                    Arg::Bytes(invitation.hash().as_bytes().to_vec()),
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Int(expires_at),
                    Arg::Int(now),
                ],
            ),
            Self::activity_stmt_with(ws, &wk, &act.clone().targeting(id.as_str()))?,
        ];
        match self.writer.write(unit).await {
            Err(StoreError::Conflict(_)) => {
                return Err(StoreError::Conflict("teammate_email_taken"));
            }
            other => other?,
        }
        Ok((
            Teammate {
                id,
                email: email.as_str().to_owned(),
                name: name.as_str().to_owned(),
                role: role.clone(),
                two_factor: false,
                has_password: false,
                created_at: now,
            },
            invitation,
            expires_at,
        ))
    }

    async fn custom_role_exists(
        &self,
        ws: &WorkspaceId,
        id: &interlock_domain::RoleId,
    ) -> Result<bool, StoreError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM roles WHERE workspace_id = $1 AND id = $2")
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Db)?;
        Ok(found.is_some())
    }

    /// The teammate a live invitation is for (to check a new password against their own
    /// email and name before it is hashed); `NotFound` for an unknown, used or expired one.
    pub async fn invitation_teammate(&self, presented: &str) -> Result<Teammate, StoreError> {
        let hash = TokenHash::of(presented);
        let row = sqlx::query(
            "SELECT workspace_id, teammate_id, expires_at FROM invitations WHERE token_hash = $1",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        if col::<i64>(&row, "expires_at")? <= now_ms() {
            return Err(StoreError::NotFound);
        }
        let ws = parse_id(WorkspaceId::parse(&col::<String>(&row, "workspace_id")?))?;
        let tm = parse_id(TeammateId::parse(&col::<String>(&row, "teammate_id")?))?;
        self.get_teammate(&ws, &tm).await
    }

    /// Use an invitation: set the teammate's password and delete the invitation.
    pub async fn accept_invitation(
        &self,
        presented: &str,
        password: PasswordHash,
        act: &NewActivity,
    ) -> Result<(WorkspaceId, TeammateId), StoreError> {
        let hash = TokenHash::of(presented);
        let row = sqlx::query(
            "SELECT i.workspace_id, i.teammate_id, i.expires_at FROM invitations i JOIN teammates t ON t.workspace_id = i.workspace_id AND t.id = i.teammate_id WHERE i.token_hash = $1 AND t.removed_at IS NULL",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        let expires_at: i64 = col(&row, "expires_at")?;
        if expires_at <= now_ms() {
            return Err(StoreError::NotFound);
        }
        let ws = parse_id(WorkspaceId::parse(&col::<String>(&row, "workspace_id")?))?;
        let tm = parse_id(TeammateId::parse(&col::<String>(&row, "teammate_id")?))?;
        let mut act = act.clone().targeting(tm.as_str());
        act.actor.id = Some(tm.to_string());
        let entry = self.activity_stmt(&ws, &act).await?;
        // Deleting exactly one row makes the invitation single-use even under concurrency.
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM invitations WHERE token_hash = $1",
                    vec![Arg::Bytes(hash.as_bytes().to_vec())],
                )
                .expect(1),
                Stmt::new(
                    "UPDATE teammates SET password_hash = $3 WHERE workspace_id = $1 AND id = $2 AND removed_at IS NULL",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(tm.to_string()),
                        Arg::Text(password.as_str().to_owned()),
                    ],
                )
                .expect(1),
                entry,
            ])
            .await?;
        Ok((ws, tm))
    }

    fn decode_teammate(
        &self,
        ws: &WorkspaceId,
        row: &sqlx::any::AnyRow,
        wk: &interlock_crypto::WorkspaceKeys,
    ) -> Result<Teammate, StoreError> {
        let id: String = col(row, "id")?;
        let key_id = ws_key_id(wk.version);
        let s = Sealer::new("teammates", &wk.aead, ws, &id, &key_id);
        Ok(Teammate {
            email: s.open_text("email", &col::<Vec<u8>>(row, "email_ct")?)?,
            name: s.open_text("name", &col::<Vec<u8>>(row, "name_ct")?)?,
            role: parse_id(TeammateRole::parse(&col::<String>(row, "role")?))?,
            two_factor: col::<i64>(row, "totp_enabled")? != 0 || col::<i64>(row, "passkeys")? > 0,
            has_password: col::<Option<String>>(row, "password_hash")?.is_some(),
            created_at: col(row, "created_at")?,
            id: parse_id(TeammateId::parse(&id))?,
        })
    }

    /// The workspace's current (not removed) teammates, oldest first.
    pub async fn list_teammates(&self, ws: &WorkspaceId) -> Result<Vec<Teammate>, StoreError> {
        self.check_region(ws)?;
        let rows = sqlx::query(teammate_select!(" ORDER BY id LIMIT 1000"))
            .bind(ws.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let wk = self.workspace_keys(ws, col(row, "ws_key_version")?).await?;
            out.push(self.decode_teammate(ws, row, &wk)?);
        }
        Ok(out)
    }

    pub async fn get_teammate(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
    ) -> Result<Teammate, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(teammate_select!(" AND id = $2"))
            .bind(ws.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?
            .ok_or(StoreError::NotFound)?;
        let wk = self
            .workspace_keys(ws, col(&row, "ws_key_version")?)
            .await?;
        self.decode_teammate(ws, &row, &wk)
    }

    async fn owner_count(&self, ws: &WorkspaceId) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM teammates WHERE workspace_id = $1 AND role = 'owner' AND removed_at IS NULL",
        )
        .bind(ws.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)
    }

    /// A guard statement that fails the unit unless at least one other owner remains.
    fn other_owner_guard(ws: &WorkspaceId, id: &TeammateId) -> Stmt {
        // Touches the row of one remaining owner; fails (no row) when there is none.
        Stmt::new(
            "UPDATE teammates SET role = role WHERE workspace_id = $1 AND id = (SELECT MIN(id) FROM teammates WHERE workspace_id = $1 AND role = 'owner' AND removed_at IS NULL AND id <> $2)",
            vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())],
        )
        .expect(1)
    }

    /// Change a teammate's role. `actor` is the teammate making the change, if any.
    pub async fn set_teammate_role(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
        role: &TeammateRole,
        actor: Option<&TeammateId>,
        act: &NewActivity,
    ) -> Result<Teammate, StoreError> {
        if actor == Some(id) {
            return Err(StoreError::Conflict("own_role"));
        }
        let current = self.get_teammate(ws, id).await?;
        if let TeammateRole::Custom(rid) = role
            && !self.custom_role_exists(ws, rid).await?
        {
            return Err(StoreError::Invalid(DomainError::new(
                "role",
                "unknown_role",
                "no such custom role in this workspace",
            )));
        }
        let mut unit = Vec::new();
        if current.role.is_owner() && !role.is_owner() {
            if self.owner_count(ws).await? <= 1 {
                return Err(StoreError::Conflict("last_owner"));
            }
            unit.push(Self::other_owner_guard(ws, id));
        }
        unit.push(
            Stmt::new(
                "UPDATE teammates SET role = $3 WHERE workspace_id = $1 AND id = $2 AND removed_at IS NULL",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Text(role.as_string()),
                ],
            )
            .expect(1),
        );
        let act = act
            .clone()
            .with("before", current.role.as_string())
            .with("after", role.as_string());
        unit.push(self.activity_stmt(ws, &act).await?);
        match self.writer.write(unit).await {
            Err(StoreError::NotFound) if current.role.is_owner() => {
                return Err(StoreError::Conflict("last_owner"));
            }
            other => other?,
        }
        // Their tokens follow the new role (bounded by it at authentication).
        self.tokens.clear();
        Ok(Teammate {
            role: role.clone(),
            ..current
        })
    }

    /// Remove a teammate: their sessions, invitations, recovery codes and the API tokens they
    /// created go in the same transaction.
    pub async fn remove_teammate(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let current = self.get_teammate(ws, id).await?;
        let two = || vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())];
        let mut unit = Vec::new();
        if current.role.is_owner() {
            if self.owner_count(ws).await? <= 1 {
                return Err(StoreError::Conflict("last_owner"));
            }
            unit.push(Self::other_owner_guard(ws, id));
        }
        unit.extend([
            Stmt::new(
                "DELETE FROM teammate_sessions WHERE workspace_id = $1 AND teammate_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM invitations WHERE workspace_id = $1 AND teammate_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM recovery_codes WHERE workspace_id = $1 AND teammate_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM teammate_passkeys WHERE workspace_id = $1 AND teammate_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM webauthn_ceremonies WHERE workspace_id = $1 AND teammate_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM api_tokens WHERE workspace_id = $1 AND created_by = $2",
                two(),
            ),
            Stmt::new(
                "UPDATE teammates SET removed_at = $3, password_hash = NULL, totp_secret_ct = NULL, totp_enabled = 0 WHERE workspace_id = $1 AND id = $2 AND removed_at IS NULL",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Int(now_ms()),
                ],
            )
            .expect(1),
            self.activity_stmt(ws, &act.clone().with("role", current.role.as_string()))
                .await?,
        ]);
        match self.writer.write(unit).await {
            Err(StoreError::NotFound) if current.role.is_owner() => {
                Err(StoreError::Conflict("last_owner"))
            }
            other => {
                other?;
                self.tokens.clear();
                Ok(())
            }
        }
    }

    // ---------------------------------------------------------------- sign-in

    /// What sign-in needs about the (not removed) teammate with this email, if any.
    pub async fn login_record(
        &self,
        ws: &WorkspaceId,
        email: &Email,
    ) -> Result<Option<LoginRecord>, StoreError> {
        self.check_region(ws)?;
        let wk = self.current_workspace_keys(ws).await?;
        let row = sqlx::query(
            "SELECT id, password_hash, totp_secret_ct, totp_enabled, ws_key_version, (SELECT COUNT(*) FROM teammate_passkeys p WHERE p.workspace_id = teammates.workspace_id AND p.teammate_id = teammates.id) AS passkeys FROM teammates WHERE workspace_id = $1 AND email_bidx = $2 AND removed_at IS NULL",
        )
        .bind(ws.as_str())
        .bind(wk.blind.index("teammate_email", email.as_str()))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(row) = row else { return Ok(None) };
        let id: String = col(&row, "id")?;
        let totp = match col::<Option<Vec<u8>>>(&row, "totp_secret_ct")? {
            Some(ct) => {
                let version: i64 = col(&row, "ws_key_version")?;
                let k = self.workspace_keys(ws, version).await?;
                let key_id = ws_key_id(version);
                let bytes = Sealer::new("teammates", &k.aead, ws, &id, &key_id)
                    .open_bytes("totp_secret", &ct)?;
                Some(TotpSecret::from_bytes(&bytes).map_err(StoreError::Integrity)?)
            }
            None => None,
        };
        Ok(Some(LoginRecord {
            password_hash: col::<Option<String>>(&row, "password_hash")?
                .map(|s| PasswordHash::from_stored(s).map_err(StoreError::Integrity))
                .transpose()?,
            totp,
            totp_enabled: col::<i64>(&row, "totp_enabled")? != 0,
            passkeys: col(&row, "passkeys")?,
            teammate_id: parse_id(TeammateId::parse(&id))?,
        }))
    }

    /// Record that a TOTP step was used; fails (`Conflict("totp_replay")`) if that step or a
    /// later one was already accepted.
    pub async fn accept_totp_step(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
        step: u64,
    ) -> Result<(), StoreError> {
        let r = self.exactly_one("UPDATE teammates SET totp_last_step = $3 WHERE workspace_id = $1 AND id = $2 AND (totp_last_step IS NULL OR totp_last_step < $3)",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Int(step as i64),
                    ]).await;
        match r {
            Err(StoreError::NotFound) => Err(StoreError::Conflict("totp_replay")),
            other => other,
        }
    }

    /// Spend a recovery code (by its hash); fails with `NotFound` if it is not a live code.
    pub async fn use_recovery_code(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
        code_hash: [u8; 32],
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let entry = self.activity_stmt(ws, act).await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM recovery_codes WHERE workspace_id = $1 AND teammate_id = $2 AND code_hash = $3",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Bytes(code_hash.to_vec()),
                    ],
                )
                .expect(1),
                entry,
            ])
            .await
    }

    /// Store a new (not yet enabled) TOTP secret for enrolment.
    pub async fn set_pending_totp(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
        secret: &TotpSecret,
    ) -> Result<(), StoreError> {
        let version: i64 = sqlx::query_scalar(
            "SELECT ws_key_version FROM teammates WHERE workspace_id = $1 AND id = $2 AND removed_at IS NULL",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        let k = self.workspace_keys(ws, version).await?;
        let key_id = ws_key_id(version);
        let ct = Sealer::new("teammates", &k.aead, ws, id.as_str(), &key_id)
            .seal("totp_secret", secret.expose())?;
        self.exactly_one("UPDATE teammates SET totp_secret_ct = $3, totp_last_step = NULL WHERE workspace_id = $1 AND id = $2 AND totp_enabled = 0 AND removed_at IS NULL",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Bytes(ct),
                    ]).await
            .map_err(|e| match e {
                StoreError::NotFound => StoreError::Conflict("two_factor_already_enabled"),
                e => e,
            })
    }

    /// Turn TOTP on after the first valid code (step), with fresh recovery code hashes.
    pub async fn enable_totp(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
        step: u64,
        recovery_hashes: &[[u8; 32]],
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let two = || vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())];
        let mut unit = vec![
            Stmt::new(
                "UPDATE teammates SET totp_enabled = 1, totp_last_step = $3 WHERE workspace_id = $1 AND id = $2 AND totp_enabled = 0 AND totp_secret_ct IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $3)",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Int(step as i64),
                ],
            )
            .expect(1),
            Stmt::new(
                "DELETE FROM recovery_codes WHERE workspace_id = $1 AND teammate_id = $2",
                two(),
            ),
        ];
        for h in recovery_hashes {
            unit.push(Stmt::new(
                "INSERT INTO recovery_codes (workspace_id, teammate_id, code_hash) VALUES ($1, $2, $3)",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Bytes(h.to_vec()),
                ],
            ));
        }
        unit.push(self.activity_stmt(ws, act).await?);
        self.writer.write(unit).await
    }

    /// Turn TOTP off and drop the recovery codes.
    pub async fn disable_totp(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let two = || vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())];
        let entry = self.activity_stmt(ws, act).await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "UPDATE teammates SET totp_enabled = 0, totp_secret_ct = NULL WHERE workspace_id = $1 AND id = $2",
                    two(),
                )
                .expect(1),
                Stmt::new(
                    "DELETE FROM recovery_codes WHERE workspace_id = $1 AND teammate_id = $2",
                    two(),
                ),
                entry,
            ])
            .await
    }

    /// The TOTP secret of a teammate (pending or enabled), if any.
    pub async fn totp_secret(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
    ) -> Result<Option<(TotpSecret, bool)>, StoreError> {
        let row = sqlx::query(
            "SELECT totp_secret_ct, totp_enabled, ws_key_version FROM teammates WHERE workspace_id = $1 AND id = $2 AND removed_at IS NULL",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        let Some(ct) = col::<Option<Vec<u8>>>(&row, "totp_secret_ct")? else {
            return Ok(None);
        };
        let version: i64 = col(&row, "ws_key_version")?;
        let k = self.workspace_keys(ws, version).await?;
        let key_id = ws_key_id(version);
        let bytes = Sealer::new("teammates", &k.aead, ws, id.as_str(), &key_id)
            .open_bytes("totp_secret", &ct)?;
        let secret = TotpSecret::from_bytes(&bytes).map_err(StoreError::Integrity)?;
        Ok(Some((secret, col::<i64>(&row, "totp_enabled")? != 0)))
    }

    /// The teammate's password hash (for re-authentication, e.g. disabling 2FA).
    pub async fn password_hash(
        &self,
        ws: &WorkspaceId,
        id: &TeammateId,
    ) -> Result<Option<PasswordHash>, StoreError> {
        let h: Option<Option<String>> = sqlx::query_scalar(
            "SELECT password_hash FROM teammates WHERE workspace_id = $1 AND id = $2 AND removed_at IS NULL",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        h.flatten()
            .map(|s| PasswordHash::from_stored(s).map_err(StoreError::Integrity))
            .transpose()
    }

    // ---------------------------------------------------------------- throttling

    /// Seconds until sign-in may be tried again for any of `subjects`, if locked.
    pub async fn throttled(
        &self,
        ws: &WorkspaceId,
        subjects: &[&str],
    ) -> Result<Option<i64>, StoreError> {
        let wk = self.current_workspace_keys(ws).await?;
        let now = now_ms();
        let mut wait = None;
        for subject in subjects {
            let until: Option<i64> = sqlx::query_scalar(
                "SELECT locked_until FROM login_throttle WHERE workspace_id = $1 AND subject = $2",
            )
            .bind(ws.as_str())
            .bind(wk.blind.index("throttle", subject))
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            if let Some(u) = until
                && u > now
            {
                let secs = (u - now + 999) / 1000;
                wait = Some(wait.map_or(secs, |w: i64| w.max(secs)));
            }
        }
        Ok(wait)
    }

    /// Count a failed sign-in against each subject (exponential back-off after 5 failures,
    /// capped at a 15-minute lock) and record the failure in the activity log.
    pub async fn record_login_failure(
        &self,
        ws: &WorkspaceId,
        subjects: &[&str],
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let wk = self.current_workspace_keys(ws).await?;
        let now = now_ms();
        let mut unit = Vec::new();
        for subject in subjects {
            let idx = wk.blind.index("throttle", subject);
            let failures: i64 = sqlx::query_scalar(
                "SELECT failures FROM login_throttle WHERE workspace_id = $1 AND subject = $2",
            )
            .bind(ws.as_str())
            .bind(idx.clone())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?
            .unwrap_or(0)
                + 1;
            let lock_ms = if failures >= 5 {
                (1000i64 << (failures - 5).min(20)).min(15 * 60 * 1000)
            } else {
                0
            };
            unit.push(Stmt::new(
                "INSERT INTO login_throttle (workspace_id, subject, failures, locked_until, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workspace_id, subject) DO UPDATE SET failures = login_throttle.failures + 1, locked_until = excluded.locked_until, updated_at = excluded.updated_at",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Bytes(idx),
                    Arg::Int(failures),
                    Arg::Int(now + lock_ms),
                    Arg::Int(now),
                ],
            ));
        }
        unit.push(Self::activity_stmt_with(ws, &wk, act)?);
        self.writer.write(unit).await
    }

    /// How many failed sign-ins the activity log holds for the workspace.
    pub async fn login_failure_count(&self, ws: &WorkspaceId) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM activity_log WHERE workspace_id = $1 AND type = 'auth.sign_in.failed'",
        )
            .bind(ws.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Db)
    }

    /// Forget an account's failures after a successful sign-in.
    pub async fn clear_login_failures(
        &self,
        ws: &WorkspaceId,
        subject: &str,
    ) -> Result<(), StoreError> {
        let wk = self.current_workspace_keys(ws).await?;
        self.writer
            .write(vec![Stmt::new(
                "DELETE FROM login_throttle WHERE workspace_id = $1 AND subject = $2",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Bytes(wk.blind.index("throttle", subject)),
                ],
            )])
            .await
    }

    // ---------------------------------------------------------------- sessions

    /// Open a session: returns (session id, cookie token, CSRF token).
    pub async fn create_session(
        &self,
        ws: &WorkspaceId,
        teammate: &TeammateId,
        act: &NewActivity,
    ) -> Result<(SessionId, RegionToken, RegionToken), StoreError> {
        let token = RegionToken::generate(TokenKind::TeammateSession, self.region)?;
        let csrf = RegionToken::generate(TokenKind::Csrf, self.region)?;
        let id = SessionId::new();
        let now = now_ms();
        let entry = self
            .activity_stmt(ws, &act.clone().with("session_id", id.to_string()))
            .await?;
        self.writer
            .write(vec![Stmt::new(
                "INSERT INTO teammate_sessions (token_hash, id, workspace_id, teammate_id, csrf_hash, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                vec![
                    Arg::Bytes(token.hash().as_bytes().to_vec()),
                    Arg::Text(id.to_string()),
                    Arg::Text(ws.to_string()),
                    Arg::Text(teammate.to_string()),
                    Arg::Bytes(csrf.hash().as_bytes().to_vec()),
                    Arg::Int(now),
                ],
            ), entry])
            .await?;
        // A sign-in is workspace activity (the inactivity rule).
        if let Err(e) = self.touch_workspace(ws).await {
            tracing::warn!(workspace = %ws, error = %e, "could not record workspace activity");
        }
        Ok((id, token, csrf))
    }

    /// The live session a presented cookie opens: not removed, within the idle timeout and
    /// the absolute lifetime. Use refreshes `last_seen_at` (at most once a minute).
    pub async fn session_principal(
        &self,
        presented: &str,
    ) -> Result<Option<SessionPrincipal>, StoreError> {
        let hash = TokenHash::of(presented);
        let row = sqlx::query(
            "SELECT s.id, s.workspace_id, s.teammate_id, s.csrf_hash, s.created_at, s.last_seen_at, t.role, t.totp_enabled, (SELECT COUNT(*) FROM teammate_passkeys p WHERE p.workspace_id = s.workspace_id AND p.teammate_id = s.teammate_id) AS passkeys FROM teammate_sessions s JOIN teammates t ON t.workspace_id = s.workspace_id AND t.id = s.teammate_id WHERE s.token_hash = $1 AND t.removed_at IS NULL",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(row) = row else { return Ok(None) };
        let ws = parse_id(WorkspaceId::parse(&col::<String>(&row, "workspace_id")?))?;
        if ws.region() != self.region {
            return Ok(None);
        }
        let settings = self.security_settings(&ws).await?;
        let now = now_ms();
        let created: i64 = col(&row, "created_at")?;
        let seen: i64 = col(&row, "last_seen_at")?;
        if now - seen > settings.session_idle_s * 1000
            || now - created > settings.session_absolute_s * 1000
        {
            return Ok(None);
        }
        if now - seen > SESSION_TOUCH_MS {
            self.writer
                .write(vec![Stmt::new(
                    "UPDATE teammate_sessions SET last_seen_at = $2 WHERE token_hash = $1",
                    vec![Arg::Bytes(hash.as_bytes().to_vec()), Arg::Int(now)],
                )])
                .await?;
        }
        let role = parse_id(TeammateRole::parse(&col::<String>(&row, "role")?))?;
        let permissions = self.role_permissions(&ws, &role).await?;
        Ok(Some(SessionPrincipal {
            teammate_id: parse_id(TeammateId::parse(&col::<String>(&row, "teammate_id")?))?,
            session_id: parse_id(SessionId::parse(&col::<String>(&row, "id")?))?,
            two_factor: col::<i64>(&row, "totp_enabled")? != 0 || col::<i64>(&row, "passkeys")? > 0,
            require_two_factor: settings.require_two_factor,
            ip_allowlist: settings.ip_allowlist,
            csrf_hash: col(&row, "csrf_hash")?,
            workspace: ws,
            role,
            permissions,
        }))
    }

    /// End a session by its cookie (logout).
    pub async fn end_session(
        &self,
        ws: &WorkspaceId,
        presented: &str,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let entry = self.activity_stmt(ws, act).await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM teammate_sessions WHERE workspace_id = $1 AND token_hash = $2",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Bytes(TokenHash::of(presented).as_bytes().to_vec()),
                    ],
                )
                .expect(1),
                entry,
            ])
            .await
    }

    /// A teammate's own sessions, newest first.
    pub async fn list_sessions(
        &self,
        ws: &WorkspaceId,
        teammate: &TeammateId,
        current: &SessionId,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, last_seen_at FROM teammate_sessions WHERE workspace_id = $1 AND teammate_id = $2 ORDER BY id DESC LIMIT 200",
        )
        .bind(ws.as_str())
        .bind(teammate.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        rows.iter()
            .map(|r| {
                let id = parse_id(SessionId::parse(&col::<String>(r, "id")?))?;
                Ok(SessionInfo {
                    current: &id == current,
                    id,
                    created_at: col(r, "created_at")?,
                    last_seen_at: col(r, "last_seen_at")?,
                })
            })
            .collect()
    }

    /// Revoke one of a teammate's own sessions.
    pub async fn revoke_session(
        &self,
        ws: &WorkspaceId,
        teammate: &TeammateId,
        id: &SessionId,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let entry = self.activity_stmt(ws, act).await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM teammate_sessions WHERE workspace_id = $1 AND teammate_id = $2 AND id = $3",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(teammate.to_string()),
                        Arg::Text(id.to_string()),
                    ],
                )
                .expect(1),
                entry,
            ])
            .await
    }

    /// True when the workspace has no teammate yet (the first one must be an owner).
    pub async fn has_teammates(&self, ws: &WorkspaceId) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM teammates WHERE workspace_id = $1 AND removed_at IS NULL",
        )
        .bind(ws.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        Ok(n > 0)
    }
}

/// A custom role.
#[derive(Debug, Clone)]
pub struct CustomRole {
    pub id: interlock_domain::RoleId,
    pub name: String,
    pub permissions: PermissionSet,
    pub created_at: i64,
}

impl Cell {
    /// Create a custom role.
    pub async fn create_role(
        &self,
        ws: &WorkspaceId,
        name: &str,
        permissions: PermissionSet,
        act: &NewActivity,
    ) -> Result<CustomRole, StoreError> {
        self.check_region(ws)?;
        let wk = self.current_workspace_keys(ws).await?;
        let id = interlock_domain::RoleId::new();
        let key_id = ws_key_id(wk.version);
        let name_ct = Sealer::new("roles", &wk.aead, ws, id.as_str(), &key_id)
            .seal("name", name.as_bytes())?;
        let now = now_ms();
        self.writer
            .write(vec![Stmt::new(
                "INSERT INTO roles (workspace_id, id, name_ct, ws_key_version, permissions, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Bytes(name_ct),
                    Arg::Int(wk.version),
                    Arg::Text(permissions.encode()),
                    Arg::Int(now),
                ],
            ), Self::activity_stmt_with(ws, &wk, &act.clone().targeting(id.as_str()).with("permissions", permission_names(permissions)))?])
            .await?;
        Ok(CustomRole {
            id,
            name: name.to_owned(),
            permissions,
            created_at: now,
        })
    }

    async fn decode_role(
        &self,
        ws: &WorkspaceId,
        row: &sqlx::any::AnyRow,
    ) -> Result<CustomRole, StoreError> {
        let id: String = col(row, "id")?;
        let version: i64 = col(row, "ws_key_version")?;
        let k = self.workspace_keys(ws, version).await?;
        let key_id = ws_key_id(version);
        Ok(CustomRole {
            name: Sealer::new("roles", &k.aead, ws, &id, &key_id)
                .open_text("name", &col::<Vec<u8>>(row, "name_ct")?)?,
            permissions: parse_id(PermissionSet::decode(&col::<String>(row, "permissions")?))?,
            created_at: col(row, "created_at")?,
            id: parse_id(interlock_domain::RoleId::parse(&id))?,
        })
    }

    /// The workspace's custom roles, oldest first.
    pub async fn list_roles(&self, ws: &WorkspaceId) -> Result<Vec<CustomRole>, StoreError> {
        self.check_region(ws)?;
        let rows = sqlx::query(
            "SELECT id, name_ct, ws_key_version, permissions, created_at FROM roles WHERE workspace_id = $1 ORDER BY id LIMIT 1000",
        )
        .bind(ws.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.decode_role(ws, row).await?);
        }
        Ok(out)
    }

    pub async fn get_role(
        &self,
        ws: &WorkspaceId,
        id: &interlock_domain::RoleId,
    ) -> Result<CustomRole, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT id, name_ct, ws_key_version, permissions, created_at FROM roles WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        .ok_or(StoreError::NotFound)?;
        self.decode_role(ws, &row).await
    }

    /// Replace a custom role's name and permissions; teammates holding it get the new
    /// permissions on their next request.
    pub async fn update_role(
        &self,
        ws: &WorkspaceId,
        role: &CustomRole,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        self.check_region(ws)?;
        let before = self.get_role(ws, &role.id).await?;
        let wk = self.current_workspace_keys(ws).await?;
        let key_id = ws_key_id(wk.version);
        let name_ct = Sealer::new("roles", &wk.aead, ws, role.id.as_str(), &key_id)
            .seal("name", role.name.as_bytes())?;
        let act = act
            .clone()
            .with("before", permission_names(before.permissions))
            .with("after", permission_names(role.permissions));
        self.writer
            .write(vec![
                Stmt::new(
                    "UPDATE roles SET name_ct = $3, ws_key_version = $4, permissions = $5 WHERE workspace_id = $1 AND id = $2",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(role.id.to_string()),
                        Arg::Bytes(name_ct),
                        Arg::Int(wk.version),
                        Arg::Text(role.permissions.encode()),
                    ],
                )
                .expect(1),
                Self::activity_stmt_with(ws, &wk, &act)?,
            ])
            .await?;
        // Tokens of the role's holders are bounded by it at authentication.
        self.tokens.clear();
        Ok(())
    }

    /// Delete a custom role nobody holds (`Conflict("role_in_use")` otherwise).
    pub async fn delete_role(
        &self,
        ws: &WorkspaceId,
        id: &interlock_domain::RoleId,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let role = self.get_role(ws, id).await?;
        let entry = self
            .activity_stmt(
                ws,
                &act.clone()
                    .with("permissions", permission_names(role.permissions)),
            )
            .await?;
        let r = self
            .writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM roles WHERE workspace_id = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM teammates t WHERE t.workspace_id = $1 AND t.role = $2 AND t.removed_at IS NULL)",
                    vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())],
                )
                .expect(1),
                entry,
            ])
            .await;
        match r {
            Err(StoreError::NotFound) => Err(StoreError::Conflict("role_in_use")),
            other => other,
        }
    }
}

/// Permission names as a JSON list, for activity metadata.
pub(crate) fn permission_names(p: PermissionSet) -> Vec<serde_json::Value> {
    p.iter()
        .map(|x| serde_json::Value::from(x.as_str()))
        .collect()
}
