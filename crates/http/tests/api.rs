//! The customer data API end to end: the real server over TLS, against SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use common::{Store, TestApp, assert_problem};
use interlock_domain::{ContactId, Region, WorkspaceId};
use reqwest::Method;
use serde_json::{Value, json};

store_tests!(
    contacts_crud_search_and_pagination,
    conversations_parts_events_and_attachments,
    bad_input_is_a_clear_4xx_and_writes_nothing,
    other_workspaces_objects_look_missing,
    ciphertext_moved_to_another_row_does_not_decrypt,
    fields_are_stored_encrypted_and_bound,
    master_key_rotation_keeps_data_readable,
    rotation_by_another_process_is_picked_up,
    durability_settings_are_on,
    concurrent_writes_all_land,
    restart_keeps_data,
    wrong_region_is_421_and_reads_nothing,
    tokens_and_operator_scope,
);

async fn contacts_crud_search_and_pagination(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_, token) = app.workspace("eu").await;

    let r = app
        .post(
            "/v1/contacts",
            &token,
            json!({"role": "user", "external_id": "u-1", "email": "  Alice@Example.COM ",
                   "name": "Alice", "phone": "+44 20 7946 0000", "custom_attributes": {"plan": "pro", "seats": 5}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["email"], "alice@example.com");
    assert_eq!(r.body["custom_attributes"]["seats"], 5);

    let got = app.get(&format!("/v1/contacts/{id}"), &token).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["name"], "Alice");
    assert_eq!(got.body["phone"], "+44 20 7946 0000");
    assert_eq!(got.body["external_id"], "u-1");

    // Exact-match search, email normalised.
    for q in ["email=ALICE%40example.com", "external_id=u-1"] {
        let found = app.get(&format!("/v1/contacts?{q}"), &token).await;
        assert_eq!(found.status, 200);
        let data = found.body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{q}");
        assert_eq!(data[0]["id"], id.as_str());
    }
    let none = app
        .get("/v1/contacts?email=bob%40example.com", &token)
        .await;
    assert_eq!(none.body["data"].as_array().unwrap().len(), 0);
    let partial = app.get("/v1/contacts?external_id=u-", &token).await;
    assert_eq!(partial.body["data"].as_array().unwrap().len(), 0);

    // Patch: absent stays, null clears, attributes merge.
    let p = app
        .patch(
            &format!("/v1/contacts/{id}"),
            &token,
            json!({"name": "Alice B", "phone": null, "custom_attributes": {"seats": null, "tier": "gold"}}),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["name"], "Alice B");
    assert_eq!(p.body["phone"], Value::Null);
    assert_eq!(p.body["email"], "alice@example.com");
    assert_eq!(
        p.body["custom_attributes"],
        json!({"plan": "pro", "tier": "gold"})
    );
    let p = app
        .patch(
            &format!("/v1/contacts/{id}"),
            &token,
            json!({"email": "new@example.com"}),
        )
        .await;
    assert_eq!(p.status, 200);
    let old = app
        .get("/v1/contacts?email=alice%40example.com", &token)
        .await;
    assert_eq!(old.body["data"].as_array().unwrap().len(), 0);
    let new = app
        .get("/v1/contacts?email=new%40example.com", &token)
        .await;
    assert_eq!(new.body["data"].as_array().unwrap().len(), 1);

    // external_id is unique per workspace.
    let dup = app
        .post("/v1/contacts", &token, json!({"external_id": "u-1"}))
        .await;
    assert_problem(&dup, 409, "external_id_taken");

    // Visitors need no identifier; pagination walks every contact once.
    for _ in 0..4 {
        app.contact(&token, json!({"role": "visitor"})).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/contacts?per_page=2&cursor={c}"),
            None => "/v1/contacts?per_page=2".to_owned(),
        };
        let page = app.get(&path, &token).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for c in page.body["data"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 5);
    app.stop().await;
}

