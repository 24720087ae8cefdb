//! Authorization end to end: the matrix of every workspace endpoint of the OpenAPI document ×
//! every built-in role × a token lacking the endpoint's permission × a token of another
//! workspace, checked against the `x-permission` each operation declares; and scoped API
//! tokens (escalation, expiry, revocation). SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::collections::BTreeMap;

use common::text as s;
use common::{Resp, Store, TestApp, assert_problem};
use reqwest::Method;
use serde_json::{Value, json};

store_tests!(
    authorization_matrix_matches_the_catalogue,
    custom_roles,
    contacts_read_only_token,
    scoped_tokens_cannot_escalate_expire_and_revoke,
    tokens_never_outgrow_their_creators_current_role,
);

impl TestApp {
    async fn token(&self, owner: &str, name: &str, permissions: &[&str]) -> (String, String) {
        let r = self
            .post(
                "/v1/api-tokens",
                owner,
                json!({"name": name, "permissions": permissions}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        (s(&r.body["id"]), s(&r.body["token"]))
    }
}

fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(s).collect()
}

/// Objects of workspace A that the endpoints' path parameters name.
struct Fixture {
    contact: String,
    conversation: String,
    attachment: String,
    secret: String,
    token: String,
    teammate: String,
    role: String,
    /// A webhook id (none exists: deleting it answers 404 to those allowed).
    webhook: String,
    /// A data request id (none exists: those allowed get 404).
    data_request: String,
}

impl Fixture {
    fn path(&self, template: &str) -> String {
        let id = if template.starts_with("/v1/contacts/") {
            &self.contact
        } else if template.starts_with("/v1/conversations/") {
            &self.conversation
        } else if template.starts_with("/v1/messenger/secrets/") {
            &self.secret
        } else if template.starts_with("/v1/api-tokens/") {
            &self.token
        } else if template.starts_with("/v1/teammates/") {
            &self.teammate
        } else if template.starts_with("/v1/roles/") {
            &self.role
        } else if template.starts_with("/v1/webhooks/") {
            &self.webhook
        } else if template.starts_with("/v1/data-requests/") {
            &self.data_request
        } else {
            ""
        };
        template
            .replace("{attachment_id}", &self.attachment)
            .replace("{id}", id)
    }
}

async fn call(app: &TestApp, method: &Method, path: &str, token: &str) -> Resp {
    let body = match *method {
        Method::GET | Method::DELETE => None,
        _ => Some(json!({})),
    };
    app.call(method.clone(), path, Some(token), body).await
}

async fn authorization_matrix_matches_the_catalogue(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, owner) = app.workspace("eu").await;
    let (_, other_ws) = app.workspace("eu").await;

