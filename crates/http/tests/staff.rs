//! Operator staff access through the real server (mutual TLS, router, stores), on SQLite and
//! PostgreSQL, with a clock the test moves: staff sign in from their own trusted device, hold
//! no standing access (404 on every workspace object), ask for a grant with a reason and a
//! ticket, are approved by another staff member (and, where the workspace requires it, a
//! workspace admin), read exactly what the grant allows until it expires or is revoked, and
//! every request under the grant is in the workspace's activity log. Break-glass grants start
//! at once and end unless a second person confirms them within an hour.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Resp, Store, TestApp, assert_problem, text};
use interlock_crypto::totp::TotpSecret;
use interlock_domain::{Region, StaffRole};
use interlock_storage::{Clock, OffsetClock};
use reqwest::Method;
use serde_json::{Value, json};

store_tests!(
    grants_are_just_in_time_scoped_and_logged,
    workspace_approval_and_revocation,
    break_glass_needs_a_second_person,
    passkeys_sign_staff_in_from_their_device,
    repeated_failures_lock_staff_sign_in,
    passkey_only_once_enrolled,
    the_staff_audit_log_records_sign_ins,
);

/// A staff member with their own trusted device and a signed-in session.
struct Staff {
    id: String,
    client: reqwest::Client,
    session: String,
    secret: TotpSecret,
}

async fn send(
    app: &TestApp,
    client: &reqwest::Client,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    app.send_with(client, method, path, token, body).await
}

fn code(secret: &TotpSecret, clock: &dyn Clock) -> String {
    secret.code_at(u64::try_from(clock.now_ms() / 1000).unwrap())
}

