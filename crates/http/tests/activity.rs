//! The activity log end to end: coverage of security-relevant actions (each entry committed
//! with its action), the entry shape with no personal data in clear, filters and pagination,
//! exports that verify offline and fail on every kind of tampering, checkpoints, stored-chain
//! verification, the retention cut, and SIEM/checkpoint sinks. SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::time::Duration;

use common::text as s;
use common::{Store, TestApp, assert_problem};
use interlock_crypto::audit::{AuditPublicKey, verify_export};
use interlock_domain::{Region, WorkspaceId};
use reqwest::Method;
use serde_json::{Value, json};

store_tests!(
    actions_are_logged_without_personal_data,
    denied_destructive_attempts_are_logged,
    queries_filter_and_paginate,
    exports_verify_and_tampering_is_caught,
    stored_chain_checkpoints_and_tampering,
    retention_cut_keeps_the_chain_verifiable,
    a_failed_append_fails_the_action,
    sinks_receive_entries_and_checkpoints,
);

const EMAIL_MARKER: &str = "zebra-marker-77@example.com";
const NAME_MARKER: &str = "Quixotic Marker Person";

async fn all_entries(app: &TestApp, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/activity-logs?per_page=100&cursor={c}"),
            None => "/v1/activity-logs?per_page=100".to_owned(),
        };
        let r = app.get(&path, token).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        out.extend(r.body["data"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out
}

fn of_type<'a>(entries: &'a [Value], t: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["type"] == t).collect()
}

