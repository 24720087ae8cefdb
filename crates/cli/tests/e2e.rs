//! End-to-end tests of the real `interlock` binary, run as a child process the way an operator
//! runs it: its own temporary data folder, a free port, logs captured to a file at debug level,
//! talked to over HTTPS with the self-signed certificate it writes, stopped with SIGTERM.
//!
//! What they prove (issue 2, "How we will know"):
//! - a unique marker written through every personal and content field comes back intact from
//!   the API but is found in no file under the data folder (databases, WAL, blobs, temp), in
//!   no log line, and in no `pg_dump` of the PostgreSQL databases;
//! - the TLS policy as `openssl s_client` sees it, plain HTTP refused, HSTS on every answer;
//! - master key rotation and retirement through the CLI keep data readable;
//! - a process serving other regions answers 421 with problem+json for a workspace's region;
//! - bad configuration fails fast.
//!
//! Needs `openssl`, `pg_dump` and `psql` on PATH and PostgreSQL at
//! postgres://postgres@127.0.0.1:5432 (override with `INTERLOCK_TEST_PG`). Missing tools fail
//! the tests with a message saying so; nothing is skipped.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_interlock");
const HSTS: &str = "max-age=63072000; includeSubDomains";
/// How long a server may take to answer `/healthz` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ small helpers

/// `n` random bytes from the kernel, hex-encoded (lower case).
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir`, recursively (symlinks are not followed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display()));
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

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A command's outcome, its output read from files (no pipe can fill up and block it).
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

/// Strip `INTERLOCK_*` variables (other than the log filter) from a child's environment, so a
/// developer's own configuration variables (`INTERLOCK_DATABASE`, …) cannot change what a test
/// starts. (`sigterm_drains_and_other_variables_are_ignored` checks that non-configuration
/// variables such as `INTERLOCK_TEST_PG` do not disturb the server.)
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

/// Run a command to completion with a deadline; `what` names it in failure messages.
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
            panic!(
                "{what} did not finish within {timeout:?}; output so far:\n{}\n{}",
                String::from_utf8_lossy(&fs::read(&out_path).unwrap_or_default()),
                String::from_utf8_lossy(&fs::read(&err_path).unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        status,
        stdout: fs::read(&out_path).expect("read stdout"),
        stderr: fs::read(&err_path).expect("read stderr"),
    }
}

/// Run the `interlock` binary with these arguments (not `serve`-until-killed).
fn interlock<S: AsRef<OsStr>>(args: &[S]) -> Ran {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    clean_env(&mut cmd);
    run_with_timeout(&mut cmd, Duration::from_secs(60), "interlock")
}

// ------------------------------------------------------------------ the server under test

/// An HTTP answer.
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
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

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A running `interlock serve` child. Dropping it kills the process and waits for it.
struct Server {
    child: Child,
    port: u16,
    log_path: PathBuf,
    http: reqwest::Client,
    operator: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Start `interlock serve --data-dir DATA --listen 127.0.0.1:PORT EXTRA…` and wait until
    /// `/healthz` answers 200, trusting the self-signed certificate it writes. The log goes to
    /// a file beside (not inside) the data folder.
    async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_trusting(data_dir, extra, None).await
    }

    /// Like [`Server::start`], trusting `cert` (a configured certificate) when given.
    async fn start_trusting(data_dir: &Path, extra: &[&str], cert: Option<&Path>) -> Server {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let cert = cert.map_or_else(|| data_dir.join("tls").join("cert.pem"), Path::to_path_buf);
        // Another process may take the free port before the child binds it: try again then.
        let mut attempt = 0;
        loop {
            match Self::try_start(data_dir, extra, &cert).await {
                Ok(server) => return server,
                Err(log) if attempt < 3 && log.contains("cannot listen") => attempt += 1,
                Err(log) => panic!("interlock serve {extra:?} failed to start:\n{log}"),
            }
        }
    }

    async fn try_start(data_dir: &Path, extra: &[&str], cert: &Path) -> Result<Server, String> {
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
            .env("INTERLOCK_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        clean_env(&mut cmd);
        let child = cmd.spawn().expect("spawn interlock serve");
        let mut server = Server {
            child,
            port,
            log_path,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("placeholder client"),
            operator: String::new(),
        };
        let mut client: Option<reqwest::Client> = None;
        let mut last_error = format!("no readable certificate at {}", cert.display());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait().expect("try_wait") {
                return Err(format!("exited with {status}; log:\n{}", server.log_text()));
            }
            if client.is_none()
                && let Ok(pem) = fs::read(cert)
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
            if let Some(c) = &client {
                match c
                    .get(format!("https://localhost:{port}/healthz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::OK => {
                        server.http = c.clone();
                        break;
                    }
                    Ok(r) => last_error = format!("/healthz answered {}", r.status()),
                    Err(e) => last_error = format!("{e:?}"),
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no healthy answer on port {port} within {START_TIMEOUT:?} (last: \
                     {last_error}); log:\n{}",
                    server.log_text()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let token_path = data_dir.join("operator-token");
        server.operator = fs::read_to_string(&token_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", token_path.display()))
            .trim()
            .to_owned();
        assert_eq!(
            mode_of(&token_path),
            0o600,
            "the operator token file must be mode 0600"
        );
        Ok(server)
    }

    /// The end of the log (debug logs are long), for failure messages.
    fn log_text(&self) -> String {
        const KEEP: usize = 16 * 1024;
        let bytes = self.log_bytes();
        let from = bytes.len().saturating_sub(KEEP);
        let prefix = if from > 0 {
            "[… earlier lines cut]\n"
        } else {
            ""
        };
        format!("{prefix}{}", String::from_utf8_lossy(&bytes[from..]))
    }

    fn log_bytes(&self) -> Vec<u8> {
        fs::read(&self.log_path).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// Stop the server the way a service manager does (SIGTERM), wait for it, and fall back to
    /// SIGKILL if it does not exit. Returns how it exited.
    fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            return status;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait for the killed server")
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"))
            .to_vec();
        assert_eq!(
            headers
                .get("strict-transport-security")
                .and_then(|v| v.to_str().ok()),
            Some(HSTS),
            "{method} {path} ({status}) must carry HSTS"
        );
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        let r = self
            .request(Method::POST, path, Some(token), Some(&body))
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "POST {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> Value {
        let r = self
            .request(Method::PATCH, path, Some(token), Some(&body))
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "PATCH {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let r = self.request(Method::GET, path, Some(token), None).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "GET {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    /// Create a workspace; returns (id, API token).
    async fn create_workspace(&self, name: &str, region: &str) -> (String, String) {
        let ws = self
            .post(
                "/v1/operator/workspaces",
                &self.operator.clone(),
                json!({"name": name, "region": region}),
            )
            .await;
        assert_eq!(ws["region"], region, "{ws}");
        let id = ws["id"].as_str().expect("workspace id").to_owned();
        assert!(
            id.starts_with(&format!("ws_{region}_")),
            "workspace ids carry their region: {id}"
        );
        let token = ws["api_token"].as_str().expect("api_token").to_owned();
        (id, token)
    }
}

// ------------------------------------------------------------------ PostgreSQL helpers

/// `scheme://user@host:port` of the test PostgreSQL server (no database, no query).
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

/// Fail clearly unless PostgreSQL answers.
fn require_postgres() {
    let r = psql("SELECT 1");
    assert!(
        r.ok(),
        "PostgreSQL must be reachable at {} (set INTERLOCK_TEST_PG to override); psql said:\n{}",
        pg_server_url(),
        r.text()
    );
}

/// Drops its databases when dropped, even when a test fails half-way.
struct PgDatabases(Vec<String>);