async fn conversations_parts_events_and_attachments(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_, token) = app.workspace("us").await;
    let contact = app.contact(&token, json!({"email": "c@example.com"})).await;

    let c = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": contact, "body": "Hi, my card was charged twice"}),
        )
        .await;
    assert_eq!(c.status, 201, "{:?}", c.body);
    let conv = c.body["id"].as_str().unwrap().to_owned();
    let teammate = format!("tm_{}", "ab".repeat(16));
    let p = app
        .post(
            &format!("/v1/conversations/{conv}/parts"),
            &token,
            json!({"body": "Sorry! Refunded.", "author": {"type": "teammate", "id": teammate}}),
        )
        .await;
    assert_eq!(p.status, 201, "{:?}", p.body);
    let p = app
        .post(
            &format!("/v1/conversations/{conv}/parts"),
            &token,
            json!({"body": "Thanks", "author": {"type": "contact", "id": contact}}),
        )
        .await;
    assert_eq!(p.status, 201);
    // A contact author must be the conversation's contact.
    let other = app.contact(&token, json!({"role": "visitor"})).await;
    let p = app
        .post(
            &format!("/v1/conversations/{conv}/parts"),
            &token,
            json!({"body": "spoof", "author": {"type": "contact", "id": other}}),
        )
        .await;
    assert_problem(&p, 422, "author_not_in_conversation");

    let got = app.get(&format!("/v1/conversations/{conv}"), &token).await;
    assert_eq!(got.status, 200);
    let bodies: Vec<&str> = got.body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "Hi, my card was charged twice",
            "Sorry! Refunded.",
            "Thanks"
        ]
    );
    assert_eq!(got.body["parts"][1]["author"]["type"], "teammate");

    let list = app
        .get(&format!("/v1/conversations?contact_id={contact}"), &token)
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    let list = app
        .get(&format!("/v1/conversations?contact_id={other}"), &token)
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 0);

    // Events.
    let e = app
        .post(
            "/v1/events",
            &token,
            json!({"contact_id": contact, "name": "invoice-paid", "metadata": {"amount": 42}}),
        )
        .await;
    assert_eq!(e.status, 201, "{:?}", e.body);
    let events = app
        .get(&format!("/v1/events?contact_id={contact}"), &token)
        .await;
    assert_eq!(events.body["data"][0]["name"], "invoice-paid");
    assert_eq!(events.body["data"][0]["metadata"]["amount"], 42);

    // Attachments: upload, list, download byte-exact.
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let up = app
        .http
        .post(format!(
            "{}/v1/conversations/{conv}/attachments?filename=receipt%201.pdf",
            app.base
        ))
        .bearer_auth(&token)
        .header("content-type", "application/pdf")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201);
    let up: Value = up.json().await.unwrap();
    assert_eq!(up["filename"], "receipt 1.pdf");
    assert_eq!(up["size"], 100_000);
    let att = up["id"].as_str().unwrap();
    let list = app
        .get(&format!("/v1/conversations/{conv}/attachments"), &token)
        .await;
    assert_eq!(list.body["data"][0]["content_type"], "application/pdf");
    let down = app
        .http
        .get(format!(
            "{}/v1/conversations/{conv}/attachments/{att}",
            app.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 200);
    assert_eq!(down.headers()["content-type"], "application/octet-stream");
    assert!(
        down.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("receipt%201.pdf")
    );
    assert_eq!(down.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // The blob on disk is sealed: not the plaintext.
    let blob_dir = app.data_dir().join("regions/us/blobs");
    let mut found_plain = false;
    for ws in std::fs::read_dir(&blob_dir).unwrap() {
        for f in std::fs::read_dir(ws.unwrap().path()).unwrap() {
            let on_disk = std::fs::read(f.unwrap().path()).unwrap();
            assert_eq!(on_disk.len(), bytes.len() + 29);
            found_plain |= on_disk.windows(64).any(|w| w == &bytes[..64]);
        }
    }
    assert!(!found_plain);
    app.stop().await;
}

async fn bad_input_is_a_clear_4xx_and_writes_nothing(store: Store) {
    let app = TestApp::spawn_with(store, |s| {
        s.limits.body_bytes = 4096;
        s.limits.attachment_bytes = 8192;
    })
    .await;
    let (_, token) = app.workspace("eu").await;
    let send_raw = |body: &'static str, ct: Option<&'static str>| {
        let mut req = app
            .http
            .post(format!("{}/v1/contacts", app.base))
            .bearer_auth(&token)
            .body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let check = |resp: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{body}");
    };
    check(
        send_raw("{not json", Some("application/json"))
            .await
            .unwrap(),
        400,
        "malformed_json",
    )
    .await;
    check(
        send_raw("{\"email\": 5}", Some("application/json"))
            .await
            .unwrap(),
        422,
        "invalid_body",
    )
    .await;
    check(
        send_raw("{\"mail\": \"a@b.c\"}", Some("application/json"))
            .await
            .unwrap(),
        422,
        "invalid_body",
    )
    .await;
    check(
        send_raw("{}", None).await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    check(
        send_raw("[1,2]", Some("application/json")).await.unwrap(),
        422,
        "invalid_body",
    )
    .await;

    let big = json!({"role": "visitor", "name": "x".repeat(10_000)});
    let r = app.post("/v1/contacts", &token, big).await;
    assert_problem(&r, 413, "payload_too_large");

    let cases = [
        (json!({"email": "not-an-email"}), "invalid_email", "email"),
        (
            json!({"role": "admin", "email": "a@b.co"}),
            "invalid_role",
            "role",
        ),
        (json!({"role": "user"}), "user_needs_identifier", "role"),
        (
            json!({"role": "visitor", "phone": "call me"}),
            "invalid_phone",
            "phone",
        ),
        (json!({"role": "visitor", "name": "  "}), "empty", "name"),
        (
            json!({"role": "visitor", "name": "a\u{0}b"}),
            "invalid_characters",
            "name",
        ),
    ];
    for (body, code, field) in cases {
        let r = app.post("/v1/contacts", &token, body).await;
        assert_problem(&r, 422, code);
        assert_eq!(r.body["field"], field);
    }

    let r = app.get("/v1/contacts/ct_nothex", &token).await;
    assert_problem(&r, 400, "invalid_id");
    let r = app.get("/v1/conversations/ct_0123", &token).await;
    assert_problem(&r, 400, "invalid_id");
    let r = app.get("/v1/contacts/%FF%FE", &token).await;
    assert_problem(&r, 400, "invalid_id");
    let r = app.get("/v1/contacts?cursor=%%%", &token).await;
    assert_problem(&r, 400, "invalid_cursor");
    let r = app.get("/v1/contacts?per_page=1000", &token).await;
    assert_problem(&r, 400, "invalid_query");
    let r = app.get("/v1/contacts?bogus=1", &token).await;
    assert_problem(&r, 400, "invalid_query");
    let r = app
        .get(&format!("/v1/contacts/{}", ContactId::new()), &token)
        .await;
    assert_problem(&r, 404, "not_found");
    let r = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": ContactId::new().to_string(), "body": "hi"}),
        )
        .await;
    assert_problem(&r, 404, "not_found");
    let r = app
        .post(
            "/v1/events",
            &token,
            json!({"contact_id": "nope", "name": "x"}),
        )
        .await;
    assert_problem(&r, 422, "invalid_id");
    let r = app.get("/v1/nothing-here", &token).await;
    assert_problem(&r, 404, "not_found");
    let r = app
        .call(Method::DELETE, "/v1/events", Some(&token), None)
        .await;
    assert_problem(&r, 405, "method_not_allowed");

    // Attachments: empty, bad names, over the limit.
    let contact = app.contact(&token, json!({"role": "visitor"})).await;
    let conv = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": contact, "body": "x"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (query, body, status, code) in [
        ("filename=a.txt", Vec::new(), 422, "empty"),
        (
            "filename=..%2Fetc%2Fpasswd",
            b"x".to_vec(),
            422,
            "invalid_filename",
        ),
        ("", b"x".to_vec(), 400, "invalid_query"),
        (
            "filename=big.bin",
            vec![7u8; 8193],
            413,
            "payload_too_large",
        ),
    ] {
        let r = app
            .http
            .post(format!(
                "{}/v1/conversations/{conv}/attachments?{query}",
                app.base
            ))
            .bearer_auth(&token)
            .body(body)
            .send()
            .await
            .unwrap();
        check(r, status, code).await;
    }

    // Nothing of the refused requests was written: one visitor contact, one conversation.
    let all = app.get("/v1/contacts", &token).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 1);
    let atts = app
        .get(&format!("/v1/conversations/{conv}/attachments"), &token)
        .await;
    assert_eq!(atts.body["data"].as_array().unwrap().len(), 0);
    app.stop().await;
}

