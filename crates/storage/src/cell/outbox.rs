//! Outbound deliveries: workspaces' webhook subscriptions and the transactional outbox that
//! carries webhooks and erasure notices to sub-processors.
//!
//! Invariants:
//! - A delivery is a row written by a statement of the unit that makes the change it reports
//!   ([`Cell::webhook_stmts`], [`Cell::erasure_notice_stmts`]): nothing is sent unless the
//!   change commits, and every committed change is sent (at least once).
//! - A webhook body may hold personal data: it is sealed under the workspace key and cleared
//!   (set to NULL) as soon as the delivery ends, whatever the outcome. Erasing a subject deletes
//!   every delivery that carries it. An erasure notice holds only pseudonymous ids.
//! - The destination is read when the delivery is attempted (the subscription's URL, the
//!   sub-processor's notice URL), so deleting a subscription or de-registering a host stops
//!   pending deliveries; the HTTP worker checks the host against the registry before it
//!   connects.
//! - A delivery is claimed by a conditional update (`attempts` as read), so two workers never
//!   both send one attempt; a claim holds a lease (`next_attempt_at` moved forward), so a
//!   worker that dies mid-send leaves the delivery to be retried after the lease.
//! - Before a delivery carrying a data subject is sent, the sub-processors its host belongs to
//!   are recorded in `subject_disclosures` in the claim's transaction: a receiver may keep the
//!   data even when it answers an error or the connection breaks after the body left, so
//!   "might have received" is what erasure notifies.

use std::collections::BTreeMap;

use interlock_crypto::WebhookSecret;
use interlock_domain::{
    ActivityType, Actor, ContactId, DeliveryId, DomainError, NewActivity, SubprocessorId, Target,
    WebhookId, WorkspaceId,
};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::{Cell, Sealer, col, parse_id, ws_key_id};
use crate::db::{Arg, Stmt};
use crate::{StoreError, now_ms};

/// The events a webhook may subscribe to.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "access_review.started",
    "contact.created",
    "staff_access.break_glass",
    "subprocessors.changed",
    "workspace.deletion_scheduled",
];
/// Most webhook subscriptions per workspace.
pub const MAX_WEBHOOKS: i64 = 20;
/// The signed document type of an erasure notice.
pub const ERASURE_NOTICE_TYPE: &str = "interlock.erasure_notice.v1";
/// Finished deliveries (their ids, status and times; bodies are cleared at once) are deleted
/// this long after they finished.
pub const OUTBOX_KEEP_DAYS: i64 = 30;

/// Whether a stored comma-separated event list includes `event`.
pub(crate) fn subscribes(events_csv: &str, event: &str) -> bool {
    events_csv.split(',').any(|e| e == event)
}

/// Check a subscription's event list: 1 to 16 names of [`WEBHOOK_EVENTS`]; returned sorted,
/// without repeats.
pub fn check_events(events: &[String]) -> Result<Vec<String>, DomainError> {
    if events.is_empty() || events.len() > 16 {
        return Err(DomainError::new(
            "events",
            "invalid_events",
            "list 1 to 16 event names",
        ));
    }
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        if !WEBHOOK_EVENTS.contains(&e.as_str()) {
            return Err(DomainError::new(
                "events",
                "unknown_event",
                "an event is not one of contact.created, subprocessors.changed, workspace.deletion_scheduled",
            ));
        }
        out.push(e.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// What a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// A webhook message to a workspace's subscription.
    Webhook,
    /// A signed deletion notice to a sub-processor.
    ErasureNotice,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Webhook => "webhook",
            DeliveryKind::ErasureNotice => "erasure_notice",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "webhook" => Ok(DeliveryKind::Webhook),
            "erasure_notice" => Ok(DeliveryKind::ErasureNotice),
            _ => Err(StoreError::Integrity(
                interlock_crypto::CryptoError::Malformed,
            )),
        }
    }
}

/// A webhook subscription (its secret is returned once, at creation).
#[derive(Clone)]
pub struct Webhook {
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: i64,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a receiver's token in its query.
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// A pending delivery whose time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub workspace: WorkspaceId,
    pub id: DeliveryId,
}

