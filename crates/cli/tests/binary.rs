//! End-to-end tests of the `interlock` binary as an operator runs it: a child process with its
//! own data folder, logs captured, talked to over HTTPS.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_interlock");

fn pg_base() -> String {
    std::env::var("INTERLOCK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    http: reqwest::Client,
    operator: String,
}

impl Server {
    async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let port = free_port();
        let log = data_dir.with_extension(format!("{port}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("INTERLOCK_LOG", "debug")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            port,
            log,
            http: reqwest::Client::new(),
            operator: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "server exited with {status}: {}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                );
            }
            let cert = data_dir.join("tls/cert.pem");
            if let Ok(pem) = std::fs::read(&cert)
                && let Ok(c) = reqwest::Certificate::from_pem(&pem)
            {
                server.http = reqwest::Client::builder()
                    .add_root_certificate(c)
                    .build()
                    .unwrap();
                if let Ok(r) = server.http.get(server.url("/healthz")).send().await
                    && r.status() == 200
                {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.operator = std::fs::read_to_string(data_dir.join("operator-token"))
            .unwrap()
            .trim()
            .to_owned();
        server
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, v) = self
            .send(reqwest::Method::POST, path, token, Some(body))
            .await;
        assert_eq!(status, 201, "POST {path}: {v}");
        v
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, v) = self.send(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// Stop with SIGTERM semantics (the server drains and closes its stores) and return the log.
    fn stop(mut self) -> Vec<u8> {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read(&self.log).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively, with its bytes.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Write the marker into every personal and content field, read it all back intact.
async fn write_marker_everywhere(s: &Server, region: &str, marker: &str) -> String {
    let ws = s
        .post(
            "/v1/operator/workspaces",
            &s.operator,
            json!({"name": "Marker Co", "region": region}),
        )
        .await;
    let token = ws["api_token"].as_str().unwrap().to_owned();
    let email = format!("{marker}@example.com");
    let contact = s
        .post(
            "/v1/contacts",
            &token,
            json!({"role": "user", "email": email, "name": marker, "external_id": marker,
                   "custom_attributes": {"note": marker, marker: 1}}),
        )
        .await;
    let cid = contact["id"].as_str().unwrap().to_owned();
    let conv = s
        .post(
            "/v1/conversations",
            &token,
            json!({"contact_id": cid, "body": format!("first {marker}")}),
        )
        .await;
    let conv_id = conv["id"].as_str().unwrap().to_owned();
    s.post(
        &format!("/v1/conversations/{conv_id}/parts"),
        &token,
        json!({"body": format!("reply {marker}"), "author": {"type": "teammate", "id": format!("tm_{}", "1".repeat(32))}}),
    )
    .await;
    s.post(
        "/v1/events",
        &token,
        json!({"contact_id": cid, "name": marker, "metadata": {"m": marker}}),
    )
    .await;
    let up = s
        .http
        .post(s.url(&format!(
            "/v1/conversations/{conv_id}/attachments?filename={marker}.txt"
        )))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(format!("attachment bytes {marker}"))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201);
    let att: Value = up.json().await.unwrap();

    // Everything comes back intact.
    let got = s.get(&format!("/v1/contacts/{cid}"), &token).await;
    assert_eq!(got["email"], email.as_str());
    assert_eq!(got["name"], marker);
    assert_eq!(got["custom_attributes"]["note"], marker);
    let found = s
        .get(
            &format!("/v1/contacts?email={marker}%40example.com"),
            &token,
        )
        .await;
    assert_eq!(found["data"][0]["id"], cid.as_str());
    let c = s.get(&format!("/v1/conversations/{conv_id}"), &token).await;
    assert_eq!(c["parts"][1]["body"], format!("reply {marker}").as_str());
    let ev = s.get(&format!("/v1/events?contact_id={cid}"), &token).await;
    assert_eq!(ev["data"][0]["metadata"]["m"], marker);
    let bytes = s
        .http
        .get(s.url(&format!(
            "/v1/conversations/{conv_id}/attachments/{}",
            att["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        bytes.as_ref(),
        format!("attachment bytes {marker}").as_bytes()
    );
    ws["id"].as_str().unwrap().to_owned()
}

fn new_marker() -> String {
    format!("mk{}", &uuid_like()[..24])
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:032x}", t ^ (std::process::id() as u128) << 64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_never_reaches_disk_or_logs_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let marker = new_marker();
    let server = Server::start(&data, &[]).await;
    let ws_id = write_marker_everywhere(&server, "eu", &marker).await;
    let log = server.stop();
    let files = all_files(&data);
    // The scan can see what is stored in clear (ids), so a miss below means something.
    assert!(
        files.iter().any(|(_, b)| contains(b, ws_id.as_bytes())),
        "the scan finds stored ids"
    );
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, marker.as_bytes()),
            "plaintext marker found in {}",
            path.display()
        );
    }
    assert!(
        contains(&log, b"interlock is serving HTTPS"),
        "log captured"
    );
    assert!(
        !contains(&log, marker.as_bytes()),
        "marker found in the log"
    );
    assert!(!contains(&log, b"ilk_"), "an API token reached the log");
    assert!(
        !contains(&log, b"ilo_"),
        "the operator token reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_never_reaches_disk_logs_or_pg_dump_postgres() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let marker = new_marker();
    let name = format!("e2e_{}", &uuid_like()[..16]);
    let base = pg_base();
    let (server_url, _) = base.rsplit_once('/').unwrap();
    let url = format!("{server_url}/{name}");
    let server = Server::start(&data, &["--regions", "eu", "--database", &url]).await;
    let ws_id = write_marker_everywhere(&server, "eu", &marker).await;
    let log = server.stop();
    let db = format!("{name}_eu");
    let dump = Command::new("pg_dump")
        .args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", &db])
        .output()
        .expect("pg_dump must be installed (apt-get install postgresql-client)");
    let _ = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
        .arg(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
        .status();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(
        contains(&dump.stdout, ws_id.as_bytes()),
        "the dump holds the data"
    );
    assert!(
        !contains(&dump.stdout, marker.as_bytes()),
        "marker found in pg_dump"
    );
    for (path, bytes) in all_files(&data) {
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "plaintext marker found in {}",
            path.display()
        );
    }
    assert!(
        !contains(&log, marker.as_bytes()),
        "marker found in the log"
    );
}

fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("timeout")
        .arg("10")
        .arg("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let negotiated = text
        .lines()
        .any(|l| l.contains("Cipher is ") && !l.contains("(NONE)"));
    (out.status.success() && negotiated, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_policy_matches_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &["--regions", "us"]).await;
    let refused: [&[&str]; 4] = [
        &["-tls1_1"],
        &["-tls1"],
        &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384",
        ],
    ];
    for args in refused {
        let (ok, text) = s_client(server.port, args);
        assert!(!ok, "openssl {args:?} should fail:\n{text}");
    }
    let accepted: [&[&str]; 3] = [
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
        ],
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
        ],
        &["-tls1_3"],
    ];
    for args in accepted {
        let (ok, text) = s_client(server.port, args);
        assert!(ok, "openssl {args:?} should succeed:\n{text}");
    }

    // Plain HTTP gets no HTTP answer.
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/"), "plain HTTP was answered");

    // HSTS on every response, errors included.
    for path in ["/healthz", "/v1/does-not-exist", "/v1/contacts"] {
        let r = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(
            r.headers()["strict-transport-security"],
            "max-age=63072000; includeSubDomains",
            "{path}"
        );
    }
    server.stop();
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_retire_through_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keys = tmp.path().join("keys");
    let d = data.to_str().unwrap();
    let k = keys.to_str().unwrap();
    let server = Server::start(&data, &["--regions", "eu", "--key-dir", k]).await;
    assert!(!data.join("keys").exists(), "keys live only in --key-dir");
    let ws = server
        .post(
            "/v1/operator/workspaces",
            &server.operator,
            json!({"name": "K", "region": "eu"}),
        )
        .await;
    let token = ws["api_token"].as_str().unwrap().to_owned();
    let c = server
        .post(
            "/v1/contacts",
            &token,
            json!({"role": "visitor", "name": "Kept"}),
        )
        .await;
    let cid = c["id"].as_str().unwrap().to_owned();
    server.stop();

    let (ok, out) = run(&[
        "keys",
        "rotate",
        "--region",
        "eu",
        "--data-dir",
        d,
        "--key-dir",
        k,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("v2"), "{out}");
    let mode = std::fs::metadata(keys.join("eu/master-v2.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (ok, out) = run(&[
        "keys",
        "list",
        "--region",
        "eu",
        "--data-dir",
        d,
        "--key-dir",
        k,
    ]);
    assert!(
        ok && out.contains("v1 wraps 0") && out.contains("v2 wraps 1"),
        "{out}"
    );

    let server = Server::start(&data, &["--regions", "eu", "--key-dir", k]).await;
    assert_eq!(
        server.get(&format!("/v1/contacts/{cid}"), &token).await["name"],
        "Kept"
    );
    server.stop();

    let (ok, out) = run(&[
        "keys",
        "retire",
        "--region",
        "eu",
        "--version",
        "2",
        "--data-dir",
        d,
        "--key-dir",
        k,
    ]);
    assert!(!ok, "the active key must not be retired: {out}");
    let (ok, out) = run(&[
        "keys",
        "retire",
        "--region",
        "eu",
        "--version",
        "1",
        "--data-dir",
        d,
        "--key-dir",
        k,
    ]);
    assert!(ok, "{out}");
    assert!(!keys.join("eu/master-v1.key").exists());

    let server = Server::start(&data, &["--regions", "eu", "--key-dir", k]).await;
    assert_eq!(
        server.get(&format!("/v1/contacts/{cid}"), &token).await["name"],
        "Kept"
    );
    server.stop();

    // Without the key folder the data cannot be opened: the keys are not in the data folder.
    let (ok, _) = run(&["keys", "list", "--region", "eu", "--data-dir", d]);
    assert!(!ok);
}

#[test]
fn bad_configuration_fails_fast() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    let d = d.to_str().unwrap();
    let (ok, out) = run(&[
        "serve",
        "--data-dir",
        d,
        "--database",
        "mysql://x/y",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok && out.contains("postgres://"), "{out}");
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "no_such_key = 1\n").unwrap();
    let (ok, out) = run(&[
        "serve",
        "--data-dir",
        d,
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok && out.contains("no_such_key"), "{out}");
    std::fs::write(&cfg, "[region_urls]\nus = \"http://plain.example\"\n").unwrap();
    let (ok, out) = run(&[
        "serve",
        "--data-dir",
        d,
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok && out.contains("https://"), "{out}");
    let (ok, out) = run(&["serve", "--data-dir", d, "--regions", "mars"]);
    assert!(!ok, "{out}");
}
