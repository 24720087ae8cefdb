//! Activity-log sinks: the file sink appends durably with mode 0600, the http sink posts the
//! exact NDJSON with its content type and bearer token to a local server (plain http on
//! loopback, and https with a self-signed certificate trusted only through `ca_file`), non-2xx
//! answers fail, configuration is validated, and the JSONL and OCSF formats have the expected
//! shape.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use interlock_domain::{ActivityEntry, Actor, ActorType, Target};
use interlock_http::sinks::{
    Sink, SinkConfig, SinkError, SinkFormat, SinkKind, checkpoint_jsonl, entry_jsonl, entry_ocsf,
};
use serde_json::{Value, json};

const TOKEN: &str = "sink-token-5f1c9a";

/// What the fake SIEM received.
#[derive(Debug, Clone)]
struct Received {
    content_type: Option<String>,
    authorization: Option<String>,
    body: Vec<u8>,
}

#[derive(Default)]
struct Siem {
    received: Mutex<Vec<Received>>,
    /// The status to answer with (0 = 200).
    status: AtomicU16,
    /// Seconds to wait before answering.
    delay_s: AtomicU16,
}

async fn ingest(State(siem): State<Arc<Siem>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let text = |h| {
        headers
            .get(h)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    siem.received.lock().unwrap().push(Received {
        content_type: text(header::CONTENT_TYPE),
        authorization: text(header::AUTHORIZATION),
        body: body.to_vec(),
    });
    let delay = siem.delay_s.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_secs(delay.into())).await;
    }
    match siem.status.load(Ordering::SeqCst) {
        0 => StatusCode::OK,
        s => StatusCode::from_u16(s).unwrap(),
    }
}

fn siem_router(siem: Arc<Siem>) -> Router {
    Router::new()
        .route("/ingest", post(ingest))
        .with_state(siem)
}

/// A plain-http fake SIEM on 127.0.0.1:0.
async fn plain_siem() -> (SocketAddr, Arc<Siem>) {
    let siem = Arc::new(Siem::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = siem_router(siem.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, siem)
}

/// An https fake SIEM with a fresh self-signed certificate (for localhost and 127.0.0.1);
/// returns the certificate's path.
async fn tls_siem(dir: &Path) -> (SocketAddr, Arc<Siem>, PathBuf) {
    let (cfg, source) = interlock_http::tls::load_or_generate(None, dir).unwrap();
    let siem = Arc::new(Siem::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(cfg),
    )
    .unwrap();
    let app = siem_router(siem.clone());
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    (addr, siem, source.cert)
}

fn http_config(url: String) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::Http,
        path: None,
        url: Some(url),
        format: SinkFormat::Jsonl,
        ca_file: None,
        bearer_token_file: None,
        timeout_s: 5,
    }
}

fn file_config(path: PathBuf) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::File,
        path: Some(path),
        url: None,
        format: SinkFormat::Jsonl,
        ca_file: None,
        bearer_token_file: None,
        timeout_s: 10,
    }
}

fn sample_entry() -> ActivityEntry {
    ActivityEntry {
        id: "al_0190f0a0b1c2d3e4f5a6b7c8d9e0f1a2".into(),
        kind: "contact.deleted".into(),
        created_at_ms: 1_700_000_000_123,
        actor: Actor::new(
            ActorType::ApiToken,
            Some("tk_42".into()),
            Some("192.0.2.7".parse().unwrap()),
            Some("curl/8.5"),
        ),
        target: Target::new("contact", "ct_0190f0a0b1c2d3e4f5a6b7c8d9e0f1a2"),
        metadata: json!({"conversations": 3, "attachments": 1})
            .as_object()
            .cloned()
            .unwrap(),
    }
}

#[tokio::test]
async fn file_sink_appends_batches_durably_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("activity.jsonl");
    let sink = Sink::open(&file_config(path.clone())).unwrap();
    // Opening creates the file, owner-only.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    let first = entry_jsonl("ws_eu_1", 1, "aa", &sample_entry());
    let mut second = entry_jsonl("ws_eu_1", 2, "bb", &sample_entry());
    second.extend(checkpoint_jsonl(&json!({"seq": 2, "sig": "x"})));
    sink.deliver(&first).await.unwrap();
    sink.deliver(&second).await.unwrap();
    sink.deliver(b"").await.unwrap();

    let text = std::fs::read(&path).unwrap();
    assert_eq!(text, [first.clone(), second.clone()].concat());
    let lines: Vec<Value> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[1]["seq"], 2);
    assert_eq!(lines[2]["sig"], "x");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[tokio::test]