    // The catalogue and the built-in roles, as served.
    let catalogue = app.get("/v1/permissions", &owner).await;
    assert_eq!(catalogue.status, 200);
    let all: Vec<String> = catalogue.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| s(&p["name"]))
        .collect();
    assert!(all.len() >= 16, "{all:?}");
    let roles_resp = app.get("/v1/roles", &owner).await;
    let roles: BTreeMap<String, Vec<String>> = roles_resp.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["builtin"] == true)
        .map(|r| (s(&r["name"]), names(&r["permissions"])))
        .collect();
    assert_eq!(
        roles.keys().cloned().collect::<Vec<_>>(),
        ["admin", "agent", "owner", "viewer"]
    );
    for scale in ["data.export", "data.bulk_delete", "contacts.delete"] {
        assert!(!roles["agent"].contains(&scale.to_owned()));
        assert!(!roles["viewer"].contains(&scale.to_owned()));
    }

    // A token per role (holding exactly the role's permissions) and, per permission, a token
    // holding everything else.
    let mut role_tokens = BTreeMap::new();
    for (role, perms) in &roles {
        let perms: Vec<&str> = perms.iter().map(String::as_str).collect();
        role_tokens.insert(role.clone(), app.token(&owner, role, &perms).await.1);
    }
    // And a signed-in teammate per built-in role.
    let mut sessions = BTreeMap::new();
    for role in roles.keys() {
        let email = format!("{role}@matrix.example");
        app.teammate(&owner, &email, role).await;
        sessions.insert(role.clone(), app.sign_in(&ws, &email).await);
    }
    let mut lacking = BTreeMap::new();
    for p in &all {
        let rest: Vec<&str> = all.iter().filter(|q| *q != p).map(String::as_str).collect();
        lacking.insert(p.clone(), app.token(&owner, "lacking", &rest).await.1);
    }

    // Objects to name in paths.
    let contact = app
        .contact(&owner, json!({"role": "user", "external_id": "m-1"}))
        .await;
    let conv = app
        .post(
            "/v1/conversations",
            &owner,
            json!({"contact_id": contact, "body": "hi"}),
        )
        .await;
    let conversation = s(&conv.body["id"]);
    let att = app
        .http
        .post(format!(
            "{}/v1/conversations/{conversation}/attachments?filename=a.txt",
            app.base
        ))
        .bearer_auth(&owner)
        .header("content-type", "text/plain")
        .body("attachment")
        .send()
        .await
        .unwrap();
    assert_eq!(att.status(), 201);
    let attachment = s(&att.json::<Value>().await.unwrap()["id"]);
    let secret = s(&app
        .post(
            "/v1/messenger/secrets",
            &owner,
            json!({"name": "m", "platforms": ["web"]}),
        )
        .await
        .body["id"]);
    let (victim, _) = app.token(&owner, "victim", &["contacts.read"]).await;
    let tm = app
        .post(
            "/v1/teammates",
            &owner,
            json!({"email": "matrix@example.com", "name": "M", "role": "agent"}),
        )
        .await;
    assert_eq!(tm.status, 201, "{:?}", tm.body);
    let custom = app
        .post(
            "/v1/roles",
            &owner,
            json!({"name": "matrix", "permissions": ["contacts.read"]}),
        )
        .await;
    assert_eq!(custom.status, 201, "{:?}", custom.body);
    let fx = Fixture {
        role: s(&custom.body["id"]),
        teammate: s(&tm.body["teammate"]["id"]),
        contact,
        conversation,
        attachment,
        secret,
        token: victim,
        webhook: format!("wh_{}", "0".repeat(32)),
        data_request: format!("dr_{}", "0".repeat(32)),
    };

    // Every operation of the document that takes a workspace token.
    let doc = app.get("/v1/openapi.json", &owner).await.body;
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured_by_workspace = op["security"]
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s.get("workspace_token").is_some()));
            if !secured_by_workspace {
                continue;
            }
            let needed = op.get("x-permission").and_then(Value::as_str);
            if let Some(p) = needed {
                assert!(all.contains(&p.to_owned()), "{template}: unknown {p}");
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let path = fx.path(template);
            for (role, perms) in &roles {
                let allowed = needed.is_none_or(|p| perms.contains(&p.to_owned()));
                let body = match method {
                    Method::GET | Method::DELETE => None,
                    _ => Some(json!({})),
                };
                let by_token = call(&app, &method, &path, &role_tokens[role]).await;
                let by_session = app
                    .as_session(&sessions[role], method.clone(), &path, body, true)
                    .await;
                for (how, r) in [("token", by_token), ("session", by_session)] {
                    if allowed {
                        assert!(
                            r.status != 401 && r.status != 403,
                            "{method} {template} as {role} {how}: expected allow, got {} {:?}",
                            r.status,
                            r.body
                        );
                    } else {
                        assert_problem(&r, 403, "permission_denied");
                        assert_eq!(r.body["permission"], needed.unwrap_or_default());
                    }
                }
            }
            if let Some(p) = needed {
                let r = call(&app, &method, &path, &lacking[p]).await;
                assert_problem(&r, 403, "permission_denied");
            }
            // Another workspace's full token never reaches this workspace's objects.
            if path.contains("/ct_")
                || path.contains("/cv_")
                || path.contains("/ms_")
                || path.contains("/tk_")
                || path.contains("/tm_")
                || path.contains("/rl_")
            {
                let r = call(&app, &method, &path, &other_ws).await;
                let refused = if method == Method::GET {
                    r.status == 404
                } else {
                    r.status.is_client_error()
                };
                assert!(
                    refused,
                    "{method} {template} with another workspace's token: {} {:?}",
                    r.status, r.body
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 23, "only {checked} operations checked");
    app.stop().await;
}

async fn contacts_read_only_token(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_, owner) = app.workspace("us").await;
    let contact = app
        .contact(&owner, json!({"role": "user", "email": "r@example.com"}))
        .await;
    let (_, reader) = app.token(&owner, "reader", &["contacts.read"]).await;
    let got = app.get(&format!("/v1/contacts/{contact}"), &reader).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["email"], "r@example.com");
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/conversations".to_owned(),
            json!({"contact_id": contact, "body": "x"}),
        ),
        (
            Method::POST,
            "/v1/contacts".to_owned(),
            json!({"role": "visitor"}),
        ),
        (
            Method::PATCH,
            format!("/v1/contacts/{contact}"),
            json!({"name": "x"}),
        ),
        (
            Method::POST,
            "/v1/api-tokens".to_owned(),
            json!({"name": "x", "permissions": ["contacts.read"]}),
        ),
        (Method::GET, "/v1/messenger/secrets".to_owned(), Value::Null),
    ] {
        let r = app
            .call(method.clone(), &path, Some(&reader), Some(body))
            .await;
        assert_problem(&r, 403, "permission_denied");
    }
    app.stop().await;
}

