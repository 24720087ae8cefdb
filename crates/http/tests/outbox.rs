//! Sub-processors, webhooks and the outbound gate through the real server, on SQLite and
//! PostgreSQL: the public registry and the operator's endpoints; a subscription to an
//! unregistered host is refused; a registered receiver gets `contact.created` with a valid
//! Standard Webhooks signature; a delivery whose host was de-registered after it was queued is
//! refused and logged, never sent; a failing receiver is retried and gets the event delivered
//! once; `subprocessors.changed` reaches exactly the subscribed workspaces of the affected
//! regions; an erasure notice reaches the receiver and verifies; an activity-log HTTP sink gets
//! nothing until its host is registered.
//!
//! Receivers listen on 127.0.0.1 over plain http (`[outbound] allow_insecure_http`). The
//! server's worker is set to poll hourly; the tests drive it with `outbox::run_once`, so what
//! was sent is known without waiting on time.

#![allow(
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::text as s;
use common::{Store, TestApp, assert_problem};
use interlock_crypto::{SignedDocument, WebhookSecret};
use interlock_domain::{ContactId, Region, WorkspaceId};
use interlock_http::outbox::{OutboundSettings, Worker, run_once};
use interlock_http::sinks::{SinkConfig, SinkFormat, SinkKind};
use reqwest::Method;
use serde_json::{Value, json};

store_tests!(
    registry_is_public_and_operator_managed,
    subscriptions_need_a_registered_host_of_the_region,
    contact_created_is_delivered_signed,
    a_deregistered_host_is_refused_and_logged,
    a_failing_receiver_is_retried_and_delivered_once,
    subprocessors_changed_reaches_subscribed_workspaces,
    erasure_notices_reach_the_receiver_and_verify,
    activity_sinks_wait_for_a_registered_host,
);

// ------------------------------------------------------------------ a receiver

#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Got>>,
    /// Statuses to answer with, in order; 200 once empty.
    script: Mutex<VecDeque<u16>>,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    r.got.lock().unwrap().push(Got {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    let status = r.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// A plain-http receiver on 127.0.0.1:0.
async fn receiver() -> (SocketAddr, Arc<Receiver>) {
    let r = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(receive).with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, r)
}

impl Receiver {
    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn on(&self, path: &str) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.path == path).collect()
    }
}

// ------------------------------------------------------------------ the server

fn outbound() -> OutboundSettings {
    OutboundSettings {
        // The background worker sleeps; the tests drive it.
        poll_interval_ms: 3_600_000,
        backoff_base_ms: 10,
        backoff_cap_ms: 20,
        max_attempts: 3,
        request_timeout_s: 5,
        allow_insecure_http: true,
        ..OutboundSettings::default()
    }
}

async fn spawn(store: Store) -> TestApp {
    TestApp::spawn_with(store, |s| s.outbound = outbound()).await
}

/// One round of the worker on every region.
async fn deliver(app: &TestApp) {
    let worker = Worker::new(&outbound()).unwrap();
    for region in Region::ALL {
        run_once(&app.cell(region), &worker).await.unwrap();
    }
}

fn sp_body(name: &str, host: &str, regions: &[&str], notice_url: &str) -> Value {
    json!({
        "name": name,
        "purpose": "Receives webhooks for the test",
        "data_categories": ["user.contact.email", "user.name"],
        "regions": regions,
        "hosts": [host],
        "deletion_notice_url": notice_url,
    })
}

