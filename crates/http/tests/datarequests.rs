//! Data subject requests (access archives, erasure with signed receipts) and workspace
//! deletion (by the owner with re-authentication, by the operator, and by the inactivity rule
//! under a moved clock), on SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{PASSWORD, Store, TestApp, assert_problem, text};
use interlock_crypto::{AuditPublicKey, SignedDocument};
use interlock_storage::cell::{INACTIVITY_NOTICE_MS, RECEIPT_TYPE, WORKSPACE_MAX_IDLE_MS};
use interlock_storage::{Clock, OffsetClock};
use reqwest::Method;
use serde_json::{Value, json};

store_tests!(
    access_request_archives_everything_for_the_requester_only,
    erasure_is_immediate_signed_and_idempotent,
    workspace_deletion_by_owner_and_operator,
    inactive_workspaces_are_noticed_then_deleted,
);

/// Every file under `dir` whose bytes contain `needle` (as given, or lower-cased: emails are).
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = files_with(dir, needle);
    hits.extend(files_with(dir, &needle.to_ascii_lowercase()));
    hits
}

fn files_with(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

async fn region_key(app: &TestApp, region: &str) -> AuditPublicKey {
    let r = app
        .call(Method::GET, "/v1/activity-logs/public-key", None, None)
        .await;
    let k = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["region"] == region)
        .unwrap();
    AuditPublicKey::from_pem(&text(&k["public_key_pem"])).unwrap()
}

/// A contact with a conversation (two messages), an event and an attachment, each carrying
/// `marker`. Returns (contact id, conversation id).
async fn subject_with_data(app: &TestApp, token: &str, marker: &str) -> (String, String) {
    let contact = app
        .contact(
            token,
            json!({"email": format!("{marker}@example.com"), "name": marker, "external_id": marker}),
        )
        .await;
    let c = app
        .post(
            "/v1/conversations",
            token,
            json!({"contact_id": contact, "body": format!("hello {marker}")}),
        )
        .await;
    assert_eq!(c.status, 201, "{:?}", c.body);
    let conv = text(&c.body["id"]);
    let p = app
        .post(
            &format!("/v1/conversations/{conv}/parts"),
            token,
            json!({"body": format!("reply {marker}"), "author": {"type": "contact", "id": contact}}),
        )
        .await;
    assert_eq!(p.status, 201, "{:?}", p.body);
    let e = app
        .post(
            "/v1/events",
            token,
            json!({"contact_id": contact, "name": "paid", "metadata": {"note": marker}}),
        )
        .await;
    assert_eq!(e.status, 201, "{:?}", e.body);
    let up = app
        .http
        .post(format!(
            "{}/v1/conversations/{conv}/attachments?filename={marker}.txt",
            app.base
        ))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body(format!("file of {marker}"))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201);
    (contact, conv)
}

