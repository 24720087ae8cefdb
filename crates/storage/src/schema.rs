//! The schema, as ordered migrations. SQLite and PostgreSQL differ only in the byte type
//! (`BLOB`/`BYTEA`), so each migration is written once with a `{BYTES}` placeholder. Personal
//! and content fields exist only as `*_ct` (ciphertext) and `*_bidx` (blind index) columns.

/// Ordered migrations: (version, statements).
pub const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            region TEXT NOT NULL,
            name_ct {BYTES} NOT NULL,
            key_version BIGINT NOT NULL,
            created_at BIGINT NOT NULL
        )",
            "CREATE TABLE workspace_keys (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            version BIGINT NOT NULL,
            master_version BIGINT NOT NULL,
            wrapped {BYTES} NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, version)
        )",
            "CREATE INDEX workspace_keys_master ON workspace_keys (master_version)",
            "CREATE TABLE api_tokens (
            token_hash {BYTES} PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            created_at BIGINT NOT NULL
        )",
            "CREATE TABLE subject_keys (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            id TEXT NOT NULL,
            ws_key_version BIGINT NOT NULL,
            wrapped {BYTES} NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, id)
        )",
            "CREATE TABLE contacts (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            id TEXT NOT NULL,
            role TEXT NOT NULL,
            subject_key_id TEXT NOT NULL,
            external_id_ct {BYTES},
            external_id_bidx {BYTES},
            email_ct {BYTES},
            email_bidx {BYTES},
            name_ct {BYTES},
            phone_ct {BYTES},
            custom_attributes_ct {BYTES} NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, id)
        )",
            "CREATE UNIQUE INDEX contacts_external_id ON contacts (workspace_id, external_id_bidx)",
            "CREATE INDEX contacts_email ON contacts (workspace_id, email_bidx)",
            "CREATE TABLE conversations (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            id TEXT NOT NULL,
            contact_id TEXT NOT NULL,
            subject_key_id TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, id),
            FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id)
        )",
            "CREATE INDEX conversations_contact ON conversations (workspace_id, contact_id, id)",
            "CREATE TABLE conversation_parts (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            id TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            author_type TEXT NOT NULL,
            author_id TEXT NOT NULL,
            body_ct {BYTES} NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, id),
            FOREIGN KEY (workspace_id, conversation_id) REFERENCES conversations (workspace_id, id)
        )",
            "CREATE INDEX parts_conversation ON conversation_parts (workspace_id, conversation_id, created_at, id)",
            "CREATE TABLE events (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            id TEXT NOT NULL,
            contact_id TEXT NOT NULL,
            subject_key_id TEXT NOT NULL,
            name_ct {BYTES} NOT NULL,
            metadata_ct {BYTES} NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, id),
            FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id)
        )",
            "CREATE INDEX events_contact ON events (workspace_id, contact_id, id)",
            "CREATE TABLE attachments (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            id TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            subject_key_id TEXT NOT NULL,
            filename_ct {BYTES} NOT NULL,
            content_type_ct {BYTES} NOT NULL,
            size_bytes BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, id),
            FOREIGN KEY (workspace_id, conversation_id) REFERENCES conversations (workspace_id, id)
        )",
            "CREATE INDEX attachments_conversation ON attachments (workspace_id, conversation_id, id)",
        ],
    ),
    (
        2,
        &[
            // Subject keys get an owner, so a key can change hands (a visitor merged into a user)
            // and erasure can find every key of a data subject.
            "ALTER TABLE subject_keys ADD COLUMN owner_id TEXT",
            "UPDATE subject_keys SET owner_id = (SELECT c.id FROM contacts c WHERE c.workspace_id = subject_keys.workspace_id AND c.subject_key_id = subject_keys.id)",
            "CREATE INDEX subject_keys_owner ON subject_keys (workspace_id, owner_id)",
            "CREATE TABLE messenger_settings (
            workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),
            identity_verification TEXT NOT NULL,
            jwt_max_lifetime_s BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
            "CREATE TABLE messenger_secrets (
            workspace_id TEXT NOT NULL REFERENCES workspaces(id),
            id TEXT NOT NULL,
            name_ct {BYTES} NOT NULL,
            platforms TEXT NOT NULL,
            value_ct {BYTES} NOT NULL,
            ws_key_version BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, id)
        )",
            "CREATE TABLE visitor_tokens (
            token_hash {BYTES} PRIMARY KEY,
            workspace_id TEXT NOT NULL,
            contact_id TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id)
        )",
            "CREATE INDEX visitor_tokens_contact ON visitor_tokens (workspace_id, contact_id)",
            "CREATE TABLE messenger_sessions (
            token_hash {BYTES} PRIMARY KEY,
            workspace_id TEXT NOT NULL,
            contact_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id)
        )",
            "CREATE INDEX messenger_sessions_contact ON messenger_sessions (workspace_id, contact_id)",
            "CREATE INDEX messenger_sessions_expiry ON messenger_sessions (workspace_id, expires_at)",
            "CREATE TABLE messenger_session_conversations (
            token_hash {BYTES} NOT NULL REFERENCES messenger_sessions(token_hash),
            workspace_id TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            PRIMARY KEY (token_hash, conversation_id),
            FOREIGN KEY (workspace_id, conversation_id) REFERENCES conversations (workspace_id, id)
        )",
        ],
    ),
    (
        3,
        &[
            // Scoped API tokens: an id to list and revoke by, a sealed name, the permissions
            // (`*` = every permission, present and future: the workspace's first token) and
            // an optional expiry.
            "ALTER TABLE api_tokens ADD COLUMN id TEXT",
            "ALTER TABLE api_tokens ADD COLUMN name_ct {BYTES}",
            "ALTER TABLE api_tokens ADD COLUMN ws_key_version BIGINT",
            "ALTER TABLE api_tokens ADD COLUMN permissions TEXT NOT NULL DEFAULT '*'",
            "ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT",
            "CREATE UNIQUE INDEX api_tokens_id ON api_tokens (workspace_id, id)",
        ],
    ),
    (
        4,
        &[
            "CREATE TABLE roles (
                workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                id TEXT NOT NULL,
                name_ct {BYTES} NOT NULL,
                ws_key_version BIGINT NOT NULL,
                permissions TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, id)
            )",
            // Teammates are employees (data subjects too): email and name are sealed under the
            // workspace key, the email also blind-indexed for sign-in. The password is an
            // Argon2id PHC string; the TOTP secret is sealed.
            "CREATE TABLE teammates (
                workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                id TEXT NOT NULL,
                email_ct {BYTES} NOT NULL,
                email_bidx {BYTES} NOT NULL,
                name_ct {BYTES} NOT NULL,
                ws_key_version BIGINT NOT NULL,
                role TEXT NOT NULL,
                password_hash TEXT,
                totp_secret_ct {BYTES},
                totp_enabled BIGINT NOT NULL,
                totp_last_step BIGINT,
                removed_at BIGINT,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, id)
            )",
            "CREATE UNIQUE INDEX teammates_email ON teammates (workspace_id, email_bidx)",
            "CREATE TABLE invitations (
                token_hash {BYTES} PRIMARY KEY,
                workspace_id TEXT NOT NULL,
                teammate_id TEXT NOT NULL,
                expires_at BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                FOREIGN KEY (workspace_id, teammate_id) REFERENCES teammates (workspace_id, id)
            )",
            "CREATE TABLE teammate_sessions (
                token_hash {BYTES} PRIMARY KEY,
                id TEXT NOT NULL,
                workspace_id TEXT NOT NULL,
                teammate_id TEXT NOT NULL,
                csrf_hash {BYTES} NOT NULL,
                created_at BIGINT NOT NULL,
                last_seen_at BIGINT NOT NULL,
                FOREIGN KEY (workspace_id, teammate_id) REFERENCES teammates (workspace_id, id)
            )",
            "CREATE INDEX teammate_sessions_teammate ON teammate_sessions (workspace_id, teammate_id)",
            "CREATE TABLE recovery_codes (
                workspace_id TEXT NOT NULL,
                teammate_id TEXT NOT NULL,
                code_hash {BYTES} NOT NULL,
                PRIMARY KEY (workspace_id, teammate_id, code_hash),
                FOREIGN KEY (workspace_id, teammate_id) REFERENCES teammates (workspace_id, id)
            )",
            "CREATE TABLE workspace_security (
                workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),
                require_two_factor BIGINT NOT NULL,
                session_idle_s BIGINT NOT NULL,
                session_absolute_s BIGINT NOT NULL,
                ip_allowlist TEXT NOT NULL,
                updated_at BIGINT NOT NULL
            )",
            // Sign-in throttling per account and per source address; the subject is a blind
            // index, so no address or email is stored in clear.
            "CREATE TABLE login_throttle (
                workspace_id TEXT NOT NULL,
                subject {BYTES} NOT NULL,
                failures BIGINT NOT NULL,
                locked_until BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, subject)
            )",
            // Every failed sign-in, for the activity log (the address sealed).
            "CREATE TABLE auth_failures (
                workspace_id TEXT NOT NULL,
                id TEXT NOT NULL,
                teammate_id TEXT,
                reason TEXT NOT NULL,
                ip_ct {BYTES} NOT NULL,
                ws_key_version BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, id)
            )",
            "ALTER TABLE api_tokens ADD COLUMN created_by TEXT",
        ],
    ),
    (
        5,
        &[
            // Passkeys (WebAuthn credentials, serialised by webauthn-rs) are sealed under the
            // workspace key, as are pending ceremony states.
            "CREATE TABLE teammate_passkeys (
                workspace_id TEXT NOT NULL,
                id TEXT NOT NULL,
                teammate_id TEXT NOT NULL,
                name_ct {BYTES} NOT NULL,
                passkey_ct {BYTES} NOT NULL,
                ws_key_version BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, id),
                FOREIGN KEY (workspace_id, teammate_id) REFERENCES teammates (workspace_id, id)
            )",
            "CREATE INDEX teammate_passkeys_teammate ON teammate_passkeys (workspace_id, teammate_id)",
            "CREATE TABLE webauthn_ceremonies (
                token_hash {BYTES} PRIMARY KEY,
                workspace_id TEXT NOT NULL,
                teammate_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                state_ct {BYTES} NOT NULL,
                ws_key_version BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )",
        ],
    ),
    (
        6,
        &[
            // The activity log: one hash chain per workspace. Plain columns are for filtering
            // (ids, types, times); the entry itself (canonical JSON, including the actor's
            // address and user agent and the metadata) is sealed under the workspace key.
            // `hash` = chain_hash(previous hash, seq, leaf_hash(entry)), lower-case hex.
            "CREATE TABLE activity_log (
                workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                seq BIGINT NOT NULL,
                id TEXT NOT NULL,
                type TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                actor_type TEXT NOT NULL,
                actor_id TEXT,
                target_type TEXT NOT NULL,
                target_id TEXT,
                body_ct {BYTES} NOT NULL,
                ws_key_version BIGINT NOT NULL,
                hash TEXT NOT NULL,
                PRIMARY KEY (workspace_id, seq)
            )",
            "CREATE INDEX activity_log_time ON activity_log (workspace_id, created_at)",
            // Each chain's head (claimed by an UPDATE in the committing transaction), the
            // first retained entry and the hash before it (after a retention cut), and the
            // last checkpoint.
            "CREATE TABLE activity_heads (
                workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),
                seq BIGINT NOT NULL,
                hash TEXT NOT NULL,
                first_seq BIGINT NOT NULL,
                anchor_hash TEXT NOT NULL,
                checkpoint_seq BIGINT NOT NULL,
                checkpoint_at BIGINT NOT NULL
            )",
            // Signed checkpoints (Ed25519 over the checkpoint note; see crypto::audit).
            "CREATE TABLE activity_checkpoints (
                workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                tree_size BIGINT NOT NULL,
                head_hash TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                key_id TEXT NOT NULL,
                signature TEXT NOT NULL,
                PRIMARY KEY (workspace_id, tree_size)
            )",
            // Failed sign-ins are activity-log entries now.
            "DROP TABLE auth_failures",
            // How far each external sink has been delivered, per workspace.
            "CREATE TABLE activity_sink_cursors (
                sink TEXT NOT NULL,
                workspace_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                PRIMARY KEY (sink, workspace_id)
            )",
        ],
    ),
    (
        7,
        &[
            // When a contact was last seen (created, or a messenger session opened for it):
            // visitors expire on it. The index lets a sweep that finds nothing read a few index
            // pages, not the table.
            "ALTER TABLE contacts ADD COLUMN last_seen_at BIGINT",
            "UPDATE contacts SET last_seen_at = updated_at",
            "CREATE INDEX contacts_last_seen ON contacts (role, last_seen_at)",
            "CREATE INDEX teammates_removed ON teammates (removed_at)",
        ],
    ),
    (
        8,
        &[
            // A workspace's retention settings (defaults until first set).
            "CREATE TABLE workspace_retention (
                workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),
                conversation_days BIGINT,
                visitor_days BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )",
        ],
    ),
    (
        9,
        &[
            // When a workspace was last used (a teammate signed in, or a token or session made
            // a request; written at most hourly), when its owners were told it will be deleted
            // for inactivity, and when its deletion was requested (its key is destroyed then;
            // the rows are purged in the background).
            "ALTER TABLE workspaces ADD COLUMN last_active_at BIGINT",
            "UPDATE workspaces SET last_active_at = created_at",
            "ALTER TABLE workspaces ADD COLUMN inactivity_notice_at BIGINT",
            "ALTER TABLE workspaces ADD COLUMN deleted_at BIGINT",
            "CREATE INDEX workspaces_last_active ON workspaces (last_active_at)",
            "CREATE INDEX workspaces_deleted ON workspaces (deleted_at)",
            // Data subject requests (access and erasure). The subject is named by its
            // pseudonymous contact id only; an access request's archive is a blob sealed under
            // a random key kept here wrapped by the workspace key.
            "CREATE TABLE data_requests (
                workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                id TEXT NOT NULL,
                type TEXT NOT NULL,
                status TEXT NOT NULL,
                subject_id TEXT NOT NULL,
                requested_by TEXT,
                archive_key_ct {BYTES},
                ws_key_version BIGINT,
                archive_bytes BIGINT,
                pending_blobs TEXT,
                receipt_id TEXT,
                created_at BIGINT NOT NULL,
                completed_at BIGINT,
                expires_at BIGINT,
                PRIMARY KEY (workspace_id, id)
            )",
            "CREATE INDEX data_requests_subject ON data_requests (workspace_id, subject_id, type)",
            "CREATE INDEX data_requests_status ON data_requests (status, expires_at)",
            // Signed deletion receipts (erasures and workspace deletions). No foreign key: a
            // workspace's deletion receipt outlives the workspace.
            "CREATE TABLE deletion_receipts (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                subject_id TEXT,
                receipt TEXT NOT NULL,
                created_at BIGINT NOT NULL
            )",
            "CREATE INDEX deletion_receipts_workspace ON deletion_receipts (workspace_id, created_at)",
        ],
    ),
    (
        10,
        &[
            // The region's sub-processor registry (operator-managed, public): who may receive
            // data from this region's workspaces, at which hosts. A sub-processor listed for
            // several regions has a row in each region's database. Lists are JSON arrays.
            "CREATE TABLE subprocessors (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                purpose TEXT NOT NULL,
                data_categories TEXT NOT NULL,
                regions TEXT NOT NULL,
                hosts TEXT NOT NULL,
                deletion_notice_url TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )",
            // A workspace's webhook subscriptions: URL and signing secret sealed under the
            // workspace key; the event names plain (comma-separated) to pick subscribers.
            "CREATE TABLE webhooks (
                workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                id TEXT NOT NULL,
                url_ct {BYTES} NOT NULL,
                secret_ct {BYTES} NOT NULL,
                events TEXT NOT NULL,
                ws_key_version BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, id)
            )",
            // The transactional outbox: one row per delivery, written in the transaction of
            // the change it reports. The destination is the webhook's URL or the
            // sub-processor's notice URL, read when the delivery is attempted (so a deleted
            // subscription or a de-registered host stops pending deliveries). A webhook body is
            // sealed under the workspace key and cleared once the delivery ends; an erasure
            // notice is a signed, pseudonymous document.
            "CREATE TABLE outbox (
                workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                id TEXT NOT NULL,
                kind TEXT NOT NULL,
                event TEXT NOT NULL,
                webhook_id TEXT,
                subprocessor_id TEXT,
                payload_ct {BYTES},
                ws_key_version BIGINT,
                document TEXT,
                subject_id TEXT,
                attempts BIGINT NOT NULL,
                next_attempt_at BIGINT NOT NULL,
                status TEXT NOT NULL,
                last_error TEXT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, id)
            )",
            "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
            "CREATE INDEX outbox_subject ON outbox (workspace_id, subject_id)",
            "CREATE INDEX outbox_webhook ON outbox (workspace_id, webhook_id)",
            // Which sub-processors received a data subject's data (written when a delivery
            // carrying the subject is delivered): erasure notifies exactly these.
            "CREATE TABLE subject_disclosures (
                workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                contact_id TEXT NOT NULL,
                subprocessor_id TEXT NOT NULL,
                first_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, contact_id, subprocessor_id)
            )",
        ],
    ),
    (
        11,
        &[
            // Expiry indexes for the retention sweep: finding the workspaces with expired
            // rows reads index pages only, so a sweep that finds nothing stays cheap however
            // many live sessions, tokens or throttle rows there are.
            "CREATE INDEX login_throttle_updated ON login_throttle (updated_at)",
            "CREATE INDEX messenger_sessions_expires ON messenger_sessions (expires_at)",
            "CREATE INDEX api_tokens_expires ON api_tokens (expires_at)",
            "CREATE INDEX invitations_expires ON invitations (expires_at)",
            "CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies (expires_at)",
        ],
    ),
    (
        12,
        &[
            // Operator staff (docs/staff-access.md): principals of the region, not of a
            // workspace; secrets sealed under the region's master key.
            "CREATE TABLE staff (
                id TEXT PRIMARY KEY,
                email_ct {BYTES} NOT NULL,
                role TEXT NOT NULL,
                totp_secret_ct {BYTES} NOT NULL,
                master_version BIGINT NOT NULL,
                totp_last_step BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                disabled_at BIGINT
            )",
            // Trusted devices: client certificates issued by the region's device CA.
            "CREATE TABLE staff_devices (
                serial TEXT PRIMARY KEY,
                staff_id TEXT NOT NULL REFERENCES staff (id),
                fingerprint TEXT NOT NULL,
                name TEXT NOT NULL,
                issued_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                revoked_at BIGINT
            )",
            "CREATE UNIQUE INDEX staff_devices_fingerprint_key ON staff_devices (fingerprint)",
            "CREATE TABLE staff_sessions (
                token_hash {BYTES} PRIMARY KEY,
                staff_id TEXT NOT NULL REFERENCES staff (id),
                device_serial TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )",
            "CREATE INDEX staff_sessions_expires ON staff_sessions (expires_at)",
            // Just-in-time grants to one workspace (and break-glass grants).
            "CREATE TABLE staff_grants (
                workspace_id TEXT NOT NULL,
                id TEXT NOT NULL,
                staff_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                permissions TEXT NOT NULL,
                reason_ct {BYTES} NOT NULL,
                ticket_ct {BYTES} NOT NULL,
                ws_key_version BIGINT NOT NULL,
                duration_s BIGINT NOT NULL,
                workspace_approval_required BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                staff_approved_by TEXT,
                staff_approved_at BIGINT,
                workspace_approved_by TEXT,
                workspace_approved_at BIGINT,
                starts_at BIGINT,
                expires_at BIGINT,
                confirmed_by TEXT,
                confirmed_at BIGINT,
                revoked_at BIGINT,
                revoked_by TEXT,
                token_hash {BYTES},
                ended_logged_at BIGINT,
                PRIMARY KEY (workspace_id, id)
            )",
            "CREATE UNIQUE INDEX staff_grants_token_hash_key ON staff_grants (token_hash)",
            "CREATE INDEX staff_grants_staff ON staff_grants (staff_id, created_at)",
            "CREATE INDEX staff_grants_open ON staff_grants (ended_logged_at, expires_at)",
            // Whether a workspace admin must also approve each staff grant.
            "CREATE TABLE workspace_staff_access (
                workspace_id TEXT PRIMARY KEY,
                approval TEXT NOT NULL,
                updated_at BIGINT NOT NULL
            )",
            // Access reviews of standing access.
            "CREATE TABLE access_review_campaigns (
                id TEXT PRIMARY KEY,
                started_at BIGINT NOT NULL,
                deadline_at BIGINT NOT NULL,
                closed_at BIGINT
            )",
            "CREATE TABLE access_review_items (
                campaign_id TEXT NOT NULL REFERENCES access_review_campaigns (id),
                id TEXT NOT NULL,
                kind TEXT NOT NULL,
                holder_id TEXT NOT NULL,
                workspace_id TEXT,
                role TEXT NOT NULL,
                permissions TEXT NOT NULL,
                baseline TEXT NOT NULL,
                decision TEXT,
                decided_by TEXT,
                decided_at BIGINT,
                PRIMARY KEY (campaign_id, id)
            )",
        ],
    ),
    (
        13,
        &[
            // Staff passkeys (WebAuthn, user verification required), sealed under the
            // region's master key, and their pending ceremonies (five minutes, single use,
            // bound to the trusted device they were started from).
            "CREATE TABLE staff_passkeys (
                id TEXT PRIMARY KEY,
                staff_id TEXT NOT NULL REFERENCES staff (id),
                name_ct {BYTES} NOT NULL,
                passkey_ct {BYTES} NOT NULL,
                master_version BIGINT NOT NULL,
                created_at BIGINT NOT NULL
            )",
            "CREATE INDEX staff_passkeys_staff ON staff_passkeys (staff_id)",
            "CREATE TABLE staff_ceremonies (
                token_hash {BYTES} PRIMARY KEY,
                staff_id TEXT NOT NULL REFERENCES staff (id),
                device_serial TEXT NOT NULL,
                kind TEXT NOT NULL,
                state_ct {BYTES} NOT NULL,
                master_version BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )",
            "CREATE INDEX staff_ceremonies_expires ON staff_ceremonies (expires_at)",
            // Failed staff sign-ins (TOTP codes, passkey answers): after five, sign-in is
            // locked with exponential back-off, whatever the method.
            "ALTER TABLE staff ADD COLUMN failed_sign_ins BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE staff ADD COLUMN sign_in_locked_until BIGINT",
            // The region's staff audit log: one hash chain, entries sealed under the master
            // key (sign-ins, failures, passkeys, devices, members added and disabled).
            "CREATE TABLE staff_audit (
                seq BIGINT PRIMARY KEY,
                id TEXT NOT NULL,
                type TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                staff_id TEXT,
                body_ct {BYTES} NOT NULL,
                master_version BIGINT NOT NULL,
                hash TEXT NOT NULL
            )",
        ],
    ),
];
