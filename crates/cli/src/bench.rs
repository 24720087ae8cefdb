//! `interlock bench ingest`: conversation parts per second through the full HTTPS API, next
//! to the two floors the product cannot beat, all measured in the same run on the same machine:
//! - `raw_msgs_per_s`: the same rows written straight into the same store, same durability and
//!   the same rows per commit as the API path achieved, without HTTP or encryption;
//! - `https_floor_per_s`: the same TLS stack and clients answering an empty 201 without touching
//!   the store.
//!
//! `ratio` = api ÷ the smaller floor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use clap::Args;
use interlock_domain::Region;
use interlock_http::server::Settings;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Seconds measured per phase (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent keep-alive HTTPS clients.
    #[arg(long, default_value_t = 512)]
    pub clients: usize,
    /// Bytes per message body.
    #[arg(long, default_value_t = 200)]
    pub body_bytes: usize,
    /// Benchmark against PostgreSQL instead of the embedded SQLite store.
    #[arg(long)]
    pub database: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    api_msgs_per_s: f64,
    raw_msgs_per_s: f64,
    https_floor_per_s: f64,
    ratio: f64,
    units_per_commit: f64,
    /// CPU of this process (server, clients, and with SQLite the store) per request, in µs.
    api_cpu_us_per_req: Option<f64>,
    https_floor_cpu_us_per_req: Option<f64>,
    clients: usize,
    seconds: u64,
    body_bytes: usize,
    store: &'static str,
}

fn client(cert_pem: &[u8], clients: usize) -> Result<reqwest::Client> {
    let cert = reqwest::Certificate::from_pem(cert_pem).context("reading the certificate")?;
    reqwest::Client::builder()
        .add_root_certificate(cert)
        .http1_only()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTPS client")
}

/// Run `clients` loops posting parts until the phase ends; count 201s in the measured window.
/// CPU time (user + system) this process has used so far, in seconds, from /proc.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Some(ticks / hz)
}

/// One measured phase: requests per second and this process's CPU per request.
struct Phase {
    per_s: f64,
    cpu_us_per_req: Option<f64>,
}

