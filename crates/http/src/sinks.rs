//! Activity-log sinks: hand entries and signed checkpoints to a party outside the operator's
//! control (a SIEM, a log shipper's file), so tampering with the store cannot go unnoticed.
//!
//! A [`Sink`] is built from a [`SinkConfig`] and takes batches of NDJSON (one JSON value per
//! line, each line ending in `\n`):
//! - `file`: appended to a local file (created `0600`), then `sync_data`: a batch that was
//!   delivered is on disk. The file is opened anew for each batch, so rotation by renaming
//!   (logrotate's `create` mode) works. A batch that failed half-way leaves a partial line; the
//!   next batch starts on a fresh line, so one bad line never swallows a good one.
//! - `http`: POSTed with `Content-Type: application/x-ndjson`; only a 2xx answer counts as
//!   delivered. HTTPS only (plain `http://` only to a loopback address), rustls with the
//!   aws-lc-rs provider and the server's cipher-suite policy ([`crate::tls::provider`]),
//!   trusting the operating system's roots plus an optional `ca_file`. No redirects are
//!   followed (the token must not travel elsewhere) and no proxy from the environment is used.
//!   The bearer token is read from a file, sent as a sensitive header and never printed; errors
//!   carry the status code or the transport failure, never the token, the URL's query or the
//!   response body.
//!
//! Formats: [`entry_jsonl`] (the entry with its position in the chain) and [`entry_ocsf`]
//! (OCSF 1.1.0 API Activity, class 6003); checkpoints always as [`checkpoint_jsonl`].
//!
//! OCSF `activity_id` is derived from the last word of the event type name
//! ([`ocsf_activity_id`]):
//!
//! | last word of the type name                              | activity_id |
//! |---------------------------------------------------------|-------------|
//! | `created`, `added`, `invited`, `joined`                 | 1 Create    |
//! | `exported` (data and the log itself read out)           | 2 Read      |
//! | `updated`, `changed`, `enabled`                         | 3 Update    |
//! | `deleted`, `removed`, `revoked`, `disabled`, `cut`      | 4 Delete    |
//! | anything else (sign-in, sign-out, `used`, `denied`, …)  | 99 Other    |
//!
//! With 99, `activity_name` holds the event type name itself, as OCSF asks for "Other".

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use interlock_domain::{ActivityEntry, ActivityType, ActorType};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Url, redirect};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

/// Default time one HTTP delivery may take, in seconds.
pub const DEFAULT_TIMEOUT_S: u64 = 10;
/// Longest allowed `timeout_s`.
pub const MAX_TIMEOUT_S: u64 = 300;
/// The OCSF schema version [`entry_ocsf`] writes.
pub const OCSF_VERSION: &str = "1.1.0";

/// Where a sink delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    File,
    Http,
}

/// How entries are written (checkpoints are always JSON lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkFormat {
    /// [`entry_jsonl`]: the entry as Interlock stores it, with workspace, sequence and hash.
    #[default]
    Jsonl,
    /// [`entry_ocsf`]: OCSF 1.1.0 API Activity (class 6003).
    Ocsf,
}

impl SinkFormat {
    /// One entry as a line in this format.
    pub fn entry_line(
        self,
        workspace_id: &str,
        seq: u64,
        hash_hex: &str,
        entry: &ActivityEntry,
    ) -> Vec<u8> {
        match self {
            SinkFormat::Jsonl => entry_jsonl(workspace_id, seq, hash_hex, entry),
            SinkFormat::Ocsf => entry_ocsf(workspace_id, seq, hash_hex, entry),
        }
    }
}

fn default_timeout_s() -> u64 {
    DEFAULT_TIMEOUT_S
}

/// One sink as configured (a `[[sinks]]` table in TOML):
///
/// ```toml
/// [[sinks]]
/// kind = "http"
/// url = "https://siem.example.com/ingest"
/// format = "ocsf"
/// bearer_token_file = "/etc/interlock/siem.token"
/// ca_file = "/etc/interlock/siem-ca.pem"
/// timeout_s = 10
///
/// [[sinks]]
/// kind = "file"
/// path = "/var/log/interlock/activity.jsonl"
/// ```
///
/// `Debug` shows the URL without credentials or query; the token file's path is shown, its
/// content is never read here.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// File sinks: the absolute path of the file to append to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// HTTP sinks: where batches are POSTed (`https://`; `http://` only to a loopback host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How entries are written (`jsonl`, the default, or `ocsf`).
    #[serde(default)]
    pub format: SinkFormat,
    /// HTTP sinks: a PEM bundle of roots trusted in addition to the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// HTTP sinks: a file whose content (trimmed) is sent as `Authorization: Bearer …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP sinks: the time one delivery may take, in seconds (default 10, at most 300).
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkConfig")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("format", &self.format)
            .field("ca_file", &self.ca_file)
            .field("bearer_token_file", &self.bearer_token_file)
            .field("timeout_s", &self.timeout_s)
            .finish()
    }
}

