//! The retention sweeper inside the server, with a clock the test moves: a visitor stays while
//! young and is deleted (404, logged as `system`) once nine months have passed; users stay.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Store, TestApp, assert_problem};
use interlock_storage::{OffsetClock, VISITOR_MAX_AGE_MS};
use reqwest::Method;
use serde_json::json;

/// Whether `path` answers 404 within ten seconds (the sweeper runs every second).
async fn gone_soon(app: &TestApp, path: &str, token: &str) -> bool {
    for _ in 0..50 {
        if app.get(path, token).await.status == 404 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

store_tests!(
    the_server_sweeps_expired_visitors,
    workspace_settings_shorten_retention,
);

async fn the_server_sweeps_expired_visitors(store: Store) {
    let clock = Arc::new(OffsetClock::new(0));
    let c = clock.clone();
    let app = TestApp::spawn_with(store, move |s| {
        s.retention.sweep_every_s = 1;
        s.clock = c;
    })
    .await;
    let (_ws, token) = app.workspace("us").await;
    let visitor = app.contact(&token, json!({"role": "visitor"})).await;
    let user = app
        .contact(&token, json!({"email": "stays@example.com"}))
        .await;
    // Eight months on, two sweeps later: still there.
    clock.set_offset(243 * 86_400_000);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        app.get(&format!("/v1/contacts/{visitor}"), &token)
            .await
            .status,
        200
    );
    // Nine months and a day on: gone.
    clock.set_offset(VISITOR_MAX_AGE_MS + 86_400_000);
    assert!(
        gone_soon(&app, &format!("/v1/contacts/{visitor}"), &token).await,
        "the visitor was not swept"
    );
    assert_problem(
        &app.get(&format!("/v1/contacts/{visitor}"), &token).await,
        404,
        "not_found",
    );
    assert_eq!(
        app.get(&format!("/v1/contacts/{user}"), &token)
            .await
            .status,
        200
    );
    let log = app
        .get(
            "/v1/activity-logs?types=contact.deleted,data.bulk_deleted",
            &token,
        )
        .await;
    let entries = log.body["data"].as_array().unwrap();
    // Expired visitors go in batches: one entry per batch names them.
    assert!(entries.iter().any(|e| {
        e["type"] == "data.bulk_deleted"
            && e["metadata"]["reason"] == "retention.visitor_expired"
            && e["metadata"]["contact_ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|id| id == visitor.as_str()))
            && e["actor"]["type"] == "system"
    }));
    assert!(entries.iter().any(|e| e["type"] == "data.bulk_deleted"
        && e["metadata"]["contacts"] == 1
        && e["metadata"]["reason"] == "retention"));
    app.stop().await;
}

async fn workspace_settings_shorten_retention(store: Store) {
    let clock = Arc::new(OffsetClock::new(0));
    let c = clock.clone();
    let app = TestApp::spawn_with(store, move |s| {
        s.retention.sweep_every_s = 1;
        s.clock = c;
    })
    .await;
    let (_ws, token) = app.workspace("eu").await;
    let r = app.get("/v1/workspace/retention", &token).await;
    assert_eq!(
        r.body,
        json!({"conversation_days": null, "visitor_days": 274})
    );
    let put = |body: serde_json::Value| {
        app.call(
            Method::PUT,
            "/v1/workspace/retention",
            Some(&token),
            Some(body),
        )
    };
    assert_problem(
        &put(json!({"conversation_days": null, "visitor_days": 275})).await,
        422,
        "visitor_expiry_too_long",
    );
    assert_problem(
        &put(json!({"conversation_days": 0, "visitor_days": 30})).await,
        422,
        "out_of_range",
    );
    assert_problem(
        &put(json!({"conversation_days": 10, "visitor_days": -1})).await,
        422,
        "invalid_body",
    );
    assert_problem(
        &put(json!({"visitor_days": 30, "forever": true})).await,
        422,
        "invalid_body",
    );
    let visitor = app.contact(&token, json!({"role": "visitor"})).await;
    let user = app
        .contact(&token, json!({"email": "keep@example.com"}))
        .await;
    let cv = app
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": user, "body": "an old question"}),
        )
        .await;
    let cv = cv.body["id"].as_str().unwrap().to_owned();
    let r = put(json!({"conversation_days": 30, "visitor_days": 60})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        app.get("/v1/workspace/retention", &token).await.body,
        json!({"conversation_days": 30, "visitor_days": 60})
    );
    // 31 days on: the idle conversation goes, the visitor (60 days) and the user stay.
    clock.set_offset(31 * 86_400_000);
    assert!(
        gone_soon(&app, &format!("/v1/conversations/{cv}"), &token).await,
        "the idle conversation was not swept"
    );
    assert_eq!(
        app.get(&format!("/v1/contacts/{visitor}"), &token)
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/contacts/{user}"), &token)
            .await
            .status,
        200
    );
    // 61 days on: the visitor goes too, well before nine months.
    clock.set_offset(61 * 86_400_000);
    assert!(
        gone_soon(&app, &format!("/v1/contacts/{visitor}"), &token).await,
        "the visitor was not swept at the workspace's shorter expiry"
    );
    assert_eq!(
        app.get(&format!("/v1/contacts/{user}"), &token)
            .await
            .status,
        200
    );
    let log = app
        .get("/v1/activity-logs?types=settings.retention.updated", &token)
        .await;
    let e = &log.body["data"][0];
    assert_eq!(e["metadata"]["before"]["visitor_days"], 274);
    assert_eq!(
        e["metadata"]["after"],
        json!({"conversation_days": 30, "visitor_days": 60})
    );
    app.stop().await;
}
