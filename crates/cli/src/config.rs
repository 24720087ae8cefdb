//! Command-line flags and the layered configuration file, validated into server settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use interlock_domain::Region;
use interlock_http::server::Settings;
use interlock_http::tls::CertSource;
use interlock_http::{Limits, MessengerLimits};
use serde::{Deserialize, Serialize};

/// Flags of `interlock serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder for databases, blobs, TLS material and the operator token (created if missing).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Regions this process serves, comma-separated (default us,eu,au).
    #[arg(long, value_delimiter = ',')]
    pub regions: Option<Vec<Region>>,
    /// A TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user@host/name); each region gets database name_<region>.
    #[arg(long)]
    pub database: Option<String>,
    /// Folder of the region master keys (default DATA_DIR/keys). Keep it apart in production.
    #[arg(long)]
    pub key_dir: Option<PathBuf>,
}

/// Flags naming a store, for commands that work on one region offline.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[arg(long, default_value = "./interlock-data")]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub key_dir: Option<PathBuf>,
    #[arg(long)]
    pub database: Option<String>,
}

impl StoreArgs {
    pub fn settings(&self, region: Region) -> Result<Settings> {
        if !self.data_dir.exists() {
            bail!("data folder {} does not exist", self.data_dir.display());
        }
        let mut s = Settings::new(&self.data_dir);
        s.key_dir = self.key_dir.clone();
        s.database = self.database.clone();
        s.regions = vec![region];
        Ok(s)
    }
}

/// The configuration file (and `INTERLOCK_*` environment variables).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    /// A list (`["eu", "us"]`) or, as from `INTERLOCK_REGIONS`, a comma-separated string.
    #[serde(default, deserialize_with = "regions_list")]
    pub regions: Option<Vec<Region>>,
    pub database: Option<String>,
    pub key_dir: Option<PathBuf>,
    /// Largest JSON request body in bytes (default 1 MiB).
    pub body_limit_bytes: Option<usize>,
    /// Largest attachment in bytes (default 25 MiB).
    pub attachment_limit_bytes: Option<usize>,
    /// Public base URL of each region, for 421 answers: `[region_urls] us = "https://…"`.
    #[serde(default)]
    pub region_urls: BTreeMap<Region, String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The origin browsers use (`https://app.example.com`); passkeys are bound to it.
    /// Default `https://localhost:<port>`.
    pub public_origin: Option<String>,
    /// The messenger's abuse limits: `[messenger] boots_per_minute_per_ip = 60`, ….
    #[serde(default)]
    pub messenger: MessengerConfig,
    /// The activity log: `[activity] checkpoint_every_entries = 1000`, `retention_days`,
    /// `[[activity.sinks]]` (SIEM) and `[[activity.checkpoint_sinks]]`.
    #[serde(default)]
    pub activity: interlock_http::activity_tasks::ActivitySettings,
    /// The retention sweeper: `[retention] sweep_every_s = 3600`, `batch = 1000`.
    #[serde(default)]
    pub retention: interlock_http::activity_tasks::RetentionSettings,
    /// Outbound deliveries (webhooks, erasure notices): `[outbound] poll_interval_ms`,
    /// `max_attempts`, `backoff_base_ms`, `backoff_cap_ms`, `request_timeout_s`, `batch`,
    /// `concurrency`, `allow_insecure_http` (default false), `ca_file`.
    #[serde(default)]
    pub outbound: interlock_http::outbox::OutboundSettings,
    /// Operator staff access: `[staff] max_grant_s = 14400`, `review_every_days = 91`,
    /// `review_window_days = 14`, `totp_with_passkey = true`.
    #[serde(default)]
    pub staff: interlock_http::staff_settings::StaffSettings,
}

/// `[messenger]`: every field optional; defaults in [`interlock_http::MessengerLimits`].
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessengerConfig {
    pub boots_per_minute_per_ip: Option<u32>,
    pub boots_per_minute_per_workspace: Option<u32>,
    pub messages_per_minute_per_ip: Option<u32>,
    pub messages_per_minute_per_workspace: Option<u32>,
    pub max_message_bytes: Option<usize>,
    pub session_ttl_s: Option<i64>,
}