/// Why a sink could not be configured or a batch not delivered. Messages never contain the
/// bearer token, the URL's credentials or query, or a response body.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink configuration: {0}")]
    Config(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} holds no usable PEM certificate")]
    Pem { path: String },
    #[error("sink TLS configuration: {0}")]
    Tls(String),
    #[error("file sink {path}: {source}")]
    File {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("http sink {sink} answered {status}")]
    Status { sink: String, status: u16 },
    #[error("http sink {sink}: {reason}")]
    Transport { sink: String, reason: String },
    #[error("a batch must be whole lines, each ending in a newline")]
    Batch,
}

fn config_err(msg: impl Into<String>) -> SinkError {
    SinkError::Config(msg.into())
}

/// Whether `host` is loopback: 127.0.0.0/8, ::1 or `localhost`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // IPv6 hosts come bracketed (`[::1]`).
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// `scheme://host[:port]/path`, without credentials, query or fragment: safe for logs.
fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(u) => {
            let mut out = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
            if let Some(port) = u.port() {
                out.push_str(&format!(":{port}"));
            }
            out.push_str(u.path());
            if u.query().is_some() {
                out.push_str("?<redacted>");
            }
            out
        }
        Err(_) => "<unparsable url>".to_owned(),
    }
}

impl SinkConfig {
    /// Check the configuration without touching the file system or the network.
    pub fn validate(&self) -> Result<(), SinkError> {
        if self.timeout_s == 0 || self.timeout_s > MAX_TIMEOUT_S {
            return Err(config_err(format!(
                "timeout_s must be between 1 and {MAX_TIMEOUT_S}"
            )));
        }
        match self.kind {
            SinkKind::File => {
                let Some(path) = &self.path else {
                    return Err(config_err("a file sink needs `path`"));
                };
                if !path.is_absolute() {
                    return Err(config_err(format!(
                        "file sink path {} must be absolute",
                        path.display()
                    )));
                }
                for (set, key) in [
                    (self.url.is_some(), "url"),
                    (self.ca_file.is_some(), "ca_file"),
                    (self.bearer_token_file.is_some(), "bearer_token_file"),
                ] {
                    if set {
                        return Err(config_err(format!(
                            "`{key}` is for http sinks, not file sinks"
                        )));
                    }
                }
                Ok(())
            }
            SinkKind::Http => {
                if self.path.is_some() {
                    return Err(config_err("`path` is for file sinks, not http sinks"));
                }
                let Some(raw) = &self.url else {
                    return Err(config_err("an http sink needs `url`"));
                };
                self.parsed_url(raw).map(|_| ())
            }
        }
    }

    fn parsed_url(&self, raw: &str) -> Result<Url, SinkError> {
        // The parse error names what is wrong, never the input.
        let url = Url::parse(raw)
            .map_err(|e| config_err(format!("http sink url is not a valid URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(config_err(
                "http sink url must not carry credentials; use bearer_token_file",
            ));
        }
        if url.host().is_none() {
            return Err(config_err("http sink url needs a host"));
        }
        match url.scheme() {
            "https" => Ok(url),
            "http" if is_loopback(&url) => Ok(url),
            "http" => Err(config_err(format!(
                "http sink url must use https:// (plain http:// is allowed only to a loopback \
                 host: 127.0.0.0/8, ::1, localhost), not {}",
                redact_url(raw)
            ))),
            other => Err(config_err(format!(
                "http sink url must use https://, not {other}://"
            ))),
        }
    }
}

/// A configured destination for activity-log batches.
pub struct Sink {
    format: SinkFormat,
    target: Target,
}

enum Target {
    File {
        path: PathBuf,
        /// Batches of this process are appended one at a time, never interleaved.
        lock: tokio::sync::Mutex<()>,
    },
    Http {
        client: reqwest::Client,
        url: Url,
        /// `Bearer …`, marked sensitive.
        authorization: Option<HeaderValue>,
        /// The URL without query, for messages.
        label: String,
    },
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Sink");
        d.field("format", &self.format);
        match &self.target {
            Target::File { path, .. } => d.field("file", path),
            Target::Http {
                label,
                authorization,
                ..
            } => d.field("url", label).field(
                "authorization",
                &authorization.as_ref().map(|_| "<redacted>"),
            ),
        };
        d.finish()
    }
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> SinkError + '_ {
    move |source| SinkError::Read {
        path: path.display().to_string(),
        source,
    }
}