async fn other_workspaces_objects_look_missing(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_, a) = app.workspace("eu").await;
    let (_, b) = app.workspace("eu").await;
    let contact = app
        .contact(
            &a,
            json!({"email": "shared@example.com", "external_id": "x1"}),
        )
        .await;
    let conv = app
        .post(
            "/v1/conversations",
            &a,
            json!({"contact_id": contact, "body": "secret"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing_contact = app
        .get(&format!("/v1/contacts/{}", ContactId::new()), &b)
        .await;
    let foreign_contact = app.get(&format!("/v1/contacts/{contact}"), &b).await;
    assert_eq!(foreign_contact.status, missing_contact.status);
    assert_eq!(foreign_contact.body, missing_contact.body);
    for path in [
        format!("/v1/conversations/{conv}"),
        format!("/v1/conversations/{conv}/attachments"),
        format!("/v1/events?contact_id={contact}"),
    ] {
        let r = app.get(&path, &b).await;
        assert_problem(&r, 404, "not_found");
    }
    let r = app
        .patch(
            &format!("/v1/contacts/{contact}"),
            &b,
            json!({"name": "hijack"}),
        )
        .await;
    assert_problem(&r, 404, "not_found");
    let r = app
        .post(
            &format!("/v1/conversations/{conv}/parts"),
            &b,
            json!({"body": "x", "author": {"type": "contact", "id": contact}}),
        )
        .await;
    assert_problem(&r, 404, "not_found");
    let r = app
        .post(
            "/v1/conversations",
            &b,
            json!({"contact_id": contact, "body": "x"}),
        )
        .await;
    assert_problem(&r, 404, "not_found");
    // Blind indexes are per workspace: B finds nothing by A's values.
    let r = app.get("/v1/contacts?email=shared%40example.com", &b).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);
    let r = app.get("/v1/contacts?external_id=x1", &b).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);
    // And A's data is untouched.
    let r = app.get(&format!("/v1/contacts/{contact}"), &a).await;
    assert_eq!(r.body["name"], Value::Null);
    app.stop().await;
}

