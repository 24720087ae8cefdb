//! Trusted staff devices in the store (SQLite and PostgreSQL): registered only for an existing,
//! enabled staff member; serials and fingerprints unique; listed, found by fingerprint and
//! revoked once.

#![allow(clippy::unwrap_used)]

mod common;

cell_tests!(devices, staff_auth_expiry, sign_in_lock, staff_audit_chain);

use interlock_crypto::DeviceCa;
use interlock_domain::Region;
use interlock_storage::{Cell, StoreError};

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

async fn devices(cell: Cell, dir: &std::path::Path) {
    let keys = dir.join("keys");
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

/// Staff sessions (8 hours) and passkey ceremonies (5 minutes) are gone after the lifecycle
/// sweep past their expiry, and only those; a disabled member gets no session; a ceremony is
/// taken once, and the wrong kind takes nothing.
async fn staff_auth_expiry(cell: Cell, _dir: &std::path::Path) {
    use interlock_domain::{PasskeyId, StaffId};
    let alice = StaffId::new();
    let gone = StaffId::new();
    staff_row(&cell, alice.as_str(), None).await;
    staff_row(&cell, gone.as_str(), Some(1)).await;
    let now = interlock_storage::now_ms();
    let hour = 3_600_000;

    let old = cell
        .staff_passkey_sign_in(&alice, "0a", now)
        .await
        .unwrap()
        .unwrap();
    assert!(
        cell.staff_passkey_sign_in(&gone, "0b", now)
            .await
            .unwrap()
            .is_none()
    );
    let ceremony = cell
        .start_staff_ceremony(&alice, "0a", "authentication", b"state")
        .await
        .unwrap();
    assert!(
        cell.take_staff_ceremony(ceremony.expose(), "registration")
            .await
            .unwrap()
            .is_none()
    );
    let taken = cell
        .take_staff_ceremony(ceremony.expose(), "authentication")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.staff_id, alice);
    assert_eq!(taken.device_serial, "0a");
    assert_eq!(taken.state.as_slice(), b"state");
    assert!(
        cell.take_staff_ceremony(ceremony.expose(), "authentication")
            .await
            .unwrap()
            .is_none()
    );
    cell.start_staff_ceremony(&alice, "0a", "registration", b"state")
        .await
        .unwrap();

    // Nothing has expired a minute on (the ceremony lasts five).
    let r = cell.lifecycle_sweep(now + 60_000, 1000).await.unwrap();
    assert_eq!(r.staff_auth_expired, 0);
    assert!(
        cell.staff_session(old.expose(), "0a", now + 60_000)
            .await
            .unwrap()
            .is_some()
    );
    // A session opened later outlives the sweep that takes the first one and the ceremony.
    let later = cell
        .staff_passkey_sign_in(&alice, "0a", now + 4 * hour)
        .await
        .unwrap()
        .unwrap();
    let r = cell.lifecycle_sweep(now + 9 * hour, 1000).await.unwrap();
    assert_eq!(r.staff_auth_expired, 2);
    assert!(
        cell.staff_session(later.expose(), "0a", now + 9 * hour)
            .await
            .unwrap()
            .is_some()
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM staff_sessions")
        .fetch_one(cell.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(
        cell.lifecycle_sweep(now + 9 * hour, 1000)
            .await
            .unwrap()
            .staff_auth_expired,
        0
    );

    // Passkeys: sealed, listed, updated and removed per member only.
    let (pk, _) = cell
        .add_staff_passkey(&alice, "alice key", b"{\"cred\":1}")
        .await
        .unwrap();
    assert!(matches!(
        cell.add_staff_passkey(&gone, "nope", b"{}").await,
        Err(StoreError::NotFound)
    ));
    cell.update_staff_passkey(&alice, &pk, b"{\"cred\":2}")
        .await
        .unwrap();
    let listed = cell.staff_passkeys(&alice).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "alice key");
    assert_eq!(listed[0].credential.as_slice(), b"{\"cred\":2}");
    assert!(matches!(
        cell.delete_staff_passkey(&gone, &pk).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        cell.delete_staff_passkey(&alice, &PasskeyId::new()).await,
        Err(StoreError::NotFound)
    ));
    cell.delete_staff_passkey(&alice, &pk).await.unwrap();
    assert!(cell.staff_passkeys(&alice).await.unwrap().is_empty());
    cell.close().await;
}

/// Five failures lock sign-in, growing from 1 s and doubling; while locked no session opens
/// even for a right answer (the check is in the statement, not only before it); a success
/// resets the count.
async fn sign_in_lock(cell: Cell, _dir: &std::path::Path) {
    use interlock_domain::StaffId;
    let alice = StaffId::new();
    staff_row(&cell, alice.as_str(), None).await;
    let t = 1_000_000;
    for i in 0..4 {
        cell.record_staff_sign_in_failure(&alice, "totp", "0a", t + i)
            .await
            .unwrap();
        assert_eq!(
            cell.staff_sign_in_locked(&alice, t + i).await.unwrap(),
            None
        );
    }
    cell.record_staff_sign_in_failure(&alice, "totp", "0a", t)
        .await
        .unwrap();
    assert_eq!(
        cell.staff_sign_in_locked(&alice, t).await.unwrap(),
        Some(t + 1000)
    );
    assert!(
        cell.staff_passkey_sign_in(&alice, "0a", t + 999)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        cell.staff_sign_in_locked(&alice, t + 1000).await.unwrap(),
        None
    );
    cell.record_staff_sign_in_failure(&alice, "totp", "0a", t + 1000)
        .await
        .unwrap();
    assert_eq!(
        cell.staff_sign_in_locked(&alice, t + 1000).await.unwrap(),
        Some(t + 3000)
    );
    // Many failures: the lock stops growing at 15 minutes.
    for _ in 0..30 {
        cell.record_staff_sign_in_failure(&alice, "totp", "0a", t)
            .await
            .unwrap();
    }
    assert_eq!(
        cell.staff_sign_in_locked(&alice, t).await.unwrap(),
        Some(t + 15 * 60 * 1000)
    );
    let later = t + 15 * 60 * 1000;
    assert!(
        cell.staff_passkey_sign_in(&alice, "0a", later)
            .await
            .unwrap()
            .is_some()
    );
    // Reset: four more failures lock nothing.
    for _ in 0..4 {
        cell.record_staff_sign_in_failure(&alice, "totp", "0a", later)
            .await
            .unwrap();
    }
    assert_eq!(
        cell.staff_sign_in_locked(&alice, later).await.unwrap(),
        None
    );
    cell.close().await;
}

/// The staff audit chain: entries open with their metadata, verification counts them, and a
/// changed hash, a removed entry or a body moved to another row breaks it at that place.
async fn staff_audit_chain(cell: Cell, _dir: &std::path::Path) {
    assert_eq!(cell.verify_staff_audit().await.unwrap(), Ok(0));
    for (i, kind) in [
        "staff.added",
        "staff.signed_in",
        "staff.sign_in_failed",
        "staff.disabled",
    ]
    .into_iter()
    .enumerate()
    {
        let mut meta = serde_json::Map::new();
        meta.insert("n".into(), serde_json::json!(i));
        cell.staff_audit(kind, Some("sf_alice"), meta, 1_000 + i as i64)
            .await
            .unwrap();
    }
    let all = cell.staff_audit_entries(0, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[1].seq, 2);
    assert_eq!(all[1].kind, "staff.signed_in");
    assert_eq!(all[1].staff_id.as_deref(), Some("sf_alice"));
    assert_eq!(all[1].metadata["n"], 1);
    assert_eq!(all[1].created_at_ms, 1_001);
    assert_eq!(cell.staff_audit_entries(2, 1).await.unwrap()[0].seq, 3);
    assert_eq!(cell.verify_staff_audit().await.unwrap(), Ok(4));

    let hash_of = |seq: i64| {
        let pool = cell.pool().clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT hash FROM staff_audit WHERE seq = $1")
                .bind(seq)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let exec = |sql: &'static str, a: i64, b: Option<String>| {
        let pool = cell.pool().clone();
        async move {
            let q = sqlx::query(sql).bind(a);
            let q = match b {
                Some(b) => q.bind(b),
                None => q,
            };
            q.execute(&pool).await.unwrap();
        }
    };
    // A changed hash.
    let h2 = hash_of(2).await;
    exec(
        "UPDATE staff_audit SET hash = $2 WHERE seq = $1",
        2,
        Some("00".repeat(32)),
    )
    .await;
    let broken = cell.verify_staff_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 2, "{broken:?}");
    exec(
        "UPDATE staff_audit SET hash = $2 WHERE seq = $1",
        2,
        Some(h2),
    )
    .await;
    assert_eq!(cell.verify_staff_audit().await.unwrap(), Ok(4));
    // A body moved to another row does not open there.
    let body1: Vec<u8> = sqlx::query_scalar("SELECT body_ct FROM staff_audit WHERE seq = 1")
        .fetch_one(cell.pool())
        .await
        .unwrap();
    let body3: Vec<u8> = sqlx::query_scalar("SELECT body_ct FROM staff_audit WHERE seq = 3")
        .fetch_one(cell.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE staff_audit SET body_ct = $1 WHERE seq = 3")
        .bind(body1)
        .execute(cell.pool())
        .await
        .unwrap();
    let broken = cell.verify_staff_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 3, "{broken:?}");
    sqlx::query("UPDATE staff_audit SET body_ct = $1 WHERE seq = 3")
        .bind(body3)
        .execute(cell.pool())
        .await
        .unwrap();
    // A removed entry.
    exec("DELETE FROM staff_audit WHERE seq = $1", 2, None).await;
    let broken = cell.verify_staff_audit().await.unwrap().unwrap_err();
    assert_eq!((broken.seq, broken.reason), (2, "an entry is missing"));
    cell.close().await;
}
