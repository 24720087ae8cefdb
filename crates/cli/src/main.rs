//! The `interlock` binary: `serve`, `keys`, `audit`, `data-map`, `bench` and `version`.
//!
//! Configuration is layered: defaults, then a TOML file (`--config`), then `INTERLOCK_*`
//! environment variables, then flags. It is checked before anything listens.

mod access_review;
mod audit;
mod backup;
mod bench;
mod bench_activity;
mod bench_erasure;
mod bench_retention;
mod bench_staff;
mod config;
mod datamap;
mod receipt;
mod retention;
mod staff;
mod staff_device;
mod version;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use interlock_domain::Region;

use crate::config::{FileConfig, ServeArgs, StoreArgs};

// glibc malloc's arena locks and consolidation showed as ~15% of CPU under load; mimalloc's
// thread-local free lists remove most of it (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "interlock",
    version,
    about = "Encrypted, region-pinned customer data store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTPS API.
    Serve(ServeArgs),
    /// Manage region master keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the version; with --sbom, every dependency the binary was built from.
    Version {
        #[arg(long)]
        sbom: bool,
    },
    /// Check the tamper-evident activity log (a data folder, or an export offline).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the data map: every stored data element, its category, encryption, retention and
    /// erasure (JSON as `GET /v1/data-map` serves it, or a Fides dataset).
    DataMap(datamap::DataMapArgs),
    /// Enforce retention now (or, with --dry-run, show what would go at a moment).
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Check signed deletion receipts offline.
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// Write a consistent, sealed backup of one region (docs/backup.md).
    Backup(backup::BackupArgs),
    /// Restore a backup into a new data folder, applying the erasure ledger of --key-dir.
    Restore(backup::RestoreArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Access reviews of standing access: start a campaign, report completion and drift, run
    /// the deadline and schedule step (docs/access-reviews.md).
    AccessReview {
        #[command(subcommand)]
        command: access_review::ReviewCmd,
    },
    /// Operator staff: their trusted devices (docs/staff-devices.md).
    Staff {
        #[command(subcommand)]
        command: StaffCmd,
    },
}

