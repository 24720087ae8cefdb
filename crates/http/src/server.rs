//! Putting a server together: the data folder, the operator token, the region cells, TLS and
//! the listener. The CLI and the tests both start servers through [`start`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use interlock_crypto::OperatorToken;
use interlock_domain::Region;
use interlock_storage::{Backend, Cell, CellConfig, db};

use crate::tls::{self, CertSource};
use crate::{AppState, Limits, app, metrics_handle};

/// How to run a server.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Master keys; `<data_dir>/keys` when unset. Production should keep them elsewhere.
    pub key_dir: Option<PathBuf>,
    pub regions: Vec<Region>,
    /// A PostgreSQL URL; each region gets its own database `<name>_<region>`. SQLite when unset.
    pub database: Option<String>,
    /// Public base URL of each region (used in 421 answers).
    pub region_urls: BTreeMap<Region, String>,
    pub limits: Limits,
    /// A certificate to serve; a self-signed one under `<data_dir>/tls` when unset.
    pub tls: Option<CertSource>,
    /// The origin browsers see (`https://app.example.com`): passkeys are bound to it. Default
    /// `https://localhost:<port>`.
    pub public_origin: Option<String>,
    /// Activity log checkpoints, retention and sinks.
    pub activity: crate::activity_tasks::ActivitySettings,
    /// The retention sweeper's schedule.
    pub retention: crate::activity_tasks::RetentionSettings,
    /// Outbound deliveries (webhooks, erasure notices): retries, timeouts, URL policy.
    pub outbound: crate::outbox::OutboundSettings,
    /// Operator staff access: grant limits, access-review schedule.
    pub staff: crate::staff_settings::StaffSettings,
    /// Time for retention, staff grants and access reviews (the system clock; tests move it).
    pub clock: Arc<dyn interlock_storage::Clock>,
}

impl Settings {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            key_dir: None,
            regions: Region::ALL.to_vec(),
            database: None,
            region_urls: BTreeMap::new(),
            limits: Limits::default(),
            tls: None,
            public_origin: None,
            activity: crate::activity_tasks::ActivitySettings::default(),
            retention: crate::activity_tasks::RetentionSettings::default(),
            outbound: crate::outbox::OutboundSettings::default(),
            staff: crate::staff_settings::StaffSettings::default(),
            clock: Arc::new(interlock_storage::SystemClock),
        }
    }

    pub fn key_dir(&self) -> PathBuf {
        self.key_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data folder {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("store: {0}")]
    Store(#[from] interlock_storage::StoreError),
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("staff device CA: {0}")]
    DeviceCa(#[from] interlock_crypto::DeviceCaError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Read the operator token file, or create it (mode 0600) on first start.
pub fn operator_token(data_dir: &Path) -> Result<OperatorToken, StartError> {
    let path = data_dir.join("operator-token");
    if path.exists() {
        let mode = fs::metadata(&path).map_err(io(&path))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(StartError::Invalid(format!(
                "{} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        return OperatorToken::from_file_contents(&text).ok_or_else(|| {
            StartError::Invalid(format!("{} is not an operator token", path.display()))
        });
    }
    let token = OperatorToken::generate()
        .map_err(|e| StartError::Invalid(format!("random generator: {e}")))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    f.write_all(format!("{}\n", token.expose()).as_bytes())
        .map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    Ok(token)
}

/// The storage location of one region under these settings.
pub async fn cell_config(settings: &Settings, region: Region) -> Result<CellConfig, StartError> {
    let region_dir = settings.data_dir.join("regions").join(region.as_str());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&region_dir)
        .map_err(io(&region_dir))?;
    let backend = match &settings.database {
        None => Backend::Sqlite {
            path: region_dir.join("interlock.db"),
        },
        Some(url) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(StartError::Invalid(
                    "--database must be a postgres:// URL".into(),
                ));
            }
            let name = format!("{}_{}", db::database_name(url), region.as_str());
            db::ensure_pg_database(url, &name).await?;
            Backend::Postgres {
                url: db::with_database(url, &name)?,
            }
        }
    };
    Ok(CellConfig {
        region,
        backend,
        key_dir: settings.key_dir(),
        blob_dir: region_dir.join("blobs"),
    })
}

/// Open the cells of every configured region.
pub async fn open_cells(settings: &Settings) -> Result<BTreeMap<Region, Arc<Cell>>, StartError> {
    if settings.regions.is_empty() {
        return Err(StartError::Invalid("serve at least one region".into()));
    }
    let mut cells = BTreeMap::new();
    for &region in &settings.regions {
        let cfg = cell_config(settings, region).await?;
        cells.insert(region, Arc::new(Cell::open(cfg).await?));
    }
    Ok(cells)
}