impl PgDatabases {
    fn drop_all(&mut self) -> Vec<Ran> {
        self.0
            .drain(..)
            .map(|db| psql(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")))
            .collect()
    }
}

impl Drop for PgDatabases {
    fn drop(&mut self) {
        let _ = self.drop_all();
    }
}

// ------------------------------------------------------------------ 1. the marker

/// What a marker run leaves behind to check against.
struct MarkerRun {
    workspace_id: String,
    api_token: String,
}

/// Write `marker` through every personal and content field of a fresh workspace, then read
/// every one back through the API and check it is intact.
async fn write_and_read_marker(s: &Server, region: &str, marker: &str) -> MarkerRun {
    let (workspace_id, token) = s.create_workspace("Marker Test Co", region).await;

    // A contact: email, name, external id, a custom attribute's value and key.
    let email = format!("{marker}@example.com");
    let name = format!("Name {marker}");
    let external_id = format!("ext-{marker}");
    let attr_key = format!("{marker}_key");
    let contact = s
        .post(
            "/v1/contacts",
            &token,
            json!({
                "role": "user",
                "external_id": external_id,
                "email": email,
                "name": name,
                "phone": "+44 20 7946 0958",
                "custom_attributes": {"note": marker, attr_key.clone(): "by key", "plan": "gold"},
            }),
        )
        .await;
    let cid = contact["id"].as_str().expect("contact id").to_owned();
    // An update goes through the same encryption.
    let patched = s
        .patch(
            &format!("/v1/contacts/{cid}"),
            &token,
            json!({"custom_attributes": {"later": format!("patched {marker}")}}),
        )
        .await;
    assert_eq!(
        patched["custom_attributes"]["later"],
        format!("patched {marker}")
    );

    // A conversation with a first body and a teammate's reply.
    let first = format!("Hello, I am {marker} and I need help.");
    let reply = format!("Reply to {marker}: sure.");
    let conv = s
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": cid, "body": first}),
        )
        .await;
    let conv_id = conv["id"].as_str().expect("conversation id").to_owned();
    let teammate = format!("tm_{}", random_hex(16));
    let part = s
        .post(
            &format!("/v1/conversations/{conv_id}/parts"),
            &token,
            json!({"body": reply, "author": {"type": "teammate", "id": teammate}}),
        )
        .await;
    assert_eq!(part["body"], reply.as_str());

    // An event: name and metadata (value and key).
    let event_name = format!("ev_{marker}");
    s.post(
        "/v1/events",
        &token,
        json!({"contact_id": cid, "name": event_name,
               "metadata": {"detail": marker, marker: 42}}),
    )
    .await;

    // An attachment: bytes and file name.
    let filename = format!("{marker}.txt");
    let bytes = format!("attachment bytes: {marker}\n{}\n", marker.repeat(3)).into_bytes();
    let up = s
        .http
        .post(s.url(&format!(
            "/v1/conversations/{conv_id}/attachments?filename={filename}"
        )))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(bytes.clone())
        .send()
        .await
        .expect("upload the attachment");
    let up_status = up.status();
    let up_body: Value = up.json().await.expect("upload answer is JSON");
    assert_eq!(up_status, StatusCode::CREATED, "upload: {up_body}");
    let att_id = up_body["id"].as_str().expect("attachment id").to_owned();

    // ---- everything comes back intact
    let got = s.get(&format!("/v1/contacts/{cid}"), &token).await;
    assert_eq!(got["email"], email.as_str(), "{got}");
    assert_eq!(got["name"], name.as_str(), "{got}");
    assert_eq!(got["external_id"], external_id.as_str(), "{got}");
    assert_eq!(got["phone"], "+44 20 7946 0958", "{got}");
    assert_eq!(got["custom_attributes"]["note"], marker, "{got}");
    assert_eq!(got["custom_attributes"][&attr_key], "by key", "{got}");
    assert_eq!(
        got["custom_attributes"]["later"],
        format!("patched {marker}"),
        "{got}"
    );

    let by_email = s
        .get(
            &format!("/v1/contacts?email={marker}%40example.com"),
            &token,
        )
        .await;
    assert_eq!(
        by_email["data"].as_array().map(Vec::len),
        Some(1),
        "{by_email}"
    );
    assert_eq!(by_email["data"][0]["id"], cid.as_str(), "{by_email}");
    assert_eq!(by_email["data"][0]["email"], email.as_str(), "{by_email}");
    // Lookups normalise the email, so the upper-case form finds the same contact.
    let upper = marker.to_uppercase();
    let by_upper = s
        .get(&format!("/v1/contacts?email={upper}%40EXAMPLE.COM"), &token)
        .await;
    assert_eq!(by_upper["data"][0]["id"], cid.as_str(), "{by_upper}");
    let by_ext = s
        .get(&format!("/v1/contacts?external_id={external_id}"), &token)
        .await;
    assert_eq!(by_ext["data"][0]["id"], cid.as_str(), "{by_ext}");

    let c = s.get(&format!("/v1/conversations/{conv_id}"), &token).await;
    let parts = c["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 2, "{c}");
    assert_eq!(parts[0]["body"], first.as_str(), "{c}");
    assert_eq!(parts[1]["body"], reply.as_str(), "{c}");
    assert_eq!(parts[1]["author"]["id"], teammate.as_str(), "{c}");

    let events = s.get(&format!("/v1/events?contact_id={cid}"), &token).await;
    assert_eq!(events["data"].as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(events["data"][0]["name"], event_name.as_str(), "{events}");
    assert_eq!(events["data"][0]["metadata"]["detail"], marker, "{events}");
    assert_eq!(events["data"][0]["metadata"][marker], 42, "{events}");

    let atts = s
        .get(&format!("/v1/conversations/{conv_id}/attachments"), &token)
        .await;
    assert_eq!(atts["data"].as_array().map(Vec::len), Some(1), "{atts}");
    assert_eq!(atts["data"][0]["id"], att_id.as_str(), "{atts}");
    assert_eq!(atts["data"][0]["filename"], filename.as_str(), "{atts}");
    assert_eq!(atts["data"][0]["content_type"], "text/plain", "{atts}");
    assert_eq!(atts["data"][0]["size"], bytes.len(), "{atts}");

    let down = s
        .request(
            Method::GET,
            &format!("/v1/conversations/{conv_id}/attachments/{att_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(down.status, StatusCode::OK);
    assert_eq!(down.body, bytes, "attachment bytes come back intact");
    assert!(
        down.header("content-disposition").contains(&filename),
        "download names the file: {:?}",
        down.header("content-disposition")
    );

    MarkerRun {
        workspace_id,
        api_token: token,
    }
}

/// The forms of the marker that must appear nowhere.
fn marker_needles(marker: &str) -> Vec<Vec<u8>> {
    vec![
        marker.as_bytes().to_vec(),
        marker.to_uppercase().into_bytes(),
    ]
}

/// Scan every file under `data_dir`: the marker must be absent, and the workspace id (stored
/// in clear) must be present in at least one file, which shows the scan can find things.
/// Returns the files scanned.
fn assert_data_dir_clean(data_dir: &Path, marker: &str, stored_in_clear: &str) -> Vec<PathBuf> {
    let files = files_under(data_dir);
    let mut hits = Vec::new();
    let mut seen_clear = Vec::new();
    for path in &files {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for needle in marker_needles(marker) {
            if contains(&bytes, &needle) {
                hits.push(path.display().to_string());
            }
        }
        if contains(&bytes, stored_in_clear.as_bytes()) {
            seen_clear.push(path.display().to_string());
        }
    }
    assert!(
        hits.is_empty(),
        "the plaintext marker {marker} was found in: {hits:?}"
    );
    assert!(
        !seen_clear.is_empty(),
        "sanity check failed: {stored_in_clear} (stored in clear) was found in none of {files:?}, \
         so the scan proves nothing"
    );
    files
}

fn assert_log_clean(log: &[u8], marker: &str, run: &MarkerRun, operator: &str) {
    assert!(
        contains(log, b"interlock is serving HTTPS"),
        "the server log was not captured: {}",
        String::from_utf8_lossy(log)
    );
    assert!(
        contains(log, b"\"DEBUG\""),
        "the log should hold debug lines (INTERLOCK_LOG=debug)"
    );
    assert!(
        contains(log, run.workspace_id.as_bytes()),
        "sanity check failed: the log does not name the workspace it created, so scanning it \
         proves little"
    );
    for needle in marker_needles(marker) {
        assert!(!contains(log, &needle), "the marker reached the server log");
    }
    assert!(
        !contains(log, run.api_token.as_bytes()),
        "a workspace API token reached the log"
    );
    assert!(
        !contains(log, operator.as_bytes()),
        "the operator token reached the log"
    );
}

fn new_marker() -> String {
    format!("mk{}", random_hex(12))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_never_reaches_disk_or_logs_sqlite() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let marker = new_marker();

    let mut server = Server::start(&data, &["--regions", "eu,us"]).await;
    let run = write_and_read_marker(&server, "eu", &marker).await;
    let operator = server.operator.clone();
    server.stop();
    let log = server.log_bytes();
    drop(server);

    let files = assert_data_dir_clean(&data, &marker, &run.workspace_id);
    // The scan covered the store of the region used, its WAL, and the attachment blob.
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    assert!(
        names.iter().any(|n| n.ends_with("regions/eu/interlock.db")),
        "no SQLite database scanned: {names:?}"
    );
    assert!(
        files
            .iter()
            .any(|p| p.starts_with(data.join("regions/eu/blobs"))),
        "no attachment blob scanned: {names:?}"
    );
    assert_log_clean(&log, &marker, &run, &operator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_never_reaches_disk_logs_or_pg_dump_postgres() {
    require_postgres();
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let marker = new_marker();
    let name = format!("e2e_{}", random_hex(8));
    let region_db = format!("{name}_eu");
    // Declared before the server, so it is dropped after the server is killed.
    let mut databases = PgDatabases(vec![region_db.clone()]);
    let url = format!("{}/{name}", pg_server_url());

    let mut server = Server::start(&data, &["--regions", "eu", "--database", &url]).await;
    let run = write_and_read_marker(&server, "eu", &marker).await;
    let operator = server.operator.clone();
    server.stop();
    let log = server.log_bytes();
    drop(server);

    let exists = psql(&format!(
        "SELECT datname FROM pg_database WHERE datname LIKE '{name}%' ORDER BY 1"
    ));
    assert!(exists.ok(), "{}", exists.text());
    assert_eq!(
        String::from_utf8_lossy(&exists.stdout).trim(),
        region_db,
        "the server should have made exactly one database, for its one region"
    );

    let mut cmd = Command::new("pg_dump");
    cmd.arg("--no-password")
        .arg("--dbname")
        .arg(format!("{}/{region_db}", pg_server_url()))
        .env("PGCONNECT_TIMEOUT", "10");
    let dump = run_with_timeout(
        &mut cmd,
        Duration::from_secs(120),
        "pg_dump (install postgresql-client)",
    );
    assert!(dump.ok(), "pg_dump failed: {}", dump.text());
    assert!(
        contains(&dump.stdout, run.workspace_id.as_bytes()),
        "sanity check failed: the workspace id (stored in clear) is not in the dump, so the \
         dump proves nothing"
    );
    for needle in marker_needles(&marker) {
        assert!(
            !contains(&dump.stdout, &needle),
            "the plaintext marker {marker} is in the pg_dump of {region_db}"
        );
    }

    // The data folder still holds blobs, keys, TLS material: none may hold the marker.
    let files = files_under(&data);
    for path in &files {
        let bytes = fs::read(path).expect("read a data file");
        for needle in marker_needles(&marker) {
            assert!(
                !contains(&bytes, &needle),
                "the plaintext marker is in {}",
                path.display()
            );
        }
    }
    assert!(
        files
            .iter()
            .any(|p| p.starts_with(data.join("regions/eu/blobs"))),
        "no attachment blob scanned: {files:?}"
    );
    assert!(
        !files.iter().any(|p| p.ends_with("interlock.db")),
        "with --database no SQLite store should exist: {files:?}"
    );
    assert_log_clean(&log, &marker, &run, &operator);

    for dropped in databases.drop_all() {
        assert!(
            dropped.ok(),
            "dropping the test database: {}",
            dropped.text()
        );
    }
}

// ------------------------------------------------------------------ 2. TLS

/// Run `openssl s_client` against the server; returns whether a cipher was negotiated and
/// the full output.
fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-servername")
        .arg("localhost")
        .args(args);
    let ran = run_with_timeout(
        &mut cmd,
        Duration::from_secs(20),
        "openssl s_client (install openssl)",
    );
    let text = ran.text();
    let negotiated = text
        .lines()
        .any(|l| l.contains("Cipher is ") && !l.contains("(NONE)"));
    (ran.ok() && negotiated, text)
}

fn assert_refused(port: u16, args: &[&str], why: &str) {
    let (ok, text) = s_client(port, args);
    assert!(!ok, "openssl s_client {args:?} ({why}) must fail:\n{text}");
    // The client must have offered it and the server refused (an alert), rather than the local
    // OpenSSL configuration refusing to even try.
    assert!(
        text.contains("alert"),
        "openssl s_client {args:?} ({why}) failed without a server alert, so the local OpenSSL \
         may have refused it by itself and the test proves nothing:\n{text}"
    );
}

fn assert_accepted(port: u16, args: &[&str], expect: &str) {
    let (ok, text) = s_client(port, args);
    assert!(ok, "openssl s_client {args:?} must succeed:\n{text}");
    assert!(
        text.contains(expect),
        "openssl s_client {args:?} should negotiate {expect}:\n{text}"
    );
}

/// Raw bytes of a plain-HTTP request sent to the TLS port.
fn plain_http_answer(port: u16) -> Vec<u8> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("TCP connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write the plain request");
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_policy_matches_the_spec() {
    let tmp = tempfile::tempdir().expect("temp dir");

    // The default: a self-signed certificate written by the server.
    let data = tmp.path().join("ecdsa");
    let server = Server::start(&data, &["--regions", "eu"]).await;
    let cert = data.join("tls").join("cert.pem");
    let x509 = run_with_timeout(
        Command::new("openssl")
            .arg("x509")
            .arg("-noout")
            .arg("-text")
            .arg("-in")
            .arg(&cert),
        Duration::from_secs(20),
        "openssl x509 (install openssl)",
    );
    let x509 = x509.text();
    assert!(
        x509.contains("id-ecPublicKey") && x509.contains("prime256v1"),
        "the self-signed certificate should be ECDSA P-256:\n{x509}"
    );
    assert!(
        x509.contains("DNS:localhost") && x509.contains("IP Address:127.0.0.1"),
        "the self-signed certificate must name localhost and 127.0.0.1:\n{x509}"
    );
    assert_eq!(
        mode_of(&data.join("tls").join("key.pem")),
        0o600,
        "the TLS private key must be mode 0600"
    );

    let p = server.port;
    // SECLEVEL=0 lets this OpenSSL offer the old protocols, so it is the server that refuses.
    assert_refused(p, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], "TLS 1.1");
    assert_refused(p, &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], "TLS 1.0");
    assert_refused(
        p,
        &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        "RSA key exchange, not forward secret",
    );
    assert_refused(
        p,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
        "CBC suite",
    );
    assert_refused(
        p,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384"],
        "CBC suite",
    );
    assert_accepted(
        p,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256",
    );
    assert_accepted(
        p,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
        "New, TLSv1.2, Cipher is ECDHE-ECDSA-CHACHA20-POLY1305",
    );
    assert_accepted(p, &["-tls1_3"], "New, TLSv1.3, Cipher is TLS_");

    // Plain HTTP on the same port gets no HTTP answer.
    let answer = plain_http_answer(p);
    assert!(
        !contains(&answer, b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&answer)
    );

    // HSTS on every answer, errors included (Server::request checks it on each call).
    let ok = server.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("strict-transport-security"), HSTS);
    let missing = server
        .request(Method::GET, "/v1/no-such-route", None, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing
            .header("content-type")
            .starts_with("application/problem+json"),
        "{:?}",
        missing.header("content-type")
    );
    assert_eq!(missing.json()["code"], "not_found");
    let unauthorised = server
        .request(Method::GET, "/v1/contacts", None, None)
        .await;
    assert_eq!(unauthorised.status, StatusCode::UNAUTHORIZED);
    let bad_json = server
        .request(
            Method::POST,
            "/v1/operator/workspaces",
            Some(&server.operator),
            Some(&json!({"name": "x", "region": "eu", "extra": true})),
        )
        .await;
    assert!(bad_json.status.is_client_error(), "{}", bad_json.status);
    drop(server);

    // A configured RSA certificate: the suites that an RSA key could use without forward
    // secrecy or with CBC must still be refused (with an ECDSA key they cannot be chosen
    // anyway, so this is where the cipher policy really shows).
    let rsa_dir = tmp.path().join("rsa-cert");
    fs::create_dir_all(&rsa_dir).expect("mkdir");
    let rsa_cert = rsa_dir.join("cert.pem");
    let rsa_key = rsa_dir.join("key.pem");
    let made = run_with_timeout(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            // An end-entity certificate: webpki refuses a CA certificate as a server's.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args([
                "-addext",
                "keyUsage=critical,digitalSignature,keyEncipherment",
            ])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(&rsa_key)
            .arg("-out")
            .arg(&rsa_cert),
        Duration::from_secs(60),
        "openssl req (install openssl)",
    );
    assert!(made.ok(), "making an RSA certificate: {}", made.text());
    fs::set_permissions(&rsa_key, fs::Permissions::from_mode(0o600)).expect("chmod key");
    let config = tmp.path().join("rsa.toml");
    fs::write(
        &config,
        format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            rsa_cert.display().to_string(),
            rsa_key.display().to_string()
        ),
    )
    .expect("write config");
    let data = tmp.path().join("rsa");
    let config_arg = config.display().to_string();
    let server = Server::start_trusting(
        &data,
        &["--regions", "eu", "--config", &config_arg],
        Some(&rsa_cert),
    )
    .await;
    assert!(
        !data.join("tls").exists(),
        "with a configured certificate no self-signed one is made"
    );
    let p = server.port;
    assert_refused(p, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], "TLS 1.1");
    assert_refused(
        p,
        &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        "RSA key exchange",
    );
    assert_refused(
        p,
        &["-tls1_2", "-cipher", "AES256-GCM-SHA384"],
        "RSA key exchange",
    );
    assert_refused(
        p,
        &["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"],
        "finite-field DHE",
    );
    assert_refused(
        p,
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"],
        "CBC suite",
    );
    assert_refused(
        p,
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA256"],
        "CBC suite",
    );
    assert_accepted(
        p,
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
        "New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256",
    );
    assert_accepted(
        p,
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"],
        "New, TLSv1.2, Cipher is ECDHE-RSA-AES256-GCM-SHA384",
    );
    assert_accepted(p, &["-tls1_3"], "New, TLSv1.3, Cipher is TLS_");
    let answer = plain_http_answer(p);
    assert!(
        !contains(&answer, b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&answer)
    );
    let ok = server.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(ok.status, StatusCode::OK);
}

