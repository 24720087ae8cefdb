//! Workspace API tokens: the first full-access token every workspace gets, and scoped tokens
//! with a permission set and an optional expiry. Only SHA-256 hashes of tokens are stored.
//!
//! Invariants:
//! - A token authenticates only while it exists and has not expired; revoking deletes it.
//! - A token made by a teammate holds its scope intersected with the permissions of that
//!   teammate's current role, decided at authentication: a demotion narrows their tokens.
//! - The token → principal cache holds an entry for at most [`TOKEN_CACHE_TTL`], and revoking
//!   empties it, so a revocation takes effect at once in this process and within the TTL in
//!   any other process sharing the database.

use std::time::{Duration, Instant};

use interlock_crypto::{RegionToken, TokenHash, TokenKind, WorkspaceKeys};
use interlock_domain::{ApiTokenId, NewActivity, PermissionSet, TeammateId, WorkspaceId};

use super::{Cell, Sealer, col, parse_id, ws_key_id};
use crate::db::{Arg, Stmt};
use crate::{StoreError, now_ms};

pub(crate) const FIRST_TOKEN_NAME: &str = "first token";

/// How long another process may keep accepting a token revoked elsewhere.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// Every permission, present and future (the workspace's first token).
    Full,
    /// Exactly these permissions.
    Only(PermissionSet),
}

impl TokenScope {
    pub fn permissions(self) -> PermissionSet {
        match self {
            TokenScope::Full => PermissionSet::all(),
            TokenScope::Only(p) => p,
        }
    }

    fn encode(self) -> String {
        match self {
            TokenScope::Full => "*".to_owned(),
            TokenScope::Only(p) => p.encode(),
        }
    }

    fn decode(s: &str) -> Result<Self, StoreError> {
        if s == "*" {
            return Ok(TokenScope::Full);
        }
        Ok(TokenScope::Only(parse_id(PermissionSet::decode(s))?))
    }
}

/// An authenticated API token: its workspace and what it may do.
#[derive(Debug, Clone)]
pub struct TokenPrincipal {
    pub workspace: WorkspaceId,
    pub token_id: Option<ApiTokenId>,
    pub permissions: PermissionSet,
    expires_at: Option<i64>,
}