/// The staff device CA of every served region (made in the region's key folder on first
/// start), as the roots client certificates must chain to.
pub fn device_ca_roots(
    settings: &Settings,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, StartError> {
    let key_dir = settings.key_dir();
    settings
        .regions
        .iter()
        .map(|&region| {
            let ca = interlock_crypto::DeviceCa::open_or_create(&key_dir, region)?;
            Ok(rustls::pki_types::CertificateDer::from(
                ca.cert_der().to_vec(),
            ))
        })
        .collect()
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub cert_path: PathBuf,
    pub state: Arc<AppState>,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    activity: tokio::task::JoinHandle<()>,
    retention: tokio::task::JoinHandle<()>,
    /// Tells the sweeper to stop after its current step (so no query is cut off mid-flight).
    retention_stop: tokio::sync::watch::Sender<bool>,
    outbox: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop accepting, let requests in flight finish, close the stores.
    pub async fn shutdown(mut self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(10)));
        let _ = (&mut self.task).await;
        self.stop_tasks().await;
    }

    /// Stop the background tasks, then close the stores. The sweeper is asked to stop and given
    /// up to 10 s to finish its step: a sweep aborted inside a query could leave a SQLite
    /// connection closing in the background after the store is closed (and its WAL behind).
    async fn stop_tasks(&mut self) {
        self.activity.abort();
        self.outbox.abort();
        let _ = self.retention_stop.send(true);
        if tokio::time::timeout(Duration::from_secs(10), &mut self.retention)
            .await
            .is_err()
        {
            self.retention.abort();
        }
        for cell in self.state.cells.values() {
            cell.close().await;
        }
    }

    /// Serve until `stop` completes (a signal), then drain requests in flight (up to 10 s) and
    /// close the stores so SQLite checkpoints and removes its WAL.
    pub async fn serve_until(
        mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let finished = tokio::select! {
            res = &mut self.task => Some(res),
            () = stop => None,
        };
        let res = match finished {
            Some(res) => res,
            None => {
                tracing::info!("shutting down");
                self.handle.graceful_shutdown(Some(Duration::from_secs(10)));
                (&mut self.task).await
            }
        };
        self.stop_tasks().await;
        res.map_err(std::io::Error::other)?
    }
}

/// Prepare the data folder, open the cells and serve HTTPS on `listener`.
pub async fn start(
    settings: &Settings,
    listener: std::net::TcpListener,
) -> Result<Running, StartError> {
    tls::install_provider();
    settings.activity.validate().map_err(StartError::Invalid)?;
    settings.retention.validate().map_err(StartError::Invalid)?;
    settings.outbound.validate().map_err(StartError::Invalid)?;
    settings.staff.validate().map_err(StartError::Invalid)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&settings.data_dir)
        .map_err(io(&settings.data_dir))?;
    let token = operator_token(&settings.data_dir)?;
    let cells = open_cells(settings).await?;
    let device_cas = device_ca_roots(settings)?;
    let (tls_config, cert) = tls::load_or_generate_with_devices(
        settings.tls.as_ref(),
        &settings.data_dir.join("tls"),
        &device_cas,
    )?;
    let port = listener
        .local_addr()
        .map_err(io(&settings.data_dir))?
        .port();
    let origin = settings
        .public_origin
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{port}"));
    let webauthn = crate::passkeys::relying_party(&origin)
        .map_err(|e| StartError::Invalid(format!("public_origin {origin}: {e}")))?;
    let state = Arc::new(AppState {
        webauthn: Arc::new(webauthn),
        cells,
        region_urls: settings.region_urls.clone(),
        operator_token_hash: token.hash(),
        metrics: metrics_handle(),
        limits: settings.limits,
        rate: crate::RateLimits::new(&settings.limits.messenger),
        outbound: settings.outbound.clone(),
        staff: settings.staff,
        clock: settings.clock.clone(),
    });
    let activity = crate::activity_tasks::spawn(state.cells.clone(), &settings.activity)
        .map_err(|e| StartError::Invalid(format!("activity sink: {e}")))?;
    let outbox = crate::outbox::spawn(state.cells.clone(), &settings.outbound)
        .map_err(StartError::Invalid)?;
    let (retention_stop, stop) = tokio::sync::watch::channel(false);
    let retention = crate::activity_tasks::spawn_retention(
        state.cells.clone(),
        &settings.retention,
        &settings.staff,
        settings.clock.clone(),
        stop,
    );
    let router = app(state.clone());
    listener
        .set_nonblocking(true)
        .map_err(io(&settings.data_dir))?;
    let addr = listener.local_addr().map_err(io(&settings.data_dir))?;
    let handle = axum_server::Handle::new();
    // TLS with optional client certificates; the acceptor carries a verified device
    // certificate to every request of its connection (`tls::ClientCertificate`).
    let acceptor = tls::DeviceAcceptor::new(axum_server::tls_rustls::RustlsConfig::from_config(
        tls_config,
    ));
    let server = axum_server::from_tcp(listener)
        .map_err(io(&settings.data_dir))?
        .acceptor(acceptor)
        .handle(handle.clone());
    let task = tokio::spawn(async move {
        server
            .serve(router.into_make_service_with_connect_info::<SocketAddr>())
            .await
    });
    let upkeep = state.metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(Running {
        addr,
        cert_path: cert.cert,
        state,
        handle,
        task,
        activity,
        retention,
        retention_stop,
        outbox,
    })
}