fn file_err(path: &Path) -> impl FnOnce(io::Error) -> SinkError + '_ {
    move |source| SinkError::File {
        path: path.display().to_string(),
        source,
    }
}

impl Sink {
    /// Validate `cfg` and prepare the sink: a file sink's file is created (`0600`) if missing,
    /// so a wrong folder or permission fails now; an http sink's client is built with its roots
    /// and its token read.
    pub fn open(cfg: &SinkConfig) -> Result<Sink, SinkError> {
        cfg.validate()?;
        let target = match cfg.kind {
            SinkKind::File => {
                let path = cfg.path.clone().ok_or_else(|| config_err("missing path"))?;
                append(&path, &[])?;
                Target::File {
                    path,
                    lock: tokio::sync::Mutex::new(()),
                }
            }
            SinkKind::Http => {
                let raw = cfg
                    .url
                    .as_deref()
                    .ok_or_else(|| config_err("missing url"))?;
                let url = cfg.parsed_url(raw)?;
                let https = url.scheme() == "https";
                let client = outbound_client(
                    https,
                    cfg.ca_file.as_deref(),
                    Duration::from_secs(cfg.timeout_s),
                )?;
                let authorization = match &cfg.bearer_token_file {
                    Some(p) => Some(bearer(p)?),
                    None => None,
                };
                Target::Http {
                    client,
                    url,
                    authorization,
                    label: redact_url(raw),
                }
            }
        };
        Ok(Sink {
            format: cfg.format,
            target,
        })
    }

    /// How this sink wants entries written.
    pub fn format(&self) -> SinkFormat {
        self.format
    }

    /// One entry as a line in this sink's format.
    pub fn entry_line(
        &self,
        workspace_id: &str,
        seq: u64,
        hash_hex: &str,
        entry: &ActivityEntry,
    ) -> Vec<u8> {
        self.format.entry_line(workspace_id, seq, hash_hex, entry)
    }

    /// An http sink's host in the sub-processor registry's normal form (the outbound gate
    /// checks it); `None` for a file sink.
    pub fn http_host(&self) -> Option<String> {
        match &self.target {
            Target::File { .. } => None,
            Target::Http { url, .. } => url
                .host_str()
                .map(interlock_storage::cell::normalize_url_host),
        }
    }

    /// The file path or the URL without query: safe for logs.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::File { path, .. } => path.display().to_string(),
            Target::Http { label, .. } => label.clone(),
        }
    }

    /// Deliver one batch of NDJSON lines. `Ok` means the batch is on disk (file) or the
    /// server answered 2xx (http). An empty batch is delivered trivially.
    pub async fn deliver(&self, ndjson: &[u8]) -> Result<(), SinkError> {
        if ndjson.is_empty() {
            return Ok(());
        }
        if !ndjson.ends_with(b"\n") {
            return Err(SinkError::Batch);
        }
        match &self.target {
            Target::File { path, lock } => {
                let _one_at_a_time = lock.lock().await;
                let path = path.clone();
                let batch = ndjson.to_vec();
                tokio::task::spawn_blocking(move || append(&path, &batch))
                    .await
                    .map_err(|e| SinkError::File {
                        path: self.describe(),
                        source: io::Error::other(e.to_string()),
                    })?
            }
            Target::Http {
                client,
                url,
                authorization,
                label,
            } => {
                let mut req = client
                    .post(url.clone())
                    .header(
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/x-ndjson"),
                    )
                    .body(ndjson.to_vec());
                if let Some(auth) = authorization {
                    req = req.header(AUTHORIZATION, auth.clone());
                }
                let resp = req.send().await.map_err(|e| SinkError::Transport {
                    sink: label.clone(),
                    reason: transport_reason(e),
                })?;
                let status = resp.status();
                // The body is not read: it is not ours to log, and a 2xx is all we need.
                drop(resp);
                if status.is_success() {
                    Ok(())
                } else {
                    Err(SinkError::Status {
                        sink: label.clone(),
                        status: status.as_u16(),
                    })
                }
            }
        }
    }
}