impl TestApp {
    /// Register the receiver's host as a sub-processor of `regions`; returns its id.
    async fn register(&self, name: &str, addr: SocketAddr, regions: &[&str]) -> String {
        let r = self
            .post(
                "/v1/operator/subprocessors",
                &self.operator,
                sp_body(
                    name,
                    &addr.ip().to_string(),
                    regions,
                    &format!("http://{addr}/erasure"),
                ),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        s(&r.body["id"])
    }

    /// Subscribe `http://addr/<path>` to `events`; returns the signing secret.
    async fn subscribe(
        &self,
        token: &str,
        addr: SocketAddr,
        path: &str,
        events: &[&str],
    ) -> String {
        let r = self
            .post(
                "/v1/webhooks",
                token,
                json!({"url": format!("http://{addr}/{path}"), "events": events}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        s(&r.body["secret"])
    }

    async fn deliveries(&self, ws: &str) -> Vec<interlock_storage::cell::DeliveryInfo> {
        let ws = WorkspaceId::parse(ws).unwrap();
        self.cell(ws.region()).deliveries(&ws, 100).await.unwrap()
    }
}

/// Check a webhook request's Standard Webhooks headers and signature; returns its body.
fn verified(g: &Got, secret: &str) -> Value {
    let id = g.header("webhook-id");
    let ts: i64 = g.header("webhook-timestamp").parse().unwrap();
    let sig = g.header("webhook-signature");
    assert!(sig.starts_with("v1,"), "{sig}");
    let key = WebhookSecret::parse(secret).unwrap();
    assert!(
        key.verify(&id, ts, &g.body, &sig),
        "signature does not verify"
    );
    // Altered, it does not.
    let mut other = g.body.clone();
    other.push(b' ');
    assert!(!key.verify(&id, ts, &other, &sig));
    assert_eq!(g.header("content-type"), "application/json");
    let body = g.json();
    assert_eq!(body["id"], id.as_str());
    body
}

// ------------------------------------------------------------------ tests

async fn registry_is_public_and_operator_managed(store: Store) {
    let app = spawn(store).await;
    let (_ws, token) = app.workspace("eu").await;
    let empty = app.call(Method::GET, "/v1/subprocessors", None, None).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["data"], json!([]));

    let good = sp_body(
        "Mailer",
        "mail.example",
        &["eu"],
        "https://mail.example/erasure",
    );
    // Operator endpoints refuse a workspace token, and no token at all.
    let r = app
        .post("/v1/operator/subprocessors", &token, good.clone())
        .await;
    assert_problem(&r, 401, "invalid_token");
    let r = app
        .call(
            Method::POST,
            "/v1/operator/subprocessors",
            None,
            Some(good.clone()),
        )
        .await;
    assert_problem(&r, 401, "missing_token");

    // Bad input: 422 with stable codes.
    let bad = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b
    };
    for (body, code) in [
        (bad("hosts", json!(["Mail.example"])), "invalid_host"),
        (
            bad("hosts", json!(["https://mail.example"])),
            "invalid_host",
        ),
        (bad("hosts", json!(["mail.example:443"])), "invalid_host"),
        (bad("hosts", json!(["*.example"])), "invalid_host"),
        (bad("hosts", json!([])), "invalid_hosts"),
        (
            bad("data_categories", json!(["user.favourite_colour"])),
            "unknown_data_category",
        ),
        (bad("regions", json!(["mars"])), "invalid_region"),
        (bad("name", json!("")), "invalid_name"),
        (
            bad("deletion_notice_url", json!("https://elsewhere.example/x")),
            "notice_host_not_listed",
        ),
        (
            bad("deletion_notice_url", json!("not a url")),
            "invalid_deletion_notice_url",
        ),
        (
            bad("deletion_notice_url", json!("ftp://mail.example/x")),
            "invalid_deletion_notice_url",
        ),
    ] {
        let r = app
            .post("/v1/operator/subprocessors", &app.operator, body)
            .await;
        assert_problem(&r, 422, code);
    }
    let r = app
        .post(
            "/v1/operator/subprocessors",
            &app.operator,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);

    let r = app
        .post("/v1/operator/subprocessors", &app.operator, good.clone())
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = s(&r.body["id"]);
    assert!(id.starts_with("sp_"));
    assert_eq!(r.body["regions"], json!(["eu"]));
    assert_eq!(r.body["hosts"], json!(["mail.example"]));

    // Public, filterable by region.
    let all = app.call(Method::GET, "/v1/subprocessors", None, None).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(all.body["data"][0]["name"], "Mailer");
    let eu = app
        .call(Method::GET, "/v1/subprocessors?region=eu", None, None)
        .await;
    assert_eq!(eu.body["data"].as_array().unwrap().len(), 1);
    let us = app
        .call(Method::GET, "/v1/subprocessors?region=us", None, None)
        .await;
    assert_eq!(us.body["data"], json!([]));
    let r = app
        .call(Method::GET, "/v1/subprocessors?region=mars", None, None)
        .await;
    assert_problem(&r, 422, "invalid_region");

    // Replace: now in us and eu, another host.
    let moved = sp_body(
        "Mailer 2",
        "m2.example",
        &["us", "eu"],
        "https://m2.example/e",
    );
    let r = app
        .put(
            &format!("/v1/operator/subprocessors/{id}"),
            &token,
            moved.clone(),
        )
        .await;
    assert_problem(&r, 401, "invalid_token");
    let r = app
        .put(
            &format!("/v1/operator/subprocessors/{id}"),
            &app.operator,
            moved,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["regions"], json!(["us", "eu"]));
    let us = app
        .call(Method::GET, "/v1/subprocessors?region=us", None, None)
        .await;
    assert_eq!(us.body["data"][0]["hosts"], json!(["m2.example"]));
    // Out of eu.
    let r = app
        .put(
            &format!("/v1/operator/subprocessors/{id}"),
            &app.operator,
            sp_body("Mailer 3", "m2.example", &["us"], "https://m2.example/e"),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let eu = app
        .call(Method::GET, "/v1/subprocessors?region=eu", None, None)
        .await;
    assert_eq!(eu.body["data"], json!([]));

    let r = app
        .delete(&format!("/v1/operator/subprocessors/{id}"), &token)
        .await;
    assert_problem(&r, 401, "invalid_token");
    let r = app
        .delete(&format!("/v1/operator/subprocessors/{id}"), &app.operator)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["deleted"], true);
    let r = app
        .delete(&format!("/v1/operator/subprocessors/{id}"), &app.operator)
        .await;
    assert_problem(&r, 404, "not_found");
    let r = app
        .put(
            &format!("/v1/operator/subprocessors/{id}"),
            &app.operator,
            good,
        )
        .await;
    assert_problem(&r, 404, "not_found");
    let r = app
        .delete("/v1/operator/subprocessors/nope", &app.operator)
        .await;
    assert_problem(&r, 400, "invalid_id");
    let all = app.call(Method::GET, "/v1/subprocessors", None, None).await;
    assert_eq!(all.body["data"], json!([]));
    app.stop().await;
}

async fn subscriptions_need_a_registered_host_of_the_region(store: Store) {
    let app = spawn(store).await;
    let (addr, rx) = receiver().await;
    let (_ws, token) = app.workspace("eu").await;
    let sub = |url: String| json!({"url": url, "events": ["contact.created"]});
    // Nothing registered: refused.
    let r = app
        .post("/v1/webhooks", &token, sub(format!("http://{addr}/h")))
        .await;
    assert_problem(&r, 422, "host_not_a_subprocessor");
    let r = app
        .post("/v1/webhooks", &token, sub("https://evil.example/h".into()))
        .await;
    assert_problem(&r, 422, "host_not_a_subprocessor");
    // Registered for another region only: still refused.
    app.register("Receiver", addr, &["us"]).await;
    let r = app
        .post("/v1/webhooks", &token, sub(format!("http://{addr}/h")))
        .await;
    assert_problem(&r, 422, "host_not_a_subprocessor");
    // Bad URLs and events.
    for (body, code) in [
        (sub("not a url".into()), "invalid_url"),
        (sub(format!("http://user:pw@{addr}/h")), "invalid_url"),
        (
            json!({"url": format!("http://{addr}/h"), "events": []}),
            "invalid_events",
        ),
        (
            json!({"url": format!("http://{addr}/h"), "events": ["contact.exploded"]}),
            "unknown_event",
        ),
    ] {
        let r = app.post("/v1/webhooks", &token, body).await;
        assert_problem(&r, 422, code);
    }
    // Registered for the workspace's region: accepted, the secret shown once.
    app.register("Receiver EU", addr, &["eu"]).await;
    let r = app
        .post("/v1/webhooks", &token, sub(format!("http://{addr}/h")))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = s(&r.body["id"]);
    assert!(s(&r.body["secret"]).starts_with("whsec_"));
    let list = app.get("/v1/webhooks", &token).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["data"][0]["url"], format!("http://{addr}/h"));
    assert!(list.body["data"][0].get("secret").is_none());
    // Nothing was sent to the receiver by subscribing.
    deliver(&app).await;
    assert!(rx.got().is_empty());
    // The operator token does not reach webhooks.
    let r = app.get("/v1/webhooks", &app.operator).await;
    assert_problem(&r, 403, "operator_token_not_allowed");
    let r = app.delete(&format!("/v1/webhooks/{id}"), &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app.delete(&format!("/v1/webhooks/{id}"), &token).await;
    assert_problem(&r, 404, "not_found");
    // Created and deleted are in the activity log, without the secret.
    let log = app
        .get(
            "/v1/activity-logs?types=webhook.created,webhook.deleted",
            &token,
        )
        .await;
    assert_eq!(
        log.body["data"].as_array().unwrap().len(),
        2,
        "{:?}",
        log.body
    );
    assert!(!log.body.to_string().contains("whsec_"));
    app.stop().await;
}

async fn contact_created_is_delivered_signed(store: Store) {
    let app = spawn(store).await;
    let (addr, rx) = receiver().await;
    let (ws, token) = app.workspace("eu").await;
    let sp = app.register("Receiver", addr, &["eu"]).await;
    let secret = app
        .subscribe(&token, addr, "hooks", &["contact.created"])
        .await;
    // Another subscription, to another event: gets nothing.
    app.subscribe(&token, addr, "other", &["subprocessors.changed"])
        .await;
    let contact = app
        .contact(
            &token,
            json!({"email": "signed@example.com", "name": "Signe"}),
        )
        .await;
    assert!(
        rx.got().is_empty(),
        "nothing is sent before the worker runs"
    );
    deliver(&app).await;
    let got = rx.on("/hooks");
    assert_eq!(got.len(), 1);
    let body = verified(&got[0], &secret);
    assert_eq!(body["type"], "contact.created");
    assert_eq!(body["workspace_id"], ws.as_str());
    assert_eq!(body["data"]["id"], contact.as_str());
    assert_eq!(body["data"]["email"], "signed@example.com");
    assert_eq!(body["data"]["name"], "Signe");
    assert!(body["created_at"].as_i64().unwrap() > 1_700_000_000);
    assert!(rx.on("/other").is_empty());
    // Delivered once: another round sends nothing more.
    deliver(&app).await;
    assert_eq!(rx.got().len(), 1);
    let d = app.deliveries(&ws).await;
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].status.as_str(), d[0].attempts), ("delivered", 1));
    assert_eq!(d[0].subject_id.as_deref(), Some(contact.as_str()));
    // The receiver is on record as having the subject's data.
    let wsid = WorkspaceId::parse(&ws).unwrap();
    let who = app
        .cell(Region::Eu)
        .subject_disclosures(&wsid, &ContactId::parse(&contact).unwrap())
        .await
        .unwrap();
    assert_eq!(who.len(), 1);
    assert_eq!(who[0].as_str(), sp);
    app.stop().await;
}