async fn file_sink_starts_on_a_fresh_line_after_a_partial_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("activity.jsonl");
    // A batch that died half-way left a partial line.
    std::fs::write(&path, b"{\"seq\":1}\n{\"seq\":2,\"ty").unwrap();
    let sink = Sink::open(&file_config(path.clone())).unwrap();
    sink.deliver(b"{\"seq\":2}\n").await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "{\"seq\":1}\n{\"seq\":2,\"ty\n{\"seq\":2}\n");
}

#[tokio::test]
async fn batches_must_be_whole_lines_and_folders_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::open(&file_config(dir.path().join("a.jsonl"))).unwrap();
    assert!(matches!(
        sink.deliver(b"{\"seq\":1}").await,
        Err(SinkError::Batch)
    ));
    let missing = Sink::open(&file_config(dir.path().join("no/such/folder.jsonl")));
    assert!(
        matches!(missing, Err(SinkError::File { .. })),
        "{missing:?}"
    );
    let folder = Sink::open(&file_config(dir.path().to_path_buf()));
    assert!(matches!(folder, Err(SinkError::File { .. })), "{folder:?}");
}

#[tokio::test]
async fn http_sink_posts_the_exact_ndjson_with_content_type_and_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("siem.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (addr, siem) = plain_siem().await;
    let mut cfg = http_config(format!("http://{addr}/ingest"));
    cfg.bearer_token_file = Some(token_file);
    cfg.format = SinkFormat::Ocsf;
    let sink = Sink::open(&cfg).unwrap();
    assert_eq!(sink.format(), SinkFormat::Ocsf);
    assert!(!format!("{sink:?}").contains(TOKEN));

    let mut batch = sink.entry_line("ws_us_1", 7, "cafe", &sample_entry());
    batch.extend(checkpoint_jsonl(&json!({"tree_size": 7})));
    sink.deliver(&batch).await.unwrap();

    let got = siem.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, batch);
    assert_eq!(got[0].content_type.as_deref(), Some("application/x-ndjson"));
    assert_eq!(
        got[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let first: Value =
        serde_json::from_slice(got[0].body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["class_uid"], 6003);
}

#[tokio::test]
async fn http_sink_without_token_sends_no_authorization() {
    let (addr, siem) = plain_siem().await;
    let sink = Sink::open(&http_config(format!(
        "http://localhost:{}/ingest",
        addr.port()
    )))
    .unwrap();
    sink.deliver(b"{}\n").await.unwrap();
    let got = siem.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].authorization, None);
}

#[tokio::test]
async fn non_2xx_answers_redirects_and_timeouts_are_errors_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("siem.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (addr, siem) = plain_siem().await;
    let mut cfg = http_config(format!("http://{addr}/ingest?key=query-secret"));
    cfg.bearer_token_file = Some(token_file);
    cfg.timeout_s = 1;
    let sink = Sink::open(&cfg).unwrap();

    for status in [500, 401, 307] {
        siem.status.store(status, Ordering::SeqCst);
        let err = sink.deliver(b"{\"seq\":1}\n").await.unwrap_err();
        assert!(
            matches!(err, SinkError::Status { status: s, .. } if s == status),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&status.to_string()), "{text}");
        assert!(
            !text.contains(TOKEN) && !text.contains("query-secret"),
            "{text}"
        );
    }

    siem.status.store(0, Ordering::SeqCst);
    siem.delay_s.store(3, Ordering::SeqCst);
    let err = sink.deliver(b"{\"seq\":1}\n").await.unwrap_err();
    assert!(matches!(err, SinkError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(!format!("{err:?}").contains("query-secret"));

    // Nothing listens there any more: a connection failure, not a panic.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let sink = Sink::open(&http_config(format!("http://127.0.0.1:{port}/ingest"))).unwrap();
    let err = sink.deliver(b"{}\n").await.unwrap_err();
    assert!(matches!(err, SinkError::Transport { .. }), "{err:?}");
}

#[tokio::test]
async fn https_trusts_ca_file_and_refuses_an_unknown_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, siem, cert) = tls_siem(&dir.path().join("tls")).await;
    let url = format!("https://127.0.0.1:{}/ingest", addr.port());

    // Without the certificate among the roots, the handshake fails (or, on a machine
    // without a system store, the sink refuses to start with no roots at all).
    match Sink::open(&http_config(url.clone())) {
        Err(SinkError::Tls(msg)) => assert!(msg.contains("no trusted roots"), "{msg}"),
        Err(other) => panic!("unexpected {other:?}"),
        Ok(sink) => {
            let err = sink.deliver(b"{}\n").await.unwrap_err();
            assert!(matches!(err, SinkError::Transport { .. }), "{err:?}");
            assert!(
                err.to_string().to_lowercase().contains("certificate"),
                "{err}"
            );
        }
    }
    assert!(siem.received.lock().unwrap().is_empty());

    // With it as ca_file, delivery works.
    let mut cfg = http_config(url);
    cfg.ca_file = Some(cert);
    let sink = Sink::open(&cfg).unwrap();
    sink.deliver(b"{\"seq\":1}\n").await.unwrap();
    assert_eq!(siem.received.lock().unwrap().len(), 1);

    // A ca_file without certificates is a configuration error.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not pem").unwrap();
    let mut cfg = http_config("https://127.0.0.1/ingest".into());
    cfg.ca_file = Some(empty);
    assert!(matches!(Sink::open(&cfg), Err(SinkError::Pem { .. })));
}