async fn export(app: &TestApp, token: &str, query: &str) -> (reqwest::StatusCode, String, Vec<u8>) {
    let resp = app
        .http
        .get(format!("{}/v1/activity-logs/export{query}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ctype, resp.bytes().await.unwrap().to_vec())
}

async fn public_key(app: &TestApp, region: &str) -> AuditPublicKey {
    let r = app
        .call(Method::GET, "/v1/activity-logs/public-key", None, None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let key = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["region"] == region)
        .unwrap()
        .clone();
    assert_eq!(key["algorithm"], "Ed25519");
    let parsed = AuditPublicKey::from_pem(key["public_key_pem"].as_str().unwrap()).unwrap();
    assert_eq!(parsed.key_id(), s(&key["key_id"]));
    parsed
}

async fn actions_are_logged_without_personal_data(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    // Teammates: invited + joined, a failed and a good sign-in, a role change, removal.
    let tm = app.teammate(&token, "ann@example.com", "agent").await;
    let bad = app
        .anon(
            Method::POST,
            "/v1/auth/login",
            json!({"workspace_id": ws, "email": "ann@example.com", "password": "wrong-password-here-1"}),
        )
        .await;
    assert_eq!(bad.status, 401);
    let sess = app.sign_in(&ws, "ann@example.com").await;
    let out = app
        .as_session(&sess, Method::POST, "/v1/auth/logout", None, true)
        .await;
    assert_eq!(out.status, 204);
    let r = app
        .patch(
            &format!("/v1/teammates/{tm}"),
            &token,
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Roles, tokens, settings, secrets.
    let role = app
        .post(
            "/v1/roles",
            &token,
            json!({"name": "Auditors", "permissions": ["activity_log.read"]}),
        )
        .await;
    assert_eq!(role.status, 201, "{:?}", role.body);
    let rid = s(&role.body["id"]);
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/roles/{rid}"),
            Some(&token),
            Some(
                json!({"name": "Auditors", "permissions": ["activity_log.read", "contacts.read"]}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app.delete(&format!("/v1/roles/{rid}"), &token).await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let tk = app
        .post(
            "/v1/api-tokens",
            &token,
            json!({"name": "ci", "permissions": ["contacts.read"]}),
        )
        .await;
    assert_eq!(tk.status, 201, "{:?}", tk.body);
    let tkid = s(&tk.body["id"]);
    let r = app.delete(&format!("/v1/api-tokens/{tkid}"), &token).await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = app
        .put("/v1/workspace/security", &token, json!({"require_two_factor": true, "session_idle_s": 1800, "session_absolute_s": 43200, "ip_allowlist": []}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let sec = app
        .post(
            "/v1/messenger/secrets",
            &token,
            json!({"name": "web", "platforms": ["web"]}),
        )
        .await;
    assert_eq!(sec.status, 201, "{:?}", sec.body);
    let r = app
        .put(
            "/v1/workspace/messenger",
            &token,
            json!({"identity_verification": "enforced"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .put(
            "/v1/workspace/messenger",
            &token,
            json!({"identity_verification": "optional"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .delete(
            &format!("/v1/messenger/secrets/{}", s(&sec.body["id"])),
            &token,
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    // Data: a contact with a conversation, then a conversation deletion and the contact's.
    let ct = app
        .contact(&token, json!({"email": EMAIL_MARKER, "name": NAME_MARKER}))
        .await;
    let cv = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": ct, "body": "first message"}),
        )
        .await;
    assert_eq!(cv.status, 201, "{:?}", cv.body);
    let cv2 = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": ct, "body": "second message"}),
        )
        .await;
    let r = app
        .delete(&format!("/v1/conversations/{}", s(&cv2.body["id"])), &token)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"id": s(&cv2.body["id"]), "deleted": true}));
    let r = app.delete(&format!("/v1/contacts/{ct}"), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["id"], ct.as_str());
    assert_eq!(r.body["deleted"], true);
    assert_eq!(r.body["receipt"]["document"]["subject"], ct.as_str());
    let gone = app.get(&format!("/v1/contacts/{ct}"), &token).await;
    assert_problem(&gone, 404, "not_found");
    let gone = app
        .get(&format!("/v1/conversations/{}", s(&cv.body["id"])), &token)
        .await;
    assert_problem(&gone, 404, "not_found");
    // Erasure is idempotent: a repeat answers with the first receipt.
    let again = app.delete(&format!("/v1/contacts/{ct}"), &token).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["receipt"], r.body["receipt"]);
    let r = app.delete(&format!("/v1/teammates/{tm}"), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let entries = all_entries(&app, &token).await;
    for t in [
        "teammate.invited",
        "teammate.joined",
        "auth.sign_in.failed",
        "auth.sign_in.succeeded",
        "auth.signed_out",
        "teammate.role_changed",
        "role.created",
        "role.updated",
        "role.deleted",
        "api_token.created",
        "api_token.revoked",
        "settings.security.updated",
        "messenger.secret.created",
        "settings.messenger.updated",
        "messenger.secret.deleted",
        "conversation.deleted",
        "contact.deleted",
        "teammate.removed",
    ] {
        assert!(
            !of_type(&entries, t).is_empty(),
            "no {t} entry in {entries:#?}"
        );
    }
    // Shape: the deletion names the actor (the API token) and the pseudonymous target.
    let del = of_type(&entries, "contact.deleted")[0];
    assert_eq!(del["actor"]["type"], "api_token");
    assert!(s(&del["actor"]["id"]).starts_with("tk_"), "{del:?}");
    assert_eq!(del["actor"]["ip"], "127.0.0.1");
    assert_eq!(del["target"], json!({"type": "contact", "id": ct}));
    assert_eq!(del["metadata"]["conversations"], 1);
    assert_eq!(del["metadata"]["subject_keys_destroyed"], 1);
    for key in [
        "id",
        "type",
        "created_at",
        "actor",
        "target",
        "metadata",
        "seq",
        "hash",
    ] {
        assert!(del.get(key).is_some(), "{key} missing in {del:?}");
    }
    // Before and after values of a settings change; a role change names both roles.
    let ms = of_type(&entries, "settings.messenger.updated");
    assert!(ms.iter().any(
        |e| e["metadata"]["after"]["identity_verification"] == "enforced"
            && e["metadata"]["before"]["identity_verification"] == "optional"
    ));
    let rc = of_type(&entries, "teammate.role_changed")[0];
    assert_eq!(rc["metadata"]["before"], "agent");
    assert_eq!(rc["metadata"]["after"], "viewer");
    let signin = of_type(&entries, "auth.sign_in.succeeded")[0];
    assert_eq!(
        signin["actor"],
        json!({"type": "teammate", "id": tm, "ip": "127.0.0.1", "user_agent": null})
    );
    let failed = of_type(&entries, "auth.sign_in.failed")[0];
    assert_eq!(failed["metadata"]["reason"], "bad_password");
    // No personal data of the erased contact anywhere in the log or its export.
    let listing = serde_json::to_string(&entries).unwrap();
    let (status, _, body) = export(&app, &token, "").await;
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    for marker in [EMAIL_MARKER, NAME_MARKER, "ann@example.com"] {
        assert!(!listing.contains(marker), "{marker} in the log");
        assert!(!body.contains(marker), "{marker} in the export");
    }
    // The event-type catalogue is served.
    let cat = app
        .call(Method::GET, "/v1/activity-log-event-types", None, None)
        .await;
    assert_eq!(cat.status, 200);
    let names: Vec<String> = cat.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| s(&t["name"]))
        .collect();
    for e in &entries {
        assert!(
            names.contains(&s(&e["type"])),
            "{} not catalogued",
            e["type"]
        );
    }
    app.stop().await;
}

async fn denied_destructive_attempts_are_logged(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_ws, token) = app.workspace("us").await;
    let ct = app
        .contact(&token, json!({"email": "kim@example.com"}))
        .await;
    let tk = app
        .post(
            "/v1/api-tokens",
            &token,
            json!({"name": "reader", "permissions": ["contacts.read"]}),
        )
        .await;
    let reader = s(&tk.body["token"]);
    let r = app.delete(&format!("/v1/contacts/{ct}"), &reader).await;
    assert_problem(&r, 403, "permission_denied");
    // A refused read is not logged; only state-changing attempts are.
    let r = app.get("/v1/teammates", &reader).await;
    assert_problem(&r, 403, "permission_denied");
    // Reading the log itself needs activity_log.read.
    let r = app.get("/v1/activity-logs", &reader).await;
    assert_problem(&r, 403, "permission_denied");
    let (status, _, _) = export(&app, &reader, "").await;
    assert_eq!(status, 403);
    let denied: Vec<Value> = all_entries(&app, &token)
        .await
        .into_iter()
        .filter(|e| e["type"] == "access.denied")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0]["metadata"]["permission"], "contacts.delete");
    assert_eq!(denied[0]["metadata"]["method"], "DELETE");
    assert_eq!(denied[0]["metadata"]["route"], "/v1/contacts/{id}");
    assert_eq!(denied[0]["actor"]["id"], tk.body["id"]);
    // The contact is still there.
    assert_eq!(
        app.get(&format!("/v1/contacts/{ct}"), &token).await.status,
        200
    );
    app.stop().await;
}

async fn queries_filter_and_paginate(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_ws, token) = app.workspace("us").await;
    let (_ws2, other) = app.workspace("us").await;
    for i in 0..5 {
        let r = app
            .post(
                "/v1/api-tokens",
                &token,
                json!({"name": format!("t{i}"), "permissions": ["contacts.read"]}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let ct = app
        .contact(&token, json!({"email": "lee@example.com"}))
        .await;
    app.delete(&format!("/v1/contacts/{ct}"), &token).await;
    // Pages of 2, newest first, no duplicates, and the other workspace sees none of it.
    let mut seen = Vec::new();
    let mut cursor = None::<String>;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/activity-logs?per_page=2&cursor={c}"),
            None => "/v1/activity-logs?per_page=2".into(),
        };
        let r = app.get(&path, &token).await;
        assert_eq!(r.status, 200);
        for e in r.body["data"].as_array().unwrap() {
            seen.push(e["seq"].as_i64().unwrap());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    // Five tokens, then the erasure's three entries.
    assert_eq!(seen, (1..=8).rev().collect::<Vec<i64>>());
    let r = app.get("/v1/activity-logs", &other).await;
    assert_eq!(r.body["data"], json!([]));
    // By type and by actor.
    let r = app
        .get(
            "/v1/activity-logs?types=contact.deleted,role.created",
            &token,
        )
        .await;
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["type"], "contact.deleted");
    let actor = s(&data[0]["actor"]["id"]);
    let r = app
        .get(&format!("/v1/activity-logs?actor_id={actor}"), &token)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 8);
    let r = app
        .get(
            "/v1/activity-logs?actor_id=tk_00000000000000000000000000000000",
            &token,
        )
        .await;
    assert_eq!(r.body["data"], json!([]));
    // By time.
    let now = interlock_storage::now_ms() / 1000;
    let r = app
        .get(&format!("/v1/activity-logs?after={}", now + 3600), &token)
        .await;
    assert_eq!(r.body["data"], json!([]));
    let r = app
        .get(
            &format!(
                "/v1/activity-logs?after={}&before={}",
                now - 3600,
                now + 3600
            ),
            &token,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 8);
    // Bad input: clear 400s.
    for (q, code) in [
        ("types=contact.exploded", "unknown_event_type"),
        ("after=10&before=5", "invalid_query"),
        ("after=-1", "invalid_query"),
        ("per_page=0", "invalid_query"),
        ("cursor=%%%", "invalid_cursor"),
        ("cursor=YWJj", "invalid_cursor"),
        ("actor_id=x%27%20OR%201%3D1", "invalid_query"),
        ("colour=red", "invalid_query"),
    ] {
        let r = app.get(&format!("/v1/activity-logs?{q}"), &token).await;
        assert_problem(&r, 400, code);
    }
    let r = app.get("/v1/activity-logs/export?format=xml", &token).await;
    assert_problem(&r, 400, "unsupported_format");
    app.stop().await;
}

/// Lines of a JSONL export, without the trailing empty string.
fn lines(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

async fn exports_verify_and_tampering_is_caught(store: Store) {
    let app = TestApp::spawn_with(store, |s| {
        s.activity.checkpoint_every_entries = 3;
        s.activity.checkpoint_every_s = 1;
    })
    .await;
    let (_ws, token) = app.workspace("us").await;
    for i in 0..8 {
        app.post(
            "/v1/api-tokens",
            &token,
            json!({"name": format!("t{i}"), "permissions": ["contacts.read"]}),
        )
        .await;
    }
    // Let the periodic checkpoints land, so the export interleaves them.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let key = public_key(&app, "us").await;
    let (status, ctype, body) = export(&app, &token, "").await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "application/x-ndjson");
    let summary = verify_export(&body, &key).expect("the untouched export verifies");
    assert_eq!(summary.first_seq, 1);
    assert!(summary.entries >= 9, "{summary:?}");
    assert!(summary.checkpoints >= 2, "{summary:?}");
    let ls = lines(&body);
    let entry_lines: Vec<usize> = (0..ls.len())
        .filter(|i| ls[*i].starts_with("{\"seq\""))
        .collect();
    assert!(ls.iter().any(|l| l.starts_with("{\"checkpoint\"")));
    // The export records itself.
    assert!(ls.iter().any(|l| l.contains("activity_log.exported")));
    // Editing any field of one entry line.
    let target = entry_lines[2];
    for (from, to) in [
        ("api_token.created", "api_token.revoked"),
        ("\"127.0.0.1\"", "\"127.0.0.2\""),
        ("\"api_token\"", "\"teammate\""),
        ("contacts.read", "contacts.edit"),
    ] {
        let mut t = ls.clone();
        assert!(t[target].contains(from), "{from} not in {}", t[target]);
        t[target] = t[target].replacen(from, to, 1);
        let err = verify_export(&join(&t), &key).unwrap_err();
        assert_eq!(err.line, target + 1, "{err}");
    }
    let mut t = ls.clone();
    let ms = t[target].find("\"created_at_ms\":").unwrap() + 16;
    let digit = t[target].as_bytes()[ms];
    let swapped = if digit == b'9' { "8" } else { "9" };
    t[target].replace_range(ms..ms + 1, swapped);
    assert!(verify_export(&join(&t), &key).is_err());
    // Deleting any single line.
    for i in 0..ls.len() {
        let mut t = ls.clone();
        t.remove(i);
        assert!(
            verify_export(&join(&t), &key).is_err(),
            "deleting line {i} went unnoticed"
        );
    }
    // Swapping two entry lines.
    let mut t = ls.clone();
    t.swap(entry_lines[1], entry_lines[2]);
    assert!(verify_export(&join(&t), &key).is_err());
    // Inserting a copy of a line.
    let mut t = ls.clone();
    t.insert(entry_lines[3], ls[entry_lines[3]].clone());
    assert!(verify_export(&join(&t), &key).is_err());
    // Dropping the tail.
    for n in 1..4 {
        let t = ls[..ls.len() - n].to_vec();
        assert!(
            verify_export(&join(&t), &key).is_err(),
            "dropping {n} lines went unnoticed"
        );
    }
    // Another region's key does not verify it.
    let (_eu, eu_token) = app.workspace("eu").await;
    let _ = eu_token;
    let eu_key = public_key(&app, "eu").await;
    assert!(verify_export(&body, &eu_key).is_err());
    // CSV verifies too, and tampering with it is caught.
    let (status, ctype, csv) = export(&app, &token, "?format=csv").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    verify_export(&csv, &key).expect("the CSV export verifies");
    let text = String::from_utf8(csv.clone()).unwrap();
    let tampered = text.replacen("contacts.read", "contacts.edit", 1);
    assert!(verify_export(tampered.as_bytes(), &key).is_err());
    // A time-bounded export covers a contiguous run and still verifies.
    let now = interlock_storage::now_ms() / 1000;
    let (status, _, part) = export(
        &app,
        &token,
        &format!("?after={}&before={}", now - 60, now + 60),
    )
    .await;
    assert_eq!(status, 200);
    verify_export(&part, &key).expect("the ranged export verifies");
    app.stop().await;
}

fn region_of(ws: &str) -> Region {
    WorkspaceId::parse(ws).unwrap().region()
}

async fn wait_for_checkpoint(app: &TestApp, ws: &WorkspaceId, size: i64) {
    let cell = app.cell(ws.region());
    for _ in 0..100 {
        let cps = cell.activity_checkpoints(ws, size, i64::MAX).await.unwrap();
        if !cps.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no checkpoint at or beyond {size}");
}

async fn stored_chain_checkpoints_and_tampering(store: Store) {
    let app = TestApp::spawn_with(store, |s| {
        s.activity.checkpoint_every_entries = 4;
        s.activity.checkpoint_every_s = 1;
    })
    .await;
    let (ws, token) = app.workspace("us").await;
    let wsid = WorkspaceId::parse(&ws).unwrap();
    for i in 0..10 {
        app.post(
            "/v1/api-tokens",
            &token,
            json!({"name": format!("t{i}"), "permissions": ["contacts.read"]}),
        )
        .await;
    }
    wait_for_checkpoint(&app, &wsid, 10).await;
    for i in 0..5 {
        app.post(
            "/v1/api-tokens",
            &token,
            json!({"name": format!("u{i}"), "permissions": ["contacts.read"]}),
        )
        .await;
    }
    wait_for_checkpoint(&app, &wsid, 15).await;
    let cell = app.cell(region_of(&ws));
    let key = cell.activity_public_key();
    let report = cell.verify_activity(&wsid, &key).await.expect("intact");
    assert_eq!(
        (report.first_seq, report.last_seq, report.entries),
        (1, 15, 15)
    );
    assert!(report.checkpoints >= 2);
    let pool = cell.pool().clone();
    // A changed plain column.
    sqlx::query(
        "UPDATE activity_log SET type = 'role.created' WHERE workspace_id = $1 AND seq = 3",
    )
    .bind(&ws)
    .execute(&pool)
    .await
    .unwrap();
    let f = cell.verify_activity(&wsid, &key).await.unwrap_err();
    assert_eq!(f.seq, Some(3), "{f}");
    sqlx::query(
        "UPDATE activity_log SET type = 'api_token.created' WHERE workspace_id = $1 AND seq = 3",
    )
    .bind(&ws)
    .execute(&pool)
    .await
    .unwrap();
    cell.verify_activity(&wsid, &key)
        .await
        .expect("intact again");
    // A swapped sealed body (two entries exchange content) is caught.
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT body_ct FROM activity_log WHERE workspace_id = $1 AND seq IN (5, 6) ORDER BY seq",
    )
    .bind(&ws)
    .fetch_all(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE activity_log SET body_ct = $2 WHERE workspace_id = $1 AND seq = 5")
        .bind(&ws)
        .bind(rows[1].0.clone())
        .execute(&pool)
        .await
        .unwrap();
    let f = cell.verify_activity(&wsid, &key).await.unwrap_err();
    assert_eq!(f.seq, Some(5), "{f}");
    sqlx::query("UPDATE activity_log SET body_ct = $2 WHERE workspace_id = $1 AND seq = 5")
        .bind(&ws)
        .bind(rows[0].0.clone())
        .execute(&pool)
        .await
        .unwrap();
    cell.verify_activity(&wsid, &key)
        .await
        .expect("intact again");
    // A removed entry in the middle.
    sqlx::query("DELETE FROM activity_log WHERE workspace_id = $1 AND seq = 7")
        .bind(&ws)
        .execute(&pool)
        .await
        .unwrap();
    let f = cell.verify_activity(&wsid, &key).await.unwrap_err();
    assert_eq!(f.seq, Some(7), "{f}");
    // Truncation behind the last checkpoint, with the head rewritten to match.
    sqlx::query("DELETE FROM activity_log WHERE workspace_id = $1 AND seq >= 7")
        .bind(&ws)
        .execute(&pool)
        .await
        .unwrap();
    let h6: String =
        sqlx::query_scalar("SELECT hash FROM activity_log WHERE workspace_id = $1 AND seq = 6")
            .bind(&ws)
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE activity_heads SET seq = 6, hash = $2 WHERE workspace_id = $1")
        .bind(&ws)
        .bind(h6)
        .execute(&pool)
        .await
        .unwrap();
    let f = cell.verify_activity(&wsid, &key).await.unwrap_err();
    assert!(f.reason.contains("truncated"), "{f}");
    app.stop().await;
}

async fn retention_cut_keeps_the_chain_verifiable(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    let wsid = WorkspaceId::parse(&ws).unwrap();
    for i in 0..6 {
        app.post(
            "/v1/api-tokens",
            &token,
            json!({"name": format!("t{i}"), "permissions": ["contacts.read"]}),
        )
        .await;
    }
    let cell = app.cell(region_of(&ws));
    let key = cell.activity_public_key();
    // Cut everything created before now (the head always stays).
    let cut = cell
        .cut_activity(&wsid, interlock_storage::now_ms() + 1)
        .await
        .unwrap()
        .expect("something was cut");
    assert_eq!(cut.removed, 5);
    assert_eq!(cut.first_seq, 6);
    let report = cell
        .verify_activity(&wsid, &key)
        .await
        .expect("verifiable from the cut");
    assert_eq!(report.first_seq, 6);
    let entries = all_entries(&app, &token).await;
    let cut_entry = of_type(&entries, "activity_log.retention_cut")[0];
    assert_eq!(cut_entry["actor"]["type"], "system");
    assert_eq!(cut_entry["metadata"]["removed"], 5);
    let (_, _, body) = export(&app, &token, "").await;
    let summary = verify_export(&body, &key).expect("an export after the cut verifies");
    assert_eq!(summary.first_seq, 6);
    // Nothing older than the horizon: no cut.
    assert!(cell.cut_activity(&wsid, 0).await.unwrap().is_none());
    app.stop().await;
}

async fn a_failed_append_fails_the_action(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    let ct = app
        .contact(&token, json!({"email": "ola@example.com"}))
        .await;
    let pool = app.cell(region_of(&ws)).pool().clone();
    match store {
        Store::Sqlite => {
            sqlx::query(
                "CREATE TRIGGER refuse_append BEFORE INSERT ON activity_log BEGIN SELECT RAISE(ABORT, 'refused'); END",
            )
            .execute(&pool)
            .await
            .unwrap();
        }
        Store::Postgres => {
            sqlx::query(
                "CREATE FUNCTION refuse_append() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
            )
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER refuse_append BEFORE INSERT ON activity_log FOR EACH ROW EXECUTE FUNCTION refuse_append()",
            )
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    let r = app.delete(&format!("/v1/contacts/{ct}"), &token).await;
    assert_eq!(r.status, 500, "{:?}", r.body);
    // The action did not happen without its entry.
    assert_eq!(
        app.get(&format!("/v1/contacts/{ct}"), &token).await.status,
        200
    );
    let r = app
        .post(
            "/v1/api-tokens",
            &token,
            json!({"name": "x", "permissions": ["contacts.read"]}),
        )
        .await;
    assert_eq!(r.status, 500);
    let list = app.get("/v1/api-tokens", &token).await;
    assert!(
        list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "x")
    );
    app.stop().await;
}

async fn sinks_receive_entries_and_checkpoints(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let entries_file = dir.path().join("siem.jsonl");
    let ocsf_file = dir.path().join("siem-ocsf.jsonl");
    let cps_file = dir.path().join("checkpoints.jsonl");
    let sink = |path: &std::path::Path, format: &str| -> interlock_http::sinks::SinkConfig {
        serde_json::from_value(json!({"kind": "file", "path": path, "format": format})).unwrap()
    };
    let (e, o, c) = (
        sink(&entries_file, "jsonl"),
        sink(&ocsf_file, "ocsf"),
        sink(&cps_file, "jsonl"),
    );
    let app = TestApp::spawn_with(store, move |s| {
        s.activity.checkpoint_every_entries = 2;
        s.activity.checkpoint_every_s = 1;
        s.activity.sinks = vec![e, o];
        s.activity.checkpoint_sinks = vec![c];
    })
    .await;
    let (ws, token) = app.workspace("us").await;
    let ct = app.contact(&token, json!({"email": EMAIL_MARKER})).await;
    app.delete(&format!("/v1/contacts/{ct}"), &token).await;
    app.post(
        "/v1/api-tokens",
        &token,
        json!({"name": "x", "permissions": ["contacts.read"]}),
    )
    .await;
    let mut got = String::new();
    for _ in 0..100 {
        got = std::fs::read_to_string(&entries_file).unwrap_or_default();
        let cps = std::fs::read_to_string(&cps_file).unwrap_or_default();
        if got.lines().count() >= 4 && !cps.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines: Vec<Value> = got
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The erasure: request made, contact deleted, request completed; then the token.
    assert_eq!(lines.len(), 4, "{got}");
    assert_eq!(lines[0]["type"], "data_request.created");
    assert_eq!(lines[1]["type"], "contact.deleted");
    assert_eq!(lines[0]["workspace_id"], ws);
    assert_eq!(lines[0]["seq"], 1);
    assert!(!got.contains(EMAIL_MARKER));
    let ocsf = std::fs::read_to_string(&ocsf_file).unwrap();
    let deleted: Value = serde_json::from_str(ocsf.lines().nth(1).unwrap()).unwrap();
    assert_eq!(deleted["class_uid"], 6003);
    assert_eq!(deleted["activity_id"], 4);
    let cps = std::fs::read_to_string(&cps_file).unwrap();
    let cp: Value = serde_json::from_str(cps.lines().next().unwrap()).unwrap();
    assert_eq!(cp["workspace_id"], ws);
    // The erasure's three entries commit together; the token's may or may not be in it yet.
    let size = cp["tree_size"].as_i64().unwrap();
    assert!(size == 3 || size == 4, "{cp}");
    // Delivered once: a later round adds only new entries.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        std::fs::read_to_string(&entries_file)
            .unwrap()
            .lines()
            .count(),
        4
    );
    app.stop().await;
}