async fn ciphertext_moved_to_another_row_does_not_decrypt(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    let alice = app
        .contact(
            &token,
            json!({"email": "alice@example.com", "name": "Alice"}),
        )
        .await;
    let bob = app
        .contact(&token, json!({"email": "bob@example.com", "name": "Bob"}))
        .await;
    let cell = app.cell(Region::Eu);
    // Copy Alice's sealed name onto Bob's row, as an attacker with database access might.
    let name_ct: Vec<u8> =
        sqlx::query_scalar("SELECT name_ct FROM contacts WHERE workspace_id = $1 AND id = $2")
            .bind(&ws)
            .bind(&alice)
            .fetch_one(cell.pool())
            .await
            .unwrap();
    sqlx::query("UPDATE contacts SET name_ct = $1 WHERE workspace_id = $2 AND id = $3")
        .bind(name_ct.clone())
        .bind(&ws)
        .bind(&bob)
        .execute(cell.pool())
        .await
        .unwrap();
    let ws_id = WorkspaceId::parse(&ws).unwrap();
    let err = cell
        .get_contact(&ws_id, &ContactId::parse(&bob).unwrap())
        .await
        .expect_err("a moved ciphertext must not decrypt");
    assert!(
        matches!(err, interlock_storage::StoreError::Integrity(_)),
        "{err:?}"
    );
    // Through the API: an error with a correlation id, never Alice's name.
    let r = app.get(&format!("/v1/contacts/{bob}"), &token).await;
    assert_problem(&r, 500, "internal_error");
    assert!(r.body["correlation_id"].is_string());
    assert!(!r.body.to_string().contains("Alice"));
    // Moving it to another field of Alice's own row fails too (the field is bound).
    sqlx::query("UPDATE contacts SET phone_ct = $1 WHERE workspace_id = $2 AND id = $3")
        .bind(name_ct)
        .bind(&ws)
        .bind(&alice)
        .execute(cell.pool())
        .await
        .unwrap();
    let r = app.get(&format!("/v1/contacts/{alice}"), &token).await;
    assert_problem(&r, 500, "internal_error");
    app.stop().await;
}

async fn fields_are_stored_encrypted_and_bound(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("au").await;
    let marker = format!("mk{}", uuid::Uuid::new_v4().simple());
    let contact = app
        .contact(
            &token,
            json!({"email": format!("{marker}@example.com"), "name": marker, "external_id": marker,
                   "custom_attributes": {"note": marker}}),
        )
        .await;
    app.post(
        "/v1/conversations",
        &token,
        json!({"contact_id": contact, "body": marker}),
    )
    .await;
    let cell = app.cell(Region::Au);
    // Every stored column of every customer table, as bytes: the marker is in none of them,
    // while ids (stored in clear on purpose) are.
    let mut dump = Vec::new();
    for (table, cols) in [
        (
            "contacts",
            "id, role, subject_key_id, external_id_ct, external_id_bidx, email_ct, email_bidx, name_ct, phone_ct, custom_attributes_ct",
        ),
        ("conversations", "id, contact_id, subject_key_id"),
        ("conversation_parts", "id, author_type, author_id, body_ct"),
        ("workspaces", "id, region, name_ct"),
    ] {
        let sql = format!(
            "SELECT {cols} FROM {table} WHERE {} = $1",
            if table == "workspaces" {
                "id"
            } else {
                "workspace_id"
            }
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&ws)
            .fetch_all(cell.pool())
            .await
            .unwrap();
        for row in rows {
            use sqlx::Row;
            for i in 0..row.len() {
                if let Ok(Some(b)) = row.try_get::<Option<Vec<u8>>, _>(i) {
                    dump.extend_from_slice(&b);
                } else if let Ok(Some(s)) = row.try_get::<Option<String>, _>(i) {
                    dump.extend_from_slice(s.as_bytes());
                }
            }
        }
    }
    let contains = |needle: &[u8]| dump.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(contact.as_bytes()),
        "ids are stored and the scan sees them"
    );
    assert!(
        !contains(marker.as_bytes()),
        "plaintext marker found in the store"
    );
    app.stop().await;
}

