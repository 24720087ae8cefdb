//! Test harness: the real server (TLS, router, stores) on port 0 with a fresh data folder,
//! against SQLite or a fresh set of PostgreSQL databases. `store_tests!` runs a test body
//! against both stores.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::disallowed_methods
)]

use std::path::PathBuf;

use interlock_domain::Region;
use interlock_http::server::{Running, Settings, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

pub fn pg_base() -> String {
    std::env::var("INTERLOCK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub operator: String,
    pub running: Option<Running>,
    pub settings: Settings,
    pub dir: tempfile::TempDir,
    pub pg_name: Option<String>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn spawn(store: Store) -> Self {
        Self::spawn_with(store, |_| {}).await
    }

    pub async fn spawn_with(store: Store, tweak: impl FnOnce(&mut Settings)) -> Self {
        interlock_http::tls::install_provider();
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(dir.path().join("data"));
        let mut pg_name = None;
        if store == Store::Postgres {
            let name = format!("it_{}", uuid::Uuid::new_v4().simple());
            settings.database =
                Some(interlock_storage::db::with_database(&pg_base(), &name).unwrap());
            pg_name = Some(name);
        }
        tweak(&mut settings);
        let mut app = Self {
            base: String::new(),
            http: reqwest::Client::new(),
            operator: String::new(),
            running: None,
            settings,
            dir,
            pg_name,
        };
        app.start().await;
        app
    }

    /// (Re)start the server on the same data folder and databases.
    pub async fn start(&mut self) {
        interlock_http::tls::install_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let running = start(&self.settings, listener)
            .await
            .expect("server starts");
        let cert = std::fs::read(&running.cert_path).unwrap();
        self.http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
            .build()
            .unwrap();
        self.base = format!("https://localhost:{}", running.addr.port());
        self.operator = std::fs::read_to_string(self.settings.data_dir.join("operator-token"))
            .unwrap()
            .trim()
            .to_owned();
        self.running = Some(running);
    }

    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        self.start().await;
    }

    pub fn cell(&self, region: Region) -> std::sync::Arc<interlock_storage::Cell> {
        self.running.as_ref().unwrap().state.cells[&region].clone()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.settings.data_dir.clone()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// Create a workspace; returns (id, api token).
    pub async fn workspace(&self, region: &str) -> (String, String) {
        let r = self
            .post(
                "/v1/operator/workspaces",
                &self.operator,
                json!({"name": "Acme", "region": region}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["api_token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn contact(&self, token: &str, body: Value) -> String {
        let r = self.post("/v1/contacts", token, body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Shut down and drop this test's PostgreSQL databases.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        if let Some(name) = &self.pg_name {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&pg_base()).await.unwrap();
            for region in Region::ALL {
                let ddl = format!(
                    "DROP DATABASE IF EXISTS \"{name}_{}\" WITH (FORCE)",
                    region.as_str()
                );
                sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(ddl))
                    .await
                    .unwrap();
            }
        }
    }
}

/// Assert a response is problem+json with the given status and code.
pub fn assert_problem(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(
        r.headers["content-type"], "application/problem+json",
        "{:?}",
        r.body
    );
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    assert_eq!(r.body["status"], status);
}

#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Store::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Store::Postgres).await;
                }
            )*
        }
    };
}

// ------------------------------------------------------------------ teammates

pub const PASSWORD: &str = "violet-Harbor-91-lantern";