#[test]
fn validate_refuses_unsafe_or_incomplete_configurations() {
    let ok = |url: &str| http_config(url.into()).validate();
    assert!(ok("https://siem.example.com/ingest").is_ok());
    assert!(ok("http://127.0.0.1:9000/ingest").is_ok());
    assert!(ok("http://127.8.9.10/ingest").is_ok());
    assert!(ok("http://localhost:9000/").is_ok());
    assert!(ok("http://[::1]:9000/").is_ok());

    for bad in [
        "http://siem.example.com/ingest",
        "http://10.0.0.5/ingest",
        "http://[2001:db8::1]/ingest",
        "http://localhost.example.com/ingest",
        "ftp://siem.example.com/",
        "https://user:pw@siem.example.com/",
        "not a url",
    ] {
        let err = ok(bad).unwrap_err();
        assert!(matches!(err, SinkError::Config(_)), "{bad}: {err:?}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    assert!(
        ok("http://siem.example.com/ingest")
            .unwrap_err()
            .to_string()
            .contains("https://")
    );

    let mut no_url = http_config(String::new());
    no_url.url = None;
    assert!(no_url.validate().is_err());
    let mut zero = http_config("https://siem.example.com/".into());
    zero.timeout_s = 0;
    assert!(zero.validate().is_err());

    let err = file_config(PathBuf::from("relative/activity.jsonl"))
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");
    assert!(
        file_config(PathBuf::from("/var/log/a.jsonl"))
            .validate()
            .is_ok()
    );
    let mut mixed = file_config(PathBuf::from("/var/log/a.jsonl"));
    mixed.url = Some("https://siem.example.com/".into());
    assert!(mixed.validate().is_err());
    let mut no_path = file_config(PathBuf::new());
    no_path.path = None;
    assert!(no_path.validate().is_err());
}

#[test]
fn config_parses_with_defaults_and_refuses_unknown_keys() {
    let cfg: SinkConfig =
        serde_json::from_value(json!({"kind": "http", "url": "https://siem.example.com/in"}))
            .unwrap();
    assert_eq!(cfg.kind, SinkKind::Http);
    assert_eq!(cfg.format, SinkFormat::Jsonl);
    assert_eq!(cfg.timeout_s, 10);
    let cfg: SinkConfig = serde_json::from_value(json!({
        "kind": "file", "path": "/var/log/a.jsonl", "format": "ocsf"
    }))
    .unwrap();
    assert_eq!(cfg.format, SinkFormat::Ocsf);
    assert!(
        serde_json::from_value::<SinkConfig>(json!({"kind": "file", "path": "/a", "extra": 1}))
            .is_err()
    );
    assert!(serde_json::from_value::<SinkConfig>(json!({"kind": "syslog"})).is_err());
    assert!(
        serde_json::from_value::<SinkConfig>(json!({"kind": "file", "format": "cef"})).is_err()
    );
}

#[test]
fn jsonl_line_parses_back_to_the_entry() {
    let entry = sample_entry();
    let line = entry_jsonl("ws_eu_abc", 12, "00ff", &entry);
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
    let mut v: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["workspace_id"], "ws_eu_abc");
    assert_eq!(v["seq"], 12);
    assert_eq!(v["hash"], "00ff");
    assert_eq!(v["created_at"], "2023-11-14T22:13:20.123Z");
    let obj = v.as_object_mut().unwrap();
    for k in ["workspace_id", "seq", "hash", "created_at"] {
        obj.remove(k);
    }
    let back: ActivityEntry = serde_json::from_value(v).unwrap();
    assert_eq!(back, entry);
}

#[test]
fn checkpoint_is_one_compact_line() {
    let cp = json!({"workspace_id": "ws_us_1", "seq": 9, "note": "a\nb"});
    let line = checkpoint_jsonl(&cp);
    assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(serde_json::from_slice::<Value>(&line).unwrap(), cp);
}