/// Where and what to send.
pub struct Outbound {
    /// The destination (may carry a receiver's token: never logged).
    pub url: Zeroizing<String>,
    /// The exact bytes to POST (JSON).
    pub body: Zeroizing<Vec<u8>>,
    /// Webhooks: the subscription's signing secret.
    pub secret: Option<WebhookSecret>,
}

/// A pending delivery, opened for sending.
pub struct OutboundMessage {
    pub workspace: WorkspaceId,
    pub id: DeliveryId,
    pub kind: DeliveryKind,
    pub event: String,
    /// Attempts made so far (as read; the claim is conditional on it).
    pub attempts: i64,
    /// The data subject the body carries, if any.
    pub subject: Option<ContactId>,
    /// What to send, or why it cannot be sent any more (`webhook_deleted`,
    /// `subprocessor_not_registered`, `workspace_key_gone`, `payload_unreadable`).
    pub destination: Result<Outbound, &'static str>,
}

impl std::fmt::Debug for OutboundMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundMessage")
            .field("workspace", &self.workspace)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("event", &self.event)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// A transient failure (5xx, 408, 429, timeout, connection): try again at `next_attempt_at`.
    Retry { error: String, next_attempt_at: i64 },
    /// A permanent failure (4xx, redirect, retries exhausted, destination gone).
    Failed { error: String },
    /// Refused by the outbound gate before connecting; recorded in the activity log.
    Refused { error: String, host: Option<String> },
}

/// A delivery as listed (no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    pub id: DeliveryId,
    pub kind: String,
    pub event: String,
    /// `pending`, `delivered`, `failed` or `refused`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub webhook_id: Option<String>,
    pub subprocessor_id: Option<String>,
    pub subject_id: Option<String>,
    /// Erasure notices: the signed document (pseudonymous).
    pub document: Option<String>,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

fn invalid(field: &'static str, code: &'static str, message: &'static str) -> StoreError {
    StoreError::Invalid(DomainError::new(field, code, message))
}

impl Cell {
    // ---------------------------------------------------------------- subscriptions

    /// Subscribe `url` (whose host, as the URL parser gives it, is `host`) to `events`. The
    /// host must belong to a sub-processor registered for this region (`422
    /// host_not_a_subprocessor`). Returns the subscription and its signing secret, shown once.
    pub async fn create_webhook(
        &self,
        ws: &WorkspaceId,
        url: &str,
        host: &str,
        events: &[String],
        act: &NewActivity,
    ) -> Result<(Webhook, WebhookSecret), StoreError> {
        self.check_region(ws)?;
        let events = check_events(events).map_err(StoreError::Invalid)?;
        let host = super::subprocessors::normalize_url_host(host);
        if !self
            .subprocessors()
            .await?
            .iter()
            .any(|s| s.receives_at(&host))
        {
            return Err(invalid(
                "url",
                "host_not_a_subprocessor",
                "the URL's host is not a host of a sub-processor registered for this workspace's region (see GET /v1/subprocessors)",
            ));
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE workspace_id = $1")
                .bind(ws.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::Db)?;
        if count >= MAX_WEBHOOKS {
            return Err(invalid(
                "url",
                "too_many_webhooks",
                "a workspace has at most 20 webhook subscriptions",
            ));
        }
        let wk = self.current_workspace_keys(ws).await?;
        let id = WebhookId::new();
        let secret = WebhookSecret::generate()?;
        let key_id = ws_key_id(wk.version);
        let s = Sealer::new("webhooks", &wk.aead, ws, id.as_str(), &key_id);
        let now = now_ms();
        let act = act
            .clone()
            .targeting(id.as_str())
            .with("host", host.as_str())
            .with("events", events.clone());
        self.writer
            .write(vec![
                Stmt::new(
                    "INSERT INTO webhooks (workspace_id, id, url_ct, secret_ct, events, ws_key_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Bytes(s.seal("url", url.as_bytes())?),
                        Arg::Bytes(s.seal("secret", secret.expose().as_bytes())?),
                        Arg::Text(events.join(",")),
                        Arg::Int(wk.version),
                        Arg::Int(now),
                    ],
                ),
                Self::activity_stmt_with(ws, &wk, &act)?,
            ])
            .await?;
        Ok((
            Webhook {
                id,
                url: url.to_owned(),
                events,
                created_at: now,
            },
            secret,
        ))
    }

