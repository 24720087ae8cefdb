//! Teammates' passkeys (WebAuthn credentials) and pending WebAuthn ceremonies. The WebAuthn
//! protocol itself lives in the HTTP layer (webauthn-rs); this module stores its serialised
//! values sealed under the workspace key and hands them back.
//!
//! Invariants: a ceremony is single use (taking it deletes it) and expires after five
//! minutes; passkeys and ceremony states are never stored in clear.

use interlock_crypto::{RegionToken, TokenHash, TokenKind};
use interlock_domain::{NewActivity, PasskeyId, TeammateId, WorkspaceId};
use sqlx::any::AnyRow;
use zeroize::Zeroizing;

use super::{Cell, Sealer, col, parse_id, ws_key_id};
use crate::db::{Arg, Stmt};
use crate::{StoreError, now_ms};

/// How long a registration or sign-in ceremony may take.
pub const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;

/// A stored passkey: its metadata and the serialised credential.
pub struct StoredPasskey {
    pub id: PasskeyId,
    pub name: String,
    pub created_at: i64,
    pub credential: Zeroizing<Vec<u8>>,
}

impl Cell {
    /// Store a new passkey of a teammate.
    pub async fn add_passkey(
        &self,
        ws: &WorkspaceId,
        teammate: &TeammateId,
        name: &str,
        credential: &[u8],
        act: &NewActivity,
    ) -> Result<(PasskeyId, i64), StoreError> {
        self.check_region(ws)?;
        let wk = self.current_workspace_keys(ws).await?;
        let id = PasskeyId::new();
        let key_id = ws_key_id(wk.version);
        let s = Sealer::new("teammate_passkeys", &wk.aead, ws, id.as_str(), &key_id);
        let now = now_ms();
        self.writer
            .write(vec![Stmt::new(
                "INSERT INTO teammate_passkeys (workspace_id, id, teammate_id, name_ct, passkey_ct, ws_key_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Text(teammate.to_string()),
                    Arg::Bytes(s.seal("name", name.as_bytes())?),
                    Arg::Bytes(s.seal("credential", credential)?),
                    Arg::Int(wk.version),
                    Arg::Int(now),
                ],
            ), Self::activity_stmt_with(ws, &wk, &act.clone().targeting(id.as_str()))?])
            .await?;
        Ok((id, now))
    }

    /// A teammate's passkeys, oldest first.
    pub async fn passkeys(
        &self,
        ws: &WorkspaceId,
        teammate: &TeammateId,
    ) -> Result<Vec<StoredPasskey>, StoreError> {
        self.check_region(ws)?;
        let rows = sqlx::query(
            "SELECT id, name_ct, passkey_ct, ws_key_version, created_at FROM teammate_passkeys WHERE workspace_id = $1 AND teammate_id = $2 ORDER BY id",
        )
        .bind(ws.as_str())
        .bind(teammate.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = col(row, "id")?;
            let version: i64 = col(row, "ws_key_version")?;
            let k = self.workspace_keys(ws, version).await?;
            let key_id = ws_key_id(version);
            let s = Sealer::new("teammate_passkeys", &k.aead, ws, &id, &key_id);
            out.push(StoredPasskey {
                name: s.open_text("name", &col::<Vec<u8>>(row, "name_ct")?)?,
                credential: s.open_bytes("credential", &col::<Vec<u8>>(row, "passkey_ct")?)?,
                created_at: col(row, "created_at")?,
                id: parse_id(PasskeyId::parse(&id))?,
            });
        }
        Ok(out)
    }

    /// Replace a passkey's serialised credential (its signature counter moved on).
    pub async fn update_passkey(
        &self,
        ws: &WorkspaceId,
        teammate: &TeammateId,
        id: &PasskeyId,
        credential: &[u8],
    ) -> Result<(), StoreError> {
        let wk = self.current_workspace_keys(ws).await?;
        let key_id = ws_key_id(wk.version);
        let s = Sealer::new("teammate_passkeys", &wk.aead, ws, id.as_str(), &key_id);
        // The name is re-sealed too, so the row stays under one key version.
        let name = self
            .passkeys(ws, teammate)
            .await?
            .into_iter()
            .find(|p| &p.id == id)
            .ok_or(StoreError::NotFound)?
            .name;
        self.exactly_one("UPDATE teammate_passkeys SET passkey_ct = $4, name_ct = $5, ws_key_version = $6 WHERE workspace_id = $1 AND teammate_id = $2 AND id = $3",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(teammate.to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Bytes(s.seal("credential", credential)?),
                        Arg::Bytes(s.seal("name", name.as_bytes())?),
                        Arg::Int(wk.version),
                    ]).await
    }

    pub async fn delete_passkey(
        &self,
        ws: &WorkspaceId,
        teammate: &TeammateId,
        id: &PasskeyId,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        let entry = self.activity_stmt(ws, act).await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM teammate_passkeys WHERE workspace_id = $1 AND teammate_id = $2 AND id = $3",
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

    /// Park a ceremony's state; the returned token names it (five minutes, single use).
    pub async fn start_ceremony(
        &self,
        ws: &WorkspaceId,
        teammate: &TeammateId,
        kind: &'static str,
        state: &[u8],
    ) -> Result<RegionToken, StoreError> {
        let wk = self.current_workspace_keys(ws).await?;
        let token = RegionToken::generate(TokenKind::Ceremony, self.region)?;
        let hash = token.hash();
        let record = hex::encode(hash.as_bytes());
        let key_id = ws_key_id(wk.version);
        let state_ct =
            Sealer::new("webauthn_ceremonies", &wk.aead, ws, &record, &key_id).seal(kind, state)?;
        let now = now_ms();
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM webauthn_ceremonies WHERE workspace_id = $1 AND expires_at <= $2",
                    vec![Arg::Text(ws.to_string()), Arg::Int(now)],
                ),
                Stmt::new(
                    "INSERT INTO webauthn_ceremonies (token_hash, workspace_id, teammate_id, kind, state_ct, ws_key_version, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    vec![
                        Arg::Bytes(hash.as_bytes().to_vec()),
                        Arg::Text(ws.to_string()),
                        Arg::Text(teammate.to_string()),
                        Arg::Text(kind.to_owned()),
                        Arg::Bytes(state_ct),
                        Arg::Int(wk.version),
                        Arg::Int(now + CEREMONY_TTL_MS),
                    ],
                ),
            ])
            .await?;
        Ok(token)
    }

    /// Take (and delete) a live ceremony of this kind: its workspace, teammate and state.
    pub async fn take_ceremony(
        &self,
        presented: &str,
        kind: &'static str,
    ) -> Result<Option<(WorkspaceId, TeammateId, Zeroizing<Vec<u8>>)>, StoreError> {
        let hash = TokenHash::of(presented);
        let Some(row) = self
            .take_once(
                "SELECT workspace_id, teammate_id, state_ct, ws_key_version, expires_at FROM webauthn_ceremonies WHERE token_hash = $1 AND kind = $2",
                "DELETE FROM webauthn_ceremonies WHERE token_hash = $1",
                &hash,
                kind,
            )
            .await?
        else {
            return Ok(None);
        };
        let ws = parse_id(WorkspaceId::parse(&col::<String>(&row, "workspace_id")?))?;
        if ws.region() != self.region {
            return Ok(None);
        }
        let tm = parse_id(TeammateId::parse(&col::<String>(&row, "teammate_id")?))?;
        let version: i64 = col(&row, "ws_key_version")?;
        let k = self.workspace_keys(&ws, version).await?;
        let key_id = ws_key_id(version);
        let record = hex::encode(hash.as_bytes());
        let state = Sealer::new("webauthn_ceremonies", &k.aead, &ws, &record, &key_id)
            .open_bytes(kind, &col::<Vec<u8>>(&row, "state_ct")?)?;
        Ok(Some((ws, tm, state)))
    }

    /// The single-use take of a ceremony row: `select` (`$1` token hash, `$2` kind) finds it
    /// and `delete` (`$1` token hash) removes it. The row comes back only to the caller whose
    /// delete removed it, and only while unexpired (its `expires_at`).
    pub(super) async fn take_once(
        &self,
        select: &'static str,
        delete: &'static str,
        hash: &TokenHash,
        kind: &str,
    ) -> Result<Option<AnyRow>, StoreError> {
        let row = sqlx::query(select)
            .bind(hash.as_bytes().as_slice())
            .bind(kind)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        let Some(row) = row else { return Ok(None) };
        // Single use: whoever deletes the row owns the ceremony.
        match self
            .exactly_one(delete, vec![Arg::Bytes(hash.as_bytes().to_vec())])
            .await
        {
            Err(StoreError::NotFound) => return Ok(None),
            other => other?,
        }
        if col::<i64>(&row, "expires_at")? <= now_ms() {
            return Ok(None);
        }
        Ok(Some(row))
    }

    /// How many passkeys a teammate has.
    pub async fn passkey_count(
        &self,
        ws: &WorkspaceId,
        teammate: &TeammateId,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM teammate_passkeys WHERE workspace_id = $1 AND teammate_id = $2",
        )
        .bind(ws.as_str())
        .bind(teammate.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)
    }
}
