//! The messenger's storage: per-workspace settings, identity verification secrets (sealed under
//! the workspace key), visitor tokens, short-lived sessions bound to one contact, and the merge
//! of a visitor into a verified user.
//!
//! Invariants:
//! - A session names one contact; every read through it is filtered by that contact, and a
//!   session of scope `session` further by the conversations it started itself.
//! - Secrets, visitor tokens and sessions are stored only sealed (secrets) or as SHA-256
//!   (tokens); a secret's value leaves this module only at creation and as a verifier.
//! - A merge moves conversations, parts' authorship, events and the ownership of the visitor's
//!   subject keys in one transaction, and deletes the visitor with its tokens and sessions, so
//!   nothing the visitor wrote stays reachable through the visitor token.

use interlock_crypto::{RegionToken, SecretValue, TokenHash, TokenKind, VerificationSecret};
use interlock_domain::{
    Body, ContactId, ContactRole, ConversationId, CustomAttributes, Email, ExternalId,
    IdentityVerification, MessengerSecretId, MessengerSettings, NewActivity, NewContact, Platform,
    Platforms, SecretName, WorkspaceId,
};

use super::{Cell, MAX_PAGE, Sealer, col, conversation_page, parse_id, ws_key_id};
use crate::db::{Arg, Stmt};
use crate::records::{Contact, Conversation, Page, Part};
use crate::{StoreError, now_ms};

/// A verification secret's metadata (its value is shown once, at creation).
#[derive(Debug, Clone)]
pub struct MessengerSecret {
    pub id: MessengerSecretId,
    pub name: String,
    pub platforms: Platforms,
    pub created_at: i64,
}

/// What a messenger session may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionScope {
    /// Every conversation of the contact (a verified user, a visitor, or `off` mode).
    Contact,
    /// Only the conversations this session started (an unverified user in `optional` mode).
    Session,
}

impl SessionScope {
    const fn as_str(self) -> &'static str {
        match self {
            SessionScope::Contact => "contact",
            SessionScope::Session => "session",
        }
    }
}

/// An authenticated messenger session.
#[derive(Debug, Clone)]
pub struct MessengerSession {
    pub workspace: WorkspaceId,
    pub contact_id: ContactId,
    pub scope: SessionScope,
    pub expires_at: i64,
    token_hash: [u8; 32],
}

impl Cell {
    // ---------------------------------------------------------------- settings

    /// The workspace's messenger settings (defaults until first set).
    pub async fn messenger_settings(
        &self,
        ws: &WorkspaceId,
    ) -> Result<MessengerSettings, StoreError> {
        self.check_region(ws)?;
        let row = sqlx::query(
            "SELECT identity_verification, jwt_max_lifetime_s FROM messenger_settings WHERE workspace_id = $1",
        )
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(row) = row else {
            return Ok(MessengerSettings::default());
        };
        Ok(MessengerSettings {
            identity_verification: parse_id(IdentityVerification::parse(&col::<String>(
                &row,
                "identity_verification",
            )?))?,
            jwt_max_lifetime_s: col(&row, "jwt_max_lifetime_s")?,
        })
    }

