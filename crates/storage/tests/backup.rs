//! Backups that forget, on both stores: a backup taken before an erasure and restored after it
//! does not bring the erased subject back (the erasure ledger in the key folder is applied
//! before the restore commits); the rest comes back whole and readable; damaged, truncated
//! and foreign backups, other keys and non-empty targets are refused and leave nothing behind.
//! `TABLES` is checked against the migrated schema (names, columns and their types).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use interlock_domain::{
    ActivityType, AttachmentName, Body, ContactRole, CustomAttributes, Email, EventMetadata,
    EventName, NewContact, NewEvent, PersonName, Region,
};
use interlock_storage::backup::{BackupError, Kind, TABLES};
use interlock_storage::cell::{Progress, restore};
use interlock_storage::{
    ActivityFilter, Backend, Cell, CellConfig, ErasureRecord, StoreError, now_ms,
};
use sqlx::Row;

const ALICE: &str = "backup-marker-alice-7c31";
const BOB: &str = "backup-marker-bob-19ae";
const CAROL: &str = "backup-marker-carol-d04f";

fn contact(email: &str, name: &str) -> NewContact {
    NewContact {
        role: ContactRole::User,
        external_id: None,
        email: Some(Email::parse(email).unwrap()),
        name: Some(PersonName::parse(name).unwrap()),
        phone: None,
        custom_attributes: CustomAttributes::default(),
    }
}

fn config(backend: Backend, keys: &Path, data: &Path) -> CellConfig {
    CellConfig {
        region: Region::Eu,
        backend,
        key_dir: keys.to_owned(),
        blob_dir: data.join("blobs"),
    }
}

/// Where a test's stores live: SQLite files under a folder, or fresh PostgreSQL databases.
enum Store {
    Sqlite,
    Postgres(Vec<common::PgDb>),
}

impl Store {
    async fn backend(&mut self, dir: &Path) -> Backend {
        match self {
            Store::Sqlite => Backend::Sqlite {
                path: dir.join("eu.db"),
            },
            Store::Postgres(dbs) => {
                let db = common::PgDb::create("bk").await;
                let url = db.url.clone();
                dbs.push(db);
                Backend::Postgres { url }
            }
        }
    }

