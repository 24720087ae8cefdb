//! Trusted staff devices through the real server (TLS, router, stores), on SQLite and
//! PostgreSQL: a certificate from a served region's device CA reaches `GET /v1/staff/device`;
//! a certificate from any other CA fails the TLS handshake; no certificate, an unregistered,
//! a revoked or an expired device is refused with 401 and its code; clients without a
//! certificate reach every other route as before.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Store, TestApp, assert_problem};
use interlock_crypto::{DeviceCa, IssuedDevice};
use interlock_domain::Region;

/// A staff row made by hand (`interlock staff add` belongs to the staff module).
async fn staff_row(app: &TestApp, region: Region, id: &str) {
    sqlx::query(
        "INSERT INTO staff (id, email_ct, role, totp_secret_ct, master_version, created_at) VALUES ($1, $2, 'support', $2, 1, 0)",
    )
    .bind(id)
    .bind(vec![0u8])
    .execute(app.cell(region).pool())
    .await
    .unwrap();
}

/// A certificate from the region's device CA (the one the server loaded at start-up).
fn issue(app: &TestApp, region: Region, staff: &str, name: &str) -> IssuedDevice {
    DeviceCa::open_or_create(&app.settings.key_dir(), region)
        .unwrap()
        .issue(staff, name, 30)
        .unwrap()
}

fn client(app: &TestApp, device: &IssuedDevice) -> reqwest::Client {
    app.client_with_certificate(&device.cert_pem, &device.key_pem)
}

async fn registered_device_reaches_the_device_route(store: Store) {
    let app = TestApp::spawn(store).await;
    staff_row(&app, Region::Eu, "sf_alice").await;
    let device = issue(&app, Region::Eu, "sf_alice", "alice-laptop");
    app.cell(Region::Eu)
        .register_staff_device(&device)
        .await
        .unwrap();
    let trusted = client(&app, &device);

    let r = app.get_with(&trusted, "/v1/staff/device").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["serial"], device.serial.as_str());
    assert_eq!(r.body["staff_id"], "sf_alice");
    assert_eq!(r.body["name"], "alice-laptop");
    assert_eq!(r.body["expires_at"], device.not_after_ms);
    // Every request of the connection carries the device; a second one on the same client
    // (a reused connection) is recognised too.
    let again = app.get_with(&trusted, "/v1/staff/device").await;
    assert_eq!(again.status, 200, "{:?}", again.body);

    // Without a certificate: refused at the request layer.
    let r = app.get_with(&app.http, "/v1/staff/device").await;
    assert_problem(&r, 401, "device_certificate_required");

    // Clients without certificates are unaffected elsewhere, and a device's client reaches
    // ordinary routes like anyone else.
    let r = app.get_with(&app.http, "/healthz").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (_ws, token) = app.workspace("eu").await;
    assert_eq!(app.get("/v1/contacts", &token).await.status, 200);
    let r = app.get_with(&trusted, "/healthz").await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // A device of another served region's CA is found in that region's store.
    staff_row(&app, Region::Au, "sf_bruce").await;
    let au = issue(&app, Region::Au, "sf_bruce", "bruce-laptop");
    app.cell(Region::Au)
        .register_staff_device(&au)
        .await
        .unwrap();
    let r = app.get_with(&client(&app, &au), "/v1/staff/device").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["staff_id"], "sf_bruce");
    app.stop().await;
}

async fn revoked_unknown_and_expired_devices_are_refused(store: Store) {
    let app = TestApp::spawn(store).await;
    staff_row(&app, Region::Eu, "sf_alice").await;
    let cell = app.cell(Region::Eu);

    // Issued by the CA but never registered.
    let stray = issue(&app, Region::Eu, "sf_alice", "stray");
    let r = app
        .get_with(&client(&app, &stray), "/v1/staff/device")
        .await;
    assert_problem(&r, 401, "device_unknown");

    // Registered, used, then revoked: the same client (and connection) is refused at once.
    let lost = issue(&app, Region::Eu, "sf_alice", "lost-phone");
    cell.register_staff_device(&lost).await.unwrap();
    let lost_client = client(&app, &lost);
    assert_eq!(
        app.get_with(&lost_client, "/v1/staff/device").await.status,
        200
    );
    assert!(cell.revoke_staff_device(&lost.serial).await.unwrap());
    let r = app.get_with(&lost_client, "/v1/staff/device").await;
    assert_problem(&r, 401, "device_revoked");
    let r = app.get_with(&client(&app, &lost), "/v1/staff/device").await;
    assert_problem(&r, 401, "device_revoked");

    // Expired by the store's record (the certificate itself is still in its validity
    // period, so the TLS layer lets it through and the request layer refuses it).
    let old = issue(&app, Region::Eu, "sf_alice", "old-laptop");
    cell.register_staff_device(&old).await.unwrap();
    sqlx::query("UPDATE staff_devices SET expires_at = $1 WHERE serial = $2")
        .bind(interlock_storage::now_ms() - 1)
        .bind(old.serial.as_str())
        .execute(cell.pool())
        .await
        .unwrap();
    let r = app.get_with(&client(&app, &old), "/v1/staff/device").await;
    assert_problem(&r, 401, "device_expired");
    app.stop().await;
}