async fn access_request_archives_everything_for_the_requester_only(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_ws, token) = app.workspace("us").await;
    let marker = "QuillonAccess7731";
    let (contact, _conv) = subject_with_data(&app, &token, marker).await;

    // The subject is named exactly once.
    let r = app
        .post("/v1/data-requests", &token, json!({"type": "access"}))
        .await;
    assert_problem(&r, 422, "subject_required");
    let r = app
        .post(
            "/v1/data-requests",
            &token,
            json!({"type": "export", "contact_id": contact}),
        )
        .await;
    assert_problem(&r, 422, "invalid_type");
    let r = app
        .post(
            "/v1/data-requests",
            &token,
            json!({"type": "access", "email": "nobody@example.com"}),
        )
        .await;
    assert_problem(&r, 404, "subject_not_found");

    let r = app
        .post(
            "/v1/data-requests",
            &token,
            json!({"type": "access", "email": format!("{marker}@example.com")}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["contact_id"], contact.as_str());
    let id = text(&r.body["id"]);
    let url = text(&r.body["archive_url"]);
    assert_eq!(
        app.get(&format!("/v1/data-requests/{id}"), &token)
            .await
            .body["type"],
        "access"
    );
    // Encrypted at rest: the marker is in no file under the data dir.
    assert!(files_containing(&app.data_dir(), marker.as_bytes()).is_empty());

    let resp = app
        .http
        .get(format!("{}{url}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-tar");
    let tar_bytes = resp.bytes().await.unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut subject: Option<Value> = None;
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        if path == "subject.json" {
            subject = Some(serde_json::from_slice(&body).unwrap());
        } else {
            files.push((path, body));
        }
    }
    let doc = subject.unwrap();
    assert_eq!(doc["contact"]["id"], contact.as_str());
    assert_eq!(
        doc["contact"]["email"]["value"],
        format!("{}@example.com", marker.to_lowercase())
    );
    assert_eq!(
        doc["contact"]["email"]["data_category"],
        "user.contact.email"
    );
    let parts = doc["conversations"][0]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1]["body"]["value"], format!("reply {marker}"));
    assert_eq!(parts[1]["body"]["data_category"], "user.content.private");
    assert_eq!(doc["events"][0]["metadata"]["value"]["note"], marker);
    assert_eq!(files.len(), 1);
    assert!(files[0].0.ends_with(&format!("{marker}.txt")));
    assert_eq!(files[0].1, format!("file of {marker}").into_bytes());

    // Another principal of the workspace (a second token) cannot download it.
    let other = app
        .post(
            "/v1/api-tokens",
            &token,
            json!({"name": "dpo", "permissions": ["data_requests.handle"]}),
        )
        .await;
    assert_eq!(other.status, 201, "{:?}", other.body);
    let other = text(&other.body["token"]);
    assert_eq!(app.get(&url, &other).await.status, 404);
    // Another workspace sees nothing.
    let (_, token2) = app.workspace("us").await;
    assert_eq!(
        app.get(&format!("/v1/data-requests/{id}"), &token2)
            .await
            .status,
        404
    );
    // The download is in the activity log.
    let log = app
        .get("/v1/activity-logs?types=data.exported", &token)
        .await;
    assert_eq!(
        log.body["data"].as_array().unwrap().len(),
        1,
        "{:?}",
        log.body
    );

    // Erasing the subject makes the archive unavailable at once.
    let e = app.delete(&format!("/v1/contacts/{contact}"), &token).await;
    assert_eq!(e.status, 200, "{:?}", e.body);
    assert_eq!(
        e.body["receipt"]["document"]["deleted"]["access_archives"],
        1
    );
    assert_problem(&app.get(&url, &token).await, 410, "archive_expired");
    app.stop().await;
}

