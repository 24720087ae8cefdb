//! The messenger and identity verification end to end: the real server over TLS, against
//! SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::text as s;
use common::{Resp, Store, TestApp, assert_problem};
use interlock_crypto::SecretValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::{Value, json};

store_tests!(
    visitors_boot_resume_and_talk,
    session_tokens_reach_only_the_messenger,
    enforced_refuses_every_forgery,
    optional_mode_unverified_sees_only_its_session,
    verified_boot_merges_the_visitor,
    secrets_and_settings_are_checked_and_sealed,
    secrets_are_per_platform,
    rate_limits_and_message_size,
    sessions_expire,
);

impl TestApp {
    async fn boot(&self, body: Value) -> Resp {
        self.call(Method::POST, "/v1/messenger/boot", None, Some(body))
            .await
    }

    /// Create a verification secret for all platforms; returns (id, value).
    async fn secret(&self, token: &str) -> (String, String) {
        let r = self
            .post(
                "/v1/messenger/secrets",
                token,
                json!({"name": "web 2026", "platforms": ["web", "ios", "android"]}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn set_mode(&self, token: &str, mode: &str) {
        let r = self
            .call(
                Method::PUT,
                "/v1/workspace/messenger",
                Some(token),
                Some(json!({"identity_verification": mode})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
}

fn hash(secret: &str, message: &str) -> String {
    SecretValue::from_stored(secret.as_bytes())
        .unwrap()
        .user_hash(message)
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn jwt(secret: &str, claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn unsigned_jwt(alg: &str, claims: Value) -> String {
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        enc(json!({"alg": alg, "typ": "JWT"})),
        enc(claims),
        URL_SAFE_NO_PAD.encode([7u8; 32])
    )
}

async fn visitors_boot_resume_and_talk(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, _) = app.workspace("eu").await;

    let b = app.boot(json!({"workspace_id": ws})).await;
    assert_eq!(b.status, 200, "{:?}", b.body);
    assert_eq!(b.body["role"], "visitor");
    assert_eq!(b.body["identity_verified"], false);
    let visitor_token = s(&b.body["visitor_token"]);
    assert!(visitor_token.starts_with("ilv_eu_"));
    let session = s(&b.body["session_token"]);
    assert!(session.starts_with("ilm_eu_"));
    let contact = s(&b.body["contact_id"]);

    let c = app
        .post(
            "/v1/messenger/conversations",
            &session,
            json!({"body": "hello?"}),
        )
        .await;
    assert_eq!(c.status, 201, "{:?}", c.body);
    assert_eq!(c.body["contact_id"], contact.as_str());
    let conv = s(&c.body["id"]);
    let r = app
        .post(
            &format!("/v1/messenger/conversations/{conv}/replies"),
            &session,
            json!({"body": "anyone there?"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["author"]["id"], contact.as_str());

    // Resuming with the visitor token is the same visitor, who sees the conversation.
    let again = app
        .boot(json!({"workspace_id": ws, "visitor_token": visitor_token}))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["contact_id"], contact.as_str());
    let session2 = s(&again.body["session_token"]);
    let list = app.get("/v1/messenger/conversations", &session2).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    let one = app
        .get(&format!("/v1/messenger/conversations/{conv}"), &session2)
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["parts"].as_array().unwrap().len(), 2);
    assert_eq!(one.body["parts"][1]["body"], "anyone there?");

    // An unknown visitor token (or another region's) starts a new visitor.
    for bogus in [
        "ilv_eu_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        visitor_token.replace("ilv_eu_", "ilv_us_"),
        "nonsense".to_owned(),
    ] {
        let fresh = app
            .boot(json!({"workspace_id": ws, "visitor_token": bogus}))
            .await;
        assert_eq!(fresh.status, 200);
        assert_ne!(fresh.body["contact_id"], contact.as_str());
        assert_ne!(fresh.body["visitor_token"], visitor_token.as_str());
    }

    // Bad input: clear 4xx, nothing written.
    assert_problem(&app.boot(json!({})).await, 422, "invalid_body");
    assert_problem(
        &app.boot(json!({"workspace_id": "ws_eu_nothex"})).await,
        422,
        "invalid_id",
    );
    let missing = ws.replace(&ws[ws.len() - 4..], "0000");
    assert_problem(
        &app.boot(json!({"workspace_id": missing})).await,
        404,
        "workspace_not_found",
    );
    assert_problem(
        &app.boot(json!({"workspace_id": ws, "user_hash": "00"}))
            .await,
        422,
        "missing_identifier",
    );
    assert_problem(
        &app.boot(json!({"workspace_id": ws, "platform": "desktop"}))
            .await,
        422,
        "invalid_platform",
    );
    assert_problem(
        &app.post(
            "/v1/messenger/conversations",
            &session,
            json!({"body": "  "}),
        )
        .await,
        422,
        "empty",
    );
    assert_problem(
        &app.post(
            "/v1/messenger/conversations",
            &session,
            json!({"text": "x"}),
        )
        .await,
        422,
        "invalid_body",
    );
    app.stop().await;
}

async fn session_tokens_reach_only_the_messenger(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    let a = app.boot(json!({"workspace_id": ws})).await;
    let b = app.boot(json!({"workspace_id": ws})).await;
    let (sa, sb) = (s(&a.body["session_token"]), s(&b.body["session_token"]));
    let conv_b = s(&app
        .post(
            "/v1/messenger/conversations",
            &sb,
            json!({"body": "b's secret"}),
        )
        .await
        .body["id"]);
    let conv_a = s(&app
        .post("/v1/messenger/conversations", &sa, json!({"body": "a's"}))
        .await
        .body["id"]);
    // A conversation the workspace starts for b through the API is b's too.
    let api_conv = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": s(&b.body["contact_id"]), "body": "from the API"}),
        )
        .await;
    assert_eq!(api_conv.status, 201);

    // Another contact's conversation is 404 (read and reply), indistinguishable from none.
    assert_problem(
        &app.get(&format!("/v1/messenger/conversations/{conv_b}"), &sa)
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.post(
            &format!("/v1/messenger/conversations/{conv_b}/replies"),
            &sa,
            json!({"body": "sneaky"}),
        )
        .await,
        404,
        "not_found",
    );
    let la = app.get("/v1/messenger/conversations", &sa).await;
    let ids: Vec<String> = la.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["id"]))
        .collect();
    assert_eq!(ids, vec![conv_a.clone()]);
    let lb = app.get("/v1/messenger/conversations", &sb).await;
    assert_eq!(lb.body["data"].as_array().unwrap().len(), 2);
    // b's reply did not land in a's conversation.
    let b_conv = app
        .get(&format!("/v1/conversations/{conv_b}"), &token)
        .await;
    assert_eq!(b_conv.body["parts"].as_array().unwrap().len(), 1);

    // Every non-messenger endpoint refuses a session token with 401.
    let contact_a = s(&a.body["contact_id"]);
    for (method, path) in [
        (Method::GET, "/v1/contacts".to_owned()),
        (Method::GET, format!("/v1/contacts/{contact_a}")),
        (Method::GET, "/v1/conversations".to_owned()),
        (Method::GET, format!("/v1/conversations/{conv_a}")),
        (Method::POST, format!("/v1/conversations/{conv_a}/parts")),
        (
            Method::GET,
            format!("/v1/conversations/{conv_a}/attachments"),
        ),
        (Method::GET, format!("/v1/events?contact_id={contact_a}")),
        (Method::POST, "/v1/events".to_owned()),
        (Method::GET, "/v1/messenger/secrets".to_owned()),
        (Method::POST, "/v1/messenger/secrets".to_owned()),
        (Method::GET, "/v1/workspace/messenger".to_owned()),
        (Method::PUT, "/v1/workspace/messenger".to_owned()),
        (Method::GET, "/v1/operator/workspaces".to_owned()),
    ] {
        let r = app
            .call(method.clone(), &path, Some(&sa), Some(json!({})))
            .await;
        assert_eq!(r.status, 401, "{method} {path}: {:?}", r.body);
    }
    // And the messenger routes refuse workspace and operator tokens.
    for t in [&token, &app.operator] {
        assert_problem(
            &app.get("/v1/messenger/conversations", t).await,
            401,
            "invalid_token",
        );
        assert_problem(
            &app.get(&format!("/v1/messenger/conversations/{conv_a}"), t)
                .await,
            401,
            "invalid_token",
        );
    }
    assert_problem(
        &app.call(Method::GET, "/v1/messenger/conversations", None, None)
            .await,
        401,
        "missing_token",
    );
    app.stop().await;
}

async fn enforced_refuses_every_forgery(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    let (secret_id, secret) = app.secret(&token).await;
    let (_, other_secret) = app.secret(&token).await;
    app.set_mode(&token, "enforced").await;
    let contacts_before = app.get("/v1/contacts", &token).await.body["data"]
        .as_array()
        .unwrap()
        .len();

    // A genuine user (hash and JWT both work), who then has a conversation.
    let ok = app
        .boot(json!({"workspace_id": ws, "user_id": "alice", "user_hash": hash(&secret, "alice")}))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["identity_verified"], true);
    assert_eq!(ok.body["role"], "user");
    let alice_session = s(&ok.body["session_token"]);
    let alice = s(&ok.body["contact_id"]);
    app.post(
        "/v1/messenger/conversations",
        &alice_session,
        json!({"body": "private"}),
    )
    .await;
    let by_jwt = app
        .boot(json!({"workspace_id": ws, "user_jwt": jwt(&other_secret, json!({"user_id": "alice", "exp": now() + 600, "iat": now()}))}))
        .await;
    assert_eq!(by_jwt.status, 200, "{:?}", by_jwt.body);
    assert_eq!(by_jwt.body["contact_id"], alice.as_str());
    let by_email = app
        .boot(json!({"workspace_id": ws, "email": "carol@example.com", "user_hash": hash(&secret, "carol@example.com")}))
        .await;
    assert_eq!(by_email.status, 200, "{:?}", by_email.body);

    let mallory_hash = hash(&secret, "mallory");
    let n = now();
    let forgeries = [
        // Another user's id with your own hash.
        (
            json!({"user_id": "alice", "user_hash": mallory_hash}),
            "user_hash_mismatch",
        ),
        // A hash over the email sent alongside a user_id.
        (
            json!({"user_id": "alice", "email": "alice@example.com", "user_hash": hash(&secret, "alice@example.com")}),
            "user_hash_mismatch",
        ),
        // No proof at all.
        (json!({"user_id": "alice"}), "proof_required"),
        (json!({"email": "alice@example.com"}), "proof_required"),
        // Truncated hex.
        (
            json!({"user_id": "alice", "user_hash": &hash(&secret, "alice")[..63]}),
            "user_hash_mismatch",
        ),
        // JWTs.
        (
            json!({"user_jwt": unsigned_jwt("none", json!({"user_id": "alice", "exp": n + 600}))}),
            "jwt_algorithm_not_allowed",
        ),
        (
            json!({"user_jwt": unsigned_jwt("RS256", json!({"user_id": "alice", "exp": n + 600}))}),
            "jwt_algorithm_not_allowed",
        ),
        (
            json!({"user_jwt": jwt(&secret, json!({"user_id": "alice", "exp": n - 600}))}),
            "jwt_expired",
        ),
        (
            json!({"user_jwt": jwt("ilh_not-the-secret-not-the-secret-not-the-se", json!({"user_id": "alice", "exp": n + 600}))}),
            "jwt_signature_invalid",
        ),
        (
            json!({"user_jwt": jwt(&secret, json!({"email": "alice@example.com", "exp": n + 600}))}),
            "jwt_missing_user_id",
        ),
        (
            json!({"user_jwt": jwt(&secret, json!({"user_id": "alice", "iat": n, "exp": n + 86_400 + 3600}))}),
            "jwt_lifetime_too_long",
        ),
        (
            json!({"user_jwt": jwt(&secret, json!({"user_id": "alice", "exp": n + 86_400 + 3600}))}),
            "jwt_lifetime_too_long",
        ),
        (json!({"user_jwt": "not-a-jwt"}), "jwt_malformed"),
    ];
    for (mut body, reason) in forgeries {
        body["workspace_id"] = json!(ws);
        let r = app.boot(body.clone()).await;
        assert_problem(&r, 401, "identity_verification_failed");
        assert_eq!(r.body["reason"], reason, "{body}");
        assert!(r.body.get("session_token").is_none());
    }

    // A hash made with a deleted secret stops working at once.
    let r = app
        .delete(&format!("/v1/messenger/secrets/{secret_id}"), &token)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["deleted"], true);
    let stale = app
        .boot(json!({"workspace_id": ws, "user_id": "alice", "user_hash": hash(&secret, "alice")}))
        .await;
    assert_problem(&stale, 401, "identity_verification_failed");
    let stale_jwt = app
        .boot(json!({"workspace_id": ws, "user_jwt": jwt(&secret, json!({"user_id": "alice", "exp": now() + 600}))}))
        .await;
    assert_problem(&stale_jwt, 401, "identity_verification_failed");

    // No failed boot created a contact ("mallory" never appears): only alice and carol exist.
    let contacts_after = app.get("/v1/contacts", &token).await.body["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(contacts_after, contacts_before + 2);

    // Mixing a JWT with other identity fields is refused before anything is checked.
    assert_problem(
        &app.boot(json!({"workspace_id": ws, "user_id": "alice", "user_jwt": "x.y.z"}))
            .await,
        422,
        "conflicting_identity",
    );
    app.stop().await;
}

async fn optional_mode_unverified_sees_only_its_session(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("au").await;
    let (_, secret) = app.secret(&token).await;
    // Optional is the default.
    let st = app.get("/v1/workspace/messenger", &token).await;
    assert_eq!(st.body["identity_verification"], "optional");
    assert_eq!(st.body["jwt_max_lifetime_s"], 86_400);

    let dana = app
        .contact(
            &token,
            json!({"role": "user", "external_id": "dana", "name": "Dana"}),
        )
        .await;
    let history = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": dana, "body": "dana's old private thread"}),
        )
        .await;
    let history_id = s(&history.body["id"]);

    // Unverified: flagged, sees nothing of the past, only what this session starts.
    let u = app
        .boot(json!({"workspace_id": ws, "user_id": "dana", "name": "Not Dana"}))
        .await;
    assert_eq!(u.status, 200, "{:?}", u.body);
    assert_eq!(u.body["identity_verified"], false);
    assert_eq!(u.body["contact_id"], dana.as_str());
    let us = s(&u.body["session_token"]);
    let l = app.get("/v1/messenger/conversations", &us).await;
    assert_eq!(l.body["data"].as_array().unwrap().len(), 0);
    assert_problem(
        &app.get(&format!("/v1/messenger/conversations/{history_id}"), &us)
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.post(
            &format!("/v1/messenger/conversations/{history_id}/replies"),
            &us,
            json!({"body": "x"}),
        )
        .await,
        404,
        "not_found",
    );
    let mine = app
        .post("/v1/messenger/conversations", &us, json!({"body": "new"}))
        .await;
    assert_eq!(mine.status, 201);
    let mine_id = s(&mine.body["id"]);
    let l = app.get("/v1/messenger/conversations", &us).await;
    assert_eq!(l.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(l.body["data"][0]["id"], mine_id.as_str());
    let reply = app
        .post(
            &format!("/v1/messenger/conversations/{mine_id}/replies"),
            &us,
            json!({"body": "more"}),
        )
        .await;
    assert_eq!(reply.status, 201);
    // The unverified boot did not rename the contact.
    let c = app.get(&format!("/v1/contacts/{dana}"), &token).await;
    assert_eq!(c.body["name"], "Dana");

    // A second unverified session does not see the first one's conversation.
    let u2 = app
        .boot(json!({"workspace_id": ws, "user_id": "dana"}))
        .await;
    let l2 = app
        .get("/v1/messenger/conversations", &s(&u2.body["session_token"]))
        .await;
    assert_eq!(l2.body["data"].as_array().unwrap().len(), 0);

    // A proof that is sent but wrong is refused, never downgraded to unverified.
    assert_problem(
        &app.boot(
            json!({"workspace_id": ws, "user_id": "dana", "user_hash": hash(&secret, "eve")}),
        )
        .await,
        401,
        "identity_verification_failed",
    );

    // Verified: everything of the contact.
    let v = app
        .boot(json!({"workspace_id": ws, "user_id": "dana", "user_hash": hash(&secret, "dana")}))
        .await;
    assert_eq!(v.body["identity_verified"], true);
    let lv = app
        .get("/v1/messenger/conversations", &s(&v.body["session_token"]))
        .await;
    assert_eq!(lv.body["data"].as_array().unwrap().len(), 2);

    // `off`: user boots are trusted by id (the legacy mode) and never verified.
    app.set_mode(&token, "off").await;
    let off = app
        .boot(json!({"workspace_id": ws, "user_id": "dana"}))
        .await;
    assert_eq!(off.body["identity_verified"], false);
    let lo = app
        .get(
            "/v1/messenger/conversations",
            &s(&off.body["session_token"]),
        )
        .await;
    assert_eq!(lo.body["data"].as_array().unwrap().len(), 2);
    app.stop().await;
}

async fn verified_boot_merges_the_visitor(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    let (_, secret) = app.secret(&token).await;
    app.set_mode(&token, "enforced").await;

    let v = app.boot(json!({"workspace_id": ws})).await;
    assert_eq!(
        v.status, 200,
        "visitors boot under enforcement: {:?}",
        v.body
    );
    let visitor = s(&v.body["contact_id"]);
    let visitor_token = s(&v.body["visitor_token"]);
    let vs = s(&v.body["session_token"]);
    let conv = s(&app
        .post(
            "/v1/messenger/conversations",
            &vs,
            json!({"body": "pricing?"}),
        )
        .await
        .body["id"]);
    let ev = app
        .post(
            "/v1/events",
            &token,
            json!({"contact_id": visitor, "name": "viewed-pricing"}),
        )
        .await;
    assert_eq!(ev.status, 201, "{:?}", ev.body);

    // An unverified attempt to claim the visitor fails and changes nothing.
    let bad = app
        .boot(json!({"workspace_id": ws, "visitor_token": visitor_token, "user_id": "erin", "user_hash": hash(&secret, "mallory")}))
        .await;
    assert_problem(&bad, 401, "identity_verification_failed");
    let still = app
        .boot(json!({"workspace_id": ws, "visitor_token": visitor_token}))
        .await;
    assert_eq!(still.body["contact_id"], visitor.as_str());

    // The verified boot (JWT with claims) turns the visitor into the user.
    let u = app
        .boot(json!({"workspace_id": ws, "visitor_token": visitor_token,
            "user_jwt": jwt(&secret, json!({"user_id": "erin", "email": "Erin@Example.com", "name": "Erin", "iat": now(), "exp": now() + 600}))}))
        .await;
    assert_eq!(u.status, 200, "{:?}", u.body);
    assert_eq!(u.body["identity_verified"], true);
    let user = s(&u.body["contact_id"]);
    assert_ne!(user, visitor);
    let us = s(&u.body["session_token"]);
    let l = app.get("/v1/messenger/conversations", &us).await;
    assert_eq!(l.body["data"].as_array().unwrap().len(), 1);
    let got = app
        .get(&format!("/v1/messenger/conversations/{conv}"), &us)
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["contact_id"], user.as_str());
    assert_eq!(got.body["parts"][0]["author"]["id"], user.as_str());
    assert_eq!(got.body["parts"][0]["body"], "pricing?");
    let events = app
        .get(&format!("/v1/events?contact_id={user}"), &token)
        .await;
    assert_eq!(events.status, 200, "{:?}", events.body);
    assert_eq!(events.body["data"].as_array().unwrap().len(), 1);
    // The claims updated the contact (email normalised).
    let c = app.get(&format!("/v1/contacts/{user}"), &token).await;
    assert_eq!(c.body["email"], "erin@example.com");
    assert_eq!(c.body["name"], "Erin");
    assert_eq!(c.body["external_id"], "erin");
    // The visitor is gone, its sessions and token with it.
    assert_problem(
        &app.get(&format!("/v1/contacts/{visitor}"), &token).await,
        404,
        "not_found",
    );
    assert_problem(
        &app.get("/v1/messenger/conversations", &vs).await,
        401,
        "invalid_token",
    );
    let reuse = app
        .boot(json!({"workspace_id": ws, "visitor_token": visitor_token}))
        .await;
    assert_ne!(reuse.body["contact_id"], visitor.as_str());
    assert_ne!(reuse.body["contact_id"], user.as_str());
    let lr = app
        .get(
            "/v1/messenger/conversations",
            &s(&reuse.body["session_token"]),
        )
        .await;
    assert_eq!(lr.body["data"].as_array().unwrap().len(), 0);
    // The merged conversation still takes replies from its new owner.
    let r = app
        .post(
            &format!("/v1/messenger/conversations/{conv}/replies"),
            &us,
            json!({"body": "thanks"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // In optional mode an unverified boot never merges.
    app.set_mode(&token, "optional").await;
    let v2 = app.boot(json!({"workspace_id": ws})).await;
    let v2_token = s(&v2.body["visitor_token"]);
    let u2 = app
        .boot(json!({"workspace_id": ws, "visitor_token": v2_token, "user_id": "erin"}))
        .await;
    assert_eq!(u2.body["identity_verified"], false);
    let back = app
        .boot(json!({"workspace_id": ws, "visitor_token": v2_token}))
        .await;
    assert_eq!(back.body["contact_id"], v2.body["contact_id"]);
    app.stop().await;
}

async fn secrets_and_settings_are_checked_and_sealed(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    let (_, other_token) = app.workspace("eu").await;

    // Enforcing without a secret would lock every user out.
    let r = app
        .call(
            Method::PUT,
            "/v1/workspace/messenger",
            Some(&token),
            Some(json!({"identity_verification": "enforced"})),
        )
        .await;
    assert_problem(&r, 409, "no_verification_secret");

    for (body, code) in [
        (json!({"name": "x", "platforms": []}), "empty"),
        (
            json!({"name": "x", "platforms": ["web", "web"]}),
            "duplicate_platform",
        ),
        (
            json!({"name": "x", "platforms": ["desktop"]}),
            "invalid_platform",
        ),
        (json!({"name": "", "platforms": ["web"]}), "empty"),
        (
            json!({"name": "x".repeat(101), "platforms": ["web"]}),
            "too_long",
        ),
        (json!({"name": "x"}), "invalid_body"),
    ] {
        assert_problem(
            &app.post("/v1/messenger/secrets", &token, body).await,
            422,
            code,
        );
    }
    let (id, value) = app.secret(&token).await;
    assert!(value.starts_with("ilh_") && value.len() == 47);
    let list = app.get("/v1/messenger/secrets", &token).await;
    assert_eq!(list.status, 200);
    let items = list.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["platforms"], json!(["web", "ios", "android"]));
    assert!(!list.body.to_string().contains(&value), "listed a value");
    // Another workspace neither sees nor deletes it.
    let theirs = app.get("/v1/messenger/secrets", &other_token).await;
    assert_eq!(theirs.body["data"].as_array().unwrap().len(), 0);
    assert_problem(
        &app.delete(&format!("/v1/messenger/secrets/{id}"), &other_token)
            .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.delete("/v1/messenger/secrets/nope", &token).await,
        400,
        "invalid_id",
    );

    // The value is stored only sealed: not in any row of the table.
    let cell = app.cell(interlock_domain::Region::Eu);
    let rows: Vec<(Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT name_ct, value_ct FROM messenger_secrets")
            .fetch_all(cell.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    for (name_ct, value_ct) in rows {
        let hay = [name_ct, value_ct].concat();
        assert!(!hay.windows(value.len()).any(|w| w == value.as_bytes()));
        assert!(!hay.windows(8).any(|w| w == b"web 2026"));
    }

    // Settings: validated, and `enforced` is accepted once a secret exists.
    for (body, status, code) in [
        (json!({"identity_verification": "on"}), 422, "invalid_mode"),
        (
            json!({"identity_verification": "enforced", "jwt_max_lifetime_s": 59}),
            422,
            "out_of_range",
        ),
        (
            json!({"identity_verification": "enforced", "jwt_max_lifetime_s": 2_592_001}),
            422,
            "out_of_range",
        ),
        (json!({"jwt_max_lifetime_s": 600}), 422, "invalid_body"),
    ] {
        let r = app
            .call(
                Method::PUT,
                "/v1/workspace/messenger",
                Some(&token),
                Some(body),
            )
            .await;
        assert_problem(&r, status, code);
    }
    let r = app
        .call(
            Method::PUT,
            "/v1/workspace/messenger",
            Some(&token),
            Some(json!({"identity_verification": "enforced", "jwt_max_lifetime_s": 600})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let st = app.get("/v1/workspace/messenger", &token).await;
    assert_eq!(st.body["identity_verification"], "enforced");
    assert_eq!(st.body["jwt_max_lifetime_s"], 600);
    // Only this workspace changed.
    let other = app.get("/v1/workspace/messenger", &other_token).await;
    assert_eq!(other.body["identity_verification"], "optional");

    // The shorter maximum lifetime now applies to JWTs.
    let long = app
        .boot(json!({"workspace_id": ws, "user_jwt": jwt(&value, json!({"user_id": "u", "iat": now(), "exp": now() + 3600}))}))
        .await;
    assert_problem(&long, 401, "identity_verification_failed");
    assert_eq!(long.body["reason"], "jwt_lifetime_too_long");
    let short = app
        .boot(json!({"workspace_id": ws, "user_jwt": jwt(&value, json!({"user_id": "u", "iat": now(), "exp": now() + 300}))}))
        .await;
    assert_eq!(short.status, 200, "{:?}", short.body);

    let d = app
        .delete(&format!("/v1/messenger/secrets/{id}"), &token)
        .await;
    assert_eq!(d.body, json!({"id": id, "deleted": true}));
    assert_problem(
        &app.delete(&format!("/v1/messenger/secrets/{id}"), &token)
            .await,
        404,
        "not_found",
    );
    app.stop().await;
}

async fn secrets_are_per_platform(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    let r = app
        .post(
            "/v1/messenger/secrets",
            &token,
            json!({"name": "ios app", "platforms": ["ios"]}),
        )
        .await;
    let ios = s(&r.body["secret"]);
    app.set_mode(&token, "enforced").await;
    let h = hash(&ios, "frank");
    let web = app
        .boot(json!({"workspace_id": ws, "user_id": "frank", "user_hash": h}))
        .await;
    assert_problem(&web, 401, "identity_verification_failed");
    let on_ios = app
        .boot(json!({"workspace_id": ws, "user_id": "frank", "user_hash": h, "platform": "ios"}))
        .await;
    assert_eq!(on_ios.status, 200, "{:?}", on_ios.body);
    app.stop().await;
}

async fn rate_limits_and_message_size(store: Store) {
    let app = TestApp::spawn_with(store, |s| {
        s.limits.messenger.boots_per_minute_per_ip = 3;
        s.limits.messenger.messages_per_minute_per_ip = 2;
        s.limits.messenger.max_message_bytes = 64;
    })
    .await;
    let (ws, _) = app.workspace("eu").await;
    let mut session = String::new();
    for _ in 0..3 {
        let b = app.boot(json!({"workspace_id": ws})).await;
        assert_eq!(b.status, 200);
        session = s(&b.body["session_token"]);
    }
    let limited = app.boot(json!({"workspace_id": ws})).await;
    assert_problem(&limited, 429, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");

    // Too long a body is refused before it counts or is stored.
    assert_problem(
        &app.post(
            "/v1/messenger/conversations",
            &session,
            json!({"body": "x".repeat(65)}),
        )
        .await,
        422,
        "body_too_long",
    );
    let c = app
        .post(
            "/v1/messenger/conversations",
            &session,
            json!({"body": "x".repeat(64)}),
        )
        .await;
    assert_eq!(c.status, 201, "{:?}", c.body);
    let list = app.get("/v1/messenger/conversations", &session).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    let conv = s(&c.body["id"]);
    let r = app
        .post(
            &format!("/v1/messenger/conversations/{conv}/replies"),
            &session,
            json!({"body": "second"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .post(
            &format!("/v1/messenger/conversations/{conv}/replies"),
            &session,
            json!({"body": "third"}),
        )
        .await;
    assert_problem(&r, 429, "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
    // Reads are not rate limited, and the limited message was not stored.
    let one = app
        .get(&format!("/v1/messenger/conversations/{conv}"), &session)
        .await;
    assert_eq!(one.body["parts"].as_array().unwrap().len(), 2);
    app.stop().await;
}

async fn sessions_expire(store: Store) {
    let app = TestApp::spawn_with(store, |s| s.limits.messenger.session_ttl_s = 1).await;
    let (ws, _) = app.workspace("eu").await;
    let b = app.boot(json!({"workspace_id": ws})).await;
    let session = s(&b.body["session_token"]);
    assert!(b.body["expires_at"].as_i64().unwrap() <= now() + 2);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_problem(
        &app.get("/v1/messenger/conversations", &session).await,
        401,
        "invalid_token",
    );
    // The visitor can boot again and carry on.
    let again = app
        .boot(json!({"workspace_id": ws, "visitor_token": s(&b.body["visitor_token"])}))
        .await;
    assert_eq!(again.body["contact_id"], b.body["contact_id"]);
    app.stop().await;
}