/// The HTTP client of every outbound request (sinks, webhooks, erasure notices): rustls with
/// the aws-lc-rs provider and the server's suite policy, the system's roots plus `ca_file`,
/// `https_only` unless `https` is false, the given timeout for connecting and for the whole
/// request, no redirects followed, no proxy from the environment.
pub(crate) fn outbound_client(
    https: bool,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::Client, SinkError> {
    let tls = match client_tls(true, ca_file) {
        Ok(tls) => tls,
        // Plain http allowed and no roots on this system: http still works.
        Err(_) if !https => client_tls(false, ca_file)?,
        Err(e) => return Err(e),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(https)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("interlock/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SinkError::Tls(e.without_url().to_string()))
}

/// A transport failure as text: reqwest's error without the URL, with its causes.
fn transport_reason(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Where operating systems keep their trusted roots as one PEM bundle.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The rustls client configuration: aws-lc-rs with the server's suite policy, TLS 1.3 and
/// 1.2, the system's roots (for https) plus those of `ca_file`.
fn client_tls(https: bool, ca_file: Option<&Path>) -> Result<rustls::ClientConfig, SinkError> {
    let mut roots = RootCertStore::empty();
    if https {
        // The operating system's bundle (Debian/Ubuntu, RHEL, Alpine/macOS layouts), read as
        // PEM. Unreadable certificates are skipped; an empty store is refused below.
        if let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.exists())
            && let Ok(iter) = CertificateDer::pem_file_iter(bundle)
        {
            roots.add_parsable_certificates(iter.filter_map(Result::ok));
        }
    }
    if let Some(path) = ca_file {
        let pem = |_| SinkError::Pem {
            path: path.display().to_string(),
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| match e {
                rustls::pki_types::pem::Error::Io(source) => SinkError::Read {
                    path: path.display().to_string(),
                    source,
                },
                other => pem(other),
            })?
            .collect::<Result<_, _>>()
            .map_err(pem)?;
        if certs.is_empty() {
            return Err(SinkError::Pem {
                path: path.display().to_string(),
            });
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| SinkError::Tls(format!("{}: {e}", path.display())))?;
        }
    }
    if https && roots.is_empty() {
        return Err(SinkError::Tls(
            "no trusted roots: the system store is empty or unreadable and no ca_file is set"
                .to_owned(),
        ));
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(crate::tls::provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| SinkError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// `Bearer <file content, trimmed>` as a sensitive header value.
fn bearer(path: &Path) -> Result<HeaderValue, SinkError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(read_err(path))?);
    let token = text.trim();
    if token.is_empty() {
        return Err(config_err(format!(
            "bearer_token_file {} is empty",
            path.display()
        )));
    }
    let header = Zeroizing::new(format!("Bearer {token}"));
    let mut value = HeaderValue::from_str(&header).map_err(|_| {
        config_err(format!(
            "bearer_token_file {} holds characters not allowed in an HTTP header",
            path.display()
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Append `batch` to `path` and `sync_data`. A new file is created `0600` and its folder
/// synced, so the file itself survives a crash. If the file does not end in a newline (a
/// batch failed half-way), a newline is written first.
fn append(path: &Path, batch: &[u8]) -> Result<(), SinkError> {
    let err = file_err(path);
    let (mut file, created) = match OpenOptions::new().read(true).append(true).open(path) {
        Ok(f) => (f, false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let f = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
                .map_err(file_err(path))?;
            (f, true)
        }
        Err(e) => return Err(err(e)),
    };
    let result = (|| -> io::Result<()> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        if !batch.is_empty() {
            let len = meta.len();
            if len > 0 {
                let mut last = [0u8; 1];
                file.read_exact_at(&mut last, len - 1)?;
                if last[0] != b'\n' {
                    file.write_all(b"\n")?;
                }
            }
            file.write_all(batch)?;
        }
        file.sync_data()?;
        if created && let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(file_err(path))
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds, e.g.
/// `2023-11-14T22:13:20.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Days to civil date (H. Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// One entry as a JSON line: the entry's own fields (`id`, `type`, `created_at_ms`, `actor`,
/// `target`, `metadata`) plus `workspace_id`, `seq`, `hash` (hex of the chain hash) and
/// `created_at` (RFC 3339 UTC, milliseconds). Ends with `\n`.
pub fn entry_jsonl(workspace_id: &str, seq: u64, hash_hex: &str, entry: &ActivityEntry) -> Vec<u8> {
    let mut obj = match serde_json::to_value(entry) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    obj.insert("workspace_id".into(), workspace_id.into());
    obj.insert("seq".into(), seq.into());
    obj.insert("hash".into(), hash_hex.into());
    obj.insert("created_at".into(), rfc3339_ms(entry.created_at_ms).into());
    line(&Value::Object(obj))
}

/// A signed checkpoint (or any JSON value) as one compact line ending with `\n`.
pub fn checkpoint_jsonl(json: &Value) -> Vec<u8> {
    line(json)
}

fn line(v: &Value) -> Vec<u8> {
    // Compact JSON never contains a raw newline: strings escape it.
    let mut out = v.to_string().into_bytes();
    out.push(b'\n');
    out
}

/// OCSF API Activity `activity_id` for an event type name (see the module's table).
pub fn ocsf_activity_id(event_type: &str) -> u8 {
    let last = event_type.rsplit(['.', '_']).next().unwrap_or(event_type);
    match last {
        "created" | "added" | "invited" | "joined" => 1,
        "exported" => 2,
        "updated" | "changed" | "enabled" => 3,
        "deleted" | "removed" | "revoked" | "disabled" | "cut" => 4,
        _ => 99,
    }
}

/// OCSF `status_id`: 2 (Failure) for refused or failed attempts (`auth.sign_in.failed`,
/// `access.denied`, any `….failed` / `….denied`), otherwise 1 (Success).
pub fn ocsf_status_id(event_type: &str) -> u8 {
    if event_type.ends_with(".failed") || event_type.ends_with(".denied") {
        2
    } else {
        1
    }
}

/// OCSF `severity_id` and its caption for our severity: info → 1 Informational,
/// medium → 3 Medium, high → 4 High; an unknown type → 0 Unknown.
fn ocsf_severity(kind: Option<ActivityType>) -> (u8, &'static str) {
    match kind.map(ActivityType::severity) {
        Some("info") => (1, "Informational"),
        Some("medium") => (3, "Medium"),
        Some("high") => (4, "High"),
        _ => (0, "Unknown"),
    }
}

/// OCSF User `type_id`: teammate → 1 User, system → 3 System, API token and staff → 99 Other.
/// The `type` string always carries Interlock's own actor type.
fn ocsf_user_type_id(kind: ActorType) -> u8 {
    match kind {
        ActorType::Teammate => 1,
        ActorType::System => 3,
        ActorType::ApiToken | ActorType::Staff => 99,
    }
}

/// The region part of `ws_<region>_<hex>`, if it has that shape.
fn workspace_region(workspace_id: &str) -> Option<&str> {
    let rest = workspace_id.strip_prefix("ws_")?;
    let (region, _) = rest.split_once('_')?;
    Some(region)
}

/// One entry as an OCSF 1.1.0 "API Activity" event (class 6003, category 6) on one line.
///
/// `api.operation` is the event type name; `actor.user` carries the actor's id (`uid`) and
/// Interlock's actor type (`type`); `src_endpoint.ip` the source address;
/// `http_request.user_agent` the user agent; `resources` the target (`uid`, `type`);
/// `cloud` names Interlock and the workspace's region; `metadata` the product, schema
/// version, entry id (`uid`), workspace (`log_name`) and sequence; `unmapped` the entry's
/// metadata, its chain hash and its category.
pub fn entry_ocsf(workspace_id: &str, seq: u64, hash_hex: &str, entry: &ActivityEntry) -> Vec<u8> {
    let known = ActivityType::parse(&entry.kind).ok();
    let activity_id = ocsf_activity_id(&entry.kind);
    let activity_caption = match activity_id {
        1 => "Create",
        2 => "Read",
        3 => "Update",
        4 => "Delete",
        _ => "Other",
    };
    // For "Other", OCSF wants the source's own activity name.
    let activity_name = if activity_id == 99 {
        entry.kind.as_str()
    } else {
        activity_caption
    };
    let (severity_id, severity) = ocsf_severity(known);
    let status_id = ocsf_status_id(&entry.kind);

    let mut user = Map::new();
    if let Some(id) = &entry.actor.id {
        user.insert("uid".into(), id.clone().into());
    }
    user.insert("type".into(), entry.actor.kind.as_str().into());
    user.insert("type_id".into(), ocsf_user_type_id(entry.actor.kind).into());

    let src_endpoint = match (entry.actor.ip, entry.actor.kind) {
        (Some(ip), _) => json!({ "ip": ip_text(ip) }),
        (None, ActorType::System) => json!({ "name": "Interlock" }),
        (None, _) => json!({}),
    };

    let mut resource = Map::new();
    if let Some(id) = &entry.target.id {
        resource.insert("uid".into(), id.clone().into());
    }
    resource.insert("type".into(), entry.target.kind.clone().into());

    let mut cloud = Map::new();
    cloud.insert("provider".into(), "Interlock".into());
    if let Some(region) = workspace_region(workspace_id) {
        cloud.insert("region".into(), region.into());
    }

    let mut unmapped = Map::new();
    unmapped.insert("metadata".into(), Value::Object(entry.metadata.clone()));
    unmapped.insert("hash".into(), hash_hex.into());
    if let Some(k) = known {
        unmapped.insert("category".into(), k.category().into());
    }

    let mut event = json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 600_300 + u32::from(activity_id),
        "type_name": format!("API Activity: {activity_caption}"),
        "time": entry.created_at_ms,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": if status_id == 1 { "Success" } else { "Failure" },
        "actor": { "user": Value::Object(user) },
        "api": {
            "operation": entry.kind,
            "service": { "name": "Interlock" },
        },
        "src_endpoint": src_endpoint,
        "resources": [Value::Object(resource)],
        "cloud": Value::Object(cloud),
        "metadata": {
            "product": {
                "name": "Interlock",
                "vendor_name": "Interlock",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "version": OCSF_VERSION,
            "uid": entry.id,
            "log_name": workspace_id,
            "sequence": seq,
        },
        "unmapped": Value::Object(unmapped),
    });
    if let Some(obj) = event.as_object_mut() {
        if let Some(k) = known {
            obj.insert("message".into(), k.description().into());
        }
        if let Some(ua) = &entry.actor.user_agent {
            obj.insert("http_request".into(), json!({ "user_agent": ua }));
        }
        if status_id == 2
            && let Some(reason) = entry.metadata.get("reason").and_then(Value::as_str)
        {
            obj.insert("status_detail".into(), reason.into());
        }
    }
    line(&event)
}

/// An address as text; an IPv4-mapped IPv6 address as the IPv4 it maps.
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn every_catalogued_type_has_a_documented_activity() {
        let expect = |t: ActivityType| -> u8 {
            match t {
                ActivityType::PasskeyAdded
                | ActivityType::TeammateInvited
                | ActivityType::TeammateJoined
                | ActivityType::RoleCreated
                | ActivityType::ApiTokenCreated
                | ActivityType::MessengerSecretCreated
                | ActivityType::DataRequestCreated
                | ActivityType::WebhookCreated => 1,
                ActivityType::DataExported | ActivityType::ActivityLogExported => 2,
                ActivityType::TotpEnabled
                | ActivityType::TeammateRoleChanged
                | ActivityType::RoleUpdated
                | ActivityType::SecuritySettingsUpdated
                | ActivityType::MessengerSettingsUpdated
                | ActivityType::RetentionSettingsUpdated
                | ActivityType::StaffAccessSettingsUpdated => 3,
                ActivityType::SessionRevoked
                | ActivityType::TotpDisabled
                | ActivityType::PasskeyRemoved
                | ActivityType::TeammateRemoved
                | ActivityType::RoleDeleted
                | ActivityType::ApiTokenRevoked
                | ActivityType::MessengerSecretDeleted
                | ActivityType::ContactDeleted
                | ActivityType::ConversationDeleted
                | ActivityType::BulkDeleted
                | ActivityType::ActivityLogRetentionCut
                | ActivityType::WebhookDeleted
                | ActivityType::AccessReviewRevoked => 4,
                _ => 99,
            }
        };
        for t in ActivityType::ALL {
            assert_eq!(ocsf_activity_id(t.as_str()), expect(*t), "{}", t.as_str());
        }
        assert_eq!(ocsf_status_id("auth.sign_in.failed"), 2);
        assert_eq!(ocsf_status_id("access.denied"), 2);
        assert_eq!(ocsf_status_id("auth.sign_in.succeeded"), 1);
    }

    #[test]
    fn debug_hides_url_query_and_credentials() {
        let cfg = SinkConfig {
            kind: SinkKind::Http,
            path: None,
            url: Some("https://siem.example/in?api_key=SECRETKEY".into()),
            format: SinkFormat::Ocsf,
            ca_file: None,
            bearer_token_file: None,
            timeout_s: 10,
        };
        let text = format!("{cfg:?}");
        assert!(!text.contains("SECRETKEY"), "{text}");
        assert!(
            text.contains("https://siem.example/in?<redacted>"),
            "{text}"
        );
    }
}