    /// The workspace's subscriptions, oldest first (never their secrets).
    pub async fn list_webhooks(&self, ws: &WorkspaceId) -> Result<Vec<Webhook>, StoreError> {
        self.check_region(ws)?;
        let rows = sqlx::query(
            "SELECT id, url_ct, events, ws_key_version, created_at FROM webhooks WHERE workspace_id = $1 ORDER BY id",
        )
        .bind(ws.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = col(row, "id")?;
            let version: i64 = col(row, "ws_key_version")?;
            let wk = self.workspace_keys(ws, version).await?;
            let key_id = ws_key_id(version);
            let s = Sealer::new("webhooks", &wk.aead, ws, &id, &key_id);
            let events: String = col(row, "events")?;
            out.push(Webhook {
                url: s.open_text("url", &col::<Vec<u8>>(row, "url_ct")?)?,
                events: events.split(',').map(str::to_owned).collect(),
                created_at: col(row, "created_at")?,
                id: parse_id(WebhookId::parse(&id))?,
            });
        }
        Ok(out)
    }

    /// Delete a subscription; its pending deliveries are cancelled (`failed`,
    /// `webhook_deleted`, bodies cleared) in the same transaction. Returns how many.
    pub async fn delete_webhook(
        &self,
        ws: &WorkspaceId,
        id: &WebhookId,
        act: &NewActivity,
    ) -> Result<i64, StoreError> {
        self.check_region(ws)?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE workspace_id = $1 AND webhook_id = $2 AND status = 'pending'",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let entry = self
            .activity_stmt(ws, &act.clone().with("cancelled", pending))
            .await?;
        self.writer
            .write(vec![
                Stmt::new(
                    "DELETE FROM webhooks WHERE workspace_id = $1 AND id = $2",
                    vec![Arg::Text(ws.to_string()), Arg::Text(id.to_string())],
                )
                .expect(1),
                Stmt::new(
                    "UPDATE outbox SET status = 'failed', last_error = 'webhook_deleted', payload_ct = NULL, updated_at = $3 WHERE workspace_id = $1 AND webhook_id = $2 AND status = 'pending'",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(id.to_string()),
                        Arg::Int(now_ms()),
                    ],
                ),
                entry,
            ])
            .await?;
        Ok(pending)
    }

    // ---------------------------------------------------------------- enqueueing

    /// Statements that enqueue one delivery of `event` with `data` per subscription of the
    /// workspace to that event. Put them in the unit of the change they report (transactional
    /// outbox). `subject`: the data subject whose data `data` carries, if any (erasure then
    /// cancels the delivery and notifies whoever received it). The body is
    /// `{id, type, created_at (Unix seconds), workspace_id, data}`, sealed under the workspace
    /// key.
    pub async fn webhook_stmts(
        &self,
        ws: &WorkspaceId,
        event: &str,
        data: Value,
        subject: Option<&ContactId>,
    ) -> Result<Vec<Stmt>, StoreError> {
        self.check_region(ws)?;
        if !WEBHOOK_EVENTS.contains(&event) {
            return Err(invalid(
                "event",
                "unknown_event",
                "not a webhook event of the catalogue",
            ));
        }
        let rows = sqlx::query("SELECT id, events FROM webhooks WHERE workspace_id = $1")
            .bind(ws.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        let mut hooks = Vec::new();
        for row in &rows {
            if subscribes(&col::<String>(row, "events")?, event) {
                hooks.push(col::<String>(row, "id")?);
            }
        }
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let wk = self.current_workspace_keys(ws).await?;
        let key_id = ws_key_id(wk.version);
        let now = now_ms();
        let mut out = Vec::with_capacity(hooks.len());
        for hook in hooks {
            let id = DeliveryId::new();
            let body = Zeroizing::new(
                serde_json::to_vec(&json!({
                    "id": id.as_str(),
                    "type": event,
                    "created_at": now.div_euclid(1000),
                    "workspace_id": ws.as_str(),
                    "data": data,
                }))
                .map_err(|_| StoreError::Config("webhook body".into()))?,
            );
            let sealed =
                Sealer::new("outbox", &wk.aead, ws, id.as_str(), &key_id).seal("payload", &body)?;
            out.push(Stmt::new(
                "INSERT INTO outbox (workspace_id, id, kind, event, webhook_id, payload_ct, ws_key_version, subject_id, attempts, next_attempt_at, status, created_at, updated_at) VALUES ($1, $2, 'webhook', $3, $4, $5, $6, $7, 0, $8, 'pending', $8, $8)",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(id.to_string()),
                    Arg::Text(event.to_owned()),
                    Arg::Text(hook),
                    Arg::Bytes(sealed),
                    Arg::Int(wk.version),
                    Arg::OptText(subject.map(ContactId::to_string)),
                    Arg::Int(now),
                ],
            ));
        }
        Ok(out)
    }

    /// For an erasure of `contact`: statements that
    /// 1. delete every delivery carrying the subject (pending ones are never sent);
    /// 2. enqueue a signed deletion notice (`interlock.erasure_notice.v1`: `workspace_id`,
    ///    `subject` = the pseudonymous contact id, `request_id`, `erased_at_ms`,
    ///    `subprocessor`, `region`) to each registered sub-processor that may have received the
    ///    subject's data, at its `deletion_notice_url`;
    /// 3. delete the subject's disclosure rows — and fail the unit (`NotFound`) if a row
    ///    appeared meanwhile (a delivery carrying the subject was claimed while this unit was
    ///    being built: call again so that sub-processor is notified too).
    ///
    /// Returns the statements (put them in the erasure's unit) and the names of the
    /// sub-processors notified. A disclosed sub-processor no longer registered for this region
    /// cannot be sent anything (the outbound gate would refuse it) and is not named.
    pub async fn erasure_notice_stmts(
        &self,
        ws: &WorkspaceId,
        contact: &ContactId,
        request_id: &str,
        erased_at_ms: i64,
    ) -> Result<(Vec<Stmt>, Vec<String>), StoreError> {
        self.check_region(ws)?;
        let disclosed: Vec<String> = sqlx::query_scalar(
            "SELECT subprocessor_id FROM subject_disclosures WHERE workspace_id = $1 AND contact_id = $2 ORDER BY subprocessor_id",
        )
        .bind(ws.as_str())
        .bind(contact.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        let registry: BTreeMap<String, super::subprocessors::Subprocessor> = self
            .subprocessors()
            .await?
            .into_iter()
            .map(|s| (s.id.to_string(), s))
            .collect();
        let now = now_ms();
        let mut unit = vec![Stmt::new(
            "DELETE FROM outbox WHERE workspace_id = $1 AND subject_id = $2",
            vec![Arg::Text(ws.to_string()), Arg::Text(contact.to_string())],
        )];
        let mut names = Vec::new();
        for sp in &disclosed {
            unit.push(
                Stmt::new(
                    "DELETE FROM subject_disclosures WHERE workspace_id = $1 AND contact_id = $2 AND subprocessor_id = $3",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(contact.to_string()),
                        Arg::Text(sp.clone()),
                    ],
                )
                .expect(1),
            );
            let Some(record) = registry.get(sp) else {
                continue;
            };
            let mut doc = Map::new();
            doc.insert("workspace_id".into(), ws.as_str().into());
            doc.insert("subject".into(), contact.as_str().into());
            doc.insert("request_id".into(), request_id.into());
            doc.insert("erased_at_ms".into(), erased_at_ms.into());
            doc.insert("subprocessor".into(), sp.as_str().into());
            doc.insert("region".into(), self.region.as_str().into());
            let signed = self.audit_key.sign_document(ERASURE_NOTICE_TYPE, doc);
            let text = serde_json::to_string(&signed)
                .map_err(|_| StoreError::Config("erasure notice".into()))?;
            unit.push(Stmt::new(
                "INSERT INTO outbox (workspace_id, id, kind, event, subprocessor_id, document, attempts, next_attempt_at, status, created_at, updated_at) VALUES ($1, $2, 'erasure_notice', $3, $4, $5, 0, $6, 'pending', $6, $6)",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(DeliveryId::new().to_string()),
                    Arg::Text(ERASURE_NOTICE_TYPE.to_owned()),
                    Arg::Text(sp.clone()),
                    Arg::Text(text),
                    Arg::Int(now),
                ],
            ));
            names.push(record.name.clone());
        }
        unit.push(
            Stmt::new(
                "DELETE FROM subject_disclosures WHERE workspace_id = $1 AND contact_id = $2",
                vec![Arg::Text(ws.to_string()), Arg::Text(contact.to_string())],
            )
            .expect(0),
        );
        Ok((unit, names))
    }

    // ---------------------------------------------------------------- delivering

    /// Pending deliveries due at `now` (their time come or their lease run out), oldest first.
    /// A queue across the region's workspaces: only ids are read.
    pub async fn due_deliveries(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT workspace_id, id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        rows.iter()
            .map(|r| {
                Ok(DueDelivery {
                    workspace: parse_id(WorkspaceId::parse(&col::<String>(r, "workspace_id")?))?,
                    id: parse_id(DeliveryId::parse(&col::<String>(r, "id")?))?,
                })
            })
            .collect()
    }

    /// A pending delivery with its destination and body; `None` if it is no longer pending.
    pub async fn open_delivery(
        &self,
        ws: &WorkspaceId,
        id: &DeliveryId,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        self.check_region(ws)?;
        let Some(row) = sqlx::query(
            "SELECT kind, event, webhook_id, subprocessor_id, payload_ct, ws_key_version, document, subject_id, attempts FROM outbox WHERE workspace_id = $1 AND id = $2 AND status = 'pending'",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        else {
            return Ok(None);
        };
        let kind = DeliveryKind::parse(&col::<String>(&row, "kind")?)?;
        let subject = col::<Option<String>>(&row, "subject_id")?
            .map(|s| parse_id(ContactId::parse(&s)))
            .transpose()?;
        let destination = match kind {
            DeliveryKind::Webhook => self.webhook_destination(ws, id, &row).await?,
            DeliveryKind::ErasureNotice => {
                let sp = col::<Option<String>>(&row, "subprocessor_id")?.unwrap_or_default();
                let document = col::<Option<String>>(&row, "document")?.unwrap_or_default();
                match SubprocessorId::parse(&sp) {
                    Ok(sp) => match self.subprocessor(&sp).await? {
                        Some(record) => Ok(Outbound {
                            url: Zeroizing::new(record.deletion_notice_url),
                            body: Zeroizing::new(document.into_bytes()),
                            secret: None,
                        }),
                        None => Err("subprocessor_not_registered"),
                    },
                    Err(_) => Err("subprocessor_not_registered"),
                }
            }
        };
        Ok(Some(OutboundMessage {
            workspace: ws.clone(),
            id: id.clone(),
            kind,
            event: col(&row, "event")?,
            attempts: col(&row, "attempts")?,
            subject,
            destination,
        }))
    }

    async fn webhook_destination(
        &self,
        ws: &WorkspaceId,
        id: &DeliveryId,
        row: &sqlx::any::AnyRow,
    ) -> Result<Result<Outbound, &'static str>, StoreError> {
        let hook = col::<Option<String>>(row, "webhook_id")?.unwrap_or_default();
        let Some(h) = sqlx::query(
            "SELECT url_ct, secret_ct, ws_key_version FROM webhooks WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.as_str())
        .bind(hook.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Db)?
        else {
            return Ok(Err("webhook_deleted"));
        };
        let (Some(payload), Some(version)) = (
            col::<Option<Vec<u8>>>(row, "payload_ct")?,
            col::<Option<i64>>(row, "ws_key_version")?,
        ) else {
            return Ok(Err("payload_unreadable"));
        };
        // A destroyed workspace key (the workspace is being deleted) or a ciphertext that does
        // not open ends the delivery: it could never be sent, and must not be retried forever.
        let opened = async {
            let wk = self.workspace_keys(ws, version).await?;
            let body = Sealer::new("outbox", &wk.aead, ws, id.as_str(), &ws_key_id(version))
                .open_bytes("payload", &payload)?;
            let hv: i64 = col(&h, "ws_key_version")?;
            let hk = self.workspace_keys(ws, hv).await?;
            let hook_key_id = ws_key_id(hv);
            let s = Sealer::new("webhooks", &hk.aead, ws, &hook, &hook_key_id);
            let url = Zeroizing::new(s.open_text("url", &col::<Vec<u8>>(&h, "url_ct")?)?);
            let secret_bytes = s.open_bytes("secret", &col::<Vec<u8>>(&h, "secret_ct")?)?;
            let secret =
                WebhookSecret::from_stored(&secret_bytes).map_err(StoreError::Integrity)?;
            Ok::<_, StoreError>((url, body, secret))
        }
        .await;
        let (url, body, secret) = match opened {
            Ok(v) => v,
            Err(StoreError::NotFound) => return Ok(Err("workspace_key_gone")),
            Err(StoreError::Integrity(_)) => return Ok(Err("payload_unreadable")),
            Err(e) => return Err(e),
        };
        Ok(Ok(Outbound {
            url,
            body,
            secret: Some(secret),
        }))
    }

    /// Claim a delivery for one attempt: count the attempt and hold it until `lease_until`
    /// (conditional on the attempts read, so only one worker wins). In the same transaction,
    /// if it carries a data subject, record that `receivers` (the sub-processors its host
    /// belongs to) may receive the subject's data. `false` if another worker claimed it or it
    /// is no longer pending.
    pub async fn claim_delivery(
        &self,
        msg: &OutboundMessage,
        lease_until: i64,
        receivers: &[SubprocessorId],
    ) -> Result<bool, StoreError> {
        let ws = &msg.workspace;
        let now = now_ms();
        let mut unit = vec![
            Stmt::new(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $3, subprocessor_id = COALESCE(subprocessor_id, $4), updated_at = $5 WHERE workspace_id = $1 AND id = $2 AND status = 'pending' AND attempts = $6",
                vec![
                    Arg::Text(ws.to_string()),
                    Arg::Text(msg.id.to_string()),
                    Arg::Int(lease_until),
                    Arg::OptText(receivers.first().map(SubprocessorId::to_string)),
                    Arg::Int(now),
                    Arg::Int(msg.attempts),
                ],
            )
            .expect(1),
        ];
        if let Some(subject) = &msg.subject {
            for sp in receivers {
                unit.push(Stmt::new(
                    "INSERT INTO subject_disclosures (workspace_id, contact_id, subprocessor_id, first_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    vec![
                        Arg::Text(ws.to_string()),
                        Arg::Text(subject.to_string()),
                        Arg::Text(sp.to_string()),
                        Arg::Int(now),
                    ],
                ));
            }
        }
        match self.writer.write(unit).await {
            Ok(()) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Record how an attempt ended. `attempts` is the delivery's attempt count now (after the
    /// claim; as read, for a refusal, which claims nothing). A refusal is recorded in the
    /// workspace's activity log (`outbound.refused`, actor `system`) in the same transaction.
    /// Does nothing if the delivery moved on meanwhile (its lease ran out and another worker
    /// took it, or an erasure deleted it).
    pub async fn finish_delivery(
        &self,
        msg: &OutboundMessage,
        attempts: i64,
        outcome: &DeliveryOutcome,
    ) -> Result<(), StoreError> {
        let ws = &msg.workspace;
        let now = now_ms();
        let (status, error, next) = match outcome {
            DeliveryOutcome::Delivered => ("delivered", None, now),
            DeliveryOutcome::Retry {
                error,
                next_attempt_at,
            } => ("pending", Some(error.as_str()), *next_attempt_at),
            DeliveryOutcome::Failed { error } => ("failed", Some(error.as_str()), now),
            DeliveryOutcome::Refused { error, .. } => ("refused", Some(error.as_str()), now),
        };
        let args = vec![
            Arg::Text(ws.to_string()),
            Arg::Text(msg.id.to_string()),
            Arg::Text(status.to_owned()),
            Arg::OptText(error.map(str::to_owned)),
            Arg::Int(next),
            Arg::Int(now),
            Arg::Int(attempts),
        ];
        let update = if status == "pending" {
            // Kept for the next attempt, body and all.
            Stmt::new(
                "UPDATE outbox SET status = $3, last_error = $4, next_attempt_at = $5, updated_at = $6 WHERE workspace_id = $1 AND id = $2 AND status = 'pending' AND attempts = $7",
                args,
            )
        } else {
            // Ended: the body (which may hold personal data) goes at once.
            Stmt::new(
                "UPDATE outbox SET status = $3, last_error = $4, next_attempt_at = $5, updated_at = $6, payload_ct = NULL WHERE workspace_id = $1 AND id = $2 AND status = 'pending' AND attempts = $7",
                args,
            )
        };
        let mut unit = vec![update.expect(1)];
        if let DeliveryOutcome::Refused { error, host } = outcome {
            let act = NewActivity::new(
                ActivityType::OutboundRefused,
                &Actor::system(),
                Target::new("outbound_delivery", msg.id.as_str()),
            )
            .with("kind", msg.kind.as_str())
            .with("event", msg.event.as_str())
            .with("host", host.clone().map_or(Value::Null, Value::from))
            .with("reason", error.as_str());
            unit.push(self.activity_stmt(ws, &act).await?);
        }
        match self.writer.write(unit).await {
            Ok(()) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The workspace's deliveries, newest first (at most `limit`, 1–100), without bodies.
    pub async fn deliveries(
        &self,
        ws: &WorkspaceId,
        limit: i64,
    ) -> Result<Vec<DeliveryInfo>, StoreError> {
        self.check_region(ws)?;
        let rows = sqlx::query(
            "SELECT id, kind, event, status, attempts, last_error, webhook_id, subprocessor_id, subject_id, document, next_attempt_at, created_at, updated_at FROM outbox WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(ws.as_str())
        .bind(limit.clamp(1, super::MAX_PAGE))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryInfo {
                    id: parse_id(DeliveryId::parse(&col::<String>(r, "id")?))?,
                    kind: col(r, "kind")?,
                    event: col(r, "event")?,
                    status: col(r, "status")?,
                    attempts: col(r, "attempts")?,
                    last_error: col(r, "last_error")?,
                    webhook_id: col(r, "webhook_id")?,
                    subprocessor_id: col(r, "subprocessor_id")?,
                    subject_id: col(r, "subject_id")?,
                    document: col(r, "document")?,
                    next_attempt_at: col(r, "next_attempt_at")?,
                    created_at: col(r, "created_at")?,
                    updated_at: col(r, "updated_at")?,
                })
            })
            .collect()
    }

    /// Delete deliveries that ended before `before_ms` (their bodies are already gone). An
    /// ended row's `next_attempt_at` is its end (or earlier, for cancelled ones), so the
    /// `outbox_due` index finds them.
    pub async fn prune_outbox(&self, before_ms: i64) -> Result<(), StoreError> {
        self.writer
            .write(vec![Stmt::new(
                "DELETE FROM outbox WHERE status IN ('delivered', 'failed', 'refused') AND next_attempt_at < $1",
                vec![Arg::Int(before_ms)],
            )])
            .await
    }

    /// Which sub-processors may have received the subject's data (ids, by first time).
    pub async fn subject_disclosures(
        &self,
        ws: &WorkspaceId,
        contact: &ContactId,
    ) -> Result<Vec<SubprocessorId>, StoreError> {
        self.check_region(ws)?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT subprocessor_id FROM subject_disclosures WHERE workspace_id = $1 AND contact_id = $2 ORDER BY first_at, subprocessor_id",
        )
        .bind(ws.as_str())
        .bind(contact.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Db)?;
        ids.iter()
            .map(|s| parse_id(SubprocessorId::parse(s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn events_are_checked_sorted_and_deduplicated() {
        let e = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            check_events(&e(&[
                "subprocessors.changed",
                "contact.created",
                "contact.created"
            ]))
            .unwrap(),
            ["contact.created", "subprocessors.changed"]
        );
        assert_eq!(check_events(&e(&[])).unwrap_err().code, "invalid_events");
        assert_eq!(
            check_events(&e(&["contact.exploded"])).unwrap_err().code,
            "unknown_event"
        );
        assert!(subscribes(
            "contact.created,subprocessors.changed",
            "contact.created"
        ));
        assert!(!subscribes("contact.created", "contact"));
    }
}