// ------------------------------------------------------------------ 3. key rotation

fn keys_cmd(action: &str, data: &Path, key_dir: Option<&Path>, extra: &[&str]) -> Ran {
    let mut args: Vec<String> = vec![
        "keys".into(),
        action.into(),
        "--region".into(),
        "eu".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    if let Some(k) = key_dir {
        args.push("--key-dir".into());
        args.push(k.display().to_string());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    interlock(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_retire_keep_data_readable() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let keys = data.join("keys").join("eu");
    let name = format!("Kept Name {}", random_hex(4));

    let mut server = Server::start(&data, &["--regions", "eu"]).await;
    let (_, token) = server.create_workspace("Keys Co", "eu").await;
    let c = server
        .post(
            "/v1/contacts",
            &token,
            json!({"role": "visitor", "name": name}),
        )
        .await;
    let cid = c["id"].as_str().expect("contact id").to_owned();
    server.stop();
    drop(server);
    assert_eq!(mode_of(&keys.join("master-v1.key")), 0o600);
    assert_eq!(mode_of(&keys), 0o700, "the key folder must be mode 0700");

    // Rotate: a new version, every workspace key re-wrapped under it.
    let rotated = keys_cmd("rotate", &data, None, &[]);
    assert!(rotated.ok(), "keys rotate: {}", rotated.text());
    let out = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        out.contains("v2"),
        "keys rotate should name version 2: {}",
        rotated.text()
    );
    assert_eq!(mode_of(&keys.join("master-v2.key")), 0o600);
    assert!(
        keys.join("master-v1.key").exists(),
        "v1 stays until retired"
    );
    let listed = keys_cmd("list", &data, None, &[]);
    assert!(listed.ok(), "keys list: {}", listed.text());
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(
        out.contains("v1 wraps 0") && out.contains("v2 wraps 1"),
        "after rotation v2 wraps the workspace key: {}",
        listed.text()
    );

    // Restart: old data still reads; new data is written under v2.
    let mut server = Server::start(&data, &["--regions", "eu"]).await;
    let got = server.get(&format!("/v1/contacts/{cid}"), &token).await;
    assert_eq!(got["name"], name.as_str());
    let c2 = server
        .post(
            "/v1/contacts",
            &token,
            json!({"role": "visitor", "name": "After Rotation"}),
        )
        .await;
    let cid2 = c2["id"].as_str().expect("contact id").to_owned();
    server.stop();
    drop(server);

    // Retire: the old version goes; the active one cannot.
    let retired = keys_cmd("retire", &data, None, &["--version", "1"]);
    assert!(retired.ok(), "keys retire --version 1: {}", retired.text());
    assert!(
        !keys.join("master-v1.key").exists(),
        "master-v1.key must be deleted"
    );
    let refused = keys_cmd("retire", &data, None, &["--version", "2"]);
    assert!(
        !refused.ok(),
        "retiring the active key must fail: {}",
        refused.text()
    );
    assert!(keys.join("master-v2.key").exists(), "the active key stays");

    let mut server = Server::start(&data, &["--regions", "eu"]).await;
    let got = server.get(&format!("/v1/contacts/{cid}"), &token).await;
    assert_eq!(got["name"], name.as_str());
    let got2 = server.get(&format!("/v1/contacts/{cid2}"), &token).await;
    assert_eq!(got2["name"], "After Rotation");
    server.stop();
    drop(server);

    // --key-dir keeps the keys apart from the data.
    let data2 = tmp.path().join("data2");
    let key_dir = tmp.path().join("elsewhere-keys");
    let key_arg = key_dir.display().to_string();
    let mut server = Server::start(&data2, &["--regions", "eu", "--key-dir", &key_arg]).await;
    let (_, token2) = server.create_workspace("Apart Co", "eu").await;
    let c = server
        .post(
            "/v1/contacts",
            &token2,
            json!({"role": "visitor", "name": "Apart"}),
        )
        .await;
    let cid3 = c["id"].as_str().expect("contact id").to_owned();
    server.stop();
    drop(server);
    assert!(
        !data2.join("keys").exists(),
        "with --key-dir no key folder may exist under the data dir"
    );
    let master = key_dir.join("eu").join("master-v1.key");
    assert_eq!(mode_of(&master), 0o600);
    for f in files_under(&data2) {
        assert!(
            !f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("master-v")),
            "a master key file is in the data dir: {}",
            f.display()
        );
    }
    // Without --key-dir the CLI does not find the keys; with it, rotation works.
    let lost = keys_cmd("list", &data2, None, &[]);
    assert!(
        !lost.ok(),
        "keys list without --key-dir should fail: {}",
        lost.text()
    );
    let rotated = keys_cmd("rotate", &data2, Some(&key_dir), &[]);
    assert!(rotated.ok(), "keys rotate --key-dir: {}", rotated.text());
    assert!(key_dir.join("eu").join("master-v2.key").exists());
    assert!(!data2.join("keys").exists());
    let server = Server::start(&data2, &["--regions", "eu", "--key-dir", &key_arg]).await;
    let got = server.get(&format!("/v1/contacts/{cid3}"), &token2).await;
    assert_eq!(got["name"], "Apart");
}

// ------------------------------------------------------------------ 4. regions

fn assert_wrong_region(r: &Resp, region: &str, base_url: Option<&str>) {
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{body}");
    assert!(
        r.header("content-type")
            .starts_with("application/problem+json"),
        "content-type {:?}: {body}",
        r.header("content-type")
    );
    let v = r.json();
    assert_eq!(v["code"], "wrong_region", "{body}");
    assert_eq!(v["status"], 421, "{body}");
    assert_eq!(v["region"], region, "{body}");
    match base_url {
        Some(u) => assert_eq!(v["base_url"], u, "{body}"),
        None => assert!(v["base_url"].is_null(), "{body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misdirected_region_answers_421() {
    let tmp = tempfile::tempdir().expect("temp dir");

    // A us cell makes a us workspace and token.
    let data_a = tmp.path().join("us-cell");
    let mut a = Server::start(&data_a, &["--regions", "us"]).await;
    let (us_ws, us_token) = a.create_workspace("US Co", "us").await;
    assert!(us_token.starts_with("ilk_us_"), "tokens carry their region");
    a.stop();
    drop(a);

    // An eu-only process that knows where us is served.
    let config = tmp.path().join("eu.toml");
    fs::write(
        &config,
        "[region_urls]\nus = \"https://us.interlock.example\"\n",
    )
    .expect("write config");
    let data_b = tmp.path().join("eu-cell");
    let config_arg = config.display().to_string();
    let b = Server::start(&data_b, &["--regions", "eu", "--config", &config_arg]).await;

    let r = b
        .request(Method::GET, "/v1/contacts", Some(&us_token), None)
        .await;
    assert_wrong_region(&r, "us", Some("https://us.interlock.example"));
    let r = b
        .request(
            Method::POST,
            "/v1/contacts",
            Some(&us_token),
            Some(&json!({"name": "Nobody"})),
        )
        .await;
    assert_wrong_region(&r, "us", Some("https://us.interlock.example"));
    let r = b
        .request(
            Method::GET,
            &format!("/v1/contacts/ct_{}", random_hex(16)),
            Some(&us_token),
            None,
        )
        .await;
    assert_wrong_region(&r, "us", Some("https://us.interlock.example"));

    // The operator cannot create a workspace in a region this process does not serve.
    let r = b
        .request(
            Method::POST,
            "/v1/operator/workspaces",
            Some(&b.operator),
            Some(&json!({"name": "US Again", "region": "us"})),
        )
        .await;
    assert_wrong_region(&r, "us", Some("https://us.interlock.example"));
    // A region with no configured URL still answers 421, without a base URL.
    let r = b
        .request(
            Method::POST,
            "/v1/operator/workspaces",
            Some(&b.operator),
            Some(&json!({"name": "AU Co", "region": "au"})),
        )
        .await;
    assert_wrong_region(&r, "au", None);

    // The region it does serve works, and the us token's workspace is unknown there.
    let (eu_ws, eu_token) = b.create_workspace("EU Co", "eu").await;
    assert_ne!(eu_ws, us_ws);
    let list = b.get("/v1/contacts", &eu_token).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");
    assert!(
        !data_b.join("regions").join("us").exists(),
        "an eu-only process must not create a us store"
    );
}

// ------------------------------------------------------------------ 5. configuration

/// Run `interlock serve ARGS` expecting it to refuse quickly; returns its output.
fn serve_must_fail(args: &[&str], why: &str) -> String {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    if !args.contains(&"--listen") {
        all.extend_from_slice(&["--listen", "127.0.0.1:0"]);
    }
    let started = Instant::now();
    let ran = interlock(&all);
    let text = ran.text();
    assert!(!ran.ok(), "serve {args:?} ({why}) must fail:\n{text}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "serve {args:?} ({why}) should fail fast"
    );
    assert!(
        !text.contains("interlock is serving HTTPS"),
        "serve {args:?} ({why}) started serving:\n{text}"
    );
    text
}

#[test]
fn bad_config_fails_fast() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let d = data.display().to_string();

    let out = serve_must_fail(
        &["--data-dir", &d, "--database", "mysql://x"],
        "a MySQL URL",
    );
    assert!(
        out.contains("postgres://"),
        "the error should say a postgres:// URL is needed:\n{out}"
    );

    let cfg = tmp.path().join("unknown.toml");
    fs::write(&cfg, "colour_scheme = \"blue\"\n").expect("write config");
    let cfg_arg = cfg.display().to_string();
    let out = serve_must_fail(
        &["--data-dir", &d, "--config", &cfg_arg],
        "an unknown configuration key",
    );
    assert!(
        out.contains("colour_scheme"),
        "the error should name the unknown key:\n{out}"
    );

    let out = serve_must_fail(
        &[
            "--data-dir",
            &d,
            "--config",
            &tmp.path().join("absent.toml").display().to_string(),
        ],
        "a missing configuration file",
    );
    assert!(out.contains("absent.toml"), "{out}");

    let cfg = tmp.path().join("plain.toml");
    fs::write(&cfg, "[region_urls]\nus = \"http://us.example\"\n").expect("write config");
    let cfg_arg = cfg.display().to_string();
    let out = serve_must_fail(
        &["--data-dir", &d, "--config", &cfg_arg],
        "a plain-HTTP region URL",
    );
    assert!(out.contains("https://"), "{out}");

    let out = serve_must_fail(
        &["--data-dir", &d, "--regions", "mars"],
        "an unknown region",
    );
    assert!(out.contains("mars"), "{out}");

    for (toml, names) in [
        (
            "[messenger]\nboots_per_minute_per_ip = 0\n",
            "boots_per_minute_per_ip",
        ),
        ("[messenger]\nsession_ttl_s = 5\n", "session_ttl_s"),
        ("[messenger]\nmax_message_bytes = 0\n", "max_message_bytes"),
        ("[messenger]\nboots_per_second = 5\n", "boots_per_second"),
    ] {
        let cfg = tmp.path().join("messenger.toml");
        fs::write(&cfg, toml).expect("write config");
        let cfg_arg = cfg.display().to_string();
        let out = serve_must_fail(
            &["--data-dir", &d, "--config", &cfg_arg],
            "an invalid messenger limit",
        );
        assert!(out.contains(names), "the error should name {names}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_other_variables_are_ignored() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let port = free_port();
    let log_path = tmp.path().join("serve.log");
    let log = fs::File::create(&log_path).expect("log file");
    let mut cmd = Command::new(BIN);
    clean_env(&mut cmd);
    let mut child = cmd
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // Not configuration: must be ignored, not refused.
        .env("INTERLOCK_TEST_PG", "postgres://nowhere/x")
        // Configuration as a comma-separated list, as an operator would write it.
        .env("INTERLOCK_REGIONS", "eu,au")
        .stdout(log.try_clone().expect("clone"))
        .stderr(log)
        .spawn()
        .expect("spawn");
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let deadline = Instant::now() + START_TIMEOUT;
    let health = loop {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "serve exited: {}",
            fs::read_to_string(&log_path).unwrap_or_default()
        );
        if let Ok(pem) = fs::read(data.join("tls/cert.pem"))
            && let Ok(root) = reqwest::Certificate::from_pem(&pem)
        {
            let c = reqwest::Client::builder()
                .add_root_certificate(root)
                .no_proxy()
                .build()
                .expect("client");
            if let Ok(r) = c
                .get(format!("https://localhost:{port}/healthz"))
                .send()
                .await
                && r.status() == StatusCode::OK
            {
                break r.json::<Value>().await.expect("json");
            }
        }
        assert!(Instant::now() < deadline, "server did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health["regions"], json!(["eu", "au"]));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the server");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.success(), "exit {status}: {text}");
    assert!(text.contains("shutting down"), "{text}");
    // The stores were closed: SQLite checkpointed and removed its WAL.
    for region in ["eu", "au"] {
        assert!(
            !data
                .join(format!("regions/{region}/interlock.db-wal"))
                .exists(),
            "{region} WAL left behind"
        );
    }
}

// ------------------------------------------------------------------ activity log

/// `interlock audit verify`: a data folder and an export, each intact (exit 0) and then
/// tampered with (non-zero, naming the first bad entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_checks_data_folder_and_exports() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &["--regions", "us"]).await;
    let (ws, token) = server.create_workspace("Audit Co", "us").await;
    for i in 0..5 {
        server
            .post(
                "/v1/api-tokens",
                &token,
                json!({"name": format!("ci-{i}"), "permissions": ["contacts.read"]}),
            )
            .await;
    }
    let keys = server
        .request(Method::GET, "/v1/activity-logs/public-key", None, None)
        .await
        .json();
    let pem = keys["keys"][0]["public_key_pem"]
        .as_str()
        .expect("pem")
        .to_owned();
    let export = server
        .request(Method::GET, "/v1/activity-logs/export", Some(&token), None)
        .await;
    assert_eq!(export.status, StatusCode::OK);
    server.stop();
    drop(server);

    let key_file = tmp.path().join("key.pem");
    let export_file = tmp.path().join("export.jsonl");
    fs::write(&key_file, &pem).expect("write key");
    fs::write(&export_file, &export.body).expect("write export");
    let ok = interlock(&[
        "audit",
        "verify",
        "--export",
        export_file.to_str().expect("path"),
        "--public-key",
        key_file.to_str().expect("path"),
    ]);
    assert!(ok.ok(), "an untouched export verifies: {}", ok.text());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact"));

    // One field of one line edited: refused, naming the line.
    let text = String::from_utf8(export.body.clone()).expect("utf8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[2] = lines[2]
        .replacen("ci-", "ci_", 1)
        .replacen("contacts.read", "contacts.edit", 1);
    fs::write(&export_file, lines.join("\n") + "\n").expect("write");
    let bad = interlock(&[
        "audit",
        "verify",
        "--export",
        export_file.to_str().expect("path"),
        "--public-key",
        key_file.to_str().expect("path"),
    ]);
    assert!(!bad.ok(), "a tampered export must fail: {}", bad.text());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 3"),
        "{}",
        bad.text()
    );

    // The data folder: intact, then one stored entry's type changed behind its back.
    let whole = interlock(&[
        "audit",
        "verify",
        "--data-dir",
        data.to_str().expect("path"),
    ]);
    assert!(whole.ok(), "the stored chains verify: {}", whole.text());
    assert!(
        String::from_utf8_lossy(&whole.stdout).contains(&ws),
        "{}",
        whole.text()
    );
    let db = data.join("regions").join("us").join("interlock.db");
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open the store");
        sqlx::query("UPDATE activity_log SET type = 'role.created' WHERE seq = 2")
            .execute(&mut conn)
            .await
            .expect("edit");
        conn.close().await.expect("close");
    }
    let tampered = interlock(&[
        "audit",
        "verify",
        "--data-dir",
        data.to_str().expect("path"),
    ]);
    assert!(
        !tampered.ok(),
        "a changed entry must fail: {}",
        tampered.text()
    );
    let out = tampered.text();
    assert!(out.contains("TAMPERED") && out.contains("seq 2"), "{out}");
    // Usage errors are clear.
    let usage = interlock(&["audit", "verify", "--export", "x.jsonl"]);
    assert!(!usage.ok());
}

/// Checkpoints a sink delivered outside the data folder catch a log that was wiped (or
/// rewritten and re-signed) even though the data folder alone looks consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_checkpoints_catch_a_wiped_log() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let sink = tmp.path().join("auditor-checkpoints.jsonl");
    let config = tmp.path().join("interlock.toml");
    fs::write(
        &config,
        format!(
            "[activity]\ncheckpoint_every_entries = 1\ncheckpoint_every_s = 1\n\n[[activity.checkpoint_sinks]]\nkind = \"file\"\npath = \"{}\"\n",
            sink.display()
        ),
    )
    .expect("config");
    let config_arg = config.to_str().expect("path").to_owned();
    let mut server = Server::start(&data, &["--regions", "eu", "--config", &config_arg]).await;
    let (_ws, token) = server.create_workspace("Sink Co", "eu").await;
    for i in 0..3 {
        server
            .post(
                "/v1/api-tokens",
                &token,
                json!({"name": format!("t{i}"), "permissions": ["contacts.read"]}),
            )
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fs::read_to_string(&sink)
        .unwrap_or_default()
        .contains("\"tree_size\":3")
    {
        assert!(Instant::now() < deadline, "no checkpoint reached the sink");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keys = server
        .request(Method::GET, "/v1/activity-logs/public-key", None, None)
        .await
        .json();
    let pem_file = tmp.path().join("eu.pem");
    fs::write(
        &pem_file,
        keys["keys"][0]["public_key_pem"].as_str().expect("pem"),
    )
    .expect("pem");
    let export = server
        .request(Method::GET, "/v1/activity-logs/export", Some(&token), None)
        .await;
    server.stop();
    drop(server);
    let export_file = tmp.path().join("export.jsonl");
    fs::write(&export_file, &export.body).expect("export");
    let path = |p: &Path| p.to_str().expect("path").to_owned();

    let ok = interlock(&[
        "audit",
        "verify",
        "--export",
        &path(&export_file),
        "--public-key",
        &path(&pem_file),
        "--checkpoints",
        &path(&sink),
    ]);
    assert!(ok.ok(), "{}", ok.text());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("external checkpoints match"));
    let ok = interlock(&[
        "audit",
        "verify",
        "--data-dir",
        &path(&data),
        "--checkpoints",
        &path(&sink),
    ]);
    assert!(ok.ok(), "{}", ok.text());

    // The operator wipes the whole log: the data folder alone still looks consistent …
    let db = data.join("regions").join("eu").join("interlock.db");
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open the store");
        for sql in [
            "DELETE FROM activity_log",
            "DELETE FROM activity_checkpoints",
            "DELETE FROM activity_heads",
        ] {
            sqlx::query(sql).execute(&mut conn).await.expect("wipe");
        }
        conn.close().await.expect("close");
    }
    let alone = interlock(&["audit", "verify", "--data-dir", &path(&data)]);
    assert!(alone.ok(), "{}", alone.text());
    // … but not against the checkpoints the auditor holds.
    let caught = interlock(&[
        "audit",
        "verify",
        "--data-dir",
        &path(&data),
        "--checkpoints",
        &path(&sink),
    ]);
    assert!(!caught.ok(), "{}", caught.text());
    assert!(
        caught.text().contains("truncated or rewritten"),
        "{}",
        caught.text()
    );
}

