//! The group-commit writer: a unit that fails inside a group fails alone; the others commit.

#![allow(clippy::unwrap_used)]

mod common;

use interlock_domain::{
    Author, AuthorType, Body, ContactRole, CustomAttributes, ExternalId, NewContact, Region,
    TeammateId,
};
use interlock_storage::{Backend, Cell, CellConfig, StoreError};

fn contact(ext: &str) -> NewContact {
    NewContact {
        role: ContactRole::User,
        external_id: Some(ExternalId::parse(ext).unwrap()),
        email: None,
        name: None,
        phone: None,
        custom_attributes: CustomAttributes::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_unit_does_not_spoil_its_group_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite {
        path: dir.path().join("eu.db"),
    };
    a_failing_unit_does_not_spoil_its_group(backend, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_unit_does_not_spoil_its_group_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::PgDb::create("gc").await;
    let url = db.url.clone();
    a_failing_unit_does_not_spoil_its_group(Backend::Postgres { url }, dir.path()).await;
    db.drop().await;
}

async fn a_failing_unit_does_not_spoil_its_group(backend: Backend, dir: &std::path::Path) {
    let cell = Cell::open(CellConfig {
        region: Region::Eu,
        backend,
        key_dir: dir.join("keys"),
        blob_dir: dir.join("blobs"),
    })
    .await
    .unwrap();
    let (ws, _token) = cell.create_workspace("W").await.unwrap();
    let c = cell.create_contact(&ws.id, contact("dup")).await.unwrap();
    let conv = cell
        .create_conversation(&ws.id, &c.id, &Body::parse("start").unwrap())
        .await
        .unwrap();
    let author = Author {
        kind: AuthorType::Teammate,
        id: TeammateId::new().to_string(),
    };
    let body = Body::parse("hello").unwrap();

    let stats = &cell.writer().stats;
    let split = || {
        stats
            .split_groups
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Keep going until the duplicate has shared a group at least once (almost always in the
    // first round), so the split-and-retry path is the one under test.
    let mut rounds = 0;
    while rounds < 5 || (split() == 0 && rounds < 100) {
        rounds += 1;
        // Many parts and one duplicate external_id, submitted together so they tend to share
        // a group; whichever way the writer groups them, only the duplicate may fail.
        let parts = (0..50).map(|_| cell.add_part(&ws.id, &conv.id, &author, &body));
        let (parts, dup) = tokio::join!(
            futures::future::join_all(parts),
            cell.create_contact(&ws.id, contact("dup"))
        );
        assert!(parts.iter().all(Result::is_ok));
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    }
    assert!(split() >= 1, "the duplicate never shared a group");
    let got = cell.get_conversation(&ws.id, &conv.id).await.unwrap();
    assert_eq!(got.parts.len(), 1 + rounds * 50);
    cell.close().await;
}