async fn scoped_tokens_cannot_escalate_expire_and_revoke(store: Store) {
    let app = TestApp::spawn(store).await;
    let (_, owner) = app.workspace("au").await;
    let (_, other) = app.workspace("au").await;

    // The first token is listed as full access; values are never listed.
    let list = app.get("/v1/api-tokens", &owner).await;
    assert_eq!(list.status, 200);
    let items = list.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["permissions"], json!(["*"]));
    assert!(!list.body.to_string().contains(&owner));

    // A manager of tokens cannot mint more than it holds.
    let (_, manager) = app
        .token(&owner, "mgr", &["api_tokens.manage", "contacts.read"])
        .await;
    let esc = app
        .post(
            "/v1/api-tokens",
            &manager,
            json!({"name": "x", "permissions": ["contacts.read", "contacts.edit"]}),
        )
        .await;
    assert_problem(&esc, 403, "permission_escalation");
    let ok = app
        .post(
            "/v1/api-tokens",
            &manager,
            json!({"name": "x", "permissions": ["contacts.read"]}),
        )
        .await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);

    for (body, code) in [
        (json!({"name": "x", "permissions": []}), "empty"),
        (
            json!({"name": "x", "permissions": ["root"]}),
            "unknown_permission",
        ),
        (
            json!({"name": "x", "permissions": ["contacts.read", "contacts.read"]}),
            "duplicate_permission",
        ),
        (
            json!({"name": "x", "permissions": ["contacts.read"], "expires_at": 1}),
            "expires_in_past",
        ),
        (
            json!({"name": "", "permissions": ["contacts.read"]}),
            "empty",
        ),
        (json!({"permissions": ["contacts.read"]}), "invalid_body"),
    ] {
        assert_problem(&app.post("/v1/api-tokens", &owner, body).await, 422, code);
    }

    // Expiry.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let r = app
        .post(
            "/v1/api-tokens",
            &owner,
            json!({"name": "brief", "permissions": ["contacts.read"], "expires_at": now + 3}),
        )
        .await;
    assert_eq!(r.status, 201);
    let brief = s(&r.body["token"]);
    assert_eq!(app.get("/v1/contacts", &brief).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    assert_problem(&app.get("/v1/contacts", &brief).await, 401, "invalid_token");

    // Revocation works at once; another workspace cannot revoke.
    let (id, t) = app.token(&owner, "soon revoked", &["contacts.read"]).await;
    assert_eq!(app.get("/v1/contacts", &t).await.status, 200);
    assert_problem(
        &app.call(
            Method::DELETE,
            &format!("/v1/api-tokens/{id}"),
            Some(&other),
            None,
        )
        .await,
        404,
        "not_found",
    );
    let d = app
        .call(
            Method::DELETE,
            &format!("/v1/api-tokens/{id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(d.body, json!({"id": id, "deleted": true}));
    assert_problem(&app.get("/v1/contacts", &t).await, 401, "invalid_token");
    assert_problem(
        &app.call(
            Method::DELETE,
            &format!("/v1/api-tokens/{id}"),
            Some(&owner),
            None,
        )
        .await,
        404,
        "not_found",
    );
    app.stop().await;
}

async fn custom_roles(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, owner) = app.workspace("us").await;
    let r = app
        .post(
            "/v1/roles",
            &owner,
            json!({"name": "Reader", "permissions": ["conversations.read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let role = s(&r.body["id"]);
    assert!(role.starts_with("rl_"));
    app.teammate(&owner, "c@example.com", &role).await;
    let sess = app.sign_in(&ws, "c@example.com").await;
    assert_eq!(
        app.as_session(&sess, Method::GET, "/v1/conversations", None, false)
            .await
            .status,
        200
    );
    assert_problem(
        &app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await,
        403,
        "permission_denied",
    );
    // A change to the role applies to the live session.
    let u = app
        .call(
            Method::PUT,
            &format!("/v1/roles/{role}"),
            Some(&owner),
            Some(
                json!({"name": "Reader+", "permissions": ["conversations.read", "contacts.read"]}),
            ),
        )
        .await;
    assert_eq!(u.status, 200, "{:?}", u.body);
    assert_eq!(
        app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await
            .status,
        200
    );
    let listed = app.get("/v1/roles", &owner).await;
    let mine = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == role.as_str())
        .cloned()
        .unwrap();
    assert_eq!(mine["name"], "Reader+");
    assert_eq!(mine["builtin"], false);

    // In use: cannot be deleted. Unknown names and escalation are refused.
    assert_problem(
        &app.call(
            Method::DELETE,
            &format!("/v1/roles/{role}"),
            Some(&owner),
            None,
        )
        .await,
        409,
        "role_in_use",
    );
    let (_, limited) = app
        .token(&owner, "limited", &["roles.manage", "contacts.read"])
        .await;
    assert_problem(
        &app.post(
            "/v1/roles",
            &limited,
            json!({"name": "x", "permissions": ["contacts.read", "data.export"]}),
        )
        .await,
        403,
        "permission_escalation",
    );
    assert_problem(
        &app.call(
            Method::PUT,
            &format!("/v1/roles/{role}"),
            Some(&limited),
            Some(json!({"name": "x", "permissions": ["contacts.read"]})),
        )
        .await,
        403,
        "permission_escalation",
    );
    assert_problem(
        &app.post(
            "/v1/roles",
            &owner,
            json!({"name": "x", "permissions": ["root"]}),
        )
        .await,
        422,
        "unknown_permission",
    );
    assert_problem(
        &app.post(
            "/v1/teammates",
            &owner,
            json!({"email": "d@example.com", "name": "D", "role": "rl_0192f0c1a2b34c5d8e9f001122334455"}),
        )
        .await,
        422,
        "unknown_role",
    );
    let free = s(&app
        .post(
            "/v1/roles",
            &owner,
            json!({"name": "Unused", "permissions": ["contacts.read"]}),
        )
        .await
        .body["id"]);
    let d = app
        .call(
            Method::DELETE,
            &format!("/v1/roles/{free}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(d.body, json!({"id": free, "deleted": true}));
    app.stop().await;
}

/// A token an admin made holds no more than the admin's current role: demoting them narrows
/// it at once (an access review's revocation reaches their tokens too), promoting them back
/// restores it, and a custom role that loses a permission takes it from its holders' tokens.
async fn tokens_never_outgrow_their_creators_current_role(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, owner) = app.workspace("eu").await;
    let admin_id = app.teammate(&owner, "admin@example.com", "admin").await;
    let admin = app.sign_in(&ws, "admin@example.com").await;
    let r = app
        .as_session(
            &admin,
            Method::POST,
            "/v1/api-tokens",
            Some(json!({"name": "sync", "permissions": ["contacts.read", "activity_log.read"]})),
            true,
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let token = s(&r.body["token"]);
    assert_eq!(app.get("/v1/activity-logs", &token).await.status, 200);

    let set_role = |role: Value| {
        let (app, owner, path) = (&app, owner.clone(), format!("/v1/teammates/{admin_id}"));
        async move {
            let r = app
                .call(
                    Method::PATCH,
                    &path,
                    Some(&owner),
                    Some(json!({"role": role})),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    };
    // Demoted to agent (no activity_log.read): the token loses it at once, keeps the rest.
    set_role(json!("agent")).await;
    let r = app.get("/v1/activity-logs", &token).await;
    assert_problem(&r, 403, "permission_denied");
    assert_eq!(app.get("/v1/contacts", &token).await.status, 200);
    // The listing still shows the scope it was made with.
    let list = app.get("/v1/api-tokens", &owner).await;
    let sync = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "sync")
        .unwrap()
        .clone();
    assert_eq!(
        sync["permissions"],
        json!(["contacts.read", "activity_log.read"])
    );
    set_role(json!("admin")).await;
    assert_eq!(app.get("/v1/activity-logs", &token).await.status, 200);

    // A custom role narrowed after the fact narrows its holders' tokens.
    let r = app
        .post(
            "/v1/roles",
            &owner,
            json!({"name": "Auditor", "permissions": ["contacts.read", "activity_log.read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let role_id = s(&r.body["id"]);
    set_role(json!(role_id)).await;
    assert_eq!(app.get("/v1/activity-logs", &token).await.status, 200);
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/roles/{role_id}"),
            Some(&owner),
            Some(json!({"name": "Auditor", "permissions": ["contacts.read"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_problem(
        &app.get("/v1/activity-logs", &token).await,
        403,
        "permission_denied",
    );
    assert_eq!(app.get("/v1/contacts", &token).await.status, 200);
    app.stop().await;
}