async fn erasure_is_immediate_signed_and_idempotent(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    let marker = "ZephyrErase4419";
    let (contact, conv) = subject_with_data(&app, &token, marker).await;
    let keep = "KeepMeIntact2208";
    let (kept, _) = subject_with_data(&app, &token, keep).await;

    let r = app
        .post(
            "/v1/data-requests",
            &token,
            json!({"type": "erasure", "external_id": marker}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["type"], "erasure");
    assert_eq!(r.body["status"], "completed");
    let receipt: SignedDocument = serde_json::from_value(r.body["receipt"].clone()).unwrap();
    let key = region_key(&app, "us").await;
    let doc = key.verify_document(&receipt, RECEIPT_TYPE).unwrap();
    assert_eq!(doc["subject"], contact.as_str());
    assert_eq!(doc["workspace_id"], ws.as_str());
    assert_eq!(doc["deleted"]["conversations"], 1);
    assert_eq!(doc["deleted"]["conversation_parts"], 2);
    assert_eq!(doc["deleted"]["events"], 1);
    assert_eq!(doc["deleted"]["attachments"], 1);
    assert_eq!(doc["deleted"]["blind_index_entries"], 2);
    assert!(!doc["destroyed_keys"].as_array().unwrap().is_empty());
    // A tampered receipt does not verify.
    let mut forged = receipt.clone();
    forged.document.insert(
        "subject".into(),
        json!("ct_00000000000000000000000000000000"),
    );
    assert!(key.verify_document(&forged, RECEIPT_TYPE).is_err());

    // Gone everywhere, at once.
    assert_eq!(
        app.get(&format!("/v1/contacts/{contact}"), &token)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&format!("/v1/conversations/{conv}"), &token)
            .await
            .status,
        404
    );
    let found = app
        .get(
            &format!("/v1/contacts?email={marker}%40example.com"),
            &token,
        )
        .await;
    assert!(
        found.body["data"].as_array().is_none_or(|d| d.is_empty()),
        "{:?}",
        found.body
    );
    assert!(
        files_containing(&app.data_dir(), marker.as_bytes()).is_empty(),
        "marker on disk"
    );
    // The other subject is intact.
    let k = app.get(&format!("/v1/contacts/{kept}"), &token).await;
    assert_eq!(k.status, 200);
    assert_eq!(k.body["name"], keep);

    // A repeat (by id, or with DELETE) answers with the same receipt.
    let again = app
        .post(
            "/v1/data-requests",
            &token,
            json!({"type": "erasure", "contact_id": contact}),
        )
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["id"], r.body["id"]);
    assert_eq!(again.body["receipt"], r.body["receipt"]);
    let del = app.delete(&format!("/v1/contacts/{contact}"), &token).await;
    assert_eq!(del.status, 200, "{:?}", del.body);
    assert_eq!(del.body["deleted"], true);
    assert_eq!(del.body["object"], "contact");
    assert_eq!(del.body["receipt"], r.body["receipt"]);
    // By email after erasure: nobody to find.
    let r2 = app
        .post(
            "/v1/data-requests",
            &token,
            json!({"type": "erasure", "email": format!("{marker}@example.com")}),
        )
        .await;
    assert_problem(&r2, 404, "subject_not_found");
    // Status and the log.
    let got = app
        .get(
            &format!("/v1/data-requests/{}", text(&r.body["id"])),
            &token,
        )
        .await;
    assert_eq!(got.body["receipt"], r.body["receipt"]);
    let log = app
        .get("/v1/activity-logs?types=data_request.completed", &token)
        .await;
    assert_eq!(
        log.body["data"].as_array().unwrap().len(),
        1,
        "{:?}",
        log.body
    );
    app.stop().await;
}

