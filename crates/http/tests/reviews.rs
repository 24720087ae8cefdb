//! Access reviews through the real server (TLS with staff device certificates, router,
//! stores), on SQLite and PostgreSQL: the routes need a trusted device, a staff session and the
//! approver role; a campaign lists staff and workspace admins; approvers certify or revoke
//! staff, the workspace (security.manage) its own admins (demoted in its log), self-review,
//! second decisions and crossed lines refused with their codes; and, with the server's clock moved past the deadline,
//! the server's own sweeper revokes what nobody reviewed and closes the campaign.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Resp, Store, TestApp, assert_problem};
use interlock_crypto::totp::TotpSecret;
use interlock_domain::{Region, StaffRole};
use interlock_storage::{Clock, OffsetClock};
use reqwest::Method;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

/// A staff member with a registered device: their certificate-bearing client and TOTP secret.
struct Staff {
    id: String,
    client: reqwest::Client,
    totp: TotpSecret,
}

async fn staff(app: &TestApp, email: &str, role: StaffRole) -> Staff {
    let (id, client, totp) = app.staff_with_device(email, role).await;
    Staff { id, client, totp }
}

/// A request through `client`, with an optional bearer token and JSON body.
async fn call(
    app: &TestApp,
    client: &reqwest::Client,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    app.send_with(client, method, path, token, body).await
}