async fn master_key_rotation_keeps_data_readable(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_, token) = app.workspace("eu").await;
    let contact = app
        .contact(
            &token,
            json!({"email": "k@example.com", "name": "Key Holder"}),
        )
        .await;
    let cell = app.cell(Region::Eu);
    assert_eq!(cell.keyring().versions(), vec![1]);
    let (version, rewrapped) = cell.rotate_master_key().await.unwrap();
    assert_eq!(version, 2);
    assert!(rewrapped >= 1);
    assert_eq!(cell.keys_under_master(1).await.unwrap(), 0);
    cell.clear_caches();
    let r = app.get(&format!("/v1/contacts/{contact}"), &token).await;
    assert_eq!(r.body["name"], "Key Holder");
    // New workspaces are wrapped under the new key; the old one can go.
    let (_, token2) = app.workspace("eu").await;
    assert!(cell.keys_under_master(2).await.unwrap() >= 2);
    cell.retire_master_key(1).await.unwrap();
    assert!(
        cell.retire_master_key(2).await.is_err(),
        "the active key stays"
    );
    cell.clear_caches();
    let r = app.get(&format!("/v1/contacts/{contact}"), &token).await;
    assert_eq!(r.body["name"], "Key Holder");
    let c2 = app
        .contact(&token2, json!({"role": "visitor", "name": "N"}))
        .await;
    let r = app.get(&format!("/v1/contacts/{c2}"), &token2).await;
    assert_eq!(r.body["name"], "N");
    app.stop().await;
}

/// `interlock keys rotate` runs as a separate process while the server keeps serving: the
/// server must read keys re-wrapped under a master key version it has never loaded.
async fn rotation_by_another_process_is_picked_up(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_, token) = app.workspace("eu").await;
    let contact = app
        .contact(&token, json!({"role": "visitor", "name": "Still here"}))
        .await;
    // A second, independent cell on the same database and key folder: the CLI's view.
    let cfg = interlock_http::server::cell_config(&app.settings, Region::Eu)
        .await
        .unwrap();
    let other = interlock_storage::Cell::open(cfg).await.unwrap();
    let (version, _) = other.rotate_master_key().await.unwrap();
    assert_eq!(version, 2);
    other.close().await;
    let served = app.cell(Region::Eu);
    assert_eq!(
        served.keyring().versions(),
        vec![1],
        "the server has not loaded v2 yet"
    );
    served.clear_caches();
    let r = app.get(&format!("/v1/contacts/{contact}"), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "Still here");
    assert_eq!(
        served.keyring().versions(),
        vec![1, 2],
        "v2 was loaded on demand"
    );
    app.stop().await;
}

async fn durability_settings_are_on(store: Store) {
    let app = TestApp::spawn(store).await;
    let cell = app.cell(Region::Us);
    match store {
        Store::Sqlite => {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(cell.pool())
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(cell.pool())
                .await
                .unwrap();
            assert_eq!(sync, 2, "synchronous=FULL");
        }
        Store::Postgres => {
            let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
                .fetch_one(cell.pool())
                .await
                .unwrap();
            assert_eq!(sync, "on");
            let fsync: String = sqlx::query_scalar("SHOW fsync")
                .fetch_one(cell.pool())
                .await
                .unwrap();
            assert_eq!(fsync, "on");
        }
    }
    app.stop().await;
}