// ------------------------------------------------------------------ retention

/// `interlock retention run --dry-run --as-of … --json` plans without deleting; `--as-of` needs
/// `--dry-run`; a real run now deletes nothing young.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_dry_run_plans_by_date() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &["--regions", "au"]).await;
    let (ws, token) = server.create_workspace("Keep Co", "au").await;
    server
        .post("/v1/contacts", &token, json!({"role": "visitor"}))
        .await;
    server
        .post("/v1/contacts", &token, json!({"email": "user@example.com"}))
        .await;
    server.stop();
    drop(server);
    let day = 86_400i64;
    let at = |days: i64| {
        let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(days * day);
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let dir = data.to_str().expect("path").to_owned();
    let plan = |days: i64| {
        let r = interlock(&[
            "retention",
            "run",
            "--data-dir",
            &dir,
            "--dry-run",
            "--as-of",
            &at(days),
            "--json",
        ]);
        assert!(r.ok(), "{}", r.text());
        serde_json::from_slice::<Value>(&r.stdout).expect("json")
    };
    let early = plan(243);
    assert_eq!(early["total"], 0, "{early}");
    let late = plan(275);
    assert_eq!(late["workspaces"][0]["id"], ws.as_str(), "{late}");
    assert_eq!(late["workspaces"][0]["deletions"]["contacts"], 1, "{late}");
    assert_eq!(
        late["workspaces"][0]["deletions"]["subject_keys"], 1,
        "{late}"
    );
    assert!(late["total"].as_i64().expect("total") >= 2, "{late}");
    assert!(
        late["as_of"]
            .as_str()
            .expect("as_of")
            .starts_with(&at(275)[..10])
    );
    // --as-of without --dry-run is refused; a bad time is refused.
    let refused = interlock(&["retention", "run", "--data-dir", &dir, "--as-of", &at(275)]);
    assert!(!refused.ok());
    assert!(refused.text().contains("--dry-run"), "{}", refused.text());
    let bad = interlock(&[
        "retention",
        "run",
        "--data-dir",
        &dir,
        "--dry-run",
        "--as-of",
        "next tuesday",
    ]);
    assert!(!bad.ok(), "{}", bad.text());
    // The server's configuration file applies ([retention] batch, [staff] review schedule);
    // a value out of range is refused before anything is swept, a missing file too.
    let conf = std::path::Path::new(&dir).join("bad.toml");
    std::fs::write(&conf, "[staff]\nreview_every_days = 0\n").expect("write");
    let conf = conf.to_str().expect("utf-8").to_owned();
    let r = interlock(&["retention", "run", "--data-dir", &dir, "--config", &conf]);
    assert!(!r.ok(), "{}", r.text());
    assert!(r.text().contains("review_every_days"), "{}", r.text());
    let r = interlock(&[
        "retention",
        "run",
        "--data-dir",
        &dir,
        "--config",
        "/nonexistent.toml",
    ]);
    assert!(!r.ok(), "{}", r.text());
    assert!(r.text().contains("does not exist"), "{}", r.text());
    let conf = std::path::Path::new(&dir).join("interlock.toml");
    std::fs::write(
        &conf,
        "[retention]\nbatch = 10\n[staff]\nreview_every_days = 30\nreview_window_days = 7\n",
    )
    .expect("write");
    let conf = conf.to_str().expect("utf-8").to_owned();
    // A real run now deletes nothing (the visitor is young), and the plan is unchanged.
    let now = interlock(&[
        "retention",
        "run",
        "--data-dir",
        &dir,
        "--config",
        &conf,
        "--json",
    ]);
    assert!(now.ok(), "{}", now.text());
    let now: Value = serde_json::from_slice(&now.stdout).expect("json");
    assert_eq!(now["total"], 0, "{now}");
    assert_eq!(plan(275)["workspaces"][0]["deletions"]["contacts"], 1);

    // 13 months idle (a sweep on schedule sends the notice 90 days before): the plan names the
    // whole workspace, identified users and all.
    let gone = plan(400);
    assert_eq!(gone["workspaces"][0]["id"], ws.as_str(), "{gone}");
    assert_eq!(
        gone["workspaces"][0]["deletions"]["workspaces"], 1,
        "{gone}"
    );
    assert_eq!(gone["workspaces"][0]["deletions"]["contacts"], 2, "{gone}");
    assert_eq!(
        plan(380)["workspaces"][0]["deletions"].get("workspaces"),
        None
    );

    // A real run is the whole sweep, the 13-month rule included: idle 13 months with no
    // notice yet, it sends the notice and deletes nothing; 90 days after the notice, it
    // deletes the workspace and purges it.
    let db = data.join("regions").join("au").join("interlock.db");
    let set = |sql: &'static str, ago_days: i64| {
        let db = db.clone();
        async move {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&format!("sqlite://{}", db.display()))
                .await
                .expect("open the store");
            let at = (time::OffsetDateTime::now_utc().unix_timestamp() - ago_days * day) * 1000;
            sqlx::query(sql)
                .bind(at)
                .execute(&mut conn)
                .await
                .expect("move time");
            conn.close().await.expect("close");
        }
    };
    set("UPDATE workspaces SET last_active_at = $1", 400).await;
    let run = |what: &str| {
        let r = interlock(&["retention", "run", "--data-dir", &dir, "--json"]);
        assert!(r.ok(), "{what}: {}", r.text());
        serde_json::from_slice::<Value>(&r.stdout).expect("json")
    };
    let first = run("notice");
    assert_eq!(
        first["lifecycle"]["inactivity_notices"],
        json!([ws]),
        "{first}"
    );
    assert_eq!(
        first["lifecycle"]["workspaces_deleted"],
        json!([]),
        "{first}"
    );
    set("UPDATE workspaces SET inactivity_notice_at = $1", 91).await;
    let second = run("deletion");
    assert_eq!(
        second["lifecycle"]["workspaces_deleted"],
        json!([ws]),
        "{second}"
    );
    assert_eq!(
        second["lifecycle"]["workspaces_purged"],
        json!([ws]),
        "{second}"
    );
    assert_eq!(plan(400)["total"], 0, "nothing is left to plan for");
}