    async fn drop_all(self) {
        if let Store::Postgres(dbs) = self {
            for db in dbs {
                db.drop().await;
            }
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_forget_sqlite() {
    backups_forget(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_forget_postgres() {
    backups_forget(Store::Postgres(Vec::new())).await;
}

async fn backups_forget(mut store: Store) {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let src_dir = tmp.path().join("src");
    std::fs::create_dir_all(&src_dir).unwrap();
    let backend = store.backend(&src_dir).await;
    let cell = Cell::open(config(backend, &keys, &src_dir)).await.unwrap();

    // Workspace 1: alice (to be erased, with a visitor later merged into her whose key is
    // listed in her record) and bob (kept); each with a conversation, an attachment and an
    // event. Workspace 2: carol (the workspace is deleted).
    let (w1, _) = cell.create_workspace("Backup One").await.unwrap();
    let (w2, _) = cell.create_workspace("Backup Two").await.unwrap();
    let mut ids = Vec::new();
    for (ws, marker) in [(&w1.id, ALICE), (&w1.id, BOB), (&w2.id, CAROL)] {
        let c = cell
            .create_contact(ws, contact(&format!("{marker}@example.com"), marker))
            .await
            .unwrap();
        let cv = cell
            .create_conversation(ws, &c.id, &Body::parse(&format!("hello {marker}")).unwrap())
            .await
            .unwrap();
        let at = cell
            .add_attachment(
                ws,
                &cv.id,
                &AttachmentName::parse(&format!("{marker}.txt")).unwrap(),
                "text/plain",
                format!("file of {marker}").as_bytes(),
            )
            .await
            .unwrap();
        cell.create_event(
            ws,
            NewEvent {
                contact_id: c.id.clone(),
                name: EventName::parse("signed_up").unwrap(),
                metadata: EventMetadata::default(),
            },
        )
        .await
        .unwrap();
        ids.push((c, cv, at));
    }
    let visitor = cell
        .create_contact(
            &w1.id,
            NewContact {
                role: ContactRole::Visitor,
                external_id: None,
                email: None,
                name: Some(PersonName::parse(&format!("{ALICE} visitor")).unwrap()),
                phone: None,
                custom_attributes: CustomAttributes::default(),
            },
        )
        .await
        .unwrap();
    cell.create_conversation(&w1.id, &visitor.id, &Body::parse("visitor hello").unwrap())
        .await
        .unwrap();
    let visitor_key: String = sqlx::query_scalar(
        "SELECT subject_key_id FROM contacts WHERE workspace_id = $1 AND id = $2",
    )
    .bind(w1.id.as_str())
    .bind(visitor.id.as_str())
    .fetch_one(cell.pool())
    .await
    .unwrap();
    let (alice, _, alice_att) = &ids[0];
    let (bob, bob_cv, bob_att) = &ids[1];

    // The backup, taken before the erasures.
    let mut seen = Progress::default();
    let (bytes, summary) = cell.backup(Vec::new(), &mut |p| seen = p).await.unwrap();
    assert_eq!(summary.blobs, 3);
    assert_eq!(summary.missing_blobs, 0);
    assert_eq!(seen.rows_done, seen.rows_total);
    assert_eq!(seen.blobs_done, 3);
    assert!(summary.backup_id.starts_with("bk_"));
    for marker in [ALICE, BOB, CAROL, "signed_up", "Backup One"] {
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "{marker} is readable in the backup"
        );
    }
    let master_hex = std::fs::read_to_string(keys.join("eu").join("master-v1.key")).unwrap();
    let master = hex::decode(master_hex.trim()).unwrap();
    assert!(
        !contains(&bytes, &master),
        "the master key is in the backup"
    );
    assert!(!contains(&bytes, master_hex.trim().as_bytes()));

    // Then alice is erased (her own key and the merged visitor's) and workspace 2 deleted:
    // recorded in the ledger, as the deletion paths do before they commit.
    let alice_keys: Vec<String> =
        sqlx::query_scalar("SELECT id FROM subject_keys WHERE workspace_id = $1 AND owner_id = $2")
            .bind(w1.id.as_str())
            .bind(alice.id.as_str())
            .fetch_all(cell.pool())
            .await
            .unwrap();
    let mut listed = alice_keys.clone();
    listed.push(visitor_key.clone());
    cell.ledger()
        .append(&[
            ErasureRecord::Contact {
                workspace_id: w1.id.to_string(),
                contact_id: alice.id.to_string(),
                subject_key_ids: listed,
                at_ms: now_ms(),
            },
            ErasureRecord::Workspace {
                workspace_id: w2.id.to_string(),
                at_ms: now_ms(),
            },
        ])
        .unwrap();
    let ledger_text = std::fs::read_to_string(cell.ledger().path()).unwrap();
    for marker in [ALICE, BOB, CAROL] {
        assert!(!ledger_text.contains(marker), "personal data in the ledger");
    }

    // ---- refusals, each leaving the target empty
    let dst_dir = tmp.path().join("dst");
    std::fs::create_dir_all(&dst_dir).unwrap();
    let dst_backend = store.backend(&dst_dir).await;
    let mut nothing = |_: Progress| {};
    // One byte flipped in the middle of the body.
    let mut tampered = bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x40;
    let err = restore(
        &tampered[..],
        config(dst_backend.clone(), &keys, &dst_dir),
        &mut nothing,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Damaged(_)), "{err}");
    // Truncated (the final frame lost).
    let err = restore(
        &bytes[..bytes.len() - 10],
        config(dst_backend.clone(), &keys, &dst_dir),
        &mut nothing,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Truncated(_)), "{err}");
    // Another deployment's keys.
    let other = tmp.path().join("other-keys");
    interlock_crypto::Keyring::open_or_create(&other, Region::Eu).unwrap();
    let err = restore(
        &bytes[..],
        config(dst_backend.clone(), &other, &dst_dir),
        &mut nothing,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Keys(_)), "{err}");
    assert!(err.to_string().contains("wrong --key-dir"), "{err}");
    // A key folder without keys is not given any.
    let empty = tmp.path().join("no-keys");
    let err = restore(
        &bytes[..],
        config(dst_backend.clone(), &empty, &dst_dir),
        &mut nothing,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Keys(_)), "{err}");
    assert!(
        files_under(&empty.join("eu")).is_empty(),
        "a key was created"
    );
    assert!(files_under(&dst_dir.join("blobs")).is_empty());

    // ---- the restore
    let mut last = Progress::default();
    let restored = restore(
        &bytes[..],
        config(dst_backend.clone(), &keys, &dst_dir),
        &mut |p| last = p,
    )
    .await
    .unwrap();
    assert_eq!(restored.backup_id, summary.backup_id);
    assert_eq!(last.rows_done, last.rows_total);
    assert_eq!(restored.blobs_written, 1, "only bob's file comes back");
    assert_eq!(restored.ledger.workspaces_purged, vec![w2.id.to_string()]);
    let w1_counts = &restored.ledger.workspaces[w1.id.as_str()];
    assert_eq!(w1_counts["contacts_erased"], 2, "{w1_counts:?}");
    assert_eq!(w1_counts["attachments"], 1, "{w1_counts:?}");
    assert_eq!(w1_counts["subject_keys"], 2, "{w1_counts:?}");