    /// Replace the workspace's messenger settings. `enforced` needs at least one secret.
    pub async fn set_messenger_settings(
        &self,
        ws: &WorkspaceId,
        settings: MessengerSettings,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        self.check_region(ws)?;
        if settings.identity_verification == IdentityVerification::Enforced
            && self.count_messenger_secrets(ws).await? == 0
        {
            return Err(StoreError::Conflict("no_verification_secret"));
        }
        let before = self.messenger_settings(ws).await?;
        let settings_json = |m: &MessengerSettings| {
            serde_json::json!({
                "identity_verification": m.identity_verification.as_str(),
                "jwt_max_lifetime_s": m.jwt_max_lifetime_s,
            })
        };
        let act = act
            .clone()
            .with("before", settings_json(&before))
            .with("after", settings_json(&settings));
        let entry = self.activity_stmt(ws, &act).await?;
        self.writer
            .write(vec![Stmt::new(
                "INSERT INTO messenger_settings (workspace_id, identity_verification, jwt_max_lifetime_s, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id) DO UPDATE SET identity_verification = excluded.identity_verification, jwt_max_lifetime_s = excluded.jwt_max_lifetime_s, updated_at = excluded.updated_at",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(settings.identity_verification.as_str().to_owned()),
                    Arg::Int(settings.jwt_max_lifetime_s),
                    Arg::Int(now_ms()),
                ],
            ), entry])
            .await
    }

    // ---------------------------------------------------------------- secrets

    async fn count_messenger_secrets(&self, ws: &WorkspaceId) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM messenger_secrets WHERE workspace_id = $1")
            .bind(ws.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Db)
    }

    /// Create a 256-bit verification secret; its value is returned here and never again.
    pub async fn create_messenger_secret(
        &self,
        ws: &WorkspaceId,
        name: &SecretName,
        platforms: &Platforms,
        act: &NewActivity,
    ) -> Result<(MessengerSecret, SecretValue), StoreError> {
        self.check_region(ws)?;
        let wk = self.current_workspace_keys(ws).await?;
        let id = MessengerSecretId::new();
        let value = SecretValue::generate()?;
        let key_id = ws_key_id(wk.version);
        let s = Sealer::new("messenger_secrets", &wk.aead, ws, id.as_str(), &key_id);
        let now = now_ms();
        self.writer
            .write(vec![Stmt::new(
                "INSERT INTO messenger_secrets (workspace_id, id, name_ct, platforms, value_ct, ws_key_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Bytes(s.seal("name", name.as_str().as_bytes())?),
                    Arg::Text(platforms.encode()),
                    Arg::Bytes(s.seal("value", value.expose().as_bytes())?),
                    Arg::Int(wk.version),
                    Arg::Int(now),
                ],
            ), Self::activity_stmt_with(ws, &wk, &act.clone().targeting(id.as_str()).with("platforms", platforms.encode()))?])
            .await?;
        Ok((
            MessengerSecret {
                id,
                name: name.as_str().to_owned(),
                platforms: platforms.clone(),
                created_at: now,
            },
            value,
        ))
    }

    async fn secret_rows(&self, ws: &WorkspaceId) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        self.check_region(ws)?;
        sqlx::query(
            "SELECT id, name_ct, platforms, value_ct, ws_key_version, created_at FROM messenger_secrets WHERE workspace_id = $1 ORDER BY id",
        )
        .bind(ws.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)
    }

    /// The workspace's secrets, without their values, oldest first.
    pub async fn list_messenger_secrets(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Vec<MessengerSecret>, StoreError> {
        let mut out = Vec::new();
        for row in self.secret_rows(ws).await? {
            let id: String = col(&row, "id")?;
            let version: i64 = col(&row, "ws_key_version")?;
            let wk = self.workspace_keys(ws, version).await?;
            let key_id = ws_key_id(version);
            let s = Sealer::new("messenger_secrets", &wk.aead, ws, &id, &key_id);
            out.push(MessengerSecret {
                name: s.open_text("name", &col::<Vec<u8>>(&row, "name_ct")?)?,
                platforms: parse_id(Platforms::decode(&col::<String>(&row, "platforms")?))?,
                created_at: col(&row, "created_at")?,
                id: parse_id(MessengerSecretId::parse(&id))?,
            });
        }
        Ok(out)
    }

    /// Delete a secret: every hash and JWT made with it stops verifying at once (secrets are
    /// read from the store on every boot, never cached).
    pub async fn delete_messenger_secret(
        &self,
        ws: &WorkspaceId,
        id: &MessengerSecretId,
        act: &NewActivity,
    ) -> Result<(), StoreError> {
        self.check_region(ws)?;
        let entry = self.activity_stmt(ws, act).await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM messenger_secrets WHERE workspace_id = $1 AND id = $2",
                    vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())],
                )
                .expect(1),
                entry,
            ])
            .await
    }

    /// The active secrets valid for `platform`, ready to verify hashes and JWTs.
    pub async fn verification_secrets(
        &self,
        ws: &WorkspaceId,
        platform: Platform,
    ) -> Result<Vec<VerificationSecret>, StoreError> {
        let mut out = Vec::new();
        for row in self.secret_rows(ws).await? {
            let platforms = parse_id(Platforms::decode(&col::<String>(&row, "platforms")?))?;
            if !platforms.contains(platform) {
                continue;
            }
            let id: String = col(&row, "id")?;
            let version: i64 = col(&row, "ws_key_version")?;
            let wk = self.workspace_keys(ws, version).await?;
            let key_id = ws_key_id(version);
            let s = Sealer::new("messenger_secrets", &wk.aead, ws, &id, &key_id);
            let bytes = s.open_bytes("value", &col::<Vec<u8>>(&row, "value_ct")?)?;
            let value = SecretValue::from_stored(&bytes).map_err(StoreError::Integrity)?;
            out.push(VerificationSecret::new(id, &value));
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- boot

    /// Whether a workspace exists in this cell.
    pub async fn workspace_exists(&self, ws: &WorkspaceId) -> Result<bool, StoreError> {
        if ws.region() != self.region {
            return Ok(false);
        }
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM workspaces WHERE id = $1")
            .bind(ws.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        Ok(found.is_some())
    }

    /// A new anonymous visitor and the token that resumes it.
    pub async fn new_visitor(
        &self,
        ws: &WorkspaceId,
    ) -> Result<(Contact, RegionToken), StoreError> {
        let new = self
            .contact_unit(
                ws,
                NewContact {
                    role: ContactRole::Visitor,
                    external_id: None,
                    email: None,
                    name: None,
                    phone: None,
                    custom_attributes: CustomAttributes::default(),
                },
            )
            .await?;
        let token = RegionToken::generate(TokenKind::Visitor, self.region)?;
        let stmt = Stmt::new(
            "INSERT INTO visitor_tokens (token_hash, workspace_id, contact_id, created_at) VALUES ($1, $2, $3, $4)",
            vec![
                Arg::Bytes(token.hash().as_bytes().to_vec()),
                Arg::Text(ws.to_string()),
                Arg::Text(new.contact.id.to_string()),
                Arg::Int(now_ms()),
            ],
        );
        let contact = self.write_contact(ws, new, vec![stmt]).await?;
        Ok((contact, token))
    }

    /// The visitor a visitor token resumes, if it is this workspace's and still a visitor.
    pub async fn visitor_by_token(
        &self,
        ws: &WorkspaceId,
        presented: &str,
    ) -> Result<Option<ContactId>, StoreError> {
        self.check_region(ws)?;
        let hash = TokenHash::of(presented);
        let id: Option<String> = sqlx::query_scalar(
            "SELECT t.contact_id FROM visitor_tokens t JOIN contacts c ON c.workspace_id = t.workspace_id AND c.id = t.contact_id WHERE t.token_hash = $1 AND t.workspace_id = $2 AND c.role = 'visitor'",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(ws.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        id.map(|s| parse_id(ContactId::parse(&s))).transpose()
    }

    /// The user a boot names (by external id, else by email), created when missing.
    pub async fn find_or_create_user(
        &self,
        ws: &WorkspaceId,
        external_id: Option<&ExternalId>,
        email: Option<&Email>,
    ) -> Result<Contact, StoreError> {
        for attempt in 0..2 {
            let found = match (external_id, email) {
                (Some(x), _) => self.find_contacts(ws, None, Some(x)).await?,
                (None, Some(e)) => self
                    .find_contacts(ws, Some(e), None)
                    .await?
                    .into_iter()
                    .filter(|c| c.role == ContactRole::User)
                    .collect(),
                (None, None) => {
                    return Err(StoreError::Invalid(interlock_domain::DomainError::new(
                        "user_id",
                        "missing_identifier",
                        "name the user with user_id or email",
                    )));
                }
            };
            if let Some(c) = found.into_iter().next() {
                return Ok(c);
            }
            let input = NewContact {
                role: ContactRole::User,
                external_id: external_id.cloned(),
                email: email.cloned(),
                name: None,
                phone: None,
                custom_attributes: CustomAttributes::default(),
            };
            match self.create_contact(ws, input).await {
                // Another boot created the same user first: find it on the next pass.
                Err(StoreError::Conflict("external_id_taken")) if attempt == 0 => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict("external_id_taken"))
    }

    /// Move everything of a visitor to a user and delete the visitor, in one transaction.
    pub async fn merge_visitor(
        &self,
        ws: &WorkspaceId,
        visitor: &ContactId,
        user: &ContactId,
    ) -> Result<(), StoreError> {
        self.check_region(ws)?;
        let moved: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM conversations WHERE workspace_id = $1 AND contact_id = $2",
        )
        .bind(ws.as_str())
        .bind(visitor.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let args = || {
            vec![
                Arg::Text(ws.to_string()),
                Arg::Text(visitor.to_string()),
                Arg::Text(user.to_string()),
            ]
        };
        let two = || vec![Arg::Text(ws.to_string()), Arg::Text(visitor.to_string())];
        let unit = vec![
            Stmt::new(
                "UPDATE conversations SET contact_id = $3 WHERE workspace_id = $1 AND contact_id = $2",
                args(),
            ),
            Stmt::new(
                "UPDATE conversation_parts SET author_id = $3 WHERE workspace_id = $1 AND author_type = 'contact' AND author_id = $2",
                args(),
            ),
            Stmt::new(
                "UPDATE events SET contact_id = $3 WHERE workspace_id = $1 AND contact_id = $2",
                args(),
            ),
            // The visitor's data stays sealed under the visitor's keys; the user now owns them.
            Stmt::new(
                "UPDATE subject_keys SET owner_id = $3 WHERE workspace_id = $1 AND owner_id = $2",
                args(),
            ),
            Stmt::new(
                "DELETE FROM messenger_session_conversations WHERE token_hash IN (SELECT token_hash FROM messenger_sessions WHERE workspace_id = $1 AND contact_id = $2)",
                two(),
            ),
            Stmt::new(
                "DELETE FROM messenger_sessions WHERE workspace_id = $1 AND contact_id = $2",
                two(),
            ),
            Stmt::new(
                "DELETE FROM visitor_tokens WHERE workspace_id = $1 AND contact_id = $2",
                two(),
            ),
            // Exactly one row: the visitor still exists and is still a visitor (a concurrent
            // merge of the same visitor loses and rolls back).
            Stmt::new(
                "DELETE FROM contacts WHERE workspace_id = $1 AND id = $2 AND role = 'visitor'",
                two(),
            )
            .expect(1),
        ];
        self.writer.write(unit).await?;
        for id in moved {
            if let Ok(id) = ConversationId::parse(&id) {
                self.conversations.remove(&(ws.clone(), id));
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- sessions

    /// Open a session for one contact, valid for `ttl_ms`. Expired sessions of the workspace
    /// are swept in the same transaction.
    pub async fn open_messenger_session(
        &self,
        ws: &WorkspaceId,
        contact: &ContactId,
        scope: SessionScope,
        ttl_ms: i64,
    ) -> Result<(RegionToken, i64), StoreError> {
        self.check_region(ws)?;
        let token = RegionToken::generate(TokenKind::MessengerSession, self.region)?;
        let now = now_ms();
        let expires_at = now + ttl_ms;
        let sweep = || vec![Arg::Text(ws.to_string()), Arg::Int(now)];
        let unit = vec![
            Stmt::new(
                "DELETE FROM messenger_session_conversations WHERE token_hash IN (SELECT token_hash FROM messenger_sessions WHERE workspace_id = $1 AND expires_at <= $2)",
                sweep(),
            ),
            Stmt::new(
                "DELETE FROM messenger_sessions WHERE workspace_id = $1 AND expires_at <= $2",
                sweep(),
            ),
            Stmt::new(
                "INSERT INTO messenger_sessions (token_hash, workspace_id, contact_id, scope, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    Arg::Bytes(token.hash().as_bytes().to_vec()),
                    Arg::Text(ws.to_string()),
                    Arg::Text(contact.to_string()),
                    Arg::Text(scope.as_str().to_owned()),
                    Arg::Int(expires_at),
                    Arg::Int(now),
                ],
            ),
            // Seen now: visitors expire from their last session (see retention).
            Stmt::new(
                "UPDATE contacts SET last_seen_at = $3 WHERE workspace_id = $1 AND id = $2",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(contact.to_string()),
                    Arg::Int(now),
                ],
            ),
        ];
        self.writer.write(unit).await?;
        Ok((token, expires_at))
    }

    /// The live session a presented messenger token opens, if any.
    pub async fn messenger_session(
        &self,
        presented: &str,
    ) -> Result<Option<MessengerSession>, StoreError> {
        let hash = TokenHash::of(presented);
        let row = sqlx::query(
            "SELECT workspace_id, contact_id, scope, expires_at FROM messenger_sessions WHERE token_hash = $1",
        )
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: i64 = col(&row, "expires_at")?;
        if expires_at <= now_ms() {
            return Ok(None);
        }
        let scope = match col::<String>(&row, "scope")?.as_str() {
            "contact" => SessionScope::Contact,
            "session" => SessionScope::Session,
            _ => {
                return Err(StoreError::Integrity(
                    interlock_crypto::CryptoError::Malformed,
                ));
            }
        };
        let workspace = parse_id(WorkspaceId::parse(&col::<String>(&row, "workspace_id")?))?;
        if workspace.region() != self.region {
            return Ok(None);
        }
        Ok(Some(MessengerSession {
            workspace,
            contact_id: parse_id(ContactId::parse(&col::<String>(&row, "contact_id")?))?,
            scope,
            expires_at,
            token_hash: *hash.as_bytes(),
        }))
    }

    /// Whether a session may see a conversation; `NotFound` otherwise, exactly as if the
    /// conversation did not exist.
    async fn check_visible(
        &self,
        session: &MessengerSession,
        id: &ConversationId,
    ) -> Result<(), StoreError> {
        let ws = &session.workspace;
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT contact_id FROM conversations WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        if owner.as_deref() != Some(session.contact_id.as_str()) {
            return Err(StoreError::NotFound);
        }
        if session.scope == SessionScope::Session {
            let started: Option<String> = sqlx::query_scalar(
                "SELECT conversation_id FROM messenger_session_conversations WHERE token_hash = $1 AND workspace_id = $2 AND conversation_id = $3",
            )
            .bind(session.token_hash.as_slice())
            .bind(ws.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?;
            if started.is_none() {
                return Err(StoreError::NotFound);
            }
        }
        Ok(())
    }

    /// The conversations a session may see, in creation order.
    pub async fn messenger_conversations(
        &self,
        session: &MessengerSession,
        after: Option<&ConversationId>,
        limit: i64,
    ) -> Result<Page<Conversation>, StoreError> {
        let ws = &session.workspace;
        let limit = limit.clamp(1, MAX_PAGE);
        if session.scope == SessionScope::Contact {
            return self
                .list_conversations(ws, Some(&session.contact_id), after, limit)
                .await;
        }
        let after = after.map(ConversationId::as_str).unwrap_or("");
        let rows = sqlx::query(
            "SELECT c.id, c.contact_id, c.created_at, COALESCE((SELECT MAX(p.created_at) FROM conversation_parts p WHERE p.workspace_id = c.workspace_id AND p.conversation_id = c.id), c.updated_at) AS updated_at FROM conversations c JOIN messenger_session_conversations s ON s.workspace_id = c.workspace_id AND s.conversation_id = c.id WHERE c.workspace_id = $1 AND c.contact_id = $2 AND s.token_hash = $3 AND c.id > $4 ORDER BY c.id LIMIT $5",
        )
        .bind(ws.as_str())
        .bind(session.contact_id.as_str())
        .bind(session.token_hash.as_slice())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        conversation_page(&rows, limit)
    }

    /// One conversation, with its parts, if the session may see it.
    pub async fn messenger_conversation(
        &self,
        session: &MessengerSession,
        id: &ConversationId,
    ) -> Result<Conversation, StoreError> {
        self.check_visible(session, id).await?;
        self.get_conversation(&session.workspace, id).await
    }

    /// Start a conversation as the session's contact.
    pub async fn messenger_start_conversation(
        &self,
        session: &MessengerSession,
        body: &Body,
    ) -> Result<Conversation, StoreError> {
        let hash = session.token_hash;
        let ws = session.workspace.clone();
        self.create_conversation_with(&session.workspace, &session.contact_id, body, |id| {
            vec![Stmt::new(
                "INSERT INTO messenger_session_conversations (token_hash, workspace_id, conversation_id) VALUES ($1, $2, $3)",
                vec![
                    Arg::Bytes(hash.to_vec()),
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                ],
            )]
        })
        .await
    }

    /// Reply in a conversation the session may see, as its contact.
    pub async fn messenger_reply(
        &self,
        session: &MessengerSession,
        id: &ConversationId,
        body: &Body,
    ) -> Result<Part, StoreError> {
        self.check_visible(session, id).await?;
        let author = interlock_domain::Author {
            kind: interlock_domain::AuthorType::Contact,
            id: session.contact_id.to_string(),
        };
        self.add_part(&session.workspace, id, &author, body).await
    }
}