/// `interlock receipt verify`: an erasure's receipt from `DELETE /v1/contacts/{id}` verifies
/// offline with the region's public key (exit 0); an edited one, or one checked with another
/// region's key, does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_verify_checks_deletion_receipts_offline() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &["--regions", "us,eu"]).await;
    let (_ws, token) = server.create_workspace("Receipt Co", "us").await;
    let contact = server
        .post("/v1/contacts", &token, json!({"email": "gone@example.com"}))
        .await;
    let id = contact["id"].as_str().expect("id").to_owned();
    let erased = server
        .request(
            Method::DELETE,
            &format!("/v1/contacts/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK);
    let keys = server
        .request(Method::GET, "/v1/activity-logs/public-key", None, None)
        .await
        .json();
    let pem_of = |region: &str| {
        keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["region"] == region)
            .expect("region key")["public_key_pem"]
            .as_str()
            .expect("pem")
            .to_owned()
    };
    server.stop();
    drop(server);

    let us_key = tmp.path().join("us.pem");
    let eu_key = tmp.path().join("eu.pem");
    fs::write(&us_key, pem_of("us")).expect("write");
    fs::write(&eu_key, pem_of("eu")).expect("write");
    let answer = tmp.path().join("answer.json");
    fs::write(&answer, &erased.body).expect("write");
    let path = |p: &std::path::Path| p.to_str().expect("path").to_owned();

    let ok = interlock(&[
        "receipt",
        "verify",
        &path(&answer),
        "--public-key",
        &path(&us_key),
    ]);
    assert!(ok.ok(), "the receipt verifies: {}", ok.text());
    let out = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(out.contains("receipt valid") && out.contains(&id), "{out}");

    let wrong_key = interlock(&[
        "receipt",
        "verify",
        &path(&answer),
        "--public-key",
        &path(&eu_key),
    ]);
    assert!(
        !wrong_key.ok(),
        "another region's key: {}",
        wrong_key.text()
    );

    let text = String::from_utf8(erased.body.clone()).expect("utf8");
    let forged = text.replacen("\"conversations\":0", "\"conversations\":7", 1);
    assert_ne!(forged, text, "the receipt lists conversations");
    fs::write(&answer, forged).expect("write");
    let bad = interlock(&[
        "receipt",
        "verify",
        &path(&answer),
        "--public-key",
        &path(&us_key),
    ]);
    assert!(!bad.ok(), "an edited receipt: {}", bad.text());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("NOT valid"),
        "{}",
        bad.text()
    );
}