    // A second restore into the same (now full) store is refused.
    let err = restore(
        &bytes[..],
        config(dst_backend.clone(), &keys, &dst_dir),
        &mut nothing,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Refused(_)), "{err}");

    let back = Cell::open(config(dst_backend, &keys, &dst_dir))
        .await
        .unwrap();
    // Alice, her visitor and workspace 2 are gone; bob is whole.
    assert!(matches!(
        back.get_contact(&w1.id, &alice.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        back.get_contact(&w1.id, &visitor.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        back.find_contacts(
            &w1.id,
            Some(&Email::parse(&format!("{ALICE}@example.com")).unwrap()),
            None
        )
        .await
        .unwrap()
        .is_empty()
    );
    let b = back.get_contact(&w1.id, &bob.id).await.unwrap();
    assert_eq!(b.name.as_deref(), Some(BOB));
    let (_, file) = back
        .get_attachment(&w1.id, &bob_cv.id, &bob_att.id)
        .await
        .unwrap();
    assert_eq!(file, format!("file of {BOB}").as_bytes());
    let conv = back.get_conversation(&w1.id, &bob_cv.id).await.unwrap();
    assert_eq!(conv.parts.len(), 1);
    // Nothing of workspace 2 is left.
    for sql in [
        "SELECT COUNT(*) FROM workspaces WHERE id = $1",
        "SELECT COUNT(*) FROM workspace_keys WHERE workspace_id = $1",
        "SELECT COUNT(*) FROM api_tokens WHERE workspace_id = $1",
        "SELECT COUNT(*) FROM contacts WHERE workspace_id = $1",
        "SELECT COUNT(*) FROM subject_keys WHERE workspace_id = $1",
        "SELECT COUNT(*) FROM conversation_parts WHERE workspace_id = $1",
        "SELECT COUNT(*) FROM attachments WHERE workspace_id = $1",
        "SELECT COUNT(*) FROM activity_log WHERE workspace_id = $1",
        "SELECT COUNT(*) FROM activity_heads WHERE workspace_id = $1",
    ] {
        let left: i64 = sqlx::query_scalar(sql)
            .bind(w2.id.as_str())
            .fetch_one(back.pool())
            .await
            .unwrap();
        assert_eq!(left, 0, "{sql}");
    }
    assert!(!dst_dir.join("blobs").join(w2.id.as_str()).exists());
    let keys_left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM subject_keys WHERE workspace_id = $1 AND (owner_id = $2 OR id = $3)",
    )
    .bind(w1.id.as_str())
    .bind(alice.id.as_str())
    .bind(&visitor_key)
    .fetch_one(back.pool())
    .await
    .unwrap();
    assert_eq!(keys_left, 0);
    let blobs = files_under(&dst_dir.join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert!(blobs[0].ends_with(bob_att.id.as_str()));
    assert!(!blobs.iter().any(|p| p.ends_with(alice_att.id.as_str())));

    // The restore is in workspace 1's activity log, and the chain still verifies.
    let log = back
        .list_activity(
            &w1.id,
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
    assert_eq!(e.actor.kind, interlock_domain::ActorType::System);
    assert_eq!(e.metadata["reason"], "erasure_ledger_on_restore");
    assert_eq!(e.metadata["backup_id"], summary.backup_id.as_str());
    back.verify_activity(&w1.id, &back.activity_public_key())
        .await
        .unwrap();
    back.close().await;

    // SQLite: no marker in any file of the restored store (they were only ever sealed).
    for f in files_under(&dst_dir) {
        let data = std::fs::read(&f).unwrap();
        for marker in [ALICE, BOB, CAROL] {
            assert!(
                !contains(&data, marker.as_bytes()),
                "{marker} in {}",
                f.display()
            );
        }
    }
    cell.close().await;
    store.drop_all().await;
}

/// `TABLES` matches the migrated schema: every table (none missing, none extra), every column
/// with the type it is read and bound as.
#[tokio::test]
async fn tables_match_the_migrated_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let cell = Cell::open(config(
        Backend::Sqlite {
            path: tmp.path().join("eu.db"),
        },
        &tmp.path().join("keys"),
        tmp.path(),
    ))
    .await
    .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY name",
    )
    .fetch_all(cell.pool())
    .await
    .unwrap();
    let mut listed: Vec<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    listed.sort();
    assert_eq!(
        listed, tables,
        "interlock_storage::backup::TABLES must list every table of the schema"
    );
    for t in TABLES {
        let cols = sqlx::query("SELECT name, type FROM pragma_table_info($1)")
            .bind(t.name)
            .fetch_all(cell.pool())
            .await
            .unwrap();
        let mut schema: Vec<(String, Kind)> = cols
            .iter()
            .map(|r| {
                let name: String = r.get("name");
                let ty: String = r.get("type");
                let kind = match ty.as_str() {
                    "BIGINT" => Kind::Int,
                    "TEXT" => Kind::Text,
                    "BLOB" => Kind::Bytes,
                    other => panic!("{}.{name}: type {other} has no backup kind", t.name),
                };
                (name, kind)
            })
            .collect();
        schema.sort_by(|a, b| a.0.cmp(&b.0));
        let mut mine: Vec<(String, Kind)> = t
            .columns
            .iter()
            .map(|(n, k)| ((*n).to_owned(), *k))
            .collect();
        mine.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            mine, schema,
            "backup::TABLES {} differs from the schema",
            t.name
        );
    }
    cell.close().await;
}