/// Add a staff member, issue and register their device, sign them in.
async fn staff(app: &TestApp, clock: &dyn Clock, email: &str, role: StaffRole) -> Staff {
    let (id, client, secret) = app.staff_with_device(email, role).await;
    let r = send(
        app,
        &client,
        Method::POST,
        "/v1/staff/sessions",
        None,
        Some(json!({"staff_id": id, "code": code(&secret, clock)})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["role"], role.as_str());
    Staff {
        id,
        client,
        session: text(&r.body["token"]),
        secret,
    }
}

impl Staff {
    async fn call(&self, app: &TestApp, m: Method, path: &str, body: Option<Value>) -> Resp {
        send(app, &self.client, m, path, Some(&self.session), body).await
    }

    /// A request under a grant token, from this member's device.
    async fn with_grant(&self, app: &TestApp, grant: &str, m: Method, path: &str) -> Resp {
        send(app, &self.client, m, path, Some(grant), None).await
    }
}

async fn spawn(store: Store) -> (TestApp, Arc<OffsetClock>) {
    let clock = Arc::new(OffsetClock::new(0));
    let c = clock.clone();
    let app = TestApp::spawn_with(store, move |s| {
        s.retention.sweep_every_s = 1;
        s.clock = c;
        // Webhook receivers of these tests are plain-http addresses that nothing delivers to.
        s.outbound.allow_insecure_http = true;
        s.outbound.poll_interval_ms = 3_600_000;
    })
    .await;
    (app, clock)
}

/// The workspace's activity entries of one type.
async fn entries(app: &TestApp, token: &str, kind: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/v1/activity-logs?types={kind}&per_page=100"),
            token,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

async fn grants_are_just_in_time_scoped_and_logged(store: Store) {
    let (app, clock) = spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    let contact = app
        .contact(&token, json!({"email": "case@example.com"}))
        .await;
    let alice = staff(&app, &clock, "alice@operator.example", StaffRole::Support).await;
    let bob = staff(&app, &clock, "bob@operator.example", StaffRole::Approver).await;

    // A staff session reaches no workspace object: without a grant there is nothing to find.
    for path in [format!("/v1/contacts/{contact}"), "/v1/contacts".to_owned()] {
        let r = alice.call(&app, Method::GET, &path, None).await;
        assert_problem(&r, 404, "not_found");
    }
    // Signing in as alice from bob's device, or with a replayed code, is refused.
    let r = send(
        &app,
        &bob.client,
        Method::POST,
        "/v1/staff/sessions",
        None,
        Some(json!({"staff_id": alice.id, "code": code(&alice.secret, &clock)})),
    )
    .await;
    assert_problem(&r, 401, "invalid_credentials");
    let r = send(
        &app,
        &alice.client,
        Method::POST,
        "/v1/staff/sessions",
        None,
        Some(json!({"staff_id": alice.id, "code": code(&alice.secret, &clock)})),
    )
    .await;
    assert_problem(&r, 401, "invalid_credentials");
    // A session token without the device is refused.
    let r = app.get("/v1/staff/me", &alice.session).await;
    assert_problem(&r, 401, "device_certificate_required");
    let me = alice.call(&app, Method::GET, "/v1/staff/me", None).await;
    assert_eq!(me.body["staff_id"], alice.id.as_str());

    // Bad asks: no reason, a permission that would outlive the grant, too long.
    let ask = |reason: &str, perms: Value, duration: i64| {
        json!({"workspace_id": ws, "permissions": perms, "reason": reason,
            "ticket": "SUP-1234", "duration_s": duration})
    };
    for (body, code) in [
        (ask("", json!(["contacts.read"]), 3600), "reason_required"),
        (
            ask("debug", json!(["contacts.read", "api_tokens.manage"]), 3600),
            "permission_not_grantable",
        ),
        (
            ask("debug", json!(["contacts.read"]), 14_401),
            "out_of_range",
        ),
        (ask("debug", json!(["contacts.read"]), 59), "out_of_range"),
        (ask("debug", json!(["no.such"]), 3600), "unknown_permission"),
    ] {
        let r = alice
            .call(&app, Method::POST, "/v1/staff/access-requests", Some(body))
            .await;
        assert_eq!(r.status, 422, "{code}: {:?}", r.body);
        assert_eq!(r.body["code"], code, "{:?}", r.body);
    }
    let r = alice
        .call(
            &app,
            Method::POST,
            "/v1/staff/access-requests",
            Some(
                json!({"workspace_id": "ws_us_00000000000000000000000000000000",
                "permissions": ["contacts.read"], "reason": "r", "ticket": "t"}),
            ),
        )
        .await;
    assert_eq!(r.status, 404, "another region's workspace: {:?}", r.body);

    let asked = alice
        .call(
            &app,
            Method::POST,
            "/v1/staff/access-requests",
            Some(ask(
                "customer cannot see their import",
                json!(["contacts.read"]),
                3600,
            )),
        )
        .await;
    assert_eq!(asked.status, 201, "{:?}", asked.body);
    assert_eq!(asked.body["status"], "pending");
    let grant_id = text(&asked.body["id"]);
    let grant = text(&asked.body["token"]);
    assert!(grant.starts_with("ilg_"), "{grant}");
    let contact_path = format!("/v1/contacts/{contact}");
    // Not approved yet: the token does nothing.
    let r = alice
        .with_grant(&app, &grant, Method::GET, &contact_path)
        .await;
    assert_problem(&r, 401, "grant_inactive");

    // Approval: not by a non-approver, never by oneself.
    let r = alice
        .call(
            &app,
            Method::POST,
            &format!("/v1/staff/access-requests/{grant_id}/approve"),
            None,
        )
        .await;
    assert_problem(&r, 403, "approver_required");
    let own = bob
        .call(
            &app,
            Method::POST,
            "/v1/staff/access-requests",
            Some(ask("on-call", json!(["contacts.read"]), 600)),
        )
        .await;
    assert_eq!(own.status, 201, "{:?}", own.body);
    let r = bob
        .call(
            &app,
            Method::POST,
            &format!(
                "/v1/staff/access-requests/{}/approve",
                text(&own.body["id"])
            ),
            None,
        )
        .await;
    assert_problem(&r, 403, "self_approval");
    let approved = bob
        .call(
            &app,
            Method::POST,
            &format!("/v1/staff/access-requests/{grant_id}/approve"),
            None,
        )
        .await;
    assert_eq!(approved.status, 200, "{:?}", approved.body);
    assert_eq!(approved.body["status"], "active");
    let again = bob
        .call(
            &app,
            Method::POST,
            &format!("/v1/staff/access-requests/{grant_id}/approve"),
            None,
        )
        .await;
    assert_problem(&again, 409, "grant_not_pending");

    // contacts.read reads contacts and nothing else.
    let r = alice
        .with_grant(&app, &grant, Method::GET, &contact_path)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["email"], "case@example.com");
    let r = alice
        .with_grant(&app, &grant, Method::GET, "/v1/conversations")
        .await;
    assert_problem(&r, 403, "permission_denied");
    let r = alice
        .with_grant(&app, &grant, Method::DELETE, &contact_path)
        .await;
    assert_problem(&r, 403, "permission_denied");
    // Only from alice's own device.
    let r = send(
        &app,
        &app.http,
        Method::GET,
        &contact_path,
        Some(&grant),
        None,
    )
    .await;
    assert_problem(&r, 401, "device_certificate_required");
    let r = bob
        .with_grant(&app, &grant, Method::GET, &contact_path)
        .await;
    assert_problem(&r, 401, "device_not_yours");

    // Access transparency: each request under the grant is in the workspace's log, with the
    // staff member's pseudonymous id, the grant, the reason and the ticket.
    let used = entries(&app, &token, "staff_access.used").await;
    assert_eq!(used.len(), 3, "{used:?}");
    for e in &used {
        assert_eq!(e["actor"]["type"], "staff");
        assert_eq!(e["actor"]["id"], alice.id.as_str());
        assert_eq!(e["metadata"]["grant_id"], grant_id.as_str());
        assert_eq!(e["metadata"]["reason"], "customer cannot see their import");
        assert_eq!(e["metadata"]["ticket"], "SUP-1234");
    }
    assert!(
        used.iter()
            .any(|e| e["metadata"]["route"] == "/v1/contacts/{id}"
                && e["metadata"]["method"] == "GET"),
        "{used:?}"
    );
    let log =
        serde_json::to_string(&entries(&app, &token, "staff_access.requested").await).unwrap();
    assert!(
        !log.contains("alice@operator.example"),
        "staff are pseudonymous: {log}"
    );
    assert_eq!(entries(&app, &token, "staff_access.started").await.len(), 1);

    // The workspace's admins see the grant.
    let list = app.get("/v1/workspace/staff-access", &token).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let listed = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == grant_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["status"], "active");
    assert_eq!(listed["reason"], "customer cannot see their import");
    assert_eq!(listed["staff_approved_by"], bob.id.as_str());

    // After duration_s it is refused, without anything having to run; the sweep then records
    // the end.
    clock.set_offset(3_601_000);
    let r = alice
        .with_grant(&app, &grant, Method::GET, &contact_path)
        .await;
    assert_problem(&r, 401, "grant_inactive");
    let mut ended = Vec::new();
    for _ in 0..50 {
        ended = entries(&app, &token, "staff_access.ended").await;
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        ended
            .iter()
            .any(|e| e["metadata"]["grant_id"] == grant_id.as_str()
                && e["metadata"]["reason"] == "expired"),
        "{ended:?}"
    );
    assert_eq!(ended[0]["actor"]["type"], "system");
    app.stop().await;
}

