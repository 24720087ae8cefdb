//! Trusted staff devices in the store (SQLite and PostgreSQL): registered only for an existing,
//! enabled staff member; serials and fingerprints unique; listed, found by fingerprint and
//! revoked once.

#![allow(clippy::unwrap_used)]

mod common;

use interlock_crypto::DeviceCa;
use interlock_domain::Region;
use interlock_storage::{Backend, Cell, CellConfig, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite {
        path: dir.path().join("eu.db"),
    };
    devices(backend, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::PgDb::create("devices").await;
    let url = db.url.clone();
    devices(Backend::Postgres { url }, dir.path()).await;
    db.drop().await;
}

/// A staff row made by hand (the staff module's own API is tested elsewhere).
async fn staff_row(cell: &Cell, id: &str, disabled_at: Option<i64>) {
    sqlx::query(
        "INSERT INTO staff (id, email_ct, role, totp_secret_ct, master_version, created_at, disabled_at) VALUES ($1, $2, 'support', $2, 1, 0, $3)",
    )
    .bind(id)
    .bind(vec![0u8])
    .bind(disabled_at)
    .execute(cell.pool())
    .await
    .unwrap();
}

async fn devices(backend: Backend, dir: &std::path::Path) {
    let keys = dir.join("keys");
    let cell = Cell::open(CellConfig {
        region: Region::Eu,
        backend,
        key_dir: keys.clone(),
        blob_dir: dir.join("blobs"),
    })
    .await
    .unwrap();
    staff_row(&cell, "sf_alice", None).await;
    staff_row(&cell, "sf_bob", None).await;
    staff_row(&cell, "sf_gone", Some(1)).await;
    let ca = DeviceCa::open_or_create(&keys, Region::Eu).unwrap();

    let laptop = ca.issue("sf_alice", "alice-laptop", 90).unwrap();
    let phone = ca.issue("sf_alice", "alice-phone", 30).unwrap();
    let bobs = ca.issue("sf_bob", "bob-laptop", 90).unwrap();
    let recorded = cell.register_staff_device(&laptop).await.unwrap();
    assert_eq!(recorded.serial, laptop.serial);
    assert_eq!(recorded.expires_at, laptop.not_after_ms);
    assert_eq!(recorded.revoked_at, None);
    cell.register_staff_device(&phone).await.unwrap();
    cell.register_staff_device(&bobs).await.unwrap();

    // The same certificate twice is a conflict; unknown and disabled staff get no device.
    assert!(matches!(
        cell.register_staff_device(&laptop).await,
        Err(StoreError::Conflict(_))
    ));
    let stranger = ca.issue("sf_nobody", "x", 1).unwrap();
    assert!(matches!(
        cell.register_staff_device(&stranger).await,
        Err(StoreError::NotFound)
    ));
    let disabled = ca.issue("sf_gone", "x", 1).unwrap();
    assert!(matches!(
        cell.register_staff_device(&disabled).await,
        Err(StoreError::NotFound)
    ));

    assert_eq!(cell.staff_devices(None).await.unwrap().len(), 3);
    let alices = cell.staff_devices(Some("sf_alice")).await.unwrap();
    let mut names: Vec<&str> = alices.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["alice-laptop", "alice-phone"]);
    assert!(
        cell.staff_devices(Some("sf_gone"))
            .await
            .unwrap()
            .is_empty()
    );

    let found = cell
        .staff_device_by_fingerprint(&phone.fingerprint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.serial, phone.serial);
    assert_eq!(found.staff_id, "sf_alice");
    assert!(found.usable_at(interlock_storage::now_ms()));
    assert!(!found.usable_at(phone.not_after_ms));
    assert!(
        cell.staff_device_by_fingerprint(&stranger.fingerprint)
            .await
            .unwrap()
            .is_none()
    );

    // Revoked once; a second revocation and an unknown serial say false.
    assert!(cell.revoke_staff_device(&phone.serial).await.unwrap());
    assert!(!cell.revoke_staff_device(&phone.serial).await.unwrap());
    assert!(!cell.revoke_staff_device("00").await.unwrap());
    let revoked = cell.staff_device(&phone.serial).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.usable_at(interlock_storage::now_ms()));
    // The others are untouched.
    assert_eq!(
        cell.staff_device(&laptop.serial)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    cell.close().await;
}