/// A token's metadata (never the token or its hash).
#[derive(Debug, Clone)]
pub struct ApiTokenInfo {
    pub id: ApiTokenId,
    pub name: String,
    pub scope: TokenScope,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

impl Cell {
    /// The statement that stores a token (hash, sealed name, scope, expiry, creator).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn token_stmt(
        ws: &WorkspaceId,
        keys: &WorkspaceKeys,
        token: &RegionToken,
        name: &str,
        scope: TokenScope,
        expires_at: Option<i64>,
        created_by: Option<&TeammateId>,
        now: i64,
    ) -> Result<(ApiTokenId, Stmt), StoreError> {
        let id = ApiTokenId::new();
        let key_id = ws_key_id(keys.version);
        let name_ct = Sealer::new("api_tokens", &keys.aead, ws, id.as_str(), &key_id)
            .seal("name", name.as_bytes())?;
        Ok((
            id.clone(),
            Stmt::new(
                "INSERT INTO api_tokens (token_hash, workspace_id, created_at, id, name_ct, ws_key_version, permissions, expires_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                vec![
                    Arg::Bytes(token.hash().as_bytes().to_vec()),
                    Arg::Text(ws.to_string()),
                    Arg::Int(now),
                    Arg::Text(id.to_string()),
                    Arg::Bytes(name_ct),
                    Arg::Int(keys.version),
                    Arg::Text(scope.encode()),
                    Arg::OptInt(expires_at),
                    Arg::OptText(created_by.map(|t| t.to_string())),
                ],
            ),
        ))
    }

    /// The principal a presented API token stands for, if it exists and has not expired.
    pub async fn authenticate(
        &self,
        presented: &str,
    ) -> Result<Option<TokenPrincipal>, StoreError> {
        let hash = TokenHash::of(presented);
        let now = now_ms();
        let live = |p: &TokenPrincipal| p.expires_at.is_none_or(|t| t > now);
        if let Some((p, at)) = self.tokens.get(hash.as_bytes())
            && at.elapsed() < TOKEN_CACHE_TTL
        {
            return Ok(live(&p).then_some(p));
        }
        // The creator's current role rides along: a token never does more than the teammate
        // who made it may do now (a demotion or a narrowed custom role narrows their tokens).
        let row = sqlx::query(
            "SELECT a.workspace_id, a.id, a.permissions, a.expires_at, a.created_by, t.role AS creator_role FROM api_tokens a LEFT JOIN teammates t ON t.workspace_id = a.workspace_id AND t.id = a.created_by AND t.removed_at IS NULL WHERE a.token_hash = $1",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(row) = row else { return Ok(None) };
        let workspace = parse_id(WorkspaceId::parse(&col::<String>(&row, "workspace_id")?))?;
        let mut permissions =
            TokenScope::decode(&col::<String>(&row, "permissions")?)?.permissions();
        if col::<Option<String>>(&row, "created_by")?.is_some() {
            // A creator who is gone leaves a token that may do nothing (their removal deletes
            // their tokens; this covers a row that outlived it).
            let held = match col::<Option<String>>(&row, "creator_role")? {
                Some(role) => {
                    let role = parse_id(interlock_domain::TeammateRole::parse(&role))?;
                    self.role_permissions(&workspace, &role).await?
                }
                None => PermissionSet::EMPTY,
            };
            permissions = permissions.intersection(held);
        }
        let principal = TokenPrincipal {
            workspace,
            token_id: col::<Option<String>>(&row, "id")?
                .map(|s| parse_id(ApiTokenId::parse(&s)))
                .transpose()?,
            permissions,
            expires_at: col(&row, "expires_at")?,
        };
        self.tokens
            .insert(*hash.as_bytes(), (principal.clone(), Instant::now()));
        Ok(live(&principal).then_some(principal))
    }

    /// Create a scoped token; the token is returned here and never again.
    pub async fn create_api_token(
        &self,
        ws: &WorkspaceId,
        name: &str,
        permissions: PermissionSet,
        expires_at: Option<i64>,
        created_by: Option<&TeammateId>,
        act: &NewActivity,
    ) -> Result<(ApiTokenInfo, RegionToken), StoreError> {
        self.check_region(ws)?;
        let keys = self.current_workspace_keys(ws).await?;
        let token = RegionToken::generate(TokenKind::Api, self.region)?;
        let now = now_ms();
        let scope = TokenScope::Only(permissions);
        let (id, stmt) =
            Self::token_stmt(ws, &keys, &token, name, scope, expires_at, created_by, now)?;
        let act = act
            .clone()
            .targeting(id.as_str())
            .with(
                "permissions",
                super::teammates::permission_names(permissions),
            )
            .with("expires_at", expires_at.map(|e| e / 1000));
        let entry = Self::activity_stmt_with(ws, &keys, &act)?;
        self.writer.write(vec![stmt, entry]).await?;
        Ok((
            ApiTokenInfo {
                id,
                name: name.to_owned(),
                scope,
                expires_at,
                created_at: now,
            },
            token,
        ))
    }

    /// The workspace's tokens, oldest first.
    pub async fn list_api_tokens(&self, ws: &WorkspaceId) -> Result<Vec<ApiTokenInfo>, StoreError> {
        self.check_region(ws)?;
        let rows = sqlx::query(
            "SELECT id, name_ct, ws_key_version, permissions, expires_at, created_at FROM api_tokens WHERE workspace_id = $1 AND id IS NOT NULL ORDER BY id",
        )
        .bind(ws.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = col(row, "id")?;
            let version: i64 = col(row, "ws_key_version")?;
            let keys = self.workspace_keys(ws, version).await?;
            let key_id = ws_key_id(version);
            let name = Sealer::new("api_tokens", &keys.aead, ws, &id, &key_id)
                .open_text("name", &col::<Vec<u8>>(row, "name_ct")?)?;
            out.push(ApiTokenInfo {
                id: parse_id(ApiTokenId::parse(&id))?,
                name,
                scope: TokenScope::decode(&col::<String>(row, "permissions")?)?,
                expires_at: col(row, "expires_at")?,
                created_at: col(row, "created_at")?,
            });
        }
        Ok(out)
    }

    /// Revoke a token: it stops working at once here (and within the cache TTL elsewhere).
    pub async fn revoke_api_token(
        &self,
        ws: &WorkspaceId,
        id: &ApiTokenId,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        self.check_region(ws)?;
        let entry = self.activity_stmt(ws, act).await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM api_tokens WHERE workspace_id = $1 AND id = $2",
                    vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())],
                )
                .expect(1),
                entry,
            ])
            .await?;
        self.tokens.clear();
        Ok(())
    }
}
