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
use serde_json::json;

store_tests!(the_server_sweeps_expired_visitors);

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
    let mut gone = false;
    for _ in 0..50 {
        if app
            .get(&format!("/v1/contacts/{visitor}"), &token)
            .await
            .status
            == 404
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "the visitor was not swept");
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
    assert!(entries.iter().any(|e| e["type"] == "contact.deleted"
        && e["target"]["id"] == visitor.as_str()
        && e["actor"]["type"] == "system"));
    assert!(entries.iter().any(|e| e["type"] == "data.bulk_deleted"
        && e["metadata"]["contacts"] == 1
        && e["metadata"]["reason"] == "retention"));
    app.stop().await;
}
