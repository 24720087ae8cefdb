//! Retention on both stores: visitors expire nine months after they were last seen (users
//! never by that rule), removed teammates 30 days after removal, expired sessions, tokens,
//! invitations, ceremonies and stale throttle rows once expired; a dry run deletes nothing; a
//! bounded (interrupted) sweep is finished by the next; visitors expire in set-based batches
//! that keep a visitor seen meanwhile; what went is in the activity log, counted exactly.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use interlock_domain::{
    ActivityType, Actor, AttachmentName, Author, AuthorType, Body, ContactId, ContactRole,
    CustomAttributes, Email, EventMetadata, EventName, NewActivity, NewContact, NewEvent,
    PermissionSet, PersonName, Region, SecuritySettings, Target, TeammateRole, WorkspaceId,
};
use interlock_storage::{
    ActivityFilter, Backend, Cell, CellConfig, EXPIRED_TOKEN_KEEP_MS, REMOVED_TEAMMATE_MAX_AGE_MS,
    SessionScope, StoreError, THROTTLE_QUIET_MS, VISITOR_BATCH_MAX, VISITOR_MAX_AGE_MS, now_ms,
};

const DAY: i64 = 86_400_000;
const MARKER: &str = "retention-marker-5bd1";

fn contact(role: ContactRole, email: Option<&str>, name: &str) -> NewContact {
    NewContact {
        role,
        external_id: None,
        email: email.map(|e| Email::parse(e).unwrap()),
        name: Some(PersonName::parse(name).unwrap()),
        phone: None,
        custom_attributes: CustomAttributes::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite {
        path: dir.path().join("eu.db"),
    };
    retention(backend, dir.path(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::PgDb::create("ret").await;
    let url = db.url.clone();
    retention(Backend::Postgres { url }, dir.path(), false).await;
    db.drop().await;
}

async fn retention(backend: Backend, dir: &std::path::Path, scan_files: bool) {
    let cell = Cell::open(CellConfig {
        region: Region::Eu,
        backend,
        key_dir: dir.join("keys"),
        blob_dir: dir.join("blobs"),
    })
    .await
    .unwrap();
    let (ws, _) = cell.create_workspace("Retention").await.unwrap();
    let ws = ws.id;
    let now = now_ms();
    // Three visitors with a conversation, a message and an event each, and one user.
    let mut visitors = Vec::new();
    for i in 0..3 {
        let v = cell
            .create_contact(
                &ws,
                contact(ContactRole::Visitor, None, &format!("{MARKER} v{i}")),
            )
            .await
            .unwrap();
        let cv = cell
            .create_conversation(
                &ws,
                &v.id,
                &Body::parse(&format!("{MARKER} hello {i}")).unwrap(),
            )
            .await
            .unwrap();
        cell.create_event(
            &ws,
            NewEvent {
                contact_id: v.id.clone(),
                name: EventName::parse("viewed-pricing").unwrap(),
                metadata: EventMetadata::default(),
            },
        )
        .await
        .unwrap();
        visitors.push((v.id, cv.id));
    }
    let user = cell
        .create_contact(
            &ws,
            contact(ContactRole::User, Some("u@example.com"), "User"),
        )
        .await
        .unwrap();
    // A teammate removed now.
    let act = NewActivity::new(
        ActivityType::TeammateInvited,
        &Actor::system(),
        Target::kind("teammate"),
    );
    let (tm, _, _) = cell
        .create_teammate(
            &ws,
            &Email::parse("gone@example.com").unwrap(),
            &PersonName::parse("Gone").unwrap(),
            &TeammateRole::parse("agent").unwrap(),
            &act,
        )
        .await
        .unwrap();
    let act = NewActivity::new(
        ActivityType::TeammateRemoved,
        &Actor::system(),
        Target::new("teammate", tm.id.as_str()),
    );
    cell.remove_teammate(&ws, &tm.id, &act).await.unwrap();

    // Dry runs: 8 months on, nothing; 9 months and a day on, the visitors and what they own.
    let early = cell.retention_plan(now + 243 * DAY).await.unwrap();
    assert!(
        early
            .workspaces
            .get(ws.as_str())
            .and_then(|m| m.get("contacts"))
            .is_none(),
        "{early:?}"
    );
    let late = cell
        .retention_plan(now + VISITOR_MAX_AGE_MS + DAY)
        .await
        .unwrap();
    let counts = &late.workspaces[ws.as_str()];
    assert_eq!(counts["contacts"], 3, "{late:?}");
    assert_eq!(counts["conversations"], 3);
    assert_eq!(counts["conversation_parts"], 3);
    assert_eq!(counts["events"], 3);
    assert_eq!(counts["subject_keys"], 3);
    assert_eq!(counts["teammates"], 1);
    assert_eq!(late.total(), 16);
    let not_yet = cell
        .retention_plan(now + REMOVED_TEAMMATE_MAX_AGE_MS - DAY)
        .await
        .unwrap();
    assert!(not_yet.workspaces.is_empty(), "{not_yet:?}");
    // The dry run deleted nothing.
    cell.get_contact(&ws, &visitors[0].0).await.unwrap();

    // A sweep stopped after one deletion (as if killed), then a full one finishes the job.
    let as_of = now + VISITOR_MAX_AGE_MS + DAY;
    let first = cell.retention_sweep(as_of, 100, Some(1)).await.unwrap();
    assert_eq!(first.workspaces[ws.as_str()]["contacts"], 1);
    let rest = cell.retention_sweep(as_of, 1, None).await.unwrap();
    assert_eq!(rest.workspaces[ws.as_str()]["contacts"], 2);
    assert_eq!(rest.workspaces[ws.as_str()]["teammates"], 1);
    for (v, cv) in &visitors {
        assert!(matches!(
            cell.get_contact(&ws, v).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            cell.get_conversation(&ws, cv).await,
            Err(StoreError::NotFound)
        ));
    }
    cell.get_contact(&ws, &user.id).await.unwrap();
    assert!(matches!(
        cell.get_teammate(&ws, &tm.id).await,
        Err(StoreError::NotFound)
    ));
    // Idempotent: nothing is left to do.
    let again = cell.retention_sweep(as_of, 100, None).await.unwrap();
    assert!(again.workspaces.is_empty(), "{again:?}");
    // Recorded as the system actor, per batch (naming the visitors) and per sweep.
    let log = cell
        .list_activity(
            &ws,
            &ActivityFilter {
                types: vec![ActivityType::ContactDeleted, ActivityType::BulkDeleted],
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(log.items.iter().all(|e| e.entry.actor.id.is_none()
        && e.entry.actor.kind.as_str() == "system"
        && e.entry.kind == "data.bulk_deleted"));
    let batches: Vec<_> = log
        .items
        .iter()
        .filter(|e| e.entry.metadata["reason"] == "retention.visitor_expired")
        .collect();
    let named: BTreeSet<String> = batches
        .iter()
        .flat_map(|e| e.entry.metadata["contact_ids"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let expired: BTreeSet<String> = visitors.iter().map(|(v, _)| v.to_string()).collect();
    assert_eq!(named, expired);
    assert_eq!(
        batches
            .iter()
            .map(|e| e.entry.metadata["subject_keys"].as_i64().unwrap())
            .sum::<i64>(),
        3
    );
    let bulk: Vec<_> = log
        .items
        .iter()
        .filter(|e| e.entry.metadata["reason"] == "retention")
        .collect();
    assert_eq!(bulk.len(), 2);
    assert_eq!(bulk[0].entry.metadata["contacts"], 2);
    // A workspace with its own, shorter settings: planned with its own horizons, no record
    // counted twice (a visitor's conversation is the visitor's, not an idle one).
    let (ws2, _) = cell.create_workspace("Short").await.unwrap();
    let ws2 = ws2.id;
    let act = NewActivity::new(
        ActivityType::RetentionSettingsUpdated,
        &Actor::system(),
        Target::kind("workspace_retention"),
    );
    cell.set_retention_settings(
        &ws2,
        interlock_domain::RetentionSettings {
            conversation_days: Some(5),
            visitor_days: 10,
        },
        &act,
    )
    .await
    .unwrap();
    let v = cell
        .create_contact(&ws2, contact(ContactRole::Visitor, None, "short v"))
        .await
        .unwrap();
    cell.create_conversation(&ws2, &v.id, &Body::parse("hi").unwrap())
        .await
        .unwrap();
    let u = cell
        .create_contact(
            &ws2,
            contact(ContactRole::User, Some("s@example.com"), "short u"),
        )
        .await
        .unwrap();
    cell.create_conversation(&ws2, &u.id, &Body::parse("hello").unwrap())
        .await
        .unwrap();
    let six = cell.retention_plan(now_ms() + 6 * DAY).await.unwrap();
    let m = &six.workspaces[ws2.as_str()];
    assert_eq!(
        (
            m.get("contacts"),
            m["conversations"],
            m["conversation_parts"]
        ),
        (None, 2, 2),
        "{six:?}"
    );
    let eleven = cell.retention_plan(now_ms() + 11 * DAY).await.unwrap();
    let m = &eleven.workspaces[ws2.as_str()];
    assert_eq!(
        (m["contacts"], m["conversations"], m["subject_keys"]),
        (1, 2, 1),
        "{eleven:?}"
    );
    let bad = cell
        .set_retention_settings(
            &ws2,
            interlock_domain::RetentionSettings {
                conversation_days: None,
                visitor_days: 400,
            },
            &act,
        )
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
    cell.close().await;
    if scan_files {
        for entry in walk(dir) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                "{} holds the marker",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// ------------------------------------------------------------------ shared set-up

backend_tests!(
    visitor_batches_keep_a_visitor_seen_meanwhile,
    budgets_and_batches_larger_than_one_transaction,
    expired_rows_go_and_fresh_rows_stay,
);

async fn open(backend: Backend, dir: &std::path::Path) -> Cell {
    Cell::open(CellConfig {
        region: Region::Eu,
        backend,
        key_dir: dir.join("keys"),
        blob_dir: dir.join("blobs"),
    })
    .await
    .unwrap()
}

/// `SELECT COUNT(*) … WHERE workspace_id = $1` straight from the store.
async fn rows(cell: &Cell, sql: &'static str, ws: &WorkspaceId) -> i64 {
    sqlx::query_scalar(sql)
        .bind(ws.as_str())
        .fetch_one(cell.pool())
        .await
        .unwrap()
}

/// Make rows older than the API can: `UPDATE … WHERE workspace_id = $1` with `$2` a time.
async fn age(cell: &Cell, sql: &'static str, ws: &WorkspaceId, at: i64) {
    sqlx::query(sql)
        .bind(ws.as_str())
        .bind(at)
        .execute(cell.pool())
        .await
        .unwrap();
}

/// The same for one row named by its token hash (`$3`).
async fn age_one(cell: &Cell, sql: &'static str, ws: &WorkspaceId, at: i64, hash: &[u8]) {
    sqlx::query(sql)
        .bind(ws.as_str())
        .bind(at)
        .bind(hash)
        .execute(cell.pool())
        .await
        .unwrap();
}

fn files_under(dir: &std::path::Path) -> usize {
    if !dir.exists() {
        return 0;
    }
    walk(dir).len()
}

fn act(kind: ActivityType) -> NewActivity {
    NewActivity::new(kind, &Actor::system(), Target::kind("test"))
}

// ------------------------------------------------------------------ visitor batches

/// One batch deletes exactly the visitors still expired with everything they own — keys,
/// conversations, messages, events, attachments (rows and files), visitor tokens, messenger
/// sessions and their conversation rows — counted exactly; a visitor seen after the horizon
/// is kept with all its rows, as is a user; the batch is idempotent and logged as `system`.
async fn visitor_batches_keep_a_visitor_seen_meanwhile(backend: Backend, dir: &std::path::Path) {
    let cell = open(backend, dir).await;
    let (ws, _) = cell.create_workspace("Batches").await.unwrap();
    let ws = ws.id;
    let mut visitors = Vec::new();
    for i in 0..4 {
        // A visitor as the messenger makes one: with a visitor token.
        let (v, _token) = cell.new_visitor(&ws).await.unwrap();
        let cv = cell
            .create_conversation(&ws, &v.id, &Body::parse(&format!("q {i}")).unwrap())
            .await
            .unwrap();
        cell.add_part(
            &ws,
            &cv.id,
            &Author::parse(AuthorType::Contact, v.id.as_str()).unwrap(),
            &Body::parse("more").unwrap(),
        )
        .await
        .unwrap();
        cell.create_event(
            &ws,
            NewEvent {
                contact_id: v.id.clone(),
                name: EventName::parse("opened").unwrap(),
                metadata: EventMetadata::default(),
            },
        )
        .await
        .unwrap();
        cell.add_attachment(
            &ws,
            &cv.id,
            &AttachmentName::parse("a.txt").unwrap(),
            "text/plain",
            b"attached",
        )
        .await
        .unwrap();
        visitors.push(v.id);
    }
    // The first visitor has a session-scoped messenger session that started a conversation.
    let (token, _) = cell
        .open_messenger_session(&ws, &visitors[0], SessionScope::Session, 3_600_000)
        .await
        .unwrap();
    let session = cell
        .messenger_session(token.expose())
        .await
        .unwrap()
        .unwrap();
    cell.messenger_start_conversation(&session, &Body::parse("from the session").unwrap())
        .await
        .unwrap();
    let user = cell
        .create_contact(
            &ws,
            contact(ContactRole::User, Some("kept@example.com"), "Kept"),
        )
        .await
        .unwrap();
    // Everything so far was seen before the horizon; then the last visitor is seen again.
    let horizon = now_ms() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let seen = visitors[3].clone();
    cell.open_messenger_session(&ws, &seen, SessionScope::Contact, 3_600_000)
        .await
        .unwrap();
    assert_eq!(files_under(&dir.join("blobs")), 4);

    let mut ids = visitors.clone();
    ids.push(user.id.clone());
    let batch = cell.expire_visitor_batch(&ws, horizon, &ids).await.unwrap();
    let deleted: BTreeSet<&ContactId> = batch.deleted.iter().collect();
    assert_eq!(deleted, visitors[..3].iter().collect::<BTreeSet<_>>());
    let want: BTreeMap<&str, i64> = [
        ("contacts", 3),
        ("subject_keys", 3),
        ("conversations", 4),
        ("conversation_parts", 7),
        ("events", 3),
        ("attachments", 3),
        ("visitor_tokens", 3),
        ("messenger_sessions", 1),
        ("messenger_session_conversations", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(batch.counts, want);
    // The keys destroyed, each with its owner (what an erasure record names).
    let owners: BTreeSet<&ContactId> = batch.subject_keys.iter().map(|(c, _)| c).collect();
    assert_eq!(owners, deleted);
    assert_eq!(batch.subject_keys.len(), 3);
    // The erasure ledger names each of them with its keys (so a restore forgets them too).
    let ledger = interlock_storage::ErasureLedger::open(&dir.join("keys"), Region::Eu)
        .unwrap()
        .read_all()
        .unwrap();
    let mut named = BTreeSet::new();
    for r in &ledger {
        if let interlock_storage::ErasureRecord::Contact {
            contact_id,
            subject_key_ids,
            ..
        } = r
        {
            let keys: Vec<String> = batch
                .subject_keys
                .iter()
                .filter(|(c, _)| c.as_str() == contact_id)
                .map(|(_, k)| k.to_string())
                .collect();
            assert_eq!(subject_key_ids, &keys, "{contact_id}");
            named.insert(contact_id.clone());
        }
    }
    let want_named: BTreeSet<String> = visitors[..3].iter().map(ToString::to_string).collect();
    assert_eq!(named, want_named);
    // Gone, everything of theirs.
    for v in &visitors[..3] {
        assert!(matches!(
            cell.get_contact(&ws, v).await,
            Err(StoreError::NotFound)
        ));
    }
    assert_eq!(files_under(&dir.join("blobs")), 1);
    // Kept, everything of the visitor seen meanwhile and of the user.
    cell.get_contact(&ws, &seen).await.unwrap();
    cell.get_contact(&ws, &user.id).await.unwrap();
    let convs = cell
        .list_conversations(&ws, Some(&seen), None, 10)
        .await
        .unwrap();
    assert_eq!(convs.items.len(), 1);
    let cv = cell
        .get_conversation(&ws, &convs.items[0].id)
        .await
        .unwrap();
    assert_eq!(cv.parts.len(), 2);
    assert_eq!(cell.list_attachments(&ws, &cv.id).await.unwrap().len(), 1);
    for (sql, n) in [
        ("SELECT COUNT(*) FROM contacts WHERE workspace_id = $1", 2),
        (
            "SELECT COUNT(*) FROM subject_keys WHERE workspace_id = $1",
            2,
        ),
        (
            "SELECT COUNT(*) FROM conversations WHERE workspace_id = $1",
            1,
        ),
        (
            "SELECT COUNT(*) FROM conversation_parts WHERE workspace_id = $1",
            2,
        ),
        ("SELECT COUNT(*) FROM events WHERE workspace_id = $1", 1),
        (
            "SELECT COUNT(*) FROM attachments WHERE workspace_id = $1",
            1,
        ),
        (
            "SELECT COUNT(*) FROM visitor_tokens WHERE workspace_id = $1",
            1,
        ),
        (
            "SELECT COUNT(*) FROM messenger_sessions WHERE workspace_id = $1",
            1,
        ),
        (
            "SELECT COUNT(*) FROM messenger_session_conversations WHERE workspace_id = $1",
            0,
        ),
    ] {
        assert_eq!(rows(&cell, sql, &ws).await, n, "{sql}");
    }
    // Idempotent: the same batch again deletes nothing.
    let again = cell.expire_visitor_batch(&ws, horizon, &ids).await.unwrap();
    assert!(
        again.deleted.is_empty() && again.counts.is_empty(),
        "{again:?}"
    );
    // One entry by `system`, naming the visitors, with the same counts.
    let log = cell
        .list_activity(
            &ws,
            &ActivityFilter {
                types: vec![ActivityType::BulkDeleted],
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.items.len(), 1);
    let e = &log.items[0].entry;
    assert_eq!(e.actor.kind.as_str(), "system");
    assert_eq!(e.metadata["reason"], "retention.visitor_expired");
    let named: BTreeSet<String> = e.metadata["contact_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        named,
        visitors[..3].iter().map(ToString::to_string).collect()
    );
    for (element, n) in &want {
        assert_eq!(e.metadata[*element], *n, "{element}");
    }
    // A batch is bounded.
    let too_many: Vec<ContactId> = (0..=VISITOR_BATCH_MAX).map(|_| ContactId::new()).collect();
    assert!(
        cell.expire_visitor_batch(&ws, horizon, &too_many)
            .await
            .is_err()
    );
    cell.close().await;
}

/// `max` bounds a sweep's deletions; a sweep splits more candidates than one transaction
/// takes into several; a workspace's shorter visitor expiry takes the same path.
async fn budgets_and_batches_larger_than_one_transaction(backend: Backend, dir: &std::path::Path) {
    let cell = open(backend, dir).await;
    let now = now_ms();
    let (ws, _) = cell.create_workspace("Many").await.unwrap();
    let ws = ws.id;
    let n = VISITOR_BATCH_MAX as i64 + 120;
    cell.bench_insert_contacts(&ws, n as usize, "visitor", now - 300 * DAY, true)
        .await
        .unwrap();
    cell.bench_insert_contacts(&ws, 3, "user", now - 300 * DAY, false)
        .await
        .unwrap();
    cell.bench_insert_contacts(&ws, 4, "visitor", now - 200 * DAY, false)
        .await
        .unwrap();
    let plan = cell.retention_plan(now).await.unwrap();
    assert_eq!(plan.workspaces[ws.as_str()]["contacts"], n, "{plan:?}");
    // Bounded: seven, in batches of five.
    let first = cell.retention_sweep(now, 5, Some(7)).await.unwrap();
    assert_eq!(first.workspaces[ws.as_str()]["contacts"], 7, "{first:?}");
    for element in [
        "subject_keys",
        "conversations",
        "conversation_parts",
        "events",
    ] {
        assert_eq!(first.workspaces[ws.as_str()][element], 7, "{element}");
    }
    // The rest: more than one transaction takes, so split.
    let rest = cell.retention_sweep(now, 1000, None).await.unwrap();
    assert_eq!(rest.workspaces[ws.as_str()]["contacts"], n - 7, "{rest:?}");
    for element in [
        "subject_keys",
        "conversations",
        "conversation_parts",
        "events",
    ] {
        assert_eq!(rest.workspaces[ws.as_str()][element], n - 7, "{element}");
    }
    let again = cell.retention_sweep(now, 1000, None).await.unwrap();
    assert!(again.workspaces.is_empty(), "{again:?}");
    // Users and younger visitors stay; keys went with their owners only.
    let left = "SELECT COUNT(*) FROM contacts WHERE workspace_id = $1";
    assert_eq!(rows(&cell, left, &ws).await, 7);
    let keys = "SELECT COUNT(*) FROM subject_keys WHERE workspace_id = $1";
    assert_eq!(rows(&cell, keys, &ws).await, 7);
    for sql in [
        "SELECT COUNT(*) FROM conversations WHERE workspace_id = $1",
        "SELECT COUNT(*) FROM conversation_parts WHERE workspace_id = $1",
        "SELECT COUNT(*) FROM events WHERE workspace_id = $1",
    ] {
        assert_eq!(rows(&cell, sql, &ws).await, 0, "{sql}");
    }
    // Batches were logged: as many transactions as the candidates needed, naming all.
    let log = cell
        .list_activity(
            &ws,
            &ActivityFilter {
                types: vec![ActivityType::BulkDeleted],
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let batches: Vec<_> = log
        .items
        .iter()
        .filter(|e| e.entry.metadata["reason"] == "retention.visitor_expired")
        .collect();
    assert_eq!(
        batches
            .iter()
            .map(|e| e.entry.metadata["contact_ids"].as_array().unwrap().len() as i64)
            .sum::<i64>(),
        n
    );
    assert!(batches.len() >= 4, "{}", batches.len());
    // A workspace that keeps visitors 10 days: its 20-day-old visitors go in the same way.
    let (short, _) = cell.create_workspace("Short").await.unwrap();
    let short = short.id;
    cell.set_retention_settings(
        &short,
        interlock_domain::RetentionSettings {
            conversation_days: None,
            visitor_days: 10,
        },
        &act(ActivityType::RetentionSettingsUpdated),
    )
    .await
    .unwrap();
    cell.bench_insert_contacts(&short, 30, "visitor", now - 20 * DAY, false)
        .await
        .unwrap();
    let swept = cell.retention_sweep(now, 12, None).await.unwrap();
    assert_eq!(
        swept.workspaces[short.as_str()]["contacts"],
        30,
        "{swept:?}"
    );
    assert!(!swept.workspaces.contains_key(ws.as_str()), "{swept:?}");
    assert_eq!(rows(&cell, left, &short).await, 0);
    assert_eq!(rows(&cell, left, &ws).await, 7);
    cell.close().await;
}

// ------------------------------------------------------------------ rows that expire

/// Expired messenger sessions (with their conversation rows), teammate sessions past their
/// workspace's idle or absolute lifetime, stale throttle rows, API tokens 30 days past
/// expiry, expired invitations and ceremonies are planned, deleted and counted; fresh ones
/// (and a throttle row still locked) stay.
async fn expired_rows_go_and_fresh_rows_stay(backend: Backend, dir: &std::path::Path) {
    let cell = open(backend, dir).await;
    let (ws, _) = cell.create_workspace("Expiring").await.unwrap();
    let ws = ws.id;
    let now = now_ms();
    let hour = 3_600_000;

    // Messenger sessions: two, one with a conversation row, that one expired.
    let (v, _) = cell.new_visitor(&ws).await.unwrap();
    let (old, _) = cell
        .open_messenger_session(&ws, &v.id, SessionScope::Session, hour)
        .await
        .unwrap();
    let (_fresh, _) = cell
        .open_messenger_session(&ws, &v.id, SessionScope::Contact, hour)
        .await
        .unwrap();
    let s = cell.messenger_session(old.expose()).await.unwrap().unwrap();
    cell.messenger_start_conversation(&s, &Body::parse("hi").unwrap())
        .await
        .unwrap();
    age_one(
        &cell,
        "UPDATE messenger_sessions SET expires_at = $2 WHERE workspace_id = $1 AND token_hash = $3",
        &ws,
        now - 1,
        old.hash().as_bytes(),
    )
    .await;

    // Teammates: one invited long ago (expired invitation), one invited now.
    let (tm, _, _) = cell
        .create_teammate(
            &ws,
            &Email::parse("a@example.com").unwrap(),
            &PersonName::parse("A").unwrap(),
            &TeammateRole::parse("agent").unwrap(),
            &act(ActivityType::TeammateInvited),
        )
        .await
        .unwrap();
    age(
        &cell,
        "UPDATE invitations SET expires_at = $2 WHERE workspace_id = $1",
        &ws,
        now - 1,
    )
    .await;
    let (tm2, _, _) = cell
        .create_teammate(
            &ws,
            &Email::parse("b@example.com").unwrap(),
            &PersonName::parse("B").unwrap(),
            &TeammateRole::parse("agent").unwrap(),
            &act(ActivityType::TeammateInvited),
        )
        .await
        .unwrap();

    // Teammate sessions under a one-hour idle limit: idle for two hours (gone), signed in 31
    // days ago (gone: absolute), in use (stays).
    cell.set_security_settings(
        &ws,
        &SecuritySettings {
            session_idle_s: 3600,
            ..SecuritySettings::default()
        },
        &act(ActivityType::SecuritySettingsUpdated),
    )
    .await
    .unwrap();
    let session = |t| {
        let cell = &cell;
        let ws = &ws;
        async move {
            cell.create_session(ws, t, &act(ActivityType::SignInSucceeded))
                .await
                .unwrap()
                .0
        }
    };
    let idle = session(&tm.id).await;
    let long = session(&tm.id).await;
    let _used = session(&tm2.id).await;
    sqlx::query(
        "UPDATE teammate_sessions SET last_seen_at = $2 WHERE workspace_id = $1 AND id = $3",
    )
    .bind(ws.as_str())
    .bind(now - 2 * hour)
    .bind(idle.to_string())
    .execute(cell.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE teammate_sessions SET created_at = $2 WHERE workspace_id = $1 AND id = $3")
        .bind(ws.as_str())
        .bind(now - 31 * DAY)
        .bind(long.to_string())
        .execute(cell.pool())
        .await
        .unwrap();

    // Throttle rows: quiet for two days (gone), quiet but locked (stays), failing now (stays).
    let fail = act(ActivityType::SignInFailed);
    cell.record_login_failure(&ws, &["quiet@example.com"], &fail)
        .await
        .unwrap();
    age(
        &cell,
        "UPDATE login_throttle SET updated_at = $2, locked_until = $2 WHERE workspace_id = $1",
        &ws,
        now - 2 * DAY,
    )
    .await;
    cell.record_login_failure(&ws, &["locked@example.com"], &fail)
        .await
        .unwrap();
    sqlx::query("UPDATE login_throttle SET updated_at = $2, locked_until = $3 WHERE workspace_id = $1 AND updated_at > $2")
        .bind(ws.as_str())
        .bind(now - 2 * DAY)
        .bind(now + hour)
        .execute(cell.pool())
        .await
        .unwrap();
    cell.record_login_failure(&ws, &["now@example.com"], &fail)
        .await
        .unwrap();

    // API tokens: expired 31 days ago (gone), expired yesterday (kept, listed as expired),
    // never expiring (the workspace's first token; stays).
    let token = |name: &'static str, exp: i64| {
        let cell = &cell;
        let ws = &ws;
        async move {
            let mut p = PermissionSet::default();
            p.insert(interlock_domain::Permission::ContactsRead);
            cell.create_api_token(
                ws,
                name,
                p,
                Some(exp),
                None,
                &act(ActivityType::ApiTokenCreated),
            )
            .await
            .unwrap()
        }
    };
    token("long expired", now - 31 * DAY).await;
    token("just expired", now - DAY).await;

    // Ceremonies: one expired, one pending.
    let c1 = cell
        .start_ceremony(&ws, &tm2.id, "registration", b"state")
        .await
        .unwrap();
    cell.start_ceremony(&ws, &tm2.id, "registration", b"state")
        .await
        .unwrap();
    age_one(
        &cell,
        "UPDATE webauthn_ceremonies SET expires_at = $2 WHERE workspace_id = $1 AND token_hash = $3",
        &ws,
        now - 1,
        c1.hash().as_bytes(),
    )
    .await;

    let want: BTreeMap<&str, i64> = [
        ("messenger_sessions", 1),
        ("messenger_session_conversations", 1),
        ("teammate_sessions", 2),
        ("login_throttle", 1),
        ("api_tokens", 1),
        ("invitations", 1),
        ("webauthn_ceremonies", 1),
    ]
    .into_iter()
    .collect();
    // Planned, deleting nothing.
    let plan = cell.retention_plan(now).await.unwrap();
    assert_eq!(plan.workspaces[ws.as_str()], want, "{plan:?}");
    let plan = cell.retention_plan(now).await.unwrap();
    assert_eq!(plan.workspaces[ws.as_str()], want, "{plan:?}");
    // Swept in windows of one row, counted exactly.
    let swept = cell.retention_sweep(now, 1, None).await.unwrap();
    assert_eq!(swept.workspaces[ws.as_str()], want, "{swept:?}");
    for (sql, n) in [
        (
            "SELECT COUNT(*) FROM messenger_sessions WHERE workspace_id = $1",
            1,
        ),
        (
            "SELECT COUNT(*) FROM messenger_session_conversations WHERE workspace_id = $1",
            0,
        ),
        (
            "SELECT COUNT(*) FROM teammate_sessions WHERE workspace_id = $1",
            1,
        ),
        (
            "SELECT COUNT(*) FROM login_throttle WHERE workspace_id = $1",
            2,
        ),
        ("SELECT COUNT(*) FROM api_tokens WHERE workspace_id = $1", 2),
        (
            "SELECT COUNT(*) FROM invitations WHERE workspace_id = $1",
            1,
        ),
        (
            "SELECT COUNT(*) FROM webauthn_ceremonies WHERE workspace_id = $1",
            1,
        ),
    ] {
        assert_eq!(rows(&cell, sql, &ws).await, n, "{sql}");
    }
    // The remaining ones are the fresh ones.
    let remaining: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM teammate_sessions WHERE workspace_id = $1 AND teammate_id = $2",
    )
    .bind(ws.as_str())
    .bind(tm2.id.as_str())
    .fetch_one(cell.pool())
    .await
    .unwrap();
    assert_eq!(remaining, 1);
    let listed = cell.list_api_tokens(&ws).await.unwrap();
    assert!(listed.iter().any(|t| t.expires_at == Some(now - DAY)));
    assert!(!listed.iter().any(|t| t.expires_at == Some(now - 31 * DAY)));
    // Idempotent, and recorded once per sweep and workspace with the counts.
    let again = cell.retention_sweep(now, 1, None).await.unwrap();
    assert!(again.workspaces.is_empty(), "{again:?}");
    let log = cell
        .list_activity(
            &ws,
            &ActivityFilter {
                types: vec![ActivityType::BulkDeleted],
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.items.len(), 1);
    for (element, n) in &want {
        assert_eq!(log.items[0].entry.metadata[*element], *n, "{element}");
    }
    // What is left expires in its turn: the locked throttle row a day after its lock, the
    // token 30 days after its expiry, everything else once expired.
    let later = now + EXPIRED_TOKEN_KEEP_MS + THROTTLE_QUIET_MS + 2 * hour;
    let plan = cell.retention_plan(later).await.unwrap();
    let m = &plan.workspaces[ws.as_str()];
    assert_eq!(m["login_throttle"], 2, "{plan:?}");
    assert_eq!(m["api_tokens"], 1, "{plan:?}");
    assert_eq!(m["teammate_sessions"], 1, "{plan:?}");
    cell.close().await;
}