async fn workspace_approval_and_revocation(store: Store) {
    let (app, clock) = spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    let contact = app.contact(&token, json!({"email": "x@example.com"})).await;
    let alice = staff(&app, &clock, "alice@operator.example", StaffRole::Engineer).await;
    let bob = staff(&app, &clock, "bob@operator.example", StaffRole::Approver).await;

    let bad = app
        .put(
            "/v1/workspace/staff-access-settings",
            &token,
            json!({"staff_access_approval": "sometimes"}),
        )
        .await;
    assert_problem(&bad, 422, "invalid_value");
    let set = app
        .put(
            "/v1/workspace/staff-access-settings",
            &token,
            json!({"staff_access_approval": "required"}),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(
        app.get("/v1/workspace/staff-access-settings", &token)
            .await
            .body["staff_access_approval"],
        "required"
    );

    let asked = alice
        .call(
            &app,
            Method::POST,
            "/v1/staff/access-requests",
            Some(
                json!({"workspace_id": ws, "permissions": ["contacts.read", "conversations.read"],
                "reason": "incident", "ticket": "INC-7"}),
            ),
        )
        .await;
    assert_eq!(asked.status, 201, "{:?}", asked.body);
    assert_eq!(asked.body["workspace_approval_required"], true);
    assert_eq!(asked.body["duration_s"], 14_400, "the cap when omitted");
    let id = text(&asked.body["id"]);
    let grant = text(&asked.body["token"]);
    let path = format!("/v1/contacts/{contact}");
    // The operator's approver alone is not enough.
    let r = bob
        .call(
            &app,
            Method::POST,
            &format!("/v1/staff/access-requests/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_problem(
        &alice.with_grant(&app, &grant, Method::GET, &path).await,
        401,
        "grant_inactive",
    );
    // A teammate without staff_access.manage cannot approve; an admin can.
    let r = app
        .post(
            &format!("/v1/workspace/staff-access/{id}/approve"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "active");
    assert_eq!(
        alice
            .with_grant(&app, &grant, Method::GET, &path)
            .await
            .status,
        200
    );
    // The admin revokes it: it stops at once.
    let r = app
        .post(
            &format!("/v1/workspace/staff-access/{id}/revoke"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "revoked");
    assert_problem(
        &alice.with_grant(&app, &grant, Method::GET, &path).await,
        401,
        "grant_inactive",
    );
    let r = app
        .post(
            &format!("/v1/workspace/staff-access/{id}/revoke"),
            &token,
            json!({}),
        )
        .await;
    assert_problem(&r, 409, "grant_ended");
    let r = app
        .post(
            "/v1/workspace/staff-access/sg_00000000000000000000000000000000/revoke",
            &token,
            json!({}),
        )
        .await;
    assert_problem(&r, 404, "not_found");
    let r = app
        .post(
            "/v1/workspace/staff-access/nonsense/revoke",
            &token,
            json!({}),
        )
        .await;
    assert_problem(&r, 400, "invalid_id");
    let ended = entries(&app, &token, "staff_access.ended").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["metadata"]["reason"], "revoked");
    assert_eq!(ended[0]["actor"]["type"], "api_token");
    let approvals = entries(&app, &token, "staff_access.approved").await;
    assert_eq!(approvals.len(), 2, "{approvals:?}");
    app.stop().await;
}

async fn break_glass_needs_a_second_person(store: Store) {
    let (app, clock) = spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    let contact = app.contact(&token, json!({"email": "y@example.com"})).await;
    let alice = staff(&app, &clock, "alice@operator.example", StaffRole::Engineer).await;
    let bob = staff(&app, &clock, "bob@operator.example", StaffRole::Approver).await;
    let path = format!("/v1/contacts/{contact}");
    let body = json!({"workspace_id": ws, "permissions": ["contacts.read"],
        "reason": "outage", "ticket": "INC-9", "duration_s": 7200});
    // The customer subscribes to break-glass webhooks.
    app.subscribe_unreachable(&token, "staff_access.break_glass")
        .await;

    // Starts at once, with a high-severity entry.
    let first = alice
        .call(
            &app,
            Method::POST,
            "/v1/staff/break-glass",
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.body["status"], "active");
    assert_eq!(first.body["kind"], "break_glass");
    let first_token = text(&first.body["token"]);
    assert_eq!(
        alice
            .with_grant(&app, &first_token, Method::GET, &path)
            .await
            .status,
        200
    );
    let glass = entries(&app, &token, "staff_access.break_glass").await;
    assert_eq!(glass.len(), 1, "{glass:?}");
    assert_eq!(glass[0]["metadata"]["reason"], "outage", "{glass:?}");
    let types = app
        .call(Method::GET, "/v1/activity-log-event-types", None, None)
        .await;
    let t = types.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "staff_access.break_glass")
        .cloned()
        .unwrap();
    assert_eq!(t["severity"], "high");
    assert_eq!(t["emitted"], true);
    let ws_id = interlock_domain::WorkspaceId::parse(&ws).unwrap();
    let deliveries = app.cell(Region::Eu).deliveries(&ws_id, 100).await.unwrap();
    assert_eq!(
        deliveries
            .iter()
            .filter(|d| d.event == "staff_access.break_glass")
            .count(),
        1,
        "{deliveries:?}"
    );

    // A second one, confirmed by bob; alice cannot confirm (not an approver).
    let second = alice
        .call(&app, Method::POST, "/v1/staff/break-glass", Some(body))
        .await;
    let second_id = text(&second.body["id"]);
    let second_token = text(&second.body["token"]);
    let r = alice
        .call(
            &app,
            Method::POST,
            &format!("/v1/staff/access-requests/{second_id}/confirm"),
            None,
        )
        .await;
    assert_problem(&r, 403, "approver_required");
    let r = bob
        .call(
            &app,
            Method::POST,
            &format!("/v1/staff/access-requests/{second_id}/confirm"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["confirmed_by"], bob.id.as_str());

    // An hour on: the unconfirmed one has stopped; the confirmed one still works.
    clock.set_offset(3_600_000 + 60_000);
    assert_problem(
        &alice
            .with_grant(&app, &first_token, Method::GET, &path)
            .await,
        401,
        "grant_inactive",
    );
    assert_eq!(
        alice
            .with_grant(&app, &second_token, Method::GET, &path)
            .await
            .status,
        200
    );
    // Too late to confirm the first.
    let r = bob
        .call(
            &app,
            Method::POST,
            &format!(
                "/v1/staff/access-requests/{}/confirm",
                text(&first.body["id"])
            ),
            None,
        )
        .await;
    assert_problem(&r, 409, "grant_not_confirmable");
    let mut ended = Vec::new();
    for _ in 0..50 {
        ended = entries(&app, &token, "staff_access.ended").await;
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["metadata"]["reason"], "unconfirmed");
    let listed = bob
        .call(&app, Method::GET, "/v1/staff/access-requests", None)
        .await;
    let first_listed = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == first.body["id"])
        .cloned()
        .unwrap();
    assert_eq!(first_listed["status"], "revoked", "{first_listed:?}");
    assert_eq!(first_listed["revoked_by"], "system");
    // Disabling the staff member stops their grants at once.
    let alice_id = interlock_domain::StaffId::parse(&alice.id).unwrap();
    app.cell(Region::Eu)
        .disable_staff(&alice_id, clock.now_ms())
        .await
        .unwrap();
    assert_problem(
        &alice
            .with_grant(&app, &second_token, Method::GET, &path)
            .await,
        401,
        "grant_inactive",
    );
    app.stop().await;
}

/// Clear the user-verified flag in a registration's authenticator data: an authenticator that
/// skipped its biometric or PIN check. With `none` attestation nothing signs these bytes, so
/// only the relying party's own rule can refuse it.
fn without_user_verification(credential: &mut Value) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let b64 = text(&credential["response"]["attestationObject"]);
    let mut cbor = URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')).unwrap();
    let at = cbor
        .windows(8)
        .position(|w| w == b"authData")
        .expect("authData in the attestation object")
        + 8;
    // A CBOR byte string: 0x58 with a one-byte length, or 0x59 with two.
    let start = match cbor[at] {
        0x58 => at + 2,
        0x59 => at + 3,
        other => panic!("unexpected CBOR header {other:#x}"),
    };
    // authData: rpIdHash (32 bytes), then the flags; UV is bit 2.
    assert_eq!(cbor[start + 32] & 0x04, 0x04, "the soft key reported UV");
    cbor[start + 32] &= !0x04;
    credential["response"]["attestationObject"] = json!(URL_SAFE_NO_PAD.encode(&cbor));
}

/// A soft authenticator (user verification on, as a biometric check would report) and the
/// origin it answers for.
struct Key {
    soft: webauthn_authenticator_rs::softpasskey::SoftPasskey,
    origin: webauthn_authenticator_rs::prelude::Url,
}

impl Key {
    fn new(app: &TestApp) -> Self {
        Key {
            soft: webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true),
            origin: webauthn_authenticator_rs::prelude::Url::parse(&app.base).unwrap(),
        }
    }

    /// Answer a registration challenge (`public_key` of the start's answer).
    fn register(&mut self, start: &Resp) -> Value {
        use webauthn_authenticator_rs::WebauthnAuthenticator;
        let ccr = serde_json::from_value(start.body["public_key"].clone()).unwrap();
        serde_json::to_value(self.soft.do_registration(self.origin.clone(), ccr).unwrap()).unwrap()
    }

    /// Answer a sign-in challenge (`public_key` of the challenge's answer).
    fn sign(&mut self, challenge: &Resp) -> Value {
        use webauthn_authenticator_rs::WebauthnAuthenticator;
        let rcr = serde_json::from_value(challenge.body["public_key"].clone()).unwrap();
        serde_json::to_value(
            self.soft
                .do_authentication(self.origin.clone(), rcr)
                .unwrap(),
        )
        .unwrap()
    }
}