#[derive(Debug, Subcommand)]
enum StaffCmd {
    /// Add a staff member (support, engineer or approver); prints their TOTP secret once.
    Add(staff::AddArgs),
    /// List staff members.
    List(staff::ListArgs),
    /// Disable a staff member: their sessions end and their grants stop working at once.
    Disable(staff::DisableArgs),
    /// Remove a member's passkeys (a lost authenticator): they sign in with TOTP again.
    RemovePasskeys(staff::RemovePasskeysArgs),
    /// The region's staff audit log (sign-ins, failures, passkeys, devices), or --verify its
    /// hash chain.
    AuditLog(staff::AuditLogArgs),
    /// Trusted devices: client certificates from the region's device CA.
    Device {
        #[command(subcommand)]
        cmd: staff_device::DeviceCmd,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a new master key version and re-wrap every workspace key under it.
    Rotate {
        #[arg(long)]
        region: Region,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete an old master key version once nothing is wrapped under it.
    Retire {
        #[arg(long)]
        region: Region,
        #[arg(long)]
        version: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List master key versions and how many workspace keys each wraps.
    List {
        #[arg(long)]
        region: Region,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Sweep expired data in every region of a data folder.
    Run(retention::RunArgs),
}

#[derive(Debug, Subcommand)]
enum ReceiptCommand {
    /// Verify a deletion receipt's Ed25519 signature with the region's public key; exit 0
    /// when valid.
    Verify(receipt::VerifyArgs),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify hash chains and signed checkpoints; exit 0 when intact, non-zero naming the
    /// first bad entry otherwise.
    Verify(audit::VerifyArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Conversation parts per second through the HTTPS API, against its two floors.
    Ingest(bench::IngestArgs),
    /// Field encryption speed against raw AES-256-GCM for 1 KiB values.
    Crypto(bench::CryptoArgs),
    /// Messenger identity verification (user_hash, JWT) against one bare HMAC-SHA-256.
    Identity(bench::IdentityArgs),
    /// Activity log appends and verification against their floors.
    Activity(bench_activity::ActivityArgs),
    /// The retention sweep: a no-op sweep over many contacts, and expiring visitors.
    Retention(bench_retention::RetentionArgs),
    /// Erasing one data subject in a small and a large workspace.
    Erasure(bench_erasure::ErasureArgs),
    /// A request under a staff grant (grant, device, logged entry) against an API-token
    /// request's authentication.
    Staff(bench_staff::StaffArgs),
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("INTERLOCK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .init();
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    interlock_http::tls::install_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            init_logging();
            serve(args).await
        }
        Command::Keys { command } => keys(command).await,
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => audit::verify(args).await,
        Command::Retention {
            command: RetentionCommand::Run(args),
        } => retention::run(args).await,
        Command::DataMap(args) => datamap::run(&args),
        Command::Receipt {
            command: ReceiptCommand::Verify(args),
        } => receipt::verify(&args),
        Command::AccessReview { command } => access_review::run(command).await,
        Command::Staff { command } => match command {
            StaffCmd::Add(args) => staff::add(args).await,
            StaffCmd::List(args) => staff::list(args).await,
            StaffCmd::Disable(args) => staff::disable(args).await,
            StaffCmd::RemovePasskeys(args) => staff::remove_passkeys(args).await,
            StaffCmd::AuditLog(args) => staff::audit_log(args).await,
            StaffCmd::Device { cmd } => staff_device::run(cmd).await,
        },
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore(args).await,
        Command::Version { sbom } => {
            print!("{}", version::render(sbom));
            Ok(())
        }
        Command::Bench {
            command: BenchCommand::Ingest(args),
        } => bench::ingest(args).await,
        Command::Bench {
            command: BenchCommand::Crypto(args),
        } => bench::crypto(args),
        Command::Bench {
            command: BenchCommand::Identity(args),
        } => bench::identity(args),
        Command::Bench {
            command: BenchCommand::Activity(args),
        } => bench_activity::run(args).await,
        Command::Bench {
            command: BenchCommand::Retention(args),
        } => bench_retention::run(args).await,
        Command::Bench {
            command: BenchCommand::Staff(args),
        } => bench_staff::run(args).await,
        Command::Bench {
            command: BenchCommand::Erasure(args),
        } => bench_erasure::run(args).await,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let file = FileConfig::load(args.config.as_deref())?;
    let (settings, listen) = config::settings(&args, &file)?;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let running = interlock_http::server::start(&settings, listener)
        .await
        .context("starting the server")?;
    tracing::info!(
        listen = %running.addr,
        regions = %settings
            .regions
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(","),
        store = if settings.database.is_some() { "postgres" } else { "sqlite" },
        data_dir = %settings.data_dir.display(),
        certificate = %running.cert_path.display(),
        operator_token_file = %settings.data_dir.join("operator-token").display(),
        "interlock is serving HTTPS"
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // SIGINT (Ctrl-C) and SIGTERM (systemd, Kubernetes) both drain and close cleanly.
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    running
        .serve_until(stop)
        .await
        .context("server stopped with an error")
}

async fn keys(command: KeysCommand) -> Result<()> {
    let (region, store) = match &command {
        KeysCommand::Rotate { region, store }
        | KeysCommand::Retire { region, store, .. }
        | KeysCommand::List { region, store } => (*region, store),
    };
    let settings = store.settings(region)?;
    let cfg = interlock_http::server::cell_config(&settings, region).await?;
    if !cfg.key_dir.join(region.as_str()).exists() {
        bail!(
            "no key folder for region {region} under {}",
            cfg.key_dir.display()
        );
    }
    let cell = interlock_storage::Cell::open(cfg).await?;
    match command {
        KeysCommand::Rotate { .. } => {
            let (version, count) = cell.rotate_master_key().await?;
            println!(
                "region {region}: master key v{version} is active; re-wrapped {count} workspace keys"
            );
        }
        KeysCommand::Retire { version, .. } => {
            cell.retire_master_key(version).await?;
            println!("region {region}: master key v{version} retired");
        }
        KeysCommand::List { .. } => {
            for v in cell.keyring().versions() {
                println!(
                    "region {region}: master key v{v} wraps {} workspace keys",
                    cell.keys_under_master(v).await?
                );
            }
        }
    }
    cell.close().await;
    Ok(())
}

/// Used by `config` for defaults.
fn default_data_dir() -> PathBuf {
    PathBuf::from("./interlock-data")
}
