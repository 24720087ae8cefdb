//! Backups that forget (issue 6, item 4), through the real `interlock` binary:
//! `interlock backup` of a live server, a contact erased through the API afterwards,
//! `interlock restore` of the pre-erasure backup into a new data folder with the source's key
//! folder, and `interlock serve` on the result: the erased contact answers 404 and its markers
//! are in no file, the other contact is whole. A backup holds no plaintext marker and no
//! master key; a tampered or truncated backup, another key folder and a non-empty target are
//! refused with clear errors and leave nothing behind. SQLite and PostgreSQL.
//!
//! Needs `psql` on PATH and PostgreSQL at postgres://postgres@127.0.0.1:5432 (override with
//! `INTERLOCK_TEST_PG`); nothing is skipped.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_interlock");
const START_TIMEOUT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ helpers

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("directory entry");
            let ty = entry.file_type().expect("file type");
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

struct Ran {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Ran {
    fn ok(&self) -> bool {
        self.status.success()
    }

    fn text(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if let Some(k) = key.to_str()
            && k.starts_with("INTERLOCK_")
            && k != "INTERLOCK_LOG"
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_BACKTRACE", "0")
}

fn run_with_timeout(cmd: &mut Command, timeout: Duration, what: &str) -> Ran {
    let out_dir = tempfile::tempdir().expect("temp dir for command output");
    let out_path = out_dir.path().join("stdout");
    let err_path = out_dir.path().join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e} (is it installed and on PATH?)"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        status,
        stdout: fs::read(&out_path).expect("read stdout"),
        stderr: fs::read(&err_path).expect("read stderr"),
    }
}

fn interlock<S: AsRef<OsStr>>(args: &[S]) -> Ran {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    clean_env(&mut cmd);
    run_with_timeout(&mut cmd, Duration::from_secs(120), "interlock")
}

