//! Teammates end to end: invitations, passwords, sign-in sessions with CSRF, roles and their
//! limits, removal, TOTP with recovery codes, required 2FA, IP allowlist and sign-in
//! throttling. SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use common::text as s;
use common::{PASSWORD, Session, Store, TestApp, assert_problem, session_of};
use interlock_crypto::totp::TotpSecret;
use reqwest::Method;
use serde_json::{Value, json};

store_tests!(
    invite_sign_in_csrf_and_sign_out,
    roles_owners_and_removal,
    totp_codes_are_single_use,
    required_two_factor_allows_only_enrolment,
    ip_allowlist_applies_to_sessions,
    failed_sign_ins_are_throttled_and_recorded,
    sessions_time_out,
    passkeys_as_second_factor,
);

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn invite_sign_in_csrf_and_sign_out(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    let r = app
        .post(
            "/v1/teammates",
            &token,
            json!({"email": "Owner@Example.com", "name": "Olive", "role": "owner"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["teammate"]["email"], "owner@example.com");
    assert_eq!(r.body["teammate"]["active"], false);
    let inv = s(&r.body["invitation_token"]);
    assert!(inv.starts_with("ili_eu_"));
    assert_problem(
        &app.post(
            "/v1/teammates",
            &token,
            json!({"email": "owner@example.com", "name": "Again", "role": "agent"}),
        )
        .await,
        409,
        "teammate_email_taken",
    );

    // Weak passwords are refused; the invitation survives a refused attempt.
    for (pw, code) in [
        ("short", "password_too_short"),
        ("password1234", "password_too_common"),
        // The teammate's own email and name count as common for them.
        ("owner@example.com!", "password_too_common"),
        ("OliveOliveOlive", "password_too_common"),
    ] {
        let a = app
            .anon(
                Method::POST,
                "/v1/auth/invitations/accept",
                json!({"token": inv, "password": pw}),
            )
            .await;
        assert_problem(&a, 422, code);
    }
    let a = app
        .anon(
            Method::POST,
            "/v1/auth/invitations/accept",
            json!({"token": inv, "password": PASSWORD}),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    // Single use.
    let again = app
        .anon(
            Method::POST,
            "/v1/auth/invitations/accept",
            json!({"token": inv, "password": PASSWORD}),
        )
        .await;
    assert_problem(&again, 404, "not_found");

    // Wrong password and unknown email answer alike.
    let bad = app
        .anon(
            Method::POST,
            "/v1/auth/login",
            json!({"workspace_id": ws, "email": "owner@example.com", "password": "wrong-password-123"}),
        )
        .await;
    assert_problem(&bad, 401, "invalid_credentials");
    let unknown = app.login(&ws, "nobody@example.com", None).await;
    assert_problem(&unknown, 401, "invalid_credentials");

    let r = app.login(&ws, "OWNER@example.com", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cookie = r.headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let sess = session_of(&r);
    assert!(sess.cookie.starts_with("ils_eu_"));
    // A new sign-in is a new session (the cookie is renewed).
    let second = app.sign_in(&ws, "owner@example.com").await;
    assert_ne!(second.cookie, sess.cookie);

    // Reads work with the cookie; writes need the CSRF token too.
    assert_eq!(
        app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await
            .status,
        200
    );
    let no_csrf = app
        .as_session(
            &sess,
            Method::POST,
            "/v1/contacts",
            Some(json!({"role": "visitor"})),
            false,
        )
        .await;
    assert_problem(&no_csrf, 403, "csrf_failed");
    let wrong_csrf = app
        .as_session(
            &Session {
                csrf: second.csrf.clone(),
                ..sess.clone()
            },
            Method::POST,
            "/v1/contacts",
            Some(json!({"role": "visitor"})),
            true,
        )
        .await;
    assert_problem(&wrong_csrf, 403, "csrf_failed");
    let ok = app
        .as_session(
            &sess,
            Method::POST,
            "/v1/contacts",
            Some(json!({"role": "visitor"})),
            true,
        )
        .await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);

    // Own sessions: list and revoke one.
    let list = app
        .as_session(&sess, Method::GET, "/v1/auth/sessions", None, false)
        .await;
    let items = list.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let other_id = items
        .iter()
        .find(|i| i["current"] == false)
        .map(|i| s(&i["id"]))
        .unwrap();
    let rv = app
        .as_session(
            &sess,
            Method::DELETE,
            &format!("/v1/auth/sessions/{other_id}"),
            None,
            true,
        )
        .await;
    assert_eq!(rv.status, 204, "{:?}", rv.body);
    assert_problem(
        &app.as_session(&second, Method::GET, "/v1/contacts", None, false)
            .await,
        401,
        "invalid_session",
    );

    // Logout ends the session and clears the cookie.
    let out = app
        .as_session(&sess, Method::POST, "/v1/auth/logout", None, true)
        .await;
    assert_eq!(out.status, 204);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_problem(
        &app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await,
        401,
        "invalid_session",
    );
    app.stop().await;
}

async fn roles_owners_and_removal(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    let owner_id = app.teammate(&token, "o@example.com", "owner").await;
    let admin_id = app.teammate(&token, "a@example.com", "admin").await;
    let agent_id = app.teammate(&token, "g@example.com", "agent").await;
    let owner = app.sign_in(&ws, "o@example.com").await;
    let admin = app.sign_in(&ws, "a@example.com").await;
    let agent = app.sign_in(&ws, "g@example.com").await;

    // The agent works conversations but cannot manage teammates or tokens.
    assert_eq!(
        app.as_session(&agent, Method::GET, "/v1/conversations", None, false)
            .await
            .status,
        200
    );
    let r = app
        .as_session(
            &agent,
            Method::POST,
            "/v1/teammates",
            Some(json!({"email": "x@example.com", "name": "X", "role": "viewer"})),
            true,
        )
        .await;
    assert_problem(&r, 403, "permission_denied");
    assert_eq!(r.body["permission"], "teammates.manage");

    // Nobody changes their own role; the last owner is neither demoted nor removed.
    let own = app
        .as_session(
            &owner,
            Method::PATCH,
            &format!("/v1/teammates/{owner_id}"),
            Some(json!({"role": "admin"})),
            true,
        )
        .await;
    assert_problem(&own, 403, "own_role");
    let demote = app
        .call(
            Method::PATCH,
            &format!("/v1/teammates/{owner_id}"),
            Some(&token),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_problem(&demote, 409, "last_owner");
    let remove = app
        .call(
            Method::DELETE,
            &format!("/v1/teammates/{owner_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_problem(&remove, 409, "last_owner");

    // An admin cannot make owners (it lacks security.manage) nor touch an owner.
    let up = app
        .as_session(
            &admin,
            Method::PATCH,
            &format!("/v1/teammates/{agent_id}"),
            Some(json!({"role": "owner"})),
            true,
        )
        .await;
    assert_problem(&up, 403, "permission_escalation");
    let down = app
        .as_session(
            &admin,
            Method::DELETE,
            &format!("/v1/teammates/{owner_id}"),
            None,
            true,
        )
        .await;
    assert_problem(&down, 403, "permission_escalation");
    let ok = app
        .as_session(
            &admin,
            Method::PATCH,
            &format!("/v1/teammates/{agent_id}"),
            Some(json!({"role": "viewer"})),
            true,
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["role"], "viewer");
    // The new role applies to the agent's live session at once.
    let r = app
        .as_session(
            &agent,
            Method::POST,
            "/v1/contacts",
            Some(json!({"role": "visitor"})),
            true,
        )
        .await;
    assert_problem(&r, 403, "permission_denied");

    // The admin makes an API token; removing the admin stops the session and the token.
    let t = app
        .as_session(
            &admin,
            Method::POST,
            "/v1/api-tokens",
            Some(json!({"name": "admin's", "permissions": ["contacts.read"]})),
            true,
        )
        .await;
    assert_eq!(t.status, 201, "{:?}", t.body);
    let admin_token = s(&t.body["token"]);
    assert_eq!(app.get("/v1/contacts", &admin_token).await.status, 200);
    let rm = app
        .as_session(
            &owner,
            Method::DELETE,
            &format!("/v1/teammates/{admin_id}"),
            None,
            true,
        )
        .await;
    assert_eq!(rm.status, 200, "{:?}", rm.body);
    assert_problem(
        &app.as_session(&admin, Method::GET, "/v1/contacts", None, false)
            .await,
        401,
        "invalid_session",
    );
    assert_problem(
        &app.get("/v1/contacts", &admin_token).await,
        401,
        "invalid_token",
    );
    let relogin = app.login(&ws, "a@example.com", None).await;
    assert_problem(&relogin, 401, "invalid_credentials");
    let list = app.get("/v1/teammates", &token).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);

    // With a second owner, the first may be demoted by the other.
    let second_owner = app
        .as_session(
            &owner,
            Method::PATCH,
            &format!("/v1/teammates/{agent_id}"),
            Some(json!({"role": "owner"})),
            true,
        )
        .await;
    assert_eq!(second_owner.status, 200);
    let d = app
        .call(
            Method::PATCH,
            &format!("/v1/teammates/{owner_id}"),
            Some(&token),
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    assert_problem(
        &app.post(
            "/v1/teammates",
            &token,
            json!({"email": "z@example.com", "name": "Z", "role": "root"}),
        )
        .await,
        422,
        "invalid_role",
    );
    app.stop().await;
}

async fn enrol(app: &TestApp, sess: &Session) -> (TotpSecret, Vec<String>) {
    let e = app
        .as_session(sess, Method::POST, "/v1/auth/two-factor/totp", None, true)
        .await;
    assert_eq!(e.status, 200, "{:?}", e.body);
    assert!(s(&e.body["otpauth_uri"]).starts_with("otpauth://totp/"));
    let secret = TotpSecret::from_bytes(&base32_decode(&s(&e.body["secret"]))).unwrap();
    let wrong = app
        .as_session(
            sess,
            Method::POST,
            "/v1/auth/two-factor/totp/confirm",
            Some(json!({"code": "000000"})),
            true,
        )
        .await;
    // (A random secret makes 000000 valid with probability 3e-6.)
    assert_problem(&wrong, 401, "invalid_otp");
    let c = app
        .as_session(
            sess,
            Method::POST,
            "/v1/auth/two-factor/totp/confirm",
            Some(json!({"code": secret.code_at(now())})),
            true,
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    let codes: Vec<String> = c.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn totp_codes_are_single_use(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("au").await;
    app.teammate(&token, "t@example.com", "agent").await;
    let sess = app.sign_in(&ws, "t@example.com").await;
    let (secret, codes) = enrol(&app, &sess).await;
    let listed = app.get("/v1/teammates", &token).await;
    assert_eq!(listed.body["data"][0]["two_factor"], true);

    // Without the code: refused.
    assert_problem(
        &app.login(&ws, "t@example.com", None).await,
        401,
        "otp_required",
    );
    // The next step's code is accepted once (the enrolment used the current step).
    let next = secret.code_at(now() + 30);
    let ok = app.login(&ws, "t@example.com", Some(&next)).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let replay = app.login(&ws, "t@example.com", Some(&next)).await;
    assert_problem(&replay, 401, "invalid_credentials");
    // An earlier step is refused too.
    let old = app
        .login(&ws, "t@example.com", Some(&secret.code_at(now())))
        .await;
    assert_problem(&old, 401, "invalid_credentials");

    // A recovery code works once (any case, with or without the dash).
    let rc = codes[0].to_uppercase();
    assert_eq!(app.login(&ws, "t@example.com", Some(&rc)).await.status, 200);
    assert_problem(
        &app.login(&ws, "t@example.com", Some(&codes[0])).await,
        401,
        "invalid_credentials",
    );

    // Disabling needs the password and a code.
    let s2 = session_of(&app.login(&ws, "t@example.com", Some(&codes[1])).await);
    let bad = app
        .as_session(
            &s2,
            Method::DELETE,
            "/v1/auth/two-factor/totp",
            Some(json!({"password": "wrong-password-123", "code": codes[2]})),
            true,
        )
        .await;
    assert_problem(&bad, 401, "invalid_credentials");
    let bad_code = app
        .as_session(
            &s2,
            Method::DELETE,
            "/v1/auth/two-factor/totp",
            Some(json!({"password": PASSWORD, "code": "not-a-code"})),
            true,
        )
        .await;
    assert_problem(&bad_code, 401, "invalid_credentials");
    let off = app
        .as_session(
            &s2,
            Method::DELETE,
            "/v1/auth/two-factor/totp",
            Some(json!({"password": PASSWORD, "code": codes[2]})),
            true,
        )
        .await;
    assert_eq!(off.status, 204, "{:?}", off.body);
    assert_eq!(app.login(&ws, "t@example.com", None).await.status, 200);
    app.stop().await;
}

async fn required_two_factor_allows_only_enrolment(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    app.teammate(&token, "r@example.com", "admin").await;
    let r = app
        .call(
            Method::PUT,
            "/v1/workspace/security",
            Some(&token),
            Some(json!({"require_two_factor": true, "session_idle_s": 345600,
                         "session_absolute_s": 2592000, "ip_allowlist": []})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let login = app.login(&ws, "r@example.com", None).await;
    assert_eq!(login.status, 200);
    assert_eq!(login.body["must_enrol_two_factor"], true);
    let sess = session_of(&login);
    let denied = app
        .as_session(&sess, Method::GET, "/v1/contacts", None, false)
        .await;
    assert_problem(&denied, 403, "permission_denied");
    let (secret, _) = enrol(&app, &sess).await;
    // Enrolled: the same session now has the role's permissions.
    assert_eq!(
        app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await
            .status,
        200
    );
    let again = app
        .login(&ws, "r@example.com", Some(&secret.code_at(now() + 30)))
        .await;
    assert_eq!(again.body["must_enrol_two_factor"], false);

    for (body, code) in [
        (
            json!({"require_two_factor": true, "session_idle_s": 10, "session_absolute_s": 2592000, "ip_allowlist": []}),
            "out_of_range",
        ),
        (
            json!({"require_two_factor": true, "session_idle_s": 345600, "session_absolute_s": 2592000, "ip_allowlist": ["10.0.0.0/33"]}),
            "invalid_ip_range",
        ),
        (json!({"require_two_factor": true}), "invalid_body"),
    ] {
        let r = app
            .call(
                Method::PUT,
                "/v1/workspace/security",
                Some(&token),
                Some(body),
            )
            .await;
        assert_problem(&r, 422, code);
    }
    app.stop().await;
}

async fn ip_allowlist_applies_to_sessions(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("us").await;
    app.teammate(&token, "i@example.com", "owner").await;
    let sess = app.sign_in(&ws, "i@example.com").await;
    let put = |list: Value| {
        json!({"require_two_factor": false, "session_idle_s": 345600,
               "session_absolute_s": 2592000, "ip_allowlist": list})
    };
    // A list that shuts out the caller's own address is refused.
    let r = app
        .as_session(
            &sess,
            Method::PUT,
            "/v1/workspace/security",
            Some(put(json!(["203.0.113.0/24"]))),
            true,
        )
        .await;
    assert_problem(&r, 422, "would_lock_out");
    let r = app
        .as_session(
            &sess,
            Method::PUT,
            "/v1/workspace/security",
            Some(put(json!(["127.0.0.1", "2001:db8::/32"]))),
            true,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["ip_allowlist"],
        json!(["127.0.0.1", "2001:db8::/32"])
    );

    // From another loopback address the session and a new sign-in are refused.
    let cert = std::fs::read(app.running.as_ref().unwrap().cert_path.clone()).unwrap();
    let elsewhere = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = app
        .with_client(&elsewhere, &sess, Method::GET, "/v1/contacts", None, false)
        .await;
    assert_problem(&r, 403, "ip_not_allowed");
    let r = elsewhere
        .post(format!("{}/v1/auth/login", app.base))
        .json(&json!({"workspace_id": ws, "email": "i@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // API tokens are not teammate sessions: the allowlist does not apply to them.
    let r = elsewhere
        .get(format!("{}/v1/contacts", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // From the allowed address all is well.
    assert_eq!(
        app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await
            .status,
        200
    );
    app.stop().await;
}

async fn failed_sign_ins_are_throttled_and_recorded(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    app.teammate(&token, "f@example.com", "viewer").await;
    for _ in 0..5 {
        let r = app
            .anon(
                Method::POST,
                "/v1/auth/login",
                json!({"workspace_id": ws, "email": "f@example.com", "password": "wrong-password-123"}),
            )
            .await;
        assert_problem(&r, 401, "invalid_credentials");
    }
    // Locked: even the right password waits, with Retry-After.
    let r = app.login(&ws, "f@example.com", None).await;
    assert_problem(&r, 429, "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
    let cell = app.cell(interlock_domain::Region::Eu);
    let wsid = interlock_domain::WorkspaceId::parse(&ws).unwrap();
    assert_eq!(cell.login_failure_count(&wsid).await.unwrap(), 5);
    // After the back-off the right password works and clears the account's count.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ok = app.login(&ws, "f@example.com", None).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    app.stop().await;
}

/// Move a session's clock back by `secs` (its sign-in, its last use, or both): a stand-in for
/// waiting days in a test.
async fn age_session(app: &TestApp, column: &str, secs: i64) {
    let cell = app.cell(interlock_domain::Region::Eu);
    let sql = match column {
        "last_seen_at" => "UPDATE teammate_sessions SET last_seen_at = last_seen_at - $1",
        _ => "UPDATE teammate_sessions SET created_at = created_at - $1",
    };
    sqlx::query(sql)
        .bind(secs * 1000)
        .execute(cell.pool())
        .await
        .unwrap();
}

async fn sessions_time_out(store: Store) {
    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    app.teammate(&token, "s@example.com", "viewer").await;
    let put = |idle: i64, absolute: i64| {
        json!({"require_two_factor": false, "session_idle_s": idle,
               "session_absolute_s": absolute, "ip_allowlist": []})
    };

    // Idle timeout (default 4 days).
    let sess = app.sign_in(&ws, "s@example.com").await;
    age_session(&app, "last_seen_at", 3 * 86_400).await;
    assert_eq!(
        app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await
            .status,
        200,
        "3 days idle is within the default"
    );
    age_session(&app, "last_seen_at", 4 * 86_400 + 60).await;
    assert_problem(
        &app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await,
        401,
        "invalid_session",
    );

    // A shorter idle timeout set by the workspace applies to existing sessions.
    let sess = app.sign_in(&ws, "s@example.com").await;
    let r = app
        .call(
            Method::PUT,
            "/v1/workspace/security",
            Some(&token),
            Some(put(300, 86_400)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    age_session(&app, "last_seen_at", 301).await;
    assert_problem(
        &app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await,
        401,
        "invalid_session",
    );

    // Absolute lifetime, however busy the session.
    let sess = app.sign_in(&ws, "s@example.com").await;
    age_session(&app, "created_at", 86_400 + 1).await;
    assert_problem(
        &app.as_session(&sess, Method::GET, "/v1/contacts", None, false)
            .await,
        401,
        "invalid_session",
    );
    app.stop().await;
}

async fn passkeys_as_second_factor(store: Store) {
    use webauthn_authenticator_rs::prelude::{
        CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator,
    };
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;

    let app = TestApp::spawn(store).await;
    let (ws, token) = app.workspace("eu").await;
    app.teammate(&token, "p@example.com", "agent").await;
    let sess = app.sign_in(&ws, "p@example.com").await;
    let origin = Url::parse(&app.base).unwrap();
    // `true`: the soft authenticator reports user verification, as a biometric check would.
    let mut key = SoftPasskey::new(true);

    // Register.
    let start = app
        .as_session(
            &sess,
            Method::POST,
            "/v1/auth/two-factor/passkeys/registrations",
            None,
            true,
        )
        .await;
    assert_eq!(start.status, 200, "{:?}", start.body);
    let ccr: CreationChallengeResponse =
        serde_json::from_value(start.body["public_key"].clone()).unwrap();
    assert_eq!(
        start.body["public_key"]["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let cred = key.do_registration(origin.clone(), ccr).unwrap();
    let reg_id = s(&start.body["registration_id"]);
    let body = json!({"registration_id": reg_id, "name": "soft key",
                      "credential": serde_json::to_value(&cred).unwrap()});
    let done = app
        .as_session(
            &sess,
            Method::POST,
            "/v1/auth/two-factor/passkeys",
            Some(body.clone()),
            true,
        )
        .await;
    assert_eq!(done.status, 201, "{:?}", done.body);
    let passkey_id = s(&done.body["id"]);
    // A registration ceremony is single use.
    let again = app
        .as_session(
            &sess,
            Method::POST,
            "/v1/auth/two-factor/passkeys",
            Some(body),
            true,
        )
        .await;
    assert_problem(&again, 401, "invalid_passkey");
    let listed = app.get("/v1/teammates", &token).await;
    assert_eq!(listed.body["data"][0]["two_factor"], true);

    // Sign-in: the password step answers with a challenge; the passkey completes it.
    let step1 = app.login(&ws, "p@example.com", None).await;
    assert_problem(&step1, 401, "otp_required");
    let login_id = s(&step1.body["passkey_login_id"]);
    let rcr: RequestChallengeResponse =
        serde_json::from_value(step1.body["passkey_challenge"].clone()).unwrap();
    let assertion = key.do_authentication(origin.clone(), rcr).unwrap();
    let finish =
        |id: &str| json!({"login_id": id, "credential": serde_json::to_value(&assertion).unwrap()});
    let ok = app
        .anon(Method::POST, "/v1/auth/login/passkey", finish(&login_id))
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let passkey_session = session_of(&ok);
    assert_eq!(
        app.as_session(
            &passkey_session,
            Method::GET,
            "/v1/conversations",
            None,
            false
        )
        .await
        .status,
        200
    );
    // The same answer cannot be replayed.
    assert_problem(
        &app.anon(Method::POST, "/v1/auth/login/passkey", finish(&login_id))
            .await,
        401,
        "invalid_passkey",
    );
    // A tampered signature does not verify (and the failure is counted).
    let step1 = app.login(&ws, "p@example.com", None).await;
    let rcr: RequestChallengeResponse =
        serde_json::from_value(step1.body["passkey_challenge"].clone()).unwrap();
    let mut forged =
        serde_json::to_value(key.do_authentication(origin.clone(), rcr).unwrap()).unwrap();
    let sig = s(&forged["response"]["signature"]);
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    forged["response"]["signature"] = json!(format!("{flipped}{}", &sig[1..]));
    let r = app
        .anon(
            Method::POST,
            "/v1/auth/login/passkey",
            json!({"login_id": s(&step1.body["passkey_login_id"]), "credential": forged}),
        )
        .await;
    assert_problem(&r, 401, "invalid_passkey");

    // Removing the passkey needs the password.
    let path = format!("/v1/auth/two-factor/passkeys/{passkey_id}");
    let bad = app
        .as_session(
            &sess,
            Method::DELETE,
            &path,
            Some(json!({"password": "wrong-password-123"})),
            true,
        )
        .await;
    assert_problem(&bad, 401, "invalid_credentials");
    let gone = app
        .as_session(
            &sess,
            Method::DELETE,
            &path,
            Some(json!({"password": PASSWORD})),
            true,
        )
        .await;
    assert_eq!(gone.status, 204, "{:?}", gone.body);
    assert_eq!(app.login(&ws, "p@example.com", None).await.status, 200);
    app.stop().await;
}