/// After an erasure on PostgreSQL: the subject's marker is in no `pg_dump` and no file, and no
/// row of it (contact, conversation, messages, events, attachment, subject key) is left; the
/// only traces are its pseudonymous id in the request, the receipt and the activity log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_nothing_in_pg_dump_or_files_postgres() {
    require_postgres();
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let marker = new_marker();
    let name = format!("e2e_{}", random_hex(8));
    let region_db = format!("{name}_eu");
    let mut databases = PgDatabases(vec![region_db.clone()]);
    let url = format!("{}/{name}", pg_server_url());
    let mut server = Server::start(&data, &["--regions", "eu", "--database", &url]).await;
    let run = write_and_read_marker(&server, "eu", &marker).await;
    let contacts = server
        .request(Method::GET, "/v1/contacts", Some(&run.api_token), None)
        .await
        .json();
    let ids: Vec<String> = contacts["data"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(!ids.is_empty());
    for id in &ids {
        let r = server
            .request(
                Method::POST,
                "/v1/data-requests",
                Some(&run.api_token),
                Some(&json!({"type": "erasure", "contact_id": id})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    server.stop();
    drop(server);

    let mut cmd = Command::new("pg_dump");
    cmd.arg("--no-password")
        .arg("--dbname")
        .arg(format!("{}/{region_db}", pg_server_url()))
        .env("PGCONNECT_TIMEOUT", "10");
    let dump = run_with_timeout(&mut cmd, Duration::from_secs(120), "pg_dump");
    assert!(dump.ok(), "pg_dump failed: {}", dump.text());
    assert!(
        contains(&dump.stdout, run.workspace_id.as_bytes()),
        "sanity: the dump names the workspace"
    );
    for needle in marker_needles(&marker) {
        assert!(
            !contains(&dump.stdout, &needle),
            "the marker is in the pg_dump after erasure"
        );
    }
    for id in &ids {
        for (table, column) in [
            ("contacts", "id"),
            ("conversations", "contact_id"),
            ("events", "contact_id"),
            ("subject_keys", "owner_id"),
        ] {
            let n = psql_in(
                &region_db,
                &format!("SELECT COUNT(*) FROM {table} WHERE {column} = '{id}'"),
            );
            assert_eq!(n, "0", "{table} still holds rows of {id}");
        }
    }
    for table in ["conversation_parts", "attachments"] {
        assert_eq!(
            psql_in(&region_db, &format!("SELECT COUNT(*) FROM {table}")),
            "0",
            "{table}"
        );
    }
    for path in files_under(&data) {
        let bytes = fs::read(&path).expect("read a data file");
        for needle in marker_needles(&marker) {
            assert!(
                !contains(&bytes, &needle),
                "the marker is in {}",
                path.display()
            );
        }
    }
    for r in databases.drop_all() {
        assert!(r.ok(), "{}", r.text());
    }
}

/// One value from a query in one database.
fn psql_in(db: &str, sql: &str) -> String {
    let mut cmd = Command::new("psql");
    cmd.arg("--no-password")
        .arg("-tA")
        .arg("--dbname")
        .arg(format!("{}/{db}", pg_server_url()))
        .arg("-c")
        .arg(sql)
        .env("PGCONNECT_TIMEOUT", "10");
    let r = run_with_timeout(&mut cmd, Duration::from_secs(60), "psql");
    assert!(r.ok(), "psql failed: {}", r.text());
    String::from_utf8_lossy(&r.stdout).trim().to_owned()
}

/// `interlock staff device issue|list|revoke` (docs/staff-devices.md): `issue` writes the
/// certificate and a 0600 key and registers the device, which then reaches
/// `GET /v1/staff/device` of a running server; `list --json` shows it; `revoke` marks it and
/// the running server refuses it on the next request. (The staff row is made with SQL until
/// `interlock staff add` exists.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_device_issue_list_revoke() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &["--regions", "eu"]).await;
    let dir = data.to_str().expect("path").to_owned();
    // `staff add` prints the new member's id and TOTP secret once; the email is sealed.
    let added = interlock(&[
        "staff",
        "add",
        "--data-dir",
        &dir,
        "--email",
        "alice@operator.example",
        "--role",
        "support",
        "--json",
    ]);
    assert!(added.ok(), "{}", added.text());
    let added: Value = serde_json::from_slice(&added.stdout).expect("json");
    let alice = added["id"].as_str().expect("id").to_owned();
    assert!(alice.starts_with("sf_"), "{added}");
    assert!(
        added["otpauth_uri"]
            .as_str()
            .expect("uri")
            .starts_with("otpauth://totp/"),
        "{added}"
    );
    let bad_role = interlock(&[
        "staff",
        "add",
        "--data-dir",
        &dir,
        "--email",
        "x@operator.example",
        "--role",
        "root",
    ]);
    assert!(!bad_role.ok(), "{}", bad_role.text());
    let twice = interlock(&[
        "staff",
        "add",
        "--data-dir",
        &dir,
        "--email",
        "alice@operator.example",
        "--role",
        "approver",
    ]);
    assert!(!twice.ok(), "{}", twice.text());
    for path in files_under(&data) {
        let bytes = fs::read(&path).expect("read a data file");
        assert!(
            !contains(&bytes, b"alice@operator.example"),
            "a staff email in plaintext in {}",
            path.display()
        );
    }
    let staff = interlock(&["staff", "list", "--data-dir", &dir, "--json"]);
    assert!(staff.ok(), "{}", staff.text());
    let staff: Value = serde_json::from_slice(&staff.stdout).expect("json");
    assert_eq!(
        staff["staff"][0]["email"], "alice@operator.example",
        "{staff}"
    );
    assert_eq!(staff["staff"][0]["role"], "support", "{staff}");
    assert_eq!(staff["staff"][0]["passkeys"], 0, "{staff}");
    // A lost authenticator: the operator removes the member's passkeys (registered here
    // straight in the store), one or all; they then sign in with TOTP and register anew.
    {
        let region = interlock_domain::Region::Eu;
        let mut s = interlock_http::server::Settings::new(&data);
        s.regions = vec![region];
        let cfg = interlock_http::server::cell_config(&s, region)
            .await
            .expect("config");
        let cell = interlock_storage::Cell::open(cfg).await.expect("cell");
        let id = interlock_domain::StaffId::parse(&alice).expect("id");
        for name in ["laptop", "phone"] {
            cell.add_staff_passkey(&id, name, b"{}")
                .await
                .expect("passkey");
        }
        cell.close().await;
    }
    let passkeys = || {
        let l = interlock(&["staff", "list", "--data-dir", &dir, "--json"]);
        let l: Value = serde_json::from_slice(&l.stdout).expect("json");
        l["staff"][0]["passkeys"].clone()
    };
    assert_eq!(passkeys(), 2);
    let remove = |extra: &[&str]| {
        let mut a = vec!["staff", "remove-passkeys", "--data-dir", &dir];
        a.extend_from_slice(extra);
        interlock(&a)
    };
    let unknown_pk = format!("pk_{}", "0".repeat(32));
    let r = remove(&["--staff-id", &alice, "--passkey-id", &unknown_pk]);
    assert!(
        !r.ok() && r.text().contains("no such passkey"),
        "{}",
        r.text()
    );
    let r = remove(&["--staff-id", &format!("sf_{}", "0".repeat(32))]);
    assert!(
        !r.ok() && r.text().contains("no staff member"),
        "{}",
        r.text()
    );
    let r = remove(&["--staff-id", "nope"]);
    assert!(!r.ok() && r.text().contains("--staff-id"), "{}", r.text());
    assert_eq!(passkeys(), 2);
    let r = remove(&["--staff-id", &alice]);
    assert!(
        r.ok() && r.text().contains("2 passkey(s) removed"),
        "{}",
        r.text()
    );
    assert_eq!(passkeys(), 0);
    let out = tmp.path().join("alice-laptop");
    let out_s = out.to_str().expect("path").to_owned();

    let issued = interlock(&[
        "staff",
        "device",
        "issue",
        "--staff-id",
        &alice,
        "--name",
        "alice-laptop",
        "--out",
        &out_s,
        "--valid-days",
        "30",
        "--data-dir",
        &dir,
    ]);
    assert!(issued.ok(), "{}", issued.text());
    let cert_path = out.join("device-cert.pem");
    let key_path = out.join("device-key.pem");
    assert_eq!(
        mode_of(&key_path),
        0o600,
        "the device key must be mode 0600"
    );
    let cert_pem = fs::read_to_string(&cert_path).expect("certificate");
    let key_pem = fs::read_to_string(&key_path).expect("key");
    assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    // The CA key beside the master keys is private too; the device key is not kept there.
    let keys = data.join("keys").join("eu");
    assert_eq!(mode_of(&keys.join("device-ca-key.pem")), 0o600);
    for path in files_under(&data) {
        let bytes = fs::read(&path).expect("read a data file");
        assert!(
            !contains(&bytes, key_pem.trim().as_bytes()),
            "the device key is in {}",
            path.display()
        );
    }

    let list = |what: &str| {
        let r = interlock(&["staff", "device", "list", "--data-dir", &dir, "--json"]);
        assert!(r.ok(), "{what}: {}", r.text());
        serde_json::from_slice::<Value>(&r.stdout).expect("json")
    };
    let listed = list("after issue");
    let devices = listed["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1, "{listed}");
    assert_eq!(devices[0]["staff_id"], alice.as_str(), "{listed}");
    assert_eq!(devices[0]["name"], "alice-laptop", "{listed}");
    assert_eq!(devices[0]["status"], "active", "{listed}");
    assert_eq!(devices[0]["region"], "eu", "{listed}");
    assert_eq!(devices[0]["revoked_at"], Value::Null, "{listed}");
    let serial = devices[0]["serial"].as_str().expect("serial").to_owned();

    // The running server knows the device at once.
    let server_cert = fs::read(data.join("tls").join("cert.pem")).expect("server certificate");
    let device_client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&server_cert).expect("root"))
        .identity(
            reqwest::Identity::from_pem(format!("{key_pem}\n{cert_pem}").as_bytes())
                .expect("identity"),
        )
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let get_device = || async {
        let r = device_client
            .get(server.url("/v1/staff/device"))
            .send()
            .await
            .expect("GET /v1/staff/device");
        let status = r.status();
        let body: Value = r.json().await.expect("json body");
        (status, body)
    };
    let (status, body) = get_device().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["serial"], serial.as_str(), "{body}");
    let r = server
        .request(Method::GET, "/v1/staff/device", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["code"], "device_certificate_required");

    // Never over existing files; never for an unknown staff member (and nothing left behind).
    let again = interlock(&[
        "staff",
        "device",
        "issue",
        "--staff-id",
        &alice,
        "--name",
        "alice-laptop",
        "--out",
        &out_s,
        "--data-dir",
        &dir,
    ]);
    assert!(!again.ok(), "{}", again.text());
    assert!(again.text().contains("exists"), "{}", again.text());
    let nobody_out = tmp.path().join("nobody");
    let nobody = interlock(&[
        "staff",
        "device",
        "issue",
        "--staff-id",
        "sf_nobody",
        "--name",
        "x",
        "--out",
        nobody_out.to_str().expect("path"),
        "--data-dir",
        &dir,
    ]);
    assert!(!nobody.ok(), "{}", nobody.text());
    assert!(nobody.text().contains("sf_nobody"), "{}", nobody.text());
    assert!(!nobody_out.join("device-key.pem").exists());
    assert_eq!(
        list("after refusals")["devices"].as_array().map(Vec::len),
        Some(1)
    );

    // Revoked: listed as such, and refused by the running server on the next request.
    let revoked = interlock(&[
        "staff",
        "device",
        "revoke",
        "--serial",
        &serial,
        "--data-dir",
        &dir,
    ]);
    assert!(revoked.ok(), "{}", revoked.text());
    let listed = list("after revoke");
    assert_eq!(listed["devices"][0]["status"], "revoked", "{listed}");
    assert!(listed["devices"][0]["revoked_at"].is_i64(), "{listed}");
    let (status, body) = get_device().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "device_revoked", "{body}");
    let unknown = interlock(&[
        "staff",
        "device",
        "revoke",
        "--serial",
        "00ff",
        "--data-dir",
        &dir,
    ]);
    assert!(!unknown.ok(), "{}", unknown.text());
    server.stop();
    // Disabling the member: once, then refused as already done.
    let off = interlock(&["staff", "disable", "--data-dir", &dir, "--staff-id", &alice]);
    assert!(off.ok(), "{}", off.text());
    let again = interlock(&["staff", "disable", "--data-dir", &dir, "--staff-id", &alice]);
    assert!(!again.ok(), "{}", again.text());
    assert!(
        again.text().contains("already disabled"),
        "{}",
        again.text()
    );
    // All of it is in the region's staff audit log, whose chain verifies.
    let log = interlock(&["staff", "audit-log", "--data-dir", &dir, "--json"]);
    assert!(log.ok(), "{}", log.text());
    let kinds: Vec<String> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(v["staff_id"], alice.as_str(), "{v}");
            v["type"].as_str().expect("type").to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "staff.added",
            "staff.passkey_added",
            "staff.passkey_added",
            "staff.passkey_removed",
            "staff.passkey_removed",
            "staff.device_issued",
            "staff.device_revoked",
            "staff.disabled",
        ],
        "{}",
        log.text()
    );
    let verified = interlock(&["staff", "audit-log", "--data-dir", &dir, "--verify"]);
    assert!(verified.ok(), "{}", verified.text());
    assert!(
        verified.text().contains("verifies (8 entries)"),
        "{}",
        verified.text()
    );
    // The head it prints, kept elsewhere, is checked later; a different one is not there.
    let head = verified
        .text()
        .split("head ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("a head")
        .to_owned();
    assert!(head.starts_with("8:"), "{head}");
    let audit = |expect: &str| {
        interlock(&[
            "staff",
            "audit-log",
            "--data-dir",
            &dir,
            "--verify",
            "--expect",
            expect,
        ])
    };
    let r = audit(&head);
    assert!(r.ok(), "{}", r.text());
    let r = audit(&format!("3:{}", "0".repeat(64)));
    assert!(!r.ok(), "{}", r.text());
    assert!(r.text().contains("no longer holds"), "{}", r.text());
    let r = audit("three");
    assert!(!r.ok() && r.text().contains("--expect"), "{}", r.text());
}