impl MessengerConfig {
    fn limits(&self) -> Result<MessengerLimits> {
        let d = MessengerLimits::default();
        let rate = |name: &str, v: Option<u32>, default: u32| -> Result<u32> {
            match v {
                Some(0) => bail!("messenger.{name} must be at least 1"),
                Some(n) => Ok(n),
                None => Ok(default),
            }
        };
        let out = MessengerLimits {
            boots_per_minute_per_ip: rate(
                "boots_per_minute_per_ip",
                self.boots_per_minute_per_ip,
                d.boots_per_minute_per_ip,
            )?,
            boots_per_minute_per_workspace: rate(
                "boots_per_minute_per_workspace",
                self.boots_per_minute_per_workspace,
                d.boots_per_minute_per_workspace,
            )?,
            messages_per_minute_per_ip: rate(
                "messages_per_minute_per_ip",
                self.messages_per_minute_per_ip,
                d.messages_per_minute_per_ip,
            )?,
            messages_per_minute_per_workspace: rate(
                "messages_per_minute_per_workspace",
                self.messages_per_minute_per_workspace,
                d.messages_per_minute_per_workspace,
            )?,
            max_message_bytes: self.max_message_bytes.unwrap_or(d.max_message_bytes),
            session_ttl_s: self.session_ttl_s.unwrap_or(d.session_ttl_s),
        };
        if !(1..=1024 * 1024).contains(&out.max_message_bytes) {
            bail!("messenger.max_message_bytes must be between 1 and 1048576");
        }
        if !(60..=86_400).contains(&out.session_ttl_s) {
            bail!("messenger.session_ttl_s must be between 60 and 86400");
        }
        Ok(out)
    }
}

fn regions_list<'de, D>(d: D) -> Result<Option<Vec<Region>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Regions {
        List(Vec<Region>),
        Text(String),
    }
    match Option::<Regions>::deserialize(d)? {
        None => Ok(None),
        Some(Regions::List(v)) => Ok(Some(v)),
        Some(Regions::Text(t)) => t
            .split(',')
            .map(|r| r.trim().parse::<Region>().map_err(serde::de::Error::custom))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    }
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(FileConfig::default()));
        if let Some(p) = path {
            if !p.exists() {
                bail!("configuration file {} does not exist", p.display());
            }
            fig = fig.merge(Toml::file(p));
        }
        // Only the configuration keys: other INTERLOCK_* variables (INTERLOCK_LOG, test
        // settings) are not configuration and must not stop the server.
        fig = fig.merge(Env::prefixed("INTERLOCK_").only(&[
            "data_dir",
            "listen",
            "regions",
            "database",
            "key_dir",
            "body_limit_bytes",
            "attachment_limit_bytes",
            "tls_cert",
            "tls_key",
            "public_origin",
        ]));
        fig.extract().context("invalid configuration")
    }
}

/// Merge flags over the file and check the result.
pub fn settings(args: &ServeArgs, file: &FileConfig) -> Result<(Settings, SocketAddr)> {
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(crate::default_data_dir);
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443)));
    let mut s = Settings::new(data_dir);
    if let Some(r) = args.regions.clone().or_else(|| file.regions.clone()) {
        let mut r = r;
        r.sort();
        r.dedup();
        if r.is_empty() {
            bail!("--regions must name at least one region");
        }
        s.regions = r;
    }
    s.database = args.database.clone().or_else(|| file.database.clone());
    if let Some(db) = &s.database
        && !(db.starts_with("postgres://") || db.starts_with("postgresql://"))
    {
        bail!("--database must be a postgres:// URL");
    }
    s.key_dir = args.key_dir.clone().or_else(|| file.key_dir.clone());
    s.region_urls = file.region_urls.clone();
    for url in s.region_urls.values() {
        if !url.starts_with("https://") {
            bail!("region_urls must be https:// URLs");
        }
    }
    let defaults = Limits::default();
    s.limits = Limits {
        body_bytes: file.body_limit_bytes.unwrap_or(defaults.body_bytes),
        attachment_bytes: file
            .attachment_limit_bytes
            .unwrap_or(defaults.attachment_bytes),
        messenger: file.messenger.limits()?,
    };
    if !(1024..=64 * 1024 * 1024).contains(&s.limits.body_bytes) {
        bail!("body_limit_bytes must be between 1 KiB and 64 MiB");
    }
    if !(1024..=1024 * 1024 * 1024).contains(&s.limits.attachment_bytes) {
        bail!("attachment_limit_bytes must be between 1 KiB and 1 GiB");
    }
    if let Some(o) = &file.public_origin
        && !o.starts_with("https://")
    {
        bail!("public_origin must be an https:// origin");
    }
    s.public_origin = file.public_origin.clone();
    file.activity.validate().map_err(|e| anyhow::anyhow!(e))?;
    s.activity = file.activity.clone();
    file.retention.validate().map_err(|e| anyhow::anyhow!(e))?;
    s.retention = file.retention.clone();
    file.staff.validate().map_err(|e| anyhow::anyhow!(e))?;
    s.staff = file.staff;
    file.outbound.validate().map_err(|e| anyhow::anyhow!(e))?;
    s.outbound = file.outbound.clone();
    s.tls = match (&file.tls_cert, &file.tls_key) {
        (Some(cert), Some(key)) => Some(CertSource {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => bail!("set both tls_cert and tls_key, or neither"),
    };
    Ok((s, listen))
}