async fn concurrent_writes_all_land(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_, token) = app.workspace("us").await;
    let contact = app.contact(&token, json!({"role": "visitor"})).await;
    let conv = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": contact, "body": "start"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let posts = (0..64).map(|i| {
        let app = &app;
        let token = &token;
        let conv = &conv;
        async move {
            app.post(
                &format!("/v1/conversations/{conv}/parts"),
                token,
                json!({"body": format!("m{i}"), "author": {"type": "teammate", "id": format!("tm_{}", "0".repeat(32))}}),
            )
            .await
            .status
        }
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let got = app.get(&format!("/v1/conversations/{conv}"), &token).await;
    let parts = got.body["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 65);
    let cell = app.cell(Region::Us);
    let stats = &cell.writer().stats;
    assert!(stats.units.load(std::sync::atomic::Ordering::Relaxed) >= 66);
    app.stop().await;
}

async fn restart_keeps_data(store: Store) {
    let mut app = TestApp::spawn(store).await;
    let operator_before = app.operator.clone();
    let (_, token) = app.workspace("eu").await;
    let contact = app
        .contact(
            &token,
            json!({"email": "persist@example.com", "name": "Persisted"}),
        )
        .await;
    app.restart().await;
    assert_eq!(app.operator, operator_before, "the operator token is kept");
    let r = app.get(&format!("/v1/contacts/{contact}"), &token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"], "Persisted");
    let r = app
        .get("/v1/contacts?email=persist%40example.com", &token)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn wrong_region_is_421_and_reads_nothing(store: Store) {
    let us = TestApp::spawn_with(store, |s| s.regions = vec![Region::Us]).await;
    let (_, us_token) = us.workspace("us").await;
    let eu = TestApp::spawn_with(store, |s| {
        s.regions = vec![Region::Eu];
        s.region_urls
            .insert(Region::Us, "https://us.interlock.example".into());
    })
    .await;
    let r = eu.get("/v1/contacts", &us_token).await;
    assert_problem(&r, 421, "wrong_region");
    assert_eq!(r.body["region"], "us");
    assert_eq!(r.body["base_url"], "https://us.interlock.example");
    let r = eu
        .post(
            "/v1/operator/workspaces",
            &eu.operator,
            json!({"name": "x", "region": "us"}),
        )
        .await;
    assert_problem(&r, 421, "wrong_region");
    // A region with no URL configured still answers 421, without base_url.
    let r = eu
        .post(
            "/v1/operator/workspaces",
            &eu.operator,
            json!({"name": "x", "region": "au"}),
        )
        .await;
    assert_problem(&r, 421, "wrong_region");
    assert!(r.body.get("base_url").is_none());
    // No store of another region was opened by this process.
    assert!(!eu.data_dir().join("regions/us").exists());
    us.stop().await;
    eu.stop().await;
}

async fn tokens_and_operator_scope(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    let r = app.call(Method::GET, "/v1/contacts", None, None).await;
    assert_problem(&r, 401, "missing_token");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = app
        .get(
            "/v1/contacts",
            "ilk_eu_wrongwrongwrongwrongwrongwrongwrongwrong1",
        )
        .await;
    assert_problem(&r, 401, "invalid_token");
    let r = app.get("/v1/contacts", "garbage").await;
    assert_problem(&r, 401, "invalid_token");
    let r = app.get("/v1/contacts", &app.operator).await;
    assert_problem(&r, 403, "operator_token_not_allowed");
    let r = app
        .post(
            "/v1/operator/workspaces",
            &token,
            json!({"name": "x", "region": "eu"}),
        )
        .await;
    assert_problem(&r, 401, "invalid_token");
    let r = app
        .post(
            "/v1/operator/workspaces",
            &app.operator,
            json!({"name": "x", "region": "mars"}),
        )
        .await;
    assert_problem(&r, 422, "invalid_region");
    // Tokens are stored only as hashes.
    let cell = app.cell(Region::Eu);
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE workspace_id = $1")
            .bind(&ws)
            .fetch_all(cell.pool())
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0],
        interlock_crypto::TokenHash::of(&token).as_bytes()
    );
    // The operator lists workspaces but sees no tokens.
    let r = app
        .get("/v1/operator/workspaces?region=eu", &app.operator)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"][0]["id"], ws.as_str());
    assert!(!r.body.to_string().contains(&token));
    // System endpoints.
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.body["status"], "ok");
    let r = app.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    for path in [
        "/v1/contacts",
        "/v1/conversations/{id}/parts",
        "/v1/operator/workspaces",
    ] {
        assert!(
            r.body["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    let m = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        m.headers()["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    let text = m.text().await.unwrap();
    assert!(text.contains("interlock_http_requests_total"), "{text}");
    app.stop().await;
}