impl Staff {
    async fn start_registration(&self, app: &TestApp) -> Resp {
        let r = self
            .call(app, Method::POST, "/v1/staff/passkeys/registrations", None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r
    }

    async fn finish_registration(
        &self,
        app: &TestApp,
        start: &Resp,
        name: &str,
        cred: Value,
    ) -> Resp {
        let body = json!({"registration_id": text(&start.body["registration_id"]),
                          "name": name, "credential": cred});
        self.call(app, Method::POST, "/v1/staff/passkeys", Some(body))
            .await
    }

    /// Register a passkey with `key` (asserting it worked); the answer of the finish.
    async fn register_passkey(&self, app: &TestApp, key: &mut Key, name: &str) -> Resp {
        let start = self.start_registration(app).await;
        let cred = key.register(&start);
        let done = self.finish_registration(app, &start, name, cred).await;
        assert_eq!(done.status, 201, "{:?}", done.body);
        done
    }

    /// Ask for a passkey sign-in challenge for `who` from this member's device.
    async fn challenge(&self, app: &TestApp, who: &str) -> Resp {
        let body = json!({"staff_id": who});
        let path = "/v1/staff/sessions/passkey-challenges";
        send(app, &self.client, Method::POST, path, None, Some(body)).await
    }

    /// Present a sign-in answer from this member's device.
    async fn answer(&self, app: &TestApp, challenge: &Resp, assertion: Value) -> Resp {
        let body = json!({"login_id": text(&challenge.body["login_id"]), "credential": assertion});
        let path = "/v1/staff/sessions/passkey";
        send(app, &self.client, Method::POST, path, None, Some(body)).await
    }
}

async fn passkeys_sign_staff_in_from_their_device(store: Store) {
    let (app, clock) = spawn(store).await;
    let alice = staff(&app, &clock, "alice@operator.example", StaffRole::Support).await;
    let bob = staff(&app, &clock, "bob@operator.example", StaffRole::Approver).await;
    let mut key = Key::new(&app);

    // No passkey yet: a passkey sign-in is refused with a pointer to TOTP.
    assert_problem(&alice.challenge(&app, &alice.id).await, 409, "no_passkey");

    // Bad input: clear 4xx answers, nothing stored.
    let start = alice.start_registration(&app).await;
    let r = alice
        .finish_registration(&app, &start, "key", json!({"id": 7}))
        .await;
    assert_problem(&r, 400, "invalid_credential");
    let cred = key.register(&start);
    let r = alice.finish_registration(&app, &start, "", cred).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let r = alice
        .call(&app, Method::DELETE, "/v1/staff/passkeys/nope", None)
        .await;
    assert_problem(&r, 400, "invalid_id");
    let unknown = format!("/v1/staff/passkeys/pk_{}", "0".repeat(32));
    let r = alice.call(&app, Method::DELETE, &unknown, None).await;
    assert_problem(&r, 404, "not_found");
    let r = send(
        &app,
        &alice.client,
        Method::POST,
        "/v1/staff/sessions/passkey",
        None,
        Some(json!({"login_id": "ilc_eu_nothing", "credential": {}})),
    )
    .await;
    assert_problem(&r, 400, "invalid_credential");
    let r = alice.challenge(&app, "sf_nope").await;
    assert_problem(&r, 401, "invalid_credentials");

    // Registration asks for user verification; an answer without it is refused.
    let start = alice.start_registration(&app).await;
    assert_eq!(
        start.body["public_key"]["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let mut unverified = key.register(&start);
    without_user_verification(&mut unverified);
    let r = alice
        .finish_registration(&app, &start, "laptop touch id", unverified)
        .await;
    assert_problem(&r, 401, "invalid_passkey");

    // A registration alice started cannot be finished by bob (nor on his device), and the
    // attempt uses the ceremony up.
    let start = alice.start_registration(&app).await;
    let cred = key.register(&start);
    let r = bob
        .finish_registration(&app, &start, "laptop touch id", cred.clone())
        .await;
    assert_problem(&r, 401, "invalid_passkey");
    let r = alice
        .finish_registration(&app, &start, "laptop touch id", cred)
        .await;
    assert_problem(&r, 401, "invalid_passkey");
    let done = alice
        .register_passkey(&app, &mut key, "laptop touch id")
        .await;
    let passkey_id = text(&done.body["id"]);
    let listed = alice
        .call(&app, Method::GET, "/v1/staff/passkeys", None)
        .await;
    assert_eq!(listed.body["data"][0]["id"], passkey_id.as_str());
    assert_eq!(listed.body["data"][0]["name"], "laptop touch id");
    let theirs = bob
        .call(&app, Method::GET, "/v1/staff/passkeys", None)
        .await;
    assert_eq!(theirs.body["data"], json!([]));

    // Asking for alice's challenge from bob's device is refused.
    assert_problem(
        &bob.challenge(&app, &alice.id).await,
        401,
        "invalid_credentials",
    );
    // An answer presented from another device is refused, and uses the ceremony up.
    let ch = alice.challenge(&app, &alice.id).await;
    assert_eq!(ch.status, 200, "{:?}", ch.body);
    let assertion = key.sign(&ch);
    assert_problem(
        &bob.answer(&app, &ch, assertion.clone()).await,
        401,
        "invalid_passkey",
    );
    assert_problem(
        &alice.answer(&app, &ch, assertion).await,
        401,
        "invalid_passkey",
    );

    // From her own device, her passkey signs alice in.
    let ch = alice.challenge(&app, &alice.id).await;
    let assertion = key.sign(&ch);
    let ok = alice.answer(&app, &ch, assertion.clone()).await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
    assert_eq!(ok.body["staff_id"], alice.id.as_str());
    assert_eq!(ok.body["role"], "support");
    let session = text(&ok.body["token"]);
    let get = |client: reqwest::Client, path: &'static str| {
        let (app, session) = (&app, session.clone());
        async move { send(app, &client, Method::GET, path, Some(&session), None).await }
    };
    let me = get(alice.client.clone(), "/v1/staff/me").await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["staff_id"], alice.id.as_str());
    // The session is bound to alice's device, and holds no standing access either.
    let r = get(bob.client.clone(), "/v1/staff/me").await;
    assert_problem(&r, 401, "invalid_staff_session");
    let r = get(alice.client.clone(), "/v1/contacts").await;
    assert_problem(&r, 404, "not_found");
    // An answer is single use.
    assert_problem(
        &alice.answer(&app, &ch, assertion).await,
        401,
        "invalid_passkey",
    );
    // A tampered signature does not verify.
    let ch = alice.challenge(&app, &alice.id).await;
    let mut forged = key.sign(&ch);
    let sig = text(&forged["response"]["signature"]);
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    forged["response"]["signature"] = json!(format!("{flipped}{}", &sig[1..]));
    assert_problem(
        &alice.answer(&app, &ch, forged).await,
        401,
        "invalid_passkey",
    );

    // Bob cannot remove alice's passkey; alice can, and then passkey sign-in is over.
    let path = format!("/v1/staff/passkeys/{passkey_id}");
    assert_problem(
        &bob.call(&app, Method::DELETE, &path, None).await,
        404,
        "not_found",
    );
    assert_eq!(
        alice.call(&app, Method::DELETE, &path, None).await.status,
        204
    );
    assert_problem(&alice.challenge(&app, &alice.id).await, 409, "no_passkey");

    // A disabled member's passkey opens nothing.
    let mut bob_key = Key::new(&app);
    let start = bob.start_registration(&app).await;
    let cred = bob_key.register(&start);
    let done = bob.finish_registration(&app, &start, MARKER, cred).await;
    assert_eq!(done.status, 201, "{:?}", done.body);
    let ch = bob.challenge(&app, &bob.id).await;
    let assertion = bob_key.sign(&ch);
    let bob_id = interlock_domain::StaffId::parse(&bob.id).unwrap();
    let cell = app.cell(Region::Eu);
    cell.disable_staff(&bob_id, clock.now_ms()).await.unwrap();
    let r = bob.answer(&app, &ch, assertion).await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    // Names and credentials are sealed: the name is in no file under the data dir (on
    // SQLite the store itself is there).
    assert!(files_with(&app.data_dir(), MARKER.as_bytes()).is_empty());
}

/// Five wrong codes lock sign-in (TOTP and passkey alike) with a growing back-off; a right
/// code during the lock is refused too; after the lock a right code works and resets the count.
async fn repeated_failures_lock_staff_sign_in(store: Store) {
    // A clock that stands still: the lengths of the locks are checked.
    let clock = Arc::new(interlock_storage::ManualClock::new(
        interlock_storage::now_ms(),
    ));
    let c = clock.clone();
    let app = TestApp::spawn_with(store, move |s| s.clock = c).await;
    let clock = &*clock;
    let alice = staff(&app, clock, "alice@operator.example", StaffRole::Support).await;
    let sign_in = |code: String| {
        let (app, client, id) = (&app, alice.client.clone(), alice.id.clone());
        async move {
            let body = json!({"staff_id": id, "code": code});
            send(
                app,
                &client,
                Method::POST,
                "/v1/staff/sessions",
                None,
                Some(body),
            )
            .await
        }
    };
    // A code that is not the current one (the current one is right, and used).
    let wrong = || {
        let right = code(&alice.secret, clock);
        (0..10)
            .map(|d| format!("{d}{}", &right[1..]))
            .find(|c| *c != right)
            .unwrap()
    };
    clock.advance(31_000);
    for _ in 0..5 {
        assert_problem(&sign_in(wrong()).await, 401, "invalid_credentials");
    }
    // Locked (1 s): the right code is refused too, and so is a passkey challenge.
    let r = sign_in(code(&alice.secret, clock)).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    assert_eq!(r.headers["retry-after"], "1");
    let r = alice.challenge(&app, &alice.id).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    // After the lock, one more failure locks for twice as long.
    clock.advance(1_000);
    assert_problem(&sign_in(wrong()).await, 401, "invalid_credentials");
    let r = sign_in(code(&alice.secret, clock)).await;
    assert_eq!(r.headers["retry-after"], "2", "{:?}", r.body);
    // Past it, the right code signs in and the count starts again.
    clock.advance(2_000);
    let ok = sign_in(code(&alice.secret, clock)).await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
    clock.advance(31_000);
    for _ in 0..4 {
        assert_problem(&sign_in(wrong()).await, 401, "invalid_credentials");
    }
    let ok = sign_in(code(&alice.secret, clock)).await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
}

/// `[staff] totp_with_passkey = false`: TOTP signs a member in until they register a passkey,
/// and not after; the passkey does.
async fn passkey_only_once_enrolled(store: Store) {
    let clock = Arc::new(OffsetClock::new(0));
    let c = clock.clone();
    let app = TestApp::spawn_with(store, move |s| {
        s.clock = c;
        s.staff.totp_with_passkey = false;
    })
    .await;
    // Signing in with TOTP works while there is no passkey (the helper does it).
    let alice = staff(&app, &clock, "alice@operator.example", StaffRole::Support).await;
    let mut key = Key::new(&app);
    alice.register_passkey(&app, &mut key, "touch id").await;
    clock.set_offset(31_000);
    let body = json!({"staff_id": alice.id, "code": code(&alice.secret, &clock)});
    let path = "/v1/staff/sessions";
    let r = send(&app, &alice.client, Method::POST, path, None, Some(body)).await;
    assert_problem(&r, 403, "passkey_required");
    let ch = alice.challenge(&app, &alice.id).await;
    let r = alice.answer(&app, &ch, key.sign(&ch)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

/// Sign-ins, failed sign-ins and passkeys are in the region's staff audit log, which only
/// approvers read, page by page; its chain verifies.
async fn the_staff_audit_log_records_sign_ins(store: Store) {
    let (app, clock) = spawn(store).await;
    let alice = staff(&app, &clock, "alice@operator.example", StaffRole::Support).await;
    let bob = staff(&app, &clock, "bob@operator.example", StaffRole::Approver).await;
    let right = code(&alice.secret, &clock);
    let wrong = format!(
        "{}{}",
        if right.starts_with('0') { '1' } else { '0' },
        &right[1..]
    );
    let body = json!({"staff_id": alice.id, "code": wrong});
    let r = send(
        &app,
        &alice.client,
        Method::POST,
        "/v1/staff/sessions",
        None,
        Some(body),
    )
    .await;
    assert_problem(&r, 401, "invalid_credentials");
    let mut key = Key::new(&app);
    alice.register_passkey(&app, &mut key, "touch id").await;

    let path = "/v1/staff/audit-log";
    let r = alice.call(&app, Method::GET, path, None).await;
    assert_problem(&r, 403, "approver_required");
    for bad in ["?limit=0", "?limit=501", "?after=-1"] {
        let r = bob
            .call(&app, Method::GET, &format!("{path}{bad}"), None)
            .await;
        assert_problem(&r, 422, "out_of_range");
    }
    let r = bob.call(&app, Method::GET, path, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let kinds: Vec<(String, String)> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (text(&e["type"]), text(&e["staff_id"])))
        .collect();
    let has = |kind: &str, who: &str| kinds.iter().any(|(k, s)| k == kind && s == who);
    for who in [&alice.id, &bob.id] {
        assert!(has("staff.added", who), "{kinds:?}");
        assert!(has("staff.device_issued", who), "{kinds:?}");
        assert!(has("staff.signed_in", who), "{kinds:?}");
    }
    assert!(has("staff.passkey_added", &alice.id), "{kinds:?}");
    assert!(has("staff.sign_in_failed", &alice.id), "{kinds:?}");
    let first = |kind: &str| {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap()
            .clone()
    };
    let failed = first("staff.sign_in_failed");
    assert_eq!(failed["metadata"]["method"], "totp");
    assert_eq!(failed["metadata"]["failures"], 1);
    assert!(failed["metadata"]["locked_until_ms"].is_null());
    assert_eq!(first("staff.signed_in")["metadata"]["method"], "totp");
    let seqs: Vec<i64> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(r.body["next_after"].is_null());
    // Pages.
    let r = bob
        .call(&app, Method::GET, &format!("{path}?limit=2"), None)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["next_after"], 2);
    let r = bob
        .call(&app, Method::GET, &format!("{path}?after=2&limit=2"), None)
        .await;
    assert_eq!(r.body["data"][0]["seq"], 3);
    let verified = app.cell(Region::Eu).verify_staff_audit().await.unwrap();
    assert_eq!(verified, Ok(seqs.len() as i64));
}

const MARKER: &str = "yubikey-marker-5c1f0a";

fn files_with(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}