/// A client certificate signed by a CA of our own making, with the client-auth usage.
fn foreign_device() -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "Interlock eu staff device CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name.push(DnType::CommonName, "sf_alice");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The handshake's own outcome, without HTTP: a plain rustls client presenting `cert_pem`
/// completes its side of the handshake, then reads. The server's verdict on the client
/// certificate arrives as the first thing to read (an alert, or session tickets then EOF on a
/// quiet connection), so this is deterministic where an HTTP client racing its request
/// against the alert is not. Returns the read error's text, or `None` if the server accepted.
fn handshake_refusal(app: &TestApp, cert_pem: &str, key_pem: &str) -> Option<String> {
    use std::io::Read;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let running = app.running.as_ref().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&running.cert_path).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let conn = rustls::ClientConnection::new(
        std::sync::Arc::new(cfg),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let sock = std::net::TcpStream::connect(running.addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut buf = [0u8; 256];
    match tls.read(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Some(e.to_string()),
        // Accepted: tickets arrive, then the server waits for a request (read times out).
        _ => None,
    }
}

/// Refused at the TLS layer: the handshake ends with the server's `UnknownCA` alert, and an
/// HTTP request through such a client fails with a transport error, never an answer.
async fn assert_refused_at_tls(app: &TestApp, cert_pem: &str, key_pem: &str, what: &str) {
    let alert = tokio::task::block_in_place(|| handshake_refusal(app, cert_pem, key_pem));
    assert!(
        alert.as_deref().is_some_and(|a| a.contains("UnknownCA")),
        "{what}: the handshake was not refused with UnknownCA: {alert:?}"
    );
    let err = app
        .client_with_certificate(cert_pem, key_pem)
        .get(format!("{}/v1/staff/device", app.base))
        .send()
        .await
        .err()
        .unwrap_or_else(|| panic!("{what}: the server answered instead of refusing the handshake"));
    assert!(err.status().is_none(), "{what}: {err:?}");
    assert!(err.is_connect() || err.is_request(), "{what}: {err:?}");
}

async fn foreign_certificates_fail_the_handshake(store: Store) {
    let app = TestApp::spawn_with(store, |s| s.regions = vec![Region::Eu]).await;
    staff_row(&app, Region::Eu, "sf_alice").await;

    let (cert, key) = foreign_device();
    assert_refused_at_tls(&app, &cert, &key, "a self-made CA").await;

    // The device CA of a region this process does not serve is not a root here, even though
    // it sits in the same key folder and its certificate is registered in no store at all.
    let us = DeviceCa::open_or_create(&app.settings.key_dir(), Region::Us)
        .unwrap()
        .issue("sf_alice", "us-laptop", 30)
        .unwrap();
    assert_refused_at_tls(&app, &us.cert_pem, &us.key_pem, "an unserved region's CA").await;

    // The server keeps serving everyone else.
    let r = app.get_with(&app.http, "/healthz").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let good = issue(&app, Region::Eu, "sf_alice", "alice-laptop");
    app.cell(Region::Eu)
        .register_staff_device(&good)
        .await
        .unwrap();
    let r = app.get_with(&client(&app, &good), "/v1/staff/device").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The same raw handshake that saw the alerts above completes for a device certificate.
    let accepted =
        tokio::task::block_in_place(|| handshake_refusal(&app, &good.cert_pem, &good.key_pem));
    assert_eq!(accepted, None);
    app.stop().await;
}

store_tests!(
    registered_device_reaches_the_device_route,
    revoked_unknown_and_expired_devices_are_refused,
    foreign_certificates_fail_the_handshake,
);
