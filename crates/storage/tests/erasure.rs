//! Erasure survives a failure after its commit: when a file cannot be removed, the erasure
//! still answers (keys destroyed, rows gone, receipt kept) with status `purging`, and
//! `resume_erasures` removes the file later and completes it. SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use interlock_domain::{
    Actor, AttachmentName, Body, ContactRole, CustomAttributes, NewContact, Region,
};
use interlock_storage::{Backend, Cell, CellConfig, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_resumes_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite {
        path: dir.path().join("eu.db"),
    };
    erasure_resumes(backend, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_resumes_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::PgDb::create("era").await;
    let url = db.url.clone();
    erasure_resumes(Backend::Postgres { url }, dir.path()).await;
    db.drop().await;
}

async fn erasure_resumes(backend: Backend, dir: &std::path::Path) {
    let cell = Cell::open(CellConfig {
        region: Region::Eu,
        backend,
        key_dir: dir.join("keys"),
        blob_dir: dir.join("blobs"),
    })
    .await
    .unwrap();
    let (ws, _) = cell.create_workspace("Erasure Co").await.unwrap();
    let contact = cell
        .create_contact(
            &ws.id,
            NewContact {
                role: ContactRole::Visitor,
                external_id: None,
                email: None,
                name: None,
                phone: None,
                custom_attributes: CustomAttributes::default(),
            },
        )
        .await
        .unwrap();
    let cv = cell
        .create_conversation(&ws.id, &contact.id, &Body::parse("hello").unwrap())
        .await
        .unwrap();
    let att = cell
        .add_attachment(
            &ws.id,
            &cv.id,
            &AttachmentName::parse("a.txt").unwrap(),
            "text/plain",
            b"attached",
        )
        .await
        .unwrap();
    // Make the file impossible to remove: a non-empty folder in its place (even root cannot
    // unlink a folder as a file).
    let path = dir.join("blobs").join(ws.id.as_str()).join(att.id.as_str());
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("stuck"), b"ciphertext").unwrap();

    let actor = Actor::system();
    let e = cell
        .erase_contact(&ws.id, &contact.id, &actor)
        .await
        .unwrap();
    assert_eq!(e.request.status, "purging");
    assert!(matches!(
        cell.get_contact(&ws.id, &contact.id).await,
        Err(StoreError::NotFound)
    ));
    let stored = cell.data_request(&ws.id, &e.request.id).await.unwrap();
    assert_eq!(stored.status, "purging");
    // Still stuck: the resume finishes nothing and leaves it `purging`.
    assert_eq!(cell.resume_erasures().await.unwrap(), 0);
    assert_eq!(
        cell.data_request(&ws.id, &e.request.id)
            .await
            .unwrap()
            .status,
        "purging"
    );

    // The obstacle goes (a leftover file, as after a crash): the next resume finishes.
    std::fs::remove_dir_all(&path).unwrap();
    std::fs::write(&path, b"leftover ciphertext").unwrap();
    assert_eq!(cell.resume_erasures().await.unwrap(), 1);
    assert!(!path.exists(), "the file was not removed");
    let done = cell.data_request(&ws.id, &e.request.id).await.unwrap();
    assert_eq!(done.status, "completed");
    // A repeat returns the same receipt, and nothing is left to resume.
    let again = cell
        .erase_contact(&ws.id, &contact.id, &actor)
        .await
        .unwrap();
    assert!(again.repeated);
    assert_eq!(again.receipt, e.receipt);
    assert_eq!(cell.resume_erasures().await.unwrap(), 0);
    cell.close().await;
}

/// The per-subject reads of an erasure go through the subject's index on SQLite, not through
/// the primary key over the whole workspace (an `ORDER BY id` made SQLite prefer the latter,
/// which cost seconds per erasure in a workspace of a million contacts). No timing: the plan.
// `EXPLAIN QUERY PLAN` of the store's own static statements: the text is ours, not input.
#[allow(clippy::disallowed_methods)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_reads_use_the_subject_indexes_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let cell = Cell::open(CellConfig {
        region: Region::Eu,
        backend: Backend::Sqlite {
            path: dir.path().join("eu.db"),
        },
        key_dir: dir.path().join("keys"),
        blob_dir: dir.path().join("blobs"),
    })
    .await
    .unwrap();
    for (sql, index) in [
        (interlock_storage::SUBJECT_KEYS_OF, "subject_keys_owner"),
        (interlock_storage::ERASURES_OF, "data_requests_subject"),
    ] {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(explain))
            .bind("ws_eu_00000000000000000000000000000000")
            .bind("ct_00000000000000000000000000000000")
            .fetch_all(cell.pool())
            .await
            .unwrap();
        let plan: Vec<String> = rows
            .iter()
            .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
            .collect();
        assert!(
            plan.iter().any(|d| d.contains(index)),
            "{sql}: {plan:?} does not use {index}"
        );
    }
    cell.close().await;
}