/// `interlock access-review start|report`: a campaign over the region's staff, then its
/// completion and drift as JSON and as text; a second start while one is open is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_review_start_and_report() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &["--regions", "eu"]).await;
    server.stop();
    drop(server);
    let dir = data.to_str().expect("path").to_owned();
    for (email, role) in [
        ("ann@operator.example", "approver"),
        ("sue@operator.example", "support"),
    ] {
        let r = interlock(&[
            "staff",
            "add",
            "--data-dir",
            &dir,
            "--email",
            email,
            "--role",
            role,
        ]);
        assert!(r.ok(), "{}", r.text());
    }
    let none = interlock(&["access-review", "report", "--data-dir", &dir, "--json"]);
    assert!(none.ok(), "{}", none.text());
    let none: Value = serde_json::from_slice(&none.stdout).expect("json");
    assert_eq!(none["regions"][0]["report"], Value::Null, "{none}");

    let started = interlock(&["access-review", "start", "--data-dir", &dir, "--json"]);
    assert!(started.ok(), "{}", started.text());
    let started: Value = serde_json::from_slice(&started.stdout).expect("json");
    assert_eq!(started["started"][0]["items"], 2, "{started}");
    let again = interlock(&["access-review", "start", "--data-dir", &dir]);
    assert!(!again.ok(), "{}", again.text());
    assert!(
        again.text().contains("campaign is open"),
        "{}",
        again.text()
    );

    let report = interlock(&["access-review", "report", "--data-dir", &dir, "--json"]);
    assert!(report.ok(), "{}", report.text());
    let report: Value = serde_json::from_slice(&report.stdout).expect("json");
    let r = &report["regions"][0];
    assert_eq!(r["status"], "open", "{report}");
    assert_eq!(r["report"]["totals"]["items"], 2, "{report}");
    assert_eq!(r["report"]["totals"]["pending"], 2, "{report}");
    assert_eq!(r["report"]["completion"], 0.0, "{report}");
    let text = interlock(&["access-review", "report", "--data-dir", &dir]);
    assert!(text.ok(), "{}", text.text());
    let out = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(out.contains("completion: 0.0%"), "{out}");
    assert!(out.contains("drift from: (first campaign)"), "{out}");
    let bad = interlock(&[
        "access-review",
        "report",
        "--data-dir",
        &dir,
        "--campaign",
        "nonsense",
    ]);
    assert!(!bad.ok(), "{}", bad.text());
}