async fn workspace_deletion_by_owner_and_operator(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    let (other_ws, other_token) = app.workspace("us").await;
    let marker = "ObsidianWorkspace5150";
    subject_with_data(&app, &token, marker).await;
    let kept = app
        .contact(&other_token, json!({"email": "stays@example.com"}))
        .await;

    // Only an owner, with the password, confirming the id.
    app.teammate(&token, "owner@example.com", "owner").await;
    app.teammate(&token, "admin@example.com", "admin").await;
    let admin = app.sign_in(&ws, "admin@example.com").await;
    let r = app
        .as_session(
            &admin,
            Method::DELETE,
            "/v1/workspace",
            Some(json!({"confirm": ws, "password": PASSWORD})),
            true,
        )
        .await;
    assert_problem(&r, 403, "owner_required");
    let owner = app.sign_in(&ws, "owner@example.com").await;
    let r = app
        .as_session(
            &owner,
            Method::DELETE,
            "/v1/workspace",
            Some(json!({"confirm": ws, "password": "wrong-password-123456"})),
            true,
        )
        .await;
    assert_problem(&r, 401, "invalid_credentials");
    let r = app
        .as_session(
            &owner,
            Method::DELETE,
            "/v1/workspace",
            Some(json!({"confirm": other_ws, "password": PASSWORD})),
            true,
        )
        .await;
    assert_problem(&r, 422, "confirmation_mismatch");
    // An API token cannot.
    let r = app
        .call(
            Method::DELETE,
            "/v1/workspace",
            Some(&token),
            Some(json!({"confirm": ws, "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 401, "{:?}", r.body);

    let r = app
        .as_session(
            &owner,
            Method::DELETE,
            "/v1/workspace",
            Some(json!({"confirm": ws, "password": PASSWORD})),
            true,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let receipt: SignedDocument = serde_json::from_value(r.body["receipt"].clone()).unwrap();
    let doc = region_key(&app, "us")
        .await
        .verify_document(&receipt, RECEIPT_TYPE)
        .unwrap()
        .clone();
    assert_eq!(doc["workspace_id"], ws.as_str());
    assert_eq!(doc["reason"], "owner");

    // Every credential is refused; the other workspace is unaffected.
    assert_eq!(app.get("/v1/contacts", &token).await.status, 401);
    assert_eq!(
        app.as_session(&owner, Method::GET, "/v1/contacts", None, false)
            .await
            .status,
        401
    );
    assert_eq!(
        app.get(&format!("/v1/contacts/{kept}"), &other_token)
            .await
            .status,
        200
    );
    let list = app
        .get("/v1/operator/workspaces?region=us", &app.operator)
        .await;
    let ids: Vec<String> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| text(&w["id"]))
        .collect();
    assert!(!ids.contains(&ws) && ids.contains(&other_ws), "{ids:?}");
    // The purge follows: the marker leaves the disk.
    let mut clean = false;
    for _ in 0..50 {
        if files_containing(&app.data_dir(), marker.as_bytes()).is_empty()
            && !app
                .cell(interlock_domain::Region::Us)
                .workspace_live(&interlock_domain::WorkspaceId::parse(&ws).unwrap())
                .await
                .unwrap()
        {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(clean);
    // The operator deletes the other one; a repeat is 410.
    let r = app
        .delete(
            &format!("/v1/operator/workspaces/{other_ws}"),
            &app.operator,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["receipt"]["document"]["reason"], "operator");
    assert_problem(
        &app.delete(
            &format!("/v1/operator/workspaces/{other_ws}"),
            &app.operator,
        )
        .await,
        410,
        "workspace_deleted",
    );
    assert_eq!(app.get("/v1/contacts", &other_token).await.status, 401);
    // A workspace token cannot use the operator route.
    let (_, third) = app.workspace("us").await;
    assert_eq!(
        app.delete(&format!("/v1/operator/workspaces/{other_ws}"), &third)
            .await
            .status,
        401
    );
    app.stop().await;
}

async fn inactive_workspaces_are_noticed_then_deleted(store: Store) {
    let clock = Arc::new(OffsetClock::new(0));
    let c = clock.clone();
    let app = TestApp::spawn_with(store, move |s| {
        s.retention.sweep_every_s = 1;
        s.clock = c;
    })
    .await;
    let (idle_ws, idle_token) = app.workspace("us").await;
    let (busy_ws, busy_token) = app.workspace("us").await;
    let cell = app.cell(interlock_domain::Region::Us);
    let idle = interlock_domain::WorkspaceId::parse(&idle_ws).unwrap();
    let busy = interlock_domain::WorkspaceId::parse(&busy_ws).unwrap();
    let noticed = |ws: interlock_domain::WorkspaceId| {
        let cell = cell.clone();
        async move { cell.workspace_activity(&ws).await.unwrap().1 }
    };

    // 13 months minus 90 days on: both workspaces' owners are told.
    clock.set_offset(WORKSPACE_MAX_IDLE_MS - INACTIVITY_NOTICE_MS + 86_400_000);
    let mut both = false;
    for _ in 0..50 {
        if noticed(idle.clone()).await.is_some() && noticed(busy.clone()).await.is_some() {
            both = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(both, "no inactivity notices");
    let log = app
        .get(
            "/v1/activity-logs?types=workspace.inactivity_notice",
            &busy_token,
        )
        .await;
    assert_eq!(
        log.body["data"].as_array().unwrap().len(),
        1,
        "{:?}",
        log.body
    );
    assert_eq!(log.body["data"][0]["actor"]["type"], "system");
    // Any use withdraws the notice (that request just did). The server's own clock is real
    // time, so record the use at the moved time too, or the next sweep sees it as old.
    cell.set_workspace_last_active(&busy, clock.now_ms())
        .await
        .unwrap();
    assert!(noticed(busy.clone()).await.is_none());

    // 13 months on: only the idle workspace is deleted.
    clock.set_offset(WORKSPACE_MAX_IDLE_MS + 86_400_000);
    let mut gone = false;
    for _ in 0..50 {
        if !cell.workspace_live(&idle).await.unwrap() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "the idle workspace was not deleted");
    assert!(cell.workspace_live(&busy).await.unwrap());
    assert_eq!(app.get("/v1/contacts", &idle_token).await.status, 401);
    assert_eq!(app.get("/v1/contacts", &busy_token).await.status, 200);
    app.stop().await;
}