/// Sign in from the staff member's device at the server's time `now_ms`.
async fn sign_in(app: &TestApp, s: &Staff, now_ms: i64) -> String {
    let code = s.totp.code_at(u64::try_from(now_ms / 1000).unwrap());
    let r = call(
        app,
        &s.client,
        Method::POST,
        "/v1/staff/sessions",
        None,
        Some(json!({"staff_id": s.id, "code": code})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

fn item_of<'a>(campaign: &'a Value, holder: &str) -> &'a Value {
    campaign["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["holder_id"] == holder)
        .unwrap_or_else(|| panic!("no item for {holder}: {campaign}"))
}

async fn campaigns_in_store(app: &TestApp) -> usize {
    app.cell(Region::Eu)
        .access_review_campaigns(100)
        .await
        .unwrap()
        .len()
}

/// Wait (up to ten seconds; the sweeper runs every second) until `check` holds.
async fn soon<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..50 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

store_tests!(approvers_review_and_the_deadline_revokes);

async fn approvers_review_and_the_deadline_revokes(store: Store) {
    let clock = Arc::new(OffsetClock::new(0));
    let c = clock.clone();
    let app = TestApp::spawn_with(store, move |s| {
        s.retention.sweep_every_s = 1;
        s.clock = c;
        // The webhook receiver below is a plain-http address that nothing delivers to.
        s.outbound.allow_insecure_http = true;
        s.outbound.poll_interval_ms = 3_600_000;
    })
    .await;
    // Without an approver nobody could review: the sweeper (every second) starts nothing, and a
    // new approver's first scheduled campaign is a full period away.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(campaigns_in_store(&app).await, 0);

    // The routes are in the OpenAPI document, behind a staff session.
    let doc = app
        .call(Method::GET, "/v1/openapi.json", None, None)
        .await
        .body;
    for (path, method) in [
        ("/v1/staff/access-reviews", "get"),
        ("/v1/staff/access-reviews", "post"),
        ("/v1/staff/access-reviews/{id}", "get"),
        ("/v1/staff/access-reviews/{id}/items/{item_id}", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(
            op["security"][0].get("staff_session").is_some(),
            "{method} {path}: {op}"
        );
    }

    let ann = staff(&app, "ann@operator.example", StaffRole::Approver).await;
    let bob = staff(&app, "bob@operator.example", StaffRole::Approver).await;
    let sue = staff(&app, "sue@operator.example", StaffRole::Support).await;
    let (ws, token) = app.workspace("eu").await;
    let admin = app.teammate(&token, "admin@acme.example", "admin").await;
    let late = app.teammate(&token, "late@acme.example", "admin").await;
    let agent = app.teammate(&token, "agent@acme.example", "agent").await;

    // Refusals that need no session: no certificate, then a device without a session.
    let path = "/v1/staff/access-reviews";
    let r = call(&app, &app.http, Method::GET, path, None, None).await;
    assert_problem(&r, 401, "device_certificate_required");
    let r = call(&app, &app.http, Method::POST, path, None, None).await;
    assert_problem(&r, 401, "device_certificate_required");
    let r = call(&app, &ann.client, Method::GET, path, None, None).await;
    assert_problem(&r, 401, "invalid_staff_session");

    let now = clock.now_ms();
    let ann_t = sign_in(&app, &ann, now).await;
    let bob_t = sign_in(&app, &bob, now).await;
    let sue_t = sign_in(&app, &sue, now).await;
    // Support staff do not review.
    let r = call(&app, &sue.client, Method::GET, path, Some(&sue_t), None).await;
    assert_problem(&r, 403, "approver_required");
    let r = call(&app, &sue.client, Method::POST, path, Some(&sue_t), None).await;
    assert_problem(&r, 403, "approver_required");

    // The customer subscribes to the campaign's start.
    app.subscribe_unreachable(&token, "access_review.started")
        .await;

    // Start one now: staff and the workspace's admins, not its agent.
    let r = call(&app, &ann.client, Method::POST, path, Some(&ann_t), None).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let campaign = r.body;
    let id = campaign["id"].as_str().unwrap().to_owned();
    assert_eq!(campaign["status"], "open");
    assert_eq!(
        campaign["deadline_at"].as_i64().unwrap() - campaign["started_at"].as_i64().unwrap(),
        14 * DAY
    );
    let mut holders: Vec<&str> = campaign["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["holder_id"].as_str().unwrap())
        .collect();
    holders.sort_unstable();
    let mut expected = vec![
        ann.id.as_str(),
        bob.id.as_str(),
        sue.id.as_str(),
        admin.as_str(),
        late.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(holders, expected);
    assert!(!holders.contains(&agent.as_str()));
    let admin_item = item_of(&campaign, &admin);
    assert_eq!(admin_item["kind"], "teammate_role");
    assert_eq!(admin_item["role"], "admin");
    assert_eq!(admin_item["permissions"], admin_item["baseline"]);
    assert_eq!(item_of(&campaign, &sue.id)["kind"], "staff_role");
    assert_eq!(campaign["report"]["totals"]["pending"], 5);
    assert_eq!(campaign["report"]["completion"], 0.0);
    // One at a time.
    let r = call(&app, &bob.client, Method::POST, path, Some(&bob_t), None).await;
    assert_problem(&r, 409, "review_open");

    let item_path = |holder: &str| {
        format!(
            "/v1/staff/access-reviews/{id}/items/{}",
            item_of(&campaign, holder)["id"].as_str().unwrap()
        )
    };
    let decide = |s: &Staff, t: &str, holder: &str, decision: &str| {
        let client = s.client.clone();
        let t = t.to_owned();
        let p = item_path(holder);
        let body = json!({ "decision": decision });
        let app = &app;
        async move { call(app, &client, Method::POST, &p, Some(&t), Some(body)).await }
    };
    let r = decide(&ann, &ann_t, &bob.id, "maybe").await;
    assert_problem(&r, 422, "invalid_decision");
    let r = decide(&ann, &ann_t, &ann.id, "certify").await;
    assert_problem(&r, 403, "self_review");
    let r = decide(&sue, &sue_t, &admin, "certify").await;
    assert_problem(&r, 403, "approver_required");
    let r = decide(&ann, &ann_t, &bob.id, "certify").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["decision"], "certified");
    assert_eq!(r.body["decided_by"], ann.id.as_str());
    let r = decide(&bob, &bob_t, &bob.id, "revoke").await;
    assert_problem(&r, 409, "item_decided");
    let r = decide(&bob, &bob_t, &ann.id, "certify").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A customer's roles are not the operator's to decide.
    let r = decide(&bob, &bob_t, &admin, "revoke").await;
    assert_problem(&r, 403, "reviewed_by_workspace");
    // The workspace was told, and reviews its own owners and admins (security.manage).
    let log = app
        .get("/v1/activity-logs?types=access_review.started", &token)
        .await;
    let started = log.body["data"].as_array().unwrap();
    assert_eq!(started.len(), 1, "{:?}", log.body);
    assert_eq!(started[0]["metadata"]["campaign_id"], id.as_str());
    assert_eq!(started[0]["metadata"]["items"], 2);
    let ws_id = interlock_domain::WorkspaceId::parse(&ws).unwrap();
    let deliveries = app.cell(Region::Eu).deliveries(&ws_id, 100).await.unwrap();
    let queued: Vec<_> = deliveries
        .iter()
        .filter(|d| d.event == "access_review.started")
        .collect();
    assert_eq!(queued.len(), 1, "{deliveries:?}");
    let mine = app
        .get("/v1/workspace/access-reviews/current", &token)
        .await;
    assert_eq!(mine.status, 200, "{:?}", mine.body);
    assert_eq!(mine.body["campaign"]["id"], id.as_str());
    let mut own: Vec<&str> = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["holder_id"].as_str().unwrap())
        .collect();
    own.sort_unstable();
    let mut both = vec![admin.as_str(), late.as_str()];
    both.sort_unstable();
    assert_eq!(own, both);
    let ws_item_path = |holder: &str| {
        format!(
            "/v1/workspace/access-reviews/{id}/items/{}",
            item_of(&campaign, holder)["id"].as_str().unwrap()
        )
    };
    let reader = app
        .post(
            "/v1/api-tokens",
            &token,
            json!({"name": "reader", "permissions": ["contacts.read"]}),
        )
        .await;
    let reader = reader.body["token"].as_str().unwrap().to_owned();
    let revoke = json!({"decision": "revoke"});
    let r = app
        .post(&ws_item_path(&admin), &reader, revoke.clone())
        .await;
    assert_problem(&r, 403, "permission_denied");
    // A staff member's item is not the workspace's.
    let r = app
        .post(&ws_item_path(&sue.id), &token, revoke.clone())
        .await;
    assert_problem(&r, 404, "not_found");
    // Revoking an admin demotes them at once, in the workspace's log.
    let r = app.post(&ws_item_path(&admin), &token, revoke).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["decision"], "revoked");
    let log = app
        .get("/v1/activity-logs?types=access_review.revoked", &token)
        .await;
    let entries = log.body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{:?}", log.body);
    assert_eq!(entries[0]["actor"]["type"], "api_token");
    assert_eq!(entries[0]["target"]["id"], admin.as_str());
    assert_eq!(entries[0]["metadata"]["reason"], "revoked");
    assert_eq!(entries[0]["metadata"]["after"], "agent");
    // Revoking a staff member ends their session for good.
    let r = decide(&ann, &ann_t, &sue.id, "revoke").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = call(
        &app,
        &sue.client,
        Method::GET,
        "/v1/staff/me",
        Some(&sue_t),
        None,
    )
    .await;
    assert_problem(&r, 401, "invalid_staff_session");

    // The campaign, its items and report; bad and unknown ids.
    let one = format!("/v1/staff/access-reviews/{id}");
    let r = call(&app, &ann.client, Method::GET, &one, Some(&ann_t), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let totals = &r.body["report"]["totals"];
    assert_eq!(
        (
            &totals["items"],
            &totals["certified"],
            &totals["revoked"],
            &totals["pending"]
        ),
        (&json!(5), &json!(2), &json!(2), &json!(1))
    );
    assert_eq!(r.body["report"]["completion"], 0.8);
    assert!(r.body["report"]["drift"]["previous_campaign_id"].is_null());
    let r = call(
        &app,
        &ann.client,
        Method::GET,
        "/v1/staff/access-reviews/rv_nope",
        Some(&ann_t),
        None,
    )
    .await;
    assert_problem(&r, 400, "invalid_id");
    let unknown = format!("/v1/staff/access-reviews/rv_{}", "0".repeat(32));
    let r = call(&app, &ann.client, Method::GET, &unknown, Some(&ann_t), None).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = call(&app, &ann.client, Method::GET, path, Some(&ann_t), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let list = r.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());

    // Fourteen days on, the server's sweeper revokes the admin nobody reviewed.
    clock.set_offset(14 * DAY + 60_000);
    let cell = app.cell(Region::Eu);
    let cid = interlock_domain::ReviewCampaignId::parse(&id).unwrap();
    assert!(
        soon(|| async {
            !cell
                .access_review_campaign(Some(&cid))
                .await
                .unwrap()
                .is_open()
        })
        .await,
        "the deadline did not close the campaign"
    );
    let log = app
        .get("/v1/activity-logs?types=access_review.revoked", &token)
        .await;
    let entries = log.body["data"].as_array().unwrap();
    let by_system: Vec<&Value> = entries
        .iter()
        .filter(|e| e["actor"]["type"] == "system")
        .collect();
    assert_eq!(by_system.len(), 1, "{:?}", log.body);
    assert_eq!(by_system[0]["target"]["id"], late.as_str());
    assert_eq!(by_system[0]["metadata"]["reason"], "unreviewed");
    assert_eq!(by_system[0]["metadata"]["campaign_id"], id.as_str());
    // Reviewers are too late now (sessions last 8 hours: sign in again at the new time).
    let later = clock.now_ms();
    let ann_t = sign_in(&app, &ann, later).await;
    let r = call(&app, &ann.client, Method::GET, &one, Some(&ann_t), None).await;
    assert_eq!(r.body["status"], "closed");
    assert_eq!(item_of(&r.body, &late)["decision"], "revoked_unreviewed");
    assert_eq!(item_of(&r.body, &late)["decided_by"], "system");
    assert_eq!(r.body["report"]["completion"], 1.0);
    let p = format!(
        "/v1/workspace/access-reviews/{id}/items/{}",
        item_of(&r.body, &late)["id"].as_str().unwrap()
    );
    let r = app.post(&p, &token, json!({"decision": "certify"})).await;
    assert_problem(&r, 409, "review_closed");
    // Not a quarter yet: no new campaign; past one, the sweeper starts the next.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(campaigns_in_store(&app).await, 1);
    clock.set_offset(92 * DAY);
    assert!(
        soon(|| async { campaigns_in_store(&app).await == 2 }).await,
        "no campaign started after a quarter"
    );
    app.stop().await;
}