/// A signed-in teammate: the cookie and CSRF token.
#[derive(Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// A JSON string value as an owned String (panics otherwise: tests only).
pub fn text(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

impl TestApp {
    pub async fn anon(&self, method: Method, path: &str, body: Value) -> Resp {
        self.call(method, path, None, Some(body)).await
    }

    pub async fn as_session(
        &self,
        sess: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> Resp {
        self.with_client(&self.http, sess, method, path, body, csrf)
            .await
    }

    pub async fn with_client(
        &self,
        client: &reqwest::Client,
        sess: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> Resp {
        let mut req = client
            .request(method, format!("{}{}", self.base, path))
            .header("cookie", format!("interlock_session={}", sess.cookie));
        if csrf {
            req = req.header("x-csrf-token", &sess.csrf);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// Invite a teammate with the given role and accept the invitation; returns the id.
    pub async fn teammate(&self, token: &str, email: &str, role: &str) -> String {
        let r = self
            .post(
                "/v1/teammates",
                token,
                json!({"email": email, "name": "Pat", "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let inv = text(&r.body["invitation_token"]);
        let a = self
            .anon(
                Method::POST,
                "/v1/auth/invitations/accept",
                json!({"token": inv, "password": PASSWORD}),
            )
            .await;
        assert_eq!(a.status, 204, "{:?}", a.body);
        text(&r.body["teammate"]["id"])
    }

    pub async fn login(&self, ws: &str, email: &str, otp: Option<&str>) -> Resp {
        let mut body = json!({"workspace_id": ws, "email": email, "password": PASSWORD});
        if let Some(o) = otp {
            body["otp"] = json!(o);
        }
        self.anon(Method::POST, "/v1/auth/login", body).await
    }

    /// Subscribe the workspace of `token` to `event` at a plain-http address nothing listens
    /// on (the test sets `outbound.allow_insecure_http`), after registering its host as a
    /// sub-processor of the EU region, as every outbound destination must be.
    pub async fn subscribe_unreachable(&self, token: &str, event: &str) {
        let sp = self
            .post(
                "/v1/operator/subprocessors",
                &self.operator,
                json!({"name": "Pager", "purpose": "Alerts", "data_categories": ["system.operations"],
                    "regions": ["eu"], "hosts": ["127.0.0.1"], "deletion_notice_url": "http://127.0.0.1:9/erasure"}),
            )
            .await;
        assert_eq!(sp.status, 201, "{:?}", sp.body);
        let hook = self
            .post(
                "/v1/webhooks",
                token,
                json!({"url": "http://127.0.0.1:9/hook", "events": [event]}),
            )
            .await;
        assert_eq!(hook.status, 201, "{:?}", hook.body);
    }

    /// Add an EU staff member with a registered device: their id, a client presenting the
    /// device certificate, and their TOTP secret.
    pub async fn staff_with_device(
        &self,
        email: &str,
        role: interlock_domain::StaffRole,
    ) -> (String, reqwest::Client, interlock_crypto::totp::TotpSecret) {
        let cell = self.cell(Region::Eu);
        let (member, secret) = cell
            .add_staff(&interlock_domain::Email::parse(email).unwrap(), role)
            .await
            .unwrap();
        let device =
            interlock_crypto::DeviceCa::open_or_create(&self.settings.key_dir(), Region::Eu)
                .unwrap()
                .issue(member.id.as_str(), "laptop", 30)
                .unwrap();
        cell.register_staff_device(&device).await.unwrap();
        let client = self.client_with_certificate(&device.cert_pem, &device.key_pem);
        (member.id.to_string(), client, secret)
    }

    pub async fn sign_in(&self, ws: &str, email: &str) -> Session {
        let r = self.login(ws, email, None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        session_of(&r)
    }
}

pub fn session_of(r: &Resp) -> Session {
    let cookie = r.headers["set-cookie"].to_str().unwrap().to_owned();
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("interlock_session=")
        .unwrap()
        .to_owned();
    Session {
        cookie: value,
        csrf: text(&r.body["csrf_token"]),
    }
}

// ------------------------------------------------------------------ staff devices

impl TestApp {
    /// A client that trusts the server's certificate and presents `cert_pem` (with its key
    /// `key_pem`) as its TLS client certificate.
    pub fn client_with_certificate(&self, cert_pem: &str, key_pem: &str) -> reqwest::Client {
        let server_cert = std::fs::read(&self.running.as_ref().unwrap().cert_path).unwrap();
        let identity =
            reqwest::Identity::from_pem(format!("{key_pem}\n{cert_pem}").as_bytes()).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&server_cert).unwrap())
            .identity(identity)
            .build()
            .unwrap()
    }

    /// `GET path` through `client`, with no token.
    pub async fn get_with(&self, client: &reqwest::Client, path: &str) -> Resp {
        let resp = client
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}

impl TestApp {
    /// A request through `client` (e.g. one presenting a device certificate), with an optional
    /// bearer token and JSON body.
    pub async fn send_with(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = client.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}