fn pg_server_url() -> String {
    let raw = std::env::var("INTERLOCK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let (scheme, rest) = raw
        .split_once("://")
        .unwrap_or_else(|| panic!("INTERLOCK_TEST_PG must be a postgres:// URL, got {raw:?}"));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    format!("{scheme}://{authority}")
}

fn psql(sql: &str) -> Ran {
    let mut cmd = Command::new("psql");
    cmd.arg("--no-password")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-tA")
        .arg("-d")
        .arg(format!("{}/postgres", pg_server_url()))
        .arg("-c")
        .arg(sql)
        .env("PGCONNECT_TIMEOUT", "10");
    run_with_timeout(
        &mut cmd,
        Duration::from_secs(60),
        "psql (install postgresql-client)",
    )
}

/// Drops its databases when dropped, even when a test fails half-way.
struct PgDatabases(Vec<String>);

impl Drop for PgDatabases {
    fn drop(&mut self) {
        for db in self.0.drain(..) {
            let _ = psql(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
        }
    }
}

struct Resp {
    status: StatusCode,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A running `interlock serve`; dropping it kills the process.
struct Server {
    child: Child,
    port: u16,
    http: reqwest::Client,
    operator: String,
    log_path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        for attempt in 0.. {
            match Self::try_start(data_dir, extra).await {
                Ok(s) => return s,
                Err(log) if attempt < 3 && log.contains("cannot listen") => {}
                Err(log) => panic!("interlock serve {extra:?} failed to start:\n{log}"),
            }
        }
        unreachable!()
    }

    async fn try_start(data_dir: &Path, extra: &[&str]) -> Result<Server, String> {
        let port = free_port();
        let stem = data_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("data");
        let log_path = data_dir.with_file_name(format!("{stem}-serve-{port}.log"));
        let log = fs::File::create(&log_path).expect("create the server log file");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("INTERLOCK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        clean_env(&mut cmd);
        let mut child = cmd.spawn().expect("spawn interlock serve");
        let cert = data_dir.join("tls").join("cert.pem");
        let deadline = Instant::now() + START_TIMEOUT;
        let mut client: Option<reqwest::Client> = None;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Err(format!(
                    "exited with {status}; log:\n{}",
                    String::from_utf8_lossy(&fs::read(&log_path).unwrap_or_default())
                ));
            }
            if client.is_none()
                && let Ok(pem) = fs::read(&cert)
                && let Ok(root) = reqwest::Certificate::from_pem(&pem)
            {
                client = Some(
                    reqwest::Client::builder()
                        .add_root_certificate(root)
                        .no_proxy()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .expect("build the HTTPS client"),
                );
            }
            if let Some(c) = &client
                && let Ok(r) = c
                    .get(format!("https://localhost:{port}/healthz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                && r.status() == StatusCode::OK
            {
                let operator = fs::read_to_string(data_dir.join("operator-token"))
                    .expect("operator token")
                    .trim()
                    .to_owned();
                return Ok(Server {
                    child,
                    port,
                    http: c.clone(),
                    operator,
                    log_path,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no healthy answer on port {port} within {START_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait().expect("try_wait").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    async fn request(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let body = resp.bytes().await.expect("body").to_vec();
        Resp { status, body }
    }

    async fn ok(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let r = self.request(method.clone(), path, token, body).await;
        assert!(
            r.status.is_success(),
            "{method} {path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }
}

/// What a seeded contact left to check against.
struct Seeded {
    contact: String,
    conversation: String,
    attachment: String,
    marker: String,
    bytes: Vec<u8>,
}

/// A contact carrying `marker` in its email, name and a custom attribute, with a conversation
/// (marker in the body), an event and an attachment (marker in the name and bytes).
async fn seed(s: &Server, token: &str, marker: &str) -> Seeded {
    let c = s
        .ok(
            Method::POST,
            "/v1/contacts",
            token,
            Some(json!({
                "role": "user",
                "email": format!("{marker}@example.com"),
                "name": format!("Name {marker}"),
                "external_id": format!("ext-{marker}"),
                "custom_attributes": {"note": marker},
            })),
        )
        .await;
    let contact = c["id"].as_str().expect("contact id").to_owned();
    let cv = s
        .ok(
            Method::POST,
            "/v1/conversations",
            token,
            Some(json!({"contact_id": contact, "body": format!("Hello from {marker}")})),
        )
        .await;
    let conversation = cv["id"].as_str().expect("conversation id").to_owned();
    s.ok(
        Method::POST,
        "/v1/events",
        token,
        Some(json!({"contact_id": contact, "name": "signed_up", "metadata": {"detail": marker}})),
    )
    .await;
    let bytes = format!("attachment of {marker}\n").into_bytes();
    let up = s
        .http
        .post(s.url(&format!(
            "/v1/conversations/{conversation}/attachments?filename={marker}.txt"
        )))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body(bytes.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status(), StatusCode::CREATED);
    let up: Value = up.json().await.expect("upload answer");
    Seeded {
        contact,
        conversation,
        attachment: up["id"].as_str().expect("attachment id").to_owned(),
        marker: marker.to_owned(),
        bytes,
    }
}

/// Bob comes back whole from a restored server.
async fn check_intact(s: &Server, token: &str, b: &Seeded) {
    let c = s
        .ok(
            Method::GET,
            &format!("/v1/contacts/{}", b.contact),
            token,
            None,
        )
        .await;
    assert_eq!(c["email"], format!("{}@example.com", b.marker), "{c}");
    assert_eq!(c["custom_attributes"]["note"], b.marker.as_str(), "{c}");
    let cv = s
        .ok(
            Method::GET,
            &format!("/v1/conversations/{}", b.conversation),
            token,
            None,
        )
        .await;
    assert_eq!(cv["parts"][0]["body"], format!("Hello from {}", b.marker));
    let down = s
        .request(
            Method::GET,
            &format!(
                "/v1/conversations/{}/attachments/{}",
                b.conversation, b.attachment
            ),
            token,
            None,
        )
        .await;
    assert_eq!(down.status, StatusCode::OK);
    assert_eq!(down.body, b.bytes);
    let found = s
        .ok(
            Method::GET,
            &format!("/v1/contacts?email={}%40example.com", b.marker),
            token,
            None,
        )
        .await;
    assert_eq!(found["data"][0]["id"], b.contact.as_str(), "{found}");
}

/// The erased contact is gone from a restored server: 404 everywhere, no lookup finds it.
async fn check_erased(s: &Server, token: &str, a: &Seeded) {
    for path in [
        format!("/v1/contacts/{}", a.contact),
        format!("/v1/conversations/{}", a.conversation),
        format!(
            "/v1/conversations/{}/attachments/{}",
            a.conversation, a.attachment
        ),
    ] {
        let r = s.request(Method::GET, &path, token, None).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    for q in [
        format!("email={}%40example.com", a.marker),
        format!("external_id=ext-{}", a.marker),
    ] {
        let found = s
            .ok(Method::GET, &format!("/v1/contacts?{q}"), token, None)
            .await;
        assert_eq!(found["data"].as_array().map(Vec::len), Some(0), "{found}");
    }
}

/// A key folder of another deployment: a valid master key of its own.
fn foreign_keys(dir: &Path) -> PathBuf {
    let keys = dir.join("foreign-keys");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(keys.join("eu"))
        .expect("mkdir");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(keys.join("eu").join("master-v1.key"))
        .expect("key file");
    std::io::Write::write_all(&mut f, format!("{}\n", random_hex(32)).as_bytes()).expect("write");
    keys
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

// ------------------------------------------------------------------ the test

async fn backups_forget(pg: bool) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let keys = tmp.path().join("keys");
    let restored = tmp.path().join("restored");
    let name = format!("bk_{}", random_hex(6));
    let restored_name = format!("{name}r");
    let mut dbs = PgDatabases(Vec::new());
    let mut store_args: Vec<String> = Vec::new();
    let mut restored_store_args: Vec<String> = Vec::new();
    if pg {
        let r = psql("SELECT 1");
        assert!(
            r.ok(),
            "PostgreSQL must be reachable at {}: {}",
            pg_server_url(),
            r.text()
        );
        dbs.0.push(format!("{name}_eu"));
        dbs.0.push(format!("{restored_name}_eu"));
        store_args = vec!["--database".into(), format!("{}/{name}", pg_server_url())];
        restored_store_args = vec![
            "--database".into(),
            format!("{}/{restored_name}", pg_server_url()),
        ];
    }
    let mut serve_args: Vec<&str> = vec!["--regions", "eu", "--key-dir", s(&keys)];
    serve_args.extend(store_args.iter().map(String::as_str));

    let mut server = Server::start(&data, &serve_args).await;
    let ws = server
        .ok(
            Method::POST,
            "/v1/operator/workspaces",
            &server.operator.clone(),
            Some(json!({"name": "Backup Co", "region": "eu"})),
        )
        .await;
    let token = ws["api_token"].as_str().expect("token").to_owned();
    let alice = seed(&server, &token, &format!("alice{}", random_hex(8))).await;
    let bob = seed(&server, &token, &format!("bob{}", random_hex(8))).await;

    // ---- the backup, taken while the server runs
    let backup = tmp.path().join("eu.ilbk");
    let mut args: Vec<&str> = vec![
        "backup",
        "--data-dir",
        s(&data),
        "--key-dir",
        s(&keys),
        "--out",
        s(&backup),
    ];
    args.extend(store_args.iter().map(String::as_str));
    let r = interlock(&args);
    assert!(r.ok(), "backup failed:\n{}", r.text());
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("region eu"),
        "{}",
        r.text()
    );
    assert_eq!(
        fs::metadata(&backup).expect("backup").permissions().mode() & 0o777,
        0o600
    );
    let bytes = fs::read(&backup).expect("read backup");
    for m in [&alice.marker, &bob.marker] {
        assert!(!contains(&bytes, m.as_bytes()), "marker {m} in the backup");
    }
    assert!(!contains(&bytes, b"Backup Co"));
    let master_hex = fs::read_to_string(keys.join("eu").join("master-v1.key")).expect("key");
    let master = hex::decode(master_hex.trim()).expect("hex key");
    assert!(
        !contains(&bytes, &master),
        "the master key is in the backup"
    );
    assert!(!contains(&bytes, master_hex.trim().as_bytes()));
    // An existing file is not overwritten.
    let r = interlock(&args);
    assert!(!r.ok() && r.text().contains("exists"), "{}", r.text());

    // ---- alice is erased through the API, after the backup
    let del = server
        .ok(
            Method::DELETE,
            &format!("/v1/contacts/{}", alice.contact),
            &token,
            None,
        )
        .await;
    assert_eq!(del["deleted"], true, "{del}");
    assert_eq!(del["id"], alice.contact.as_str(), "{del}");
    check_erased(&server, &token, &alice).await;
    server.stop();
    let ledger = fs::read_to_string(keys.join("eu").join("erasure-ledger.jsonl")).expect("ledger");
    assert!(
        ledger.contains(&alice.contact),
        "the erasure is in the ledger"
    );
    assert!(
        !ledger.contains(&alice.marker),
        "personal data in the ledger"
    );

    // ---- refusals
    let restore_args = |input: &Path, target: &Path, key_dir: &Path| -> Vec<String> {
        let mut a = vec![
            "restore".to_owned(),
            "--in".into(),
            s(input).into(),
            "--data-dir".into(),
            s(target).into(),
            "--key-dir".into(),
            s(key_dir).into(),
        ];
        a.extend(restored_store_args.iter().cloned());
        a
    };
    // A non-empty target.
    let r = interlock(&restore_args(&backup, &data, &keys));
    assert!(!r.ok(), "restored into a non-empty folder");
    assert!(r.text().contains("not empty"), "{}", r.text());
    // One byte flipped: in the middle (wherever it lands), and in the last frame's tag.
    let tampered_path = tmp.path().join("tampered.ilbk");
    for at in [bytes.len() / 2, bytes.len() - 1] {
        let mut tampered = bytes.clone();
        tampered[at] ^= 0x01;
        fs::write(&tampered_path, &tampered).expect("write");
        let r = interlock(&restore_args(&tampered_path, &restored, &keys));
        assert!(!r.ok(), "a backup with byte {at} flipped was restored");
        if at == bytes.len() - 1 {
            assert!(r.text().contains("damaged or was altered"), "{}", r.text());
        }
        assert!(
            !restored.exists(),
            "a refused restore left {}",
            restored.display()
        );
    }
    // Truncated.
    let cut_path = tmp.path().join("cut.ilbk");
    fs::write(&cut_path, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let r = interlock(&restore_args(&cut_path, &restored, &keys));
    assert!(!r.ok(), "a truncated backup was restored");
    assert!(r.text().contains("truncated"), "{}", r.text());
    assert!(!restored.exists());
    // Another deployment's keys, and a folder without keys.
    let foreign = foreign_keys(tmp.path());
    let r = interlock(&restore_args(&backup, &restored, &foreign));
    assert!(!r.ok(), "restored with another deployment's keys");
    assert!(r.text().contains("wrong --key-dir"), "{}", r.text());
    assert!(!restored.exists());
    let nokeys = tmp.path().join("no-keys");
    fs::create_dir_all(&nokeys).expect("mkdir");
    let r = interlock(&restore_args(&backup, &restored, &nokeys));
    assert!(!r.ok());
    assert!(r.text().contains("no master key"), "{}", r.text());
    assert!(!restored.exists());

    // ---- the restore of the pre-erasure backup
    let r = interlock(&restore_args(&backup, &restored, &keys));
    assert!(r.ok(), "restore failed:\n{}", r.text());
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.contains("1 contacts"), "{out}");
    // Restoring again into the now full folder is refused.
    let r = interlock(&restore_args(&backup, &restored, &keys));
    assert!(!r.ok() && r.text().contains("not empty"), "{}", r.text());

    let mut serve_restored: Vec<&str> = vec!["--regions", "eu", "--key-dir", s(&keys)];
    serve_restored.extend(restored_store_args.iter().map(String::as_str));
    let mut back = Server::start(&restored, &serve_restored).await;
    check_erased(&back, &token, &alice).await;
    check_intact(&back, &token, &bob).await;
    let log = back
        .ok(
            Method::GET,
            "/v1/activity-logs?types=data.bulk_deleted",
            &token,
            None,
        )
        .await;
    let entries = log["data"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(
        entries[0]["metadata"]["reason"], "erasure_ledger_on_restore",
        "{log}"
    );
    back.stop();
    let log_text = fs::read(&back.log_path).expect("server log");
    assert!(!contains(&log_text, alice.marker.as_bytes()));

    // No file of the restored folder holds alice's markers.
    for f in files_under(&restored) {
        let content = fs::read(&f).expect("read");
        assert!(
            !contains(&content, alice.marker.as_bytes()),
            "{} holds the erased marker",
            f.display()
        );
    }
    drop(dbs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_forget_sqlite() {
    backups_forget(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_forget_postgres() {
    backups_forget(true).await;
}
