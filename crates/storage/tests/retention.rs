//! Retention on both stores: visitors expire nine months after they were last seen (users
//! never by that rule), removed teammates 30 days after removal; a dry run deletes nothing; a
//! bounded (interrupted) sweep is finished by the next; what went is in the activity log.

#![allow(clippy::unwrap_used)]

mod common;

use interlock_domain::{
    ActivityType, Actor, Body, ContactRole, CustomAttributes, Email, EventMetadata, EventName,
    NewActivity, NewContact, NewEvent, PersonName, Region, Target, TeammateRole,
};
use interlock_storage::{
    ActivityFilter, Backend, Cell, CellConfig, REMOVED_TEAMMATE_MAX_AGE_MS, StoreError,
    VISITOR_MAX_AGE_MS, now_ms,
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
    // Recorded as the system actor, per visitor and per sweep.
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
    let deleted: Vec<_> = log
        .items
        .iter()
        .filter(|e| e.entry.kind == "contact.deleted")
        .collect();
    assert_eq!(deleted.len(), 3);
    assert!(
        deleted.iter().all(|e| e.entry.actor.id.is_none()
            && e.entry.metadata["reason"] == "retention.visitor_expired")
    );
    let bulk: Vec<_> = log
        .items
        .iter()
        .filter(|e| e.entry.kind == "data.bulk_deleted")
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