#[test]
fn ocsf_contact_deleted_is_an_api_activity_delete() {
    let line = entry_ocsf("ws_eu_abc", 12, "00ff", &sample_entry());
    assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
    let v: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["class_uid"], 6003);
    assert_eq!(v["class_name"], "API Activity");
    assert_eq!(v["category_uid"], 6);
    assert_eq!(v["activity_id"], 4);
    assert_eq!(v["activity_name"], "Delete");
    assert_eq!(v["type_uid"], 600_304);
    assert_eq!(v["type_name"], "API Activity: Delete");
    assert_eq!(v["time"], 1_700_000_000_123_i64);
    assert_eq!(v["severity_id"], 4);
    assert_eq!(v["severity"], "High");
    assert_eq!(v["status_id"], 1);
    assert_eq!(v["actor"]["user"]["uid"], "tk_42");
    assert_eq!(v["actor"]["user"]["type"], "api_token");
    assert_eq!(v["actor"]["user"]["type_id"], 99);
    assert_eq!(v["src_endpoint"]["ip"], "192.0.2.7");
    assert_eq!(v["http_request"]["user_agent"], "curl/8.5");
    assert_eq!(v["api"]["operation"], "contact.deleted");
    assert_eq!(
        v["resources"],
        json!([{"uid": "ct_0190f0a0b1c2d3e4f5a6b7c8d9e0f1a2", "type": "contact"}])
    );
    assert_eq!(v["cloud"], json!({"provider": "Interlock", "region": "eu"}));
    assert_eq!(v["metadata"]["product"]["name"], "Interlock");
    assert_eq!(v["metadata"]["product"]["vendor_name"], "Interlock");
    assert_eq!(v["metadata"]["version"], "1.1.0");
    assert_eq!(v["metadata"]["uid"], "al_0190f0a0b1c2d3e4f5a6b7c8d9e0f1a2");
    assert_eq!(v["metadata"]["log_name"], "ws_eu_abc");
    assert_eq!(v["metadata"]["sequence"], 12);
    assert_eq!(
        v["unmapped"]["metadata"],
        json!({"conversations": 3, "attachments": 1})
    );
    assert_eq!(v["unmapped"]["hash"], "00ff");
    assert_eq!(v["unmapped"]["category"], "data");
}

#[test]
fn ocsf_failures_and_other_activities() {
    let mut entry = sample_entry();
    entry.kind = "auth.sign_in.failed".into();
    entry.actor = Actor::new(
        ActorType::Teammate,
        None,
        Some("::ffff:198.51.100.4".parse().unwrap()),
        None,
    );
    entry.target = Target::kind("session");
    entry.metadata = json!({"reason": "password"}).as_object().cloned().unwrap();
    let v: Value = serde_json::from_slice(&entry_ocsf("ws_us_1", 1, "aa", &entry)).unwrap();
    assert_eq!(v["activity_id"], 99);
    assert_eq!(v["activity_name"], "auth.sign_in.failed");
    assert_eq!(v["type_uid"], 600_399);
    assert_eq!(v["status_id"], 2);
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["status_detail"], "password");
    assert_eq!(v["severity_id"], 3);
    assert_eq!(
        v["actor"]["user"],
        json!({"type": "teammate", "type_id": 1})
    );
    assert_eq!(v["src_endpoint"]["ip"], "198.51.100.4");
    assert!(v.get("http_request").is_none());
    assert_eq!(v["resources"], json!([{"type": "session"}]));

    entry.kind = "access.denied".into();
    let v: Value = serde_json::from_slice(&entry_ocsf("ws_us_1", 2, "bb", &entry)).unwrap();
    assert_eq!(v["status_id"], 2);

    entry.kind = "api_token.created".into();
    entry.actor = Actor::system();
    let v: Value = serde_json::from_slice(&entry_ocsf("ws_us_1", 3, "cc", &entry)).unwrap();
    assert_eq!(
        (v["activity_id"].clone(), v["type_uid"].clone()),
        (json!(1), json!(600_301))
    );
    assert_eq!(v["status_id"], 1);
    assert_eq!(v["actor"]["user"]["type_id"], 3);
    assert_eq!(v["src_endpoint"], json!({"name": "Interlock"}));

    // A type this version does not know still maps, with an unknown severity.
    entry.kind = "widget.updated".into();
    let v: Value = serde_json::from_slice(&entry_ocsf("ws_us_1", 4, "dd", &entry)).unwrap();
    assert_eq!(v["activity_id"], 3);
    assert_eq!(v["severity_id"], 0);
}