async fn a_deregistered_host_is_refused_and_logged(store: Store) {
    let app = spawn(store).await;
    let (addr, rx) = receiver().await;
    let (ws, token) = app.workspace("eu").await;
    let sp = app.register("Receiver", addr, &["eu"]).await;
    app.subscribe(&token, addr, "hooks", &["contact.created"])
        .await;
    let contact = app
        .contact(&token, json!({"email": "gone@example.com"}))
        .await;
    // De-registered after the delivery was queued.
    let r = app
        .delete(&format!("/v1/operator/subprocessors/{sp}"), &app.operator)
        .await;
    assert_eq!(r.status, 200);
    deliver(&app).await;
    deliver(&app).await;
    assert!(rx.got().is_empty(), "a refused delivery must not be sent");
    let d = app.deliveries(&ws).await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, "refused");
    assert_eq!(d[0].last_error.as_deref(), Some("host_not_a_subprocessor"));
    assert_eq!(d[0].attempts, 0);
    let log = app
        .get("/v1/activity-logs?types=outbound.refused", &token)
        .await;
    let entries = log.body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{:?}", log.body);
    assert_eq!(entries[0]["actor"]["type"], "system");
    assert_eq!(entries[0]["target"]["id"], d[0].id.as_str());
    assert_eq!(entries[0]["metadata"]["host"], "127.0.0.1");
    assert_eq!(entries[0]["metadata"]["reason"], "host_not_a_subprocessor");
    assert_eq!(entries[0]["metadata"]["kind"], "webhook");
    // Nothing about the subject in the log.
    assert!(!log.body.to_string().contains("gone@example.com"));
    // Nobody is on record as having the subject's data.
    let wsid = WorkspaceId::parse(&ws).unwrap();
    assert!(
        app.cell(Region::Eu)
            .subject_disclosures(&wsid, &ContactId::parse(&contact).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

async fn a_failing_receiver_is_retried_and_delivered_once(store: Store) {
    let app = spawn(store).await;
    let (addr, rx) = receiver().await;
    let (ws, token) = app.workspace("eu").await;
    app.register("Receiver", addr, &["eu"]).await;
    let secret = app
        .subscribe(&token, addr, "hooks", &["contact.created"])
        .await;
    rx.script.lock().unwrap().extend([500]);
    app.contact(&token, json!({"email": "retry@example.com"}))
        .await;
    deliver(&app).await;
    assert_eq!(rx.got().len(), 1);
    let d = app.deliveries(&ws).await;
    assert_eq!(d[0].status, "pending");
    assert_eq!(d[0].attempts, 1);
    assert_eq!(d[0].last_error.as_deref(), Some("http_500"));
    // Retried after the backoff until the receiver accepts.
    for _ in 0..200 {
        if app.deliveries(&ws).await[0].status != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        deliver(&app).await;
    }
    let d = app.deliveries(&ws).await;
    assert_eq!((d[0].status.as_str(), d[0].attempts), ("delivered", 2));
    let got = rx.got();
    assert_eq!(got.len(), 2, "one failed attempt, one delivery");
    // The same message both times (receivers deduplicate by webhook-id), each signed.
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(got[0].body, got[1].body);
    verified(&got[1], &secret);
    deliver(&app).await;
    assert_eq!(rx.got().len(), 2, "delivered once: nothing more is sent");

    // A 4xx is not retried; repeated 5xx give up after max_attempts.
    rx.script.lock().unwrap().extend([404, 503, 503, 503]);
    app.contact(&token, json!({"email": "four@example.com"}))
        .await;
    deliver(&app).await;
    app.contact(&token, json!({"email": "five@example.com"}))
        .await;
    for _ in 0..200 {
        let d = app.deliveries(&ws).await;
        if d.iter().all(|x| x.status != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        deliver(&app).await;
    }
    let d = app.deliveries(&ws).await;
    let failed: Vec<(i64, Option<String>)> = d
        .iter()
        .filter(|x| x.status == "failed")
        .map(|x| (x.attempts, x.last_error.clone()))
        .collect();
    assert_eq!(failed.len(), 2, "{d:?}");
    assert!(failed.contains(&(1, Some("http_404".into()))), "{failed:?}");
    assert!(failed.contains(&(3, Some("http_503".into()))), "{failed:?}");
    assert_eq!(rx.got().len(), 2 + 1 + 3);
    app.stop().await;
}

async fn subprocessors_changed_reaches_subscribed_workspaces(store: Store) {
    let app = spawn(store).await;
    let (addr, rx) = receiver().await;
    app.register("Receiver", addr, &["eu", "us"]).await;
    let (_w1, t1) = app.workspace("eu").await;
    let (_w2, t2) = app.workspace("eu").await;
    let (_w3, t3) = app.workspace("us").await;
    let s1 = app
        .subscribe(&t1, addr, "w1", &["subprocessors.changed"])
        .await;
    app.subscribe(&t2, addr, "w2", &["contact.created"]).await;
    let s3 = app
        .subscribe(&t3, addr, "w3", &["subprocessors.changed"])
        .await;

    // The operator adds one for eu: only W1 hears of it.
    let r = app
        .post(
            "/v1/operator/subprocessors",
            &app.operator,
            sp_body(
                "Analytics",
                "analytics.example",
                &["eu"],
                "https://analytics.example/e",
            ),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = s(&r.body["id"]);
    deliver(&app).await;
    let w1 = rx.on("/w1");
    assert_eq!(w1.len(), 1);
    let b = verified(&w1[0], &s1);
    assert_eq!(b["type"], "subprocessors.changed");
    assert_eq!(b["data"]["action"], "added");
    assert_eq!(b["data"]["region"], "eu");
    assert_eq!(b["data"]["subprocessor"]["id"], id.as_str());
    assert_eq!(b["data"]["subprocessor"]["name"], "Analytics");
    assert!(rx.on("/w2").is_empty());
    assert!(rx.on("/w3").is_empty());

    // Moved from eu to us: W1 hears "removed", W3 "added".
    let r = app
        .put(
            &format!("/v1/operator/subprocessors/{id}"),
            &app.operator,
            sp_body(
                "Analytics",
                "analytics.example",
                &["us"],
                "https://analytics.example/e",
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    deliver(&app).await;
    let w1 = rx.on("/w1");
    assert_eq!(w1.len(), 2);
    assert_eq!(verified(&w1[1], &s1)["data"]["action"], "removed");
    let w3 = rx.on("/w3");
    assert_eq!(w3.len(), 1);
    let b = verified(&w3[0], &s3);
    assert_eq!(b["data"]["action"], "added");
    assert_eq!(b["data"]["region"], "us");
    assert!(rx.on("/w2").is_empty());

    // Removed: W3 hears of it.
    app.delete(&format!("/v1/operator/subprocessors/{id}"), &app.operator)
        .await;
    deliver(&app).await;
    let w3 = rx.on("/w3");
    assert_eq!(w3.len(), 2);
    assert_eq!(verified(&w3[1], &s3)["data"]["action"], "removed");
    assert_eq!(rx.on("/w1").len(), 2);
    app.stop().await;
}

async fn erasure_notices_reach_the_receiver_and_verify(store: Store) {
    let app = spawn(store).await;
    let (addr, rx) = receiver().await;
    let (ws, token) = app.workspace("eu").await;
    let sp = app.register("Receiver", addr, &["eu"]).await;
    app.subscribe(&token, addr, "hooks", &["contact.created"])
        .await;
    let contact = app
        .contact(&token, json!({"email": "erase@example.com"}))
        .await;
    let kept = app
        .contact(&token, json!({"email": "kept@example.com"}))
        .await;
    // Both subjects' data reach the receiver; only the erased one is the notice's subject.
    deliver(&app).await;
    assert_eq!(rx.on("/hooks").len(), 2);
    let cell = app.cell(Region::Eu);
    let wsid = WorkspaceId::parse(&ws).unwrap();
    let ct = ContactId::parse(&contact).unwrap();
    let (stmts, names) = cell
        .erasure_notice_stmts(&wsid, &ct, "dr_http_1", 1_700_000_000_000)
        .await
        .unwrap();
    assert_eq!(names, ["Receiver"]);
    cell.writer().write(stmts).await.unwrap();
    deliver(&app).await;
    let notices = rx.on("/erasure");
    assert_eq!(notices.len(), 1);
    let n = &notices[0];
    assert!(n.headers.get("webhook-signature").is_none());
    assert!(!n.header("webhook-id").is_empty());
    let signed: SignedDocument = serde_json::from_slice(&n.body).unwrap();
    let doc = cell
        .activity_public_key()
        .verify_document(&signed, "interlock.erasure_notice.v1")
        .unwrap();
    assert_eq!(doc["subject"], contact.as_str());
    assert_eq!(doc["subprocessor"], sp.as_str());
    assert_eq!(doc["request_id"], "dr_http_1");
    assert!(!String::from_utf8_lossy(&n.body).contains("erase@example.com"));
    // The other subject is still on record; the erased one is not.
    assert!(
        cell.subject_disclosures(&wsid, &ct)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        cell.subject_disclosures(&wsid, &ContactId::parse(&kept).unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
    app.stop().await;
}

async fn activity_sinks_wait_for_a_registered_host(store: Store) {
    let (addr, rx) = receiver().await;
    let app = TestApp::spawn_with(store, |s| {
        s.outbound = outbound();
        s.activity.sinks = vec![SinkConfig {
            kind: SinkKind::Http,
            path: None,
            url: Some(format!("http://{addr}/siem")),
            format: SinkFormat::Jsonl,
            ca_file: None,
            bearer_token_file: None,
            timeout_s: 5,
        }];
    })
    .await;
    let (ws, token) = app.workspace("eu").await;
    // Make an entry to deliver.
    let r = app
        .post(
            "/v1/api-tokens",
            &token,
            json!({"name": "sink", "permissions": ["contacts.read"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    // The sink task runs every second: the refusal is logged, nothing is sent.
    let mut refused = Value::Null;
    for _ in 0..100 {
        let log = app
            .get("/v1/activity-logs?types=outbound.refused", &token)
            .await;
        if !log.body["data"].as_array().unwrap().is_empty() {
            refused = log.body["data"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused["metadata"]["kind"], "activity_sink", "{refused:?}");
    assert_eq!(refused["metadata"]["host"], "127.0.0.1");
    assert!(
        rx.on("/siem").is_empty(),
        "nothing goes to an unregistered sink"
    );
    // Registered for the region: the entries follow.
    app.register("SIEM", addr, &["eu"]).await;
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = rx
            .on("/siem")
            .iter()
            .flat_map(|g| {
                String::from_utf8(g.body.clone())
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        if lines.iter().any(|l| l["type"] == "api_token.created") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "api_token.created" && l["workspace_id"] == ws.as_str()),
        "{lines:?}"
    );
    app.stop().await;
}
