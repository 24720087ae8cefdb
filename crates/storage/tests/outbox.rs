//! The outbox at the storage level, on both stores: creating a contact enqueues `contact.created`
//! only for subscriptions to it (in the contact's transaction); a registry change enqueues
//! `subprocessors.changed` for subscribed workspaces; claims are exclusive and record
//! disclosures; `erasure_notice_stmts` notifies exactly the sub-processors that may have received
//! the subject's data, with a notice that verifies with the region's public key, deletes the
//! subject's deliveries and disclosures, and refuses to commit if a disclosure appeared meanwhile.

#![allow(clippy::unwrap_used)]

mod common;

use interlock_crypto::SignedDocument;
use interlock_crypto::audit::AuditSigningKey;
use interlock_domain::{
    ActivityType, Actor, ContactId, ContactRole, CustomAttributes, DeliveryId, Email, NewActivity,
    NewContact, PersonName, Region, SubprocessorId, Target, WorkspaceId,
};
use interlock_storage::cell::{
    DeliveryInfo, DeliveryOutcome, ERASURE_NOTICE_TYPE, OutboundMessage, RegistryChange,
    SubprocessorInput,
};
use interlock_storage::{Backend, Cell, CellConfig, StoreError, now_ms};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite {
        path: dir.path().join("eu.db"),
    };
    outbox(backend, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::PgDb::create("outbox").await;
    let url = db.url.clone();
    outbox(Backend::Postgres { url }, dir.path()).await;
    db.drop().await;
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn sp_input(name: &str, host: &str, regions: &[&str]) -> SubprocessorInput {
    SubprocessorInput::new(
        name,
        "Receives webhooks",
        &strings(&["user.contact.email", "user.name"]),
        &strings(regions),
        &strings(&[host]),
        &format!("https://{host}/erasure"),
        host,
    )
    .unwrap()
}

fn person(email: &str) -> NewContact {
    NewContact {
        role: ContactRole::User,
        external_id: None,
        email: Some(Email::parse(email).unwrap()),
        name: Some(PersonName::parse("Outbox Person").unwrap()),
        phone: None,
        custom_attributes: CustomAttributes::default(),
    }
}

fn act(kind: ActivityType) -> NewActivity {
    NewActivity::new(kind, &Actor::system(), Target::kind("webhook"))
}

async fn hook(cell: &Cell, ws: &WorkspaceId, host: &str, events: &[&str]) {
    cell.create_webhook(
        ws,
        &format!("https://{host}/hooks?token=t"),
        host,
        &strings(events),
        &act(ActivityType::WebhookCreated),
    )
    .await
    .unwrap();
}

/// The pending webhook deliveries of a workspace carrying `subject`.
async fn carrying(cell: &Cell, ws: &WorkspaceId, subject: &ContactId) -> Vec<DeliveryInfo> {
    cell.deliveries(ws, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.subject_id.as_deref() == Some(subject.as_str()))
        .collect()
}

async fn open(cell: &Cell, ws: &WorkspaceId, id: &DeliveryId) -> OutboundMessage {
    cell.open_delivery(ws, id).await.unwrap().unwrap()
}

/// Which sub-processor's hook a delivery goes to, by its URL.
fn url_of(m: &OutboundMessage) -> String {
    m.destination.as_ref().unwrap().url.to_string()
}

async fn outbox(backend: Backend, dir: &std::path::Path) {
    let cell = Cell::open(CellConfig {
        region: Region::Eu,
        backend,
        key_dir: dir.join("keys"),
        blob_dir: dir.join("blobs"),
    })
    .await
    .unwrap();
    let public = AuditSigningKey::load_or_create(&dir.join("keys"), Region::Eu)
        .unwrap()
        .public_key();

    // Three sub-processors of this region.
    let (a, b, c) = (
        SubprocessorId::new(),
        SubprocessorId::new(),
        SubprocessorId::new(),
    );
    let now = now_ms();
    for (id, name, host) in [
        (&a, "Alpha", "a.example"),
        (&b, "Bravo", "b.example"),
        (&c, "Charlie", "c.example"),
    ] {
        let change = cell
            .apply_subprocessor(id, Some(&sp_input(name, host, &["eu"])), now)
            .await
            .unwrap();
        assert_eq!(change, Some(RegistryChange::Added));
    }
    // One registered for another region only has no row here.
    let other = SubprocessorId::new();
    assert_eq!(
        cell.apply_subprocessor(
            &other,
            Some(&sp_input("Us only", "us.example", &["us"])),
            now
        )
        .await
        .unwrap(),
        None
    );
    assert_eq!(cell.subprocessors().await.unwrap().len(), 3);

    let (w, _) = cell.create_workspace("Outbox").await.unwrap();
    let ws = w.id;
    // A subscription's host must be a registered sub-processor's (of this region).
    let refused = cell
        .create_webhook(
            &ws,
            "https://us.example/h",
            "us.example",
            &strings(&["contact.created"]),
            &act(ActivityType::WebhookCreated),
        )
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(e)) if e.code == "host_not_a_subprocessor"),
        "{refused:?}"
    );
    // Nothing subscribed: creating a contact enqueues nothing.
    let nobody = cell
        .create_contact(&ws, person("n@example.com"))
        .await
        .unwrap();
    assert!(cell.deliveries(&ws, 100).await.unwrap().is_empty());

    hook(&cell, &ws, "a.example", &["contact.created"]).await;
    hook(
        &cell,
        &ws,
        "b.example",
        &["contact.created", "subprocessors.changed"],
    )
    .await;
    hook(&cell, &ws, "c.example", &["subprocessors.changed"]).await;

    // contact.created goes to the two subscriptions to it, carrying the subject.
    let x = cell
        .create_contact(&ws, person("x@example.com"))
        .await
        .unwrap();
    let xs = carrying(&cell, &ws, &x.id).await;
    assert_eq!(xs.len(), 2, "{xs:?}");
    for d in &xs {
        assert_eq!(
            (d.kind.as_str(), d.event.as_str(), d.status.as_str()),
            ("webhook", "contact.created", "pending")
        );
        let m = open(&cell, &ws, &d.id).await;
        let body: Value = serde_json::from_slice(&m.destination.as_ref().unwrap().body).unwrap();
        assert_eq!(body["type"], "contact.created");
        assert_eq!(body["id"], d.id.as_str());
        assert_eq!(body["workspace_id"], ws.as_str());
        assert_eq!(body["data"]["id"], x.id.as_str());
        assert_eq!(body["data"]["email"], "x@example.com");
        assert!(m.destination.as_ref().unwrap().secret.is_some());
    }
    // The body is sealed at rest: the email is not in the row.
    let raw: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload_ct FROM outbox WHERE subject_id = $1")
            .bind(x.id.as_str())
            .fetch_all(cell.pool())
            .await
            .unwrap();
    assert_eq!(raw.len(), 2);
    for r in &raw {
        assert!(!r.windows(13).any(|w| w == b"x@example.com"));
    }
    let _ = nobody;

    // The delivery to Alpha is claimed (disclosure recorded) and delivered; a second claim
    // of the same attempt loses. The one to Bravo is refused by the gate: no disclosure.
    let mut to_a = None;
    let mut to_b = None;
    for d in &xs {
        let m = open(&cell, &ws, &d.id).await;
        if url_of(&m).contains("a.example") {
            to_a = Some(m);
        } else {
            to_b = Some(m);
        }
    }
    let (to_a, to_b) = (to_a.unwrap(), to_b.unwrap());
    assert!(
        cell.claim_delivery(&to_a, now_ms() + 60_000, std::slice::from_ref(&a))
            .await
            .unwrap()
    );
    assert!(
        !cell
            .claim_delivery(&to_a, now_ms() + 60_000, std::slice::from_ref(&a))
            .await
            .unwrap()
    );
    cell.finish_delivery(&to_a, to_a.attempts + 1, &DeliveryOutcome::Delivered)
        .await
        .unwrap();
    cell.finish_delivery(
        &to_b,
        to_b.attempts,
        &DeliveryOutcome::Refused {
            error: "host_not_a_subprocessor".into(),
            host: Some("b.example".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        cell.subject_disclosures(&ws, &x.id).await.unwrap(),
        std::slice::from_ref(&a)
    );
    let after: Vec<(String, i64)> = carrying(&cell, &ws, &x.id)
        .await
        .into_iter()
        .map(|d| (d.status, d.attempts))
        .collect();
    assert!(
        after.contains(&("delivered".into(), 1)) && after.contains(&("refused".into(), 0)),
        "{after:?}"
    );
    // Ended deliveries lose their bodies.
    let bodies: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE subject_id = $1 AND payload_ct IS NOT NULL",
    )
    .bind(x.id.as_str())
    .fetch_one(cell.pool())
    .await
    .unwrap();
    assert_eq!(bodies, 0);
    // The refusal is in the workspace's activity log.
    let log = cell
        .list_activity(
            &ws,
            &interlock_storage::ActivityFilter {
                types: vec![ActivityType::OutboundRefused],
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].entry.metadata["host"], "b.example");
    assert_eq!(log[0].entry.target.id.as_deref(), Some(to_b.id.as_str()));

    // Another subject, whose deliveries are still pending.
    let y = cell
        .create_contact(&ws, person("y@example.com"))
        .await
        .unwrap();
    assert_eq!(carrying(&cell, &ws, &y.id).await.len(), 2);

    // Erasing X: a notice to Alpha only (Bravo was refused, Charlie never sent X's data).
    let (stmts, names) = cell
        .erasure_notice_stmts(&ws, &x.id, "dr_test_1", 1_700_000_000_000)
        .await
        .unwrap();
    assert_eq!(names, ["Alpha"]);
    cell.writer().write(stmts).await.unwrap();
    assert!(carrying(&cell, &ws, &x.id).await.is_empty());
    assert!(
        cell.subject_disclosures(&ws, &x.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        carrying(&cell, &ws, &y.id).await.len(),
        2,
        "Y's deliveries untouched"
    );
    let notices: Vec<DeliveryInfo> = cell
        .deliveries(&ws, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.kind == "erasure_notice")
        .collect();
    assert_eq!(notices.len(), 1);
    let n = &notices[0];
    assert_eq!(n.subprocessor_id.as_deref(), Some(a.as_str()));
    assert_eq!(n.subject_id, None);
    let signed: SignedDocument = serde_json::from_str(n.document.as_deref().unwrap()).unwrap();
    let doc = public
        .verify_document(&signed, ERASURE_NOTICE_TYPE)
        .unwrap();
    assert_eq!(doc["workspace_id"], ws.as_str());
    assert_eq!(doc["subject"], x.id.as_str());
    assert_eq!(doc["request_id"], "dr_test_1");
    assert_eq!(doc["erased_at_ms"], 1_700_000_000_000i64);
    assert_eq!(doc["subprocessor"], a.as_str());
    // Pseudonymous only.
    assert!(!n.document.as_deref().unwrap().contains("x@example.com"));
    // The notice goes to Alpha's notice URL, as the signed document.
    let m = open(&cell, &ws, &n.id).await;
    let out = m.destination.as_ref().unwrap();
    assert_eq!(out.url.as_str(), "https://a.example/erasure");
    assert_eq!(
        serde_json::from_slice::<SignedDocument>(&out.body).unwrap(),
        signed
    );
    assert!(out.secret.is_none());

    // Y: a delivery to Bravo is claimed; while Y's erasure is being prepared, the one to
    // Alpha is claimed too: the prepared unit must not commit.
    let ys = carrying(&cell, &ws, &y.id).await;
    let (mut y_a, mut y_b) = (None, None);
    for d in &ys {
        let m = open(&cell, &ws, &d.id).await;
        if url_of(&m).contains("a.example") {
            y_a = Some(m);
        } else {
            y_b = Some(m);
        }
    }
    let (y_a, y_b) = (y_a.unwrap(), y_b.unwrap());
    assert!(
        cell.claim_delivery(&y_b, now_ms() + 60_000, std::slice::from_ref(&b))
            .await
            .unwrap()
    );
    let (stale, names) = cell
        .erasure_notice_stmts(&ws, &y.id, "dr_test_2", now_ms())
        .await
        .unwrap();
    assert_eq!(names, ["Bravo"]);
    assert!(
        cell.claim_delivery(&y_a, now_ms() + 60_000, std::slice::from_ref(&a))
            .await
            .unwrap()
    );
    assert!(matches!(
        cell.writer().write(stale).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(cell.subject_disclosures(&ws, &y.id).await.unwrap().len(), 2);
    // Prepared again, it names both. A de-registered one cannot be notified.
    cell.apply_subprocessor(&b, None, 0).await.unwrap();
    let (stmts, names) = cell
        .erasure_notice_stmts(&ws, &y.id, "dr_test_2", now_ms())
        .await
        .unwrap();
    assert_eq!(names, ["Alpha"]);
    cell.writer().write(stmts).await.unwrap();
    assert!(
        cell.subject_disclosures(&ws, &y.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(carrying(&cell, &ws, &y.id).await.is_empty());

    // Removing Bravo told the subscribers of subprocessors.changed (Bravo's and Charlie's
    // hooks), once each, with what changed.
    let changed: Vec<DeliveryInfo> = cell
        .deliveries(&ws, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.event == "subprocessors.changed")
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    for d in &changed {
        assert_eq!(d.subject_id, None);
        let m = open(&cell, &ws, &d.id).await;
        let body: Value = serde_json::from_slice(&m.destination.as_ref().unwrap().body).unwrap();
        assert_eq!(body["data"]["action"], "removed");
        assert_eq!(body["data"]["region"], "eu");
        assert_eq!(body["data"]["subprocessor"]["id"], b.as_str());
        assert_eq!(body["data"]["subprocessor"]["hosts"][0], "b.example");
    }
    // An update is "updated"; the registry keeps the first registration time.
    let before = cell.subprocessor(&a).await.unwrap().unwrap();
    assert_eq!(
        cell.apply_subprocessor(
            &a,
            Some(&sp_input("Alpha 2", "a.example", &["eu", "us"])),
            0
        )
        .await
        .unwrap(),
        Some(RegistryChange::Updated)
    );
    let after = cell.subprocessor(&a).await.unwrap().unwrap();
    assert_eq!(after.name, "Alpha 2");
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.regions, [Region::Us, Region::Eu]);

    // Deleting a subscription cancels its pending deliveries.
    let pending_before = cell
        .deliveries(&ws, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.status == "pending" && d.kind == "webhook")
        .count();
    assert!(pending_before > 0);
    for h in cell.list_webhooks(&ws).await.unwrap() {
        cell.delete_webhook(&ws, &h.id, &act(ActivityType::WebhookDeleted))
            .await
            .unwrap();
    }
    assert!(
        cell.deliveries(&ws, 100)
            .await
            .unwrap()
            .iter()
            .filter(|d| d.kind == "webhook")
            .all(|d| d.status != "pending")
    );
    // Pruning removes ended deliveries only.
    let pending = cell
        .deliveries(&ws, 100)
        .await
        .unwrap()
        .iter()
        .filter(|d| d.status == "pending")
        .count();
    assert_eq!(pending, 2, "the two erasure notices");
    cell.prune_outbox(now_ms() + 1).await.unwrap();
    let left = cell.deliveries(&ws, 100).await.unwrap();
    assert_eq!(left.len(), pending);
    assert!(left.iter().all(|d| d.status == "pending"));
    cell.close().await;
}