async fn load(
    http: &reqwest::Client,
    urls: Vec<String>,
    token: &str,
    body: &str,
    seconds: u64,
) -> Result<Phase> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let payload = serde_json::to_vec(
        &json!({"body": body, "author": {"type": "teammate", "id": "tm_0190a0c1a2b34c5d8e9f001122334455"}}),
    )?;
    let mut tasks = Vec::new();
    for url in urls {
        let (http, measuring, stop, ok, failed, payload) = (
            http.clone(),
            measuring.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            payload.clone(),
        );
        let auth = format!("Bearer {token}");
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(payload.clone())
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().as_u16() == 201 => {
                        let _ = resp.bytes().await;
                        if measuring.load(Ordering::Relaxed) {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let cpu0 = process_cpu_seconds();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu1 = process_cpu_seconds();
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    if failed.load(Ordering::Relaxed) > 0 {
        bail!(
            "{} requests failed during the benchmark",
            failed.load(Ordering::Relaxed)
        );
    }
    let done = ok.load(Ordering::Relaxed) as f64;
    Ok(Phase {
        per_s: done / elapsed,
        cpu_us_per_req: match (cpu0, cpu1) {
            (Some(a), Some(b)) if done > 0.0 => Some((b - a) / done * 1e6),
            _ => None,
        },
    })
}

async fn floor_server(
    cert: &interlock_http::tls::CertSource,
    state: Arc<interlock_http::AppState>,
) -> Result<(
    std::net::SocketAddr,
    axum_server::Handle<std::net::SocketAddr>,
)> {
    let (tls, _) = interlock_http::tls::load_or_generate(Some(cert), std::path::Path::new("."))?;
    // The product's own layers (headers, metrics, timeout, panic catcher) around a handler
    // that reads the body and answers an empty 201: the HTTPS stack without the store.
    let app = interlock_http::layered(
        Router::new().route(
            "/v1/conversations/{id}/parts",
            axum::routing::post(|_body: bytes::Bytes| async { axum::http::StatusCode::CREATED }),
        ),
        state,
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )?
    .handle(handle.clone());
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    Ok((addr, handle))
}

pub async fn ingest(args: IngestArgs) -> Result<()> {
    if args.clients == 0 || args.seconds == 0 || args.body_bytes == 0 {
        bail!("--clients, --seconds and --body-bytes must be positive");
    }
    let dir = tempfile::tempdir().context("temporary data folder")?;
    let mut settings = Settings::new(dir.path().join("data"));
    settings.regions = vec![Region::Us];
    settings.database = args.database.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let running = interlock_http::server::start(&settings, listener).await?;
    let base = format!("https://localhost:{}", running.addr.port());
    let cert_pem = std::fs::read(&running.cert_path)?;
    let http = client(&cert_pem, args.clients)?;
    let operator = std::fs::read_to_string(settings.data_dir.join("operator-token"))?;

    let ws: serde_json::Value = http
        .post(format!("{base}/v1/operator/workspaces"))
        .bearer_auth(operator.trim())
        .json(&json!({"name": "bench", "region": "us"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = ws["api_token"].as_str().context("api_token")?.to_owned();
    let contact: serde_json::Value = http
        .post(format!("{base}/v1/contacts"))
        .bearer_auth(&token)
        .json(&json!({"role": "user", "email": "bench@example.com"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let body = "x".repeat(args.body_bytes);
    let mut urls = Vec::new();
    let mut conversations = Vec::new();
    for _ in 0..args.clients {
        let conv: serde_json::Value = http
            .post(format!("{base}/v1/conversations"))
            .bearer_auth(&token)
            .json(&json!({"contact_id": contact["id"], "body": "hello"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = conv["id"].as_str().context("conversation id")?.to_owned();
        urls.push(format!("{base}/v1/conversations/{id}/parts"));
        conversations.push(id);
    }

    // 1. The full API.
    let cell = running
        .state
        .cells
        .get(&Region::Us)
        .context("us cell")?
        .clone();
    let stats = &cell.writer().stats;
    let (c0, u0) = (
        stats.commits.load(Ordering::Relaxed),
        stats.units.load(Ordering::Relaxed),
    );
    let api_phase = load(&http, urls, &token, &body, args.seconds).await?;
    let api = api_phase.per_s;
    let (c1, u1) = (
        stats.commits.load(Ordering::Relaxed),
        stats.units.load(Ordering::Relaxed),
    );
    let units_per_commit = if c1 > c0 {
        (u1 - u0) as f64 / (c1 - c0) as f64
    } else {
        1.0
    };

    // 2. Raw store floor: same rows, same durability, same rows per commit.
    let ws_id = interlock_domain::WorkspaceId::parse(ws["id"].as_str().context("workspace id")?)?;
    let conv_ids = conversations
        .iter()
        .map(|c| interlock_domain::ConversationId::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let per_commit = units_per_commit.round().max(1.0) as usize;
    let raw = cell
        .raw_part_ingest(
            &ws_id,
            &conv_ids,
            body.as_bytes(),
            per_commit,
            Duration::from_secs(args.seconds),
        )
        .await?;

    // 3. HTTPS floor: same TLS stack and clients, empty 201.
    let cert = interlock_http::tls::CertSource {
        cert: running.cert_path.clone(),
        key: settings.data_dir.join("tls/key.pem"),
    };
    let (floor_addr, floor_handle) = floor_server(&cert, running.state.clone()).await?;
    let floor_urls = conversations
        .iter()
        .map(|id| {
            format!(
                "https://localhost:{}/v1/conversations/{id}/parts",
                floor_addr.port()
            )
        })
        .collect();
    let floor_phase = load(&http, floor_urls, &token, &body, args.seconds).await?;
    let floor = floor_phase.per_s;
    floor_handle.shutdown();
    running.shutdown().await;

    let report = Report {
        api_msgs_per_s: api.round(),
        raw_msgs_per_s: raw.round(),
        https_floor_per_s: floor.round(),
        ratio: (api / raw.min(floor) * 1000.0).round() / 1000.0,
        units_per_commit: (units_per_commit * 10.0).round() / 10.0,
        api_cpu_us_per_req: api_phase.cpu_us_per_req.map(f64::round),
        https_floor_cpu_us_per_req: floor_phase.cpu_us_per_req.map(f64::round),
        clients: args.clients,
        seconds: args.seconds,
        body_bytes: args.body_bytes,
        store: if args.database.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("store              {}", report.store);
        println!("api_msgs_per_s     {}", report.api_msgs_per_s);
        println!(
            "raw_msgs_per_s     {}  (no HTTP, no encryption, {} rows/commit)",
            report.raw_msgs_per_s, per_commit
        );
        println!(
            "https_floor_per_s  {}  (TLS + HTTP, empty 201)",
            report.https_floor_per_s
        );
        println!("ratio              {}  (api / smaller floor)", report.ratio);
        if let (Some(a), Some(f)) = (report.api_cpu_us_per_req, report.https_floor_cpu_us_per_req) {
            println!("cpu per request    api {a} µs, https floor {f} µs (this process)");
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct CryptoArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Values sealed per measurement.
    #[arg(long, default_value_t = 200_000)]
    pub iterations: u32,
}

/// Field encryption (associated data, random nonce, output buffer: what the store does per
/// field) against raw AES-256-GCM on the same 1 KiB value, measured in the same run.
pub fn crypto(args: CryptoArgs) -> Result<()> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad as LcAad, LessSafeKey, Nonce, UnboundKey};
    use interlock_crypto::{Aad, AeadKey, KeyMaterial};

    if args.iterations == 0 {
        bail!("--iterations must be positive");
    }
    let value = vec![0x42u8; 1024];
    let raw_key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, KeyMaterial::generate()?.expose())
            .map_err(|_| anyhow::anyhow!("key"))?,
    );
    let key = AeadKey::new(&KeyMaterial::generate()?)?;
    let ws = "ws_us_0192f0c1a2b34c5d8e9f001122334455";
    let rec = "pt_0192f0c1a2b34c5d8e9f001122334455";
    let sk = "sk_0192f0c1a2b34c5d8e9f001122334455";

    let raw_round = |n: u32| -> Result<f64> {
        let mut buf = value.clone();
        let t = Instant::now();
        for i in 0..n {
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(&i.to_be_bytes());
            let tag = raw_key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    LcAad::empty(),
                    &mut buf,
                )
                .map_err(|_| anyhow::anyhow!("seal"))?;
            std::hint::black_box(&tag);
        }
        Ok(t.elapsed().as_secs_f64())
    };
    let field_round = |n: u32| -> Result<f64> {
        let t = Instant::now();
        for _ in 0..n {
            let aad = Aad::new(ws, "conversation_parts", rec, "body", sk);
            std::hint::black_box(key.seal(&aad, &value)?);
        }
        Ok(t.elapsed().as_secs_f64())
    };
    // Many short rounds, raw and field back to back (order alternating), and the median of
    // the per-round ratios: a slowdown of the shared machine lands on both sides of a pair, so
    // the ratio stays meaningful even when absolute speeds drift.
    let rounds = 41;
    let per_round = (args.iterations / 10).max(1);
    let mut ratios = Vec::with_capacity(rounds);
    let (mut best_raw, mut best_field) = (f64::MAX, f64::MAX);
    for r in 0..rounds {
        let (raw_t, field_t) = if r % 2 == 0 {
            let a = raw_round(per_round)?;
            (a, field_round(per_round)?)
        } else {
            let b = field_round(per_round)?;
            (raw_round(per_round)?, b)
        };
        best_raw = best_raw.min(raw_t);
        best_field = best_field.min(field_t);
        ratios.push(raw_t / field_t);
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let mib = f64::from(per_round) * value.len() as f64 / (1024.0 * 1024.0);
    let raw_mib_s = mib / best_raw;
    let field_mib_s = mib / best_field;
    if args.json {
        println!(
            "{}",
            json!({"raw_aes256gcm_mib_per_s": raw_mib_s.round(), "field_encrypt_mib_per_s": field_mib_s.round(), "ratio": (ratio * 1000.0).round() / 1000.0, "value_bytes": 1024})
        );
    } else {
        println!("raw_aes256gcm_mib_per_s   {raw_mib_s:.0}");
        println!("field_encrypt_mib_per_s   {field_mib_s:.0}");
        println!(
            "ratio                     {ratio:.3}  (field / raw, 1 KiB values; median of {rounds} paired rounds)"
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Batches measured per operation; the median batch is reported.
    #[arg(long, default_value_t = 201)]
    pub batches: u32,
    /// Operations per batch.
    #[arg(long, default_value_t = 2_000)]
    pub batch_size: u32,
}

/// Median time per operation over `batches` batches of `size` calls.
fn median_ns(batches: u32, size: u32, mut op: impl FnMut() -> bool) -> Result<f64> {
    let mut per_op = Vec::with_capacity(batches as usize);
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..size {
            if !std::hint::black_box(op()) {
                bail!("a verification that must succeed failed");
            }
        }
        per_op.push(t.elapsed().as_nanos() as f64 / f64::from(size));
    }
    per_op.sort_by(f64::total_cmp);
    Ok(per_op[per_op.len() / 2])
}

/// Identity verification as a boot does it (one active secret), against one bare
/// HMAC-SHA-256 of the same user id measured in the same run. Targets: user_hash ≤ 1 µs and
/// JWT ≤ 5 µs median.
pub fn identity(args: IdentityArgs) -> Result<()> {
    use aws_lc_rs::hmac;
    use interlock_crypto::identity::{verify_jwt, verify_user_hash};
    use interlock_crypto::{JwtPolicy, SecretValue, VerificationSecret};

    if args.batches == 0 || args.batch_size == 0 {
        bail!("--batches and --batch-size must be positive");
    }
    let value = SecretValue::generate()?;
    let secrets = [VerificationSecret::new("ms_bench", &value)];
    let user_id = "user-0192f0c1-a2b3-4c5d";
    let hash = value.user_hash(user_id);
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"user_id": user_id, "email": "a@example.com", "iat": now, "exp": now + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(value.expose().as_bytes()),
    )?;
    let raw = hmac::Key::new(hmac::HMAC_SHA256, value.expose().as_bytes());
    let (b, n) = (args.batches, args.batch_size);
    let baseline = median_ns(b, n, || {
        !hmac::sign(&raw, std::hint::black_box(user_id).as_bytes())
            .as_ref()
            .is_empty()
    })?;
    let user_hash = median_ns(b, n, || {
        verify_user_hash(&secrets, std::hint::black_box(user_id), &hash).is_some()
    })?;
    let jwt = median_ns(b, n, || {
        verify_jwt(
            &secrets,
            std::hint::black_box(&token),
            now,
            JwtPolicy::default(),
        )
        .is_ok()
    })?;
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let ratio = |x: f64| (x / baseline * 100.0).round() / 100.0;
    if args.json {
        println!(
            "{}",
            json!({
                "hmac_sha256_baseline_ns": round(baseline),
                "user_hash_verify_ns": round(user_hash),
                "jwt_verify_ns": round(jwt),
                "user_hash_vs_baseline": ratio(user_hash),
                "jwt_vs_baseline": ratio(jwt),
                "user_hash_target_met": user_hash <= 1_000.0,
                "jwt_target_met": jwt <= 5_000.0,
            })
        );
    } else {
        println!("hmac_sha256_baseline_ns   {baseline:.0}");
        println!(
            "user_hash_verify_ns       {user_hash:.0}  ({:.2}x baseline; target <= 1000 ns)",
            user_hash / baseline
        );
        println!(
            "jwt_verify_ns             {jwt:.0}  ({:.2}x baseline; target <= 5000 ns)",
            jwt / baseline
        );
    }
    Ok(())
}
