//! The outbound gate and the delivery worker.
//!
//! Invariant: **nothing leaves except to a registered sub-processor host of the region.**
//! Every outbound request (webhooks, erasure notices, activity-log HTTP sinks) is checked,
//! before any connection is made, against the sub-processors registered for the workspace's
//! region ([`gate`]); anything else is refused, not retried, and recorded in the workspace's
//! activity log (`outbound.refused`). Plain `http://` is refused too, unless the operator set
//! `[outbound] allow_insecure_http = true` (tests, local development).
//!
//! The worker, per served region, every `poll_interval_ms`: reads due deliveries from the
//! outbox, opens each (destination and body), checks the gate, claims the attempt (conditional
//! update with a lease, so two processes never both send one attempt and a crash mid-send is
//! retried after the lease), sends it and records the outcome:
//! - 2xx → `delivered`;
//! - 408, 429, 5xx, timeouts and connection failures → retried after
//!   `min(backoff_base_ms × 2^(attempts−1), backoff_cap_ms)`, up to `max_attempts`, then
//!   `failed`;
//! - any other answer (other 4xx, 3xx: redirects are never followed) → `failed`.
//!
//! Delivery is at least once: receivers deduplicate by `webhook-id`.
//!
//! Webhook requests follow the Standard Webhooks specification: `POST` of the JSON body
//! `{id, type, created_at, workspace_id, data}` with `webhook-id`, `webhook-timestamp` (Unix
//! seconds of this attempt) and `webhook-signature: v1,<base64 HMAC-SHA-256(secret,
//! id.timestamp.body)>` ([`interlock_crypto::WebhookSecret`]). Erasure notices are the signed
//! document itself (`{type, document, key_id, signature}`, Ed25519 under the region's key),
//! with `webhook-id` and `webhook-timestamp`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use interlock_domain::{Region, SubprocessorId};
use interlock_storage::cell::{
    DeliveryOutcome, DueDelivery, OUTBOX_KEEP_DAYS, Outbound, OutboundMessage, Subprocessor,
    normalize_url_host,
};
use interlock_storage::{Cell, StoreError, now_ms};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};

/// The outbound worker's settings (`[outbound]` in the configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSettings {
    /// How often due deliveries are looked for, in milliseconds (default 1000).
    pub poll_interval_ms: u64,
    /// Attempts before a delivery is given up as `failed` (default 10).
    pub max_attempts: u32,
    /// The first retry's delay, doubled on each further one (default 10 000 ms).
    pub backoff_base_ms: u64,
    /// The longest delay between attempts (default 3 600 000 ms, one hour).
    pub backoff_cap_ms: u64,
    /// The time one request may take, connecting included, in seconds (default 10).
    pub request_timeout_s: u64,
    /// Deliveries read per round and region (default 100).
    pub batch: i64,
    /// Deliveries sent at once per region (default 8).
    pub concurrency: usize,
    /// Allow plain `http://` destinations (default false: https only). For tests and local
    /// development; the sub-processor check applies either way.
    pub allow_insecure_http: bool,
    /// A PEM bundle of roots trusted in addition to the system's (for receivers with a
    /// private CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1000,
            max_attempts: 10,
            backoff_base_ms: 10_000,
            backoff_cap_ms: 3_600_000,
            request_timeout_s: 10,
            batch: 100,
            concurrency: 8,
            allow_insecure_http: false,
            ca_file: None,
        }
    }
}

impl OutboundSettings {
    /// Check the values (before anything listens).
    pub fn validate(&self) -> Result<(), String> {
        if !(10..=3_600_000).contains(&self.poll_interval_ms) {
            return Err("outbound.poll_interval_ms must be between 10 and 3600000".into());
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err("outbound.max_attempts must be between 1 and 100".into());
        }
        if !(10..=86_400_000).contains(&self.backoff_base_ms) {
            return Err("outbound.backoff_base_ms must be between 10 and 86400000".into());
        }
        if !(self.backoff_base_ms..=7 * 86_400_000).contains(&self.backoff_cap_ms) {
            return Err(
                "outbound.backoff_cap_ms must be at least backoff_base_ms and at most 604800000"
                    .into(),
            );
        }
        if !(1..=crate::sinks::MAX_TIMEOUT_S).contains(&self.request_timeout_s) {
            return Err(format!(
                "outbound.request_timeout_s must be between 1 and {}",
                crate::sinks::MAX_TIMEOUT_S
            ));
        }
        if !(1..=1000).contains(&self.batch) {
            return Err("outbound.batch must be between 1 and 1000".into());
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err("outbound.concurrency must be between 1 and 64".into());
        }
        Ok(())
    }

    /// The delay before the attempt after `attempts` failed ones (`attempts` ≥ 1).
    pub fn backoff_ms(&self, attempts: i64) -> u64 {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
        self.backoff_base_ms
            .saturating_mul(1u64 << exp)
            .min(self.backoff_cap_ms)
    }

    /// How long a claimed attempt is held before another worker may retry it.
    fn lease_ms(&self) -> i64 {
        (self.request_timeout_s as i64 + 60) * 1000
    }
}

/// Why the gate refused a destination: a stable code, and the host when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `invalid_url`, `insecure_scheme` or `host_not_a_subprocessor`.
    pub reason: &'static str,
    pub host: Option<String>,
}

/// Parse an outbound URL: absolute, `https` (or `http` when `allow_insecure_http`), a host,
/// no credentials, at most 2048 bytes. Returns the URL and its host in the registry's normal
/// form. Errors are `invalid_url` or `insecure_scheme`.
pub fn destination(raw: &str, allow_insecure_http: bool) -> Result<(Url, String), &'static str> {
    if raw.len() > 2048 {
        return Err("invalid_url");
    }
    let url = Url::parse(raw).map_err(|_| "invalid_url")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("invalid_url");
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http => {}
        "http" => return Err("insecure_scheme"),
        _ => return Err("invalid_url"),
    }
    // The parser lower-cases domains (IDNs to punycode) and prints addresses canonically;
    // the normal form drops IPv6 brackets and a trailing dot.
    let host = normalize_url_host(url.host_str().ok_or("invalid_url")?);
    if host.is_empty() {
        return Err("invalid_url");
    }
    Ok((url, host))
}

/// The outbound gate: `raw` may be sent to only if its host belongs to a sub-processor of
/// `registry` (the workspace's region's); returns the URL and those sub-processors.
pub fn gate(
    raw: &str,
    registry: &[Subprocessor],
    allow_insecure_http: bool,
) -> Result<(Url, Vec<SubprocessorId>), Refusal> {
    let (url, host) = destination(raw, allow_insecure_http).map_err(|reason| Refusal {
        reason,
        // The host of an unparsable URL is unknown; of an http one it is shown.
        host: Url::parse(raw)
            .ok()
            .and_then(|u| u.host_str().map(normalize_url_host)),
    })?;
    let receivers: Vec<SubprocessorId> = registry
        .iter()
        .filter(|s| s.receives_at(&host))
        .map(|s| s.id.clone())
        .collect();
    if receivers.is_empty() {
        return Err(Refusal {
            reason: "host_not_a_subprocessor",
            host: Some(host),
        });
    }
    Ok((url, receivers))
}

/// The worker's HTTP client and settings.
pub struct Worker {
    client: reqwest::Client,
    settings: OutboundSettings,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Build the client (rustls with the server's suite policy, the system's roots plus
    /// `ca_file`, no redirects, no proxy from the environment).
    pub fn new(settings: &OutboundSettings) -> Result<Self, String> {
        settings.validate()?;
        let client = crate::sinks::outbound_client(
            !settings.allow_insecure_http,
            settings.ca_file.as_deref(),
            Duration::from_secs(settings.request_timeout_s),
        )
        .map_err(|e| format!("outbound: {e}"))?;
        Ok(Self {
            client,
            settings: settings.clone(),
        })
    }

    pub fn settings(&self) -> &OutboundSettings {
        &self.settings
    }
}

/// Start the worker over every cell.
pub fn spawn(
    cells: BTreeMap<Region, Arc<Cell>>,
    settings: &OutboundSettings,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let worker = Arc::new(Worker::new(settings)?);
    let poll = Duration::from_millis(settings.poll_interval_ms);
    Ok(tokio::spawn(async move {
        let mut last_prune: Option<std::time::Instant> = None;
        loop {
            tokio::time::sleep(poll).await;
            let prune = last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600));
            for cell in cells.values() {
                match run_once(cell, &worker).await {
                    Err(StoreError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(region = %cell.region(), error = %e, "outbound deliveries failed");
                    }
                    Ok(_) => {}
                }
                if prune {
                    let horizon = now_ms() - OUTBOX_KEEP_DAYS * 86_400_000;
                    if let Err(e) = cell.prune_outbox(horizon).await {
                        tracing::warn!(region = %cell.region(), error = %e, "outbox pruning failed");
                    }
                }
            }
            if prune {
                last_prune = Some(std::time::Instant::now());
            }
        }
    }))
}

/// One round for one region: every due delivery (up to `batch`), `concurrency` at a time.
/// Returns how many were looked at.
pub async fn run_once(cell: &Cell, worker: &Worker) -> Result<usize, StoreError> {
    let due = cell.due_deliveries(now_ms(), worker.settings.batch).await?;
    if due.is_empty() {
        return Ok(0);
    }
    // The registry as it is now: a host de-registered after a delivery was enqueued is
    // refused.
    let registry = cell.subprocessors().await?;
    let n = due.len();
    futures::stream::iter(due)
        .for_each_concurrent(worker.settings.concurrency, |d| {
            let registry = &registry;
            async move {
                if let Err(e) = process(cell, worker, registry, &d).await {
                    tracing::warn!(workspace = %d.workspace, delivery = %d.id, error = %e, "outbound delivery not recorded");
                }
            }
        })
        .await;
    Ok(n)
}

async fn process(
    cell: &Cell,
    worker: &Worker,
    registry: &[Subprocessor],
    due: &DueDelivery,
) -> Result<(), StoreError> {
    let Some(msg) = cell.open_delivery(&due.workspace, &due.id).await? else {
        return Ok(());
    };
    let out = match &msg.destination {
        Ok(out) => out,
        Err(reason) => {
            count(&msg, "failed");
            return cell
                .finish_delivery(
                    &msg,
                    msg.attempts,
                    &DeliveryOutcome::Failed {
                        error: (*reason).to_owned(),
                    },
                )
                .await;
        }
    };
    let (url, receivers) = match gate(&out.url, registry, worker.settings.allow_insecure_http) {
        Ok(ok) => ok,
        Err(refusal) => {
            tracing::warn!(
                workspace = %msg.workspace,
                delivery = %msg.id,
                kind = msg.kind.as_str(),
                host = refusal.host.as_deref().unwrap_or(""),
                reason = refusal.reason,
                "outbound delivery refused: not a registered sub-processor host of the region"
            );
            count(&msg, "refused");
            return cell
                .finish_delivery(
                    &msg,
                    msg.attempts,
                    &DeliveryOutcome::Refused {
                        error: refusal.reason.to_owned(),
                        host: refusal.host,
                    },
                )
                .await;
        }
    };
    let lease_until = now_ms() + worker.settings.lease_ms();
    if !cell.claim_delivery(&msg, lease_until, &receivers).await? {
        return Ok(());
    }
    let attempts = msg.attempts + 1;
    let outcome = match send(worker, &msg, out, url).await {
        Sent::Delivered => DeliveryOutcome::Delivered,
        Sent::Permanent(error) => DeliveryOutcome::Failed { error },
        Sent::Transient(error) if attempts >= i64::from(worker.settings.max_attempts) => {
            DeliveryOutcome::Failed { error }
        }
        Sent::Transient(error) => DeliveryOutcome::Retry {
            error,
            next_attempt_at: now_ms() + worker.settings.backoff_ms(attempts) as i64,
        },
    };
    count(
        &msg,
        match outcome {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retry { .. } => "retry",
            _ => "failed",
        },
    );
    cell.finish_delivery(&msg, attempts, &outcome).await
}

fn count(msg: &OutboundMessage, outcome: &'static str) {
    metrics::counter!("interlock_outbound_deliveries_total",
        "kind" => msg.kind.as_str(), "outcome" => outcome)
    .increment(1);
}

enum Sent {
    Delivered,
    /// Worth retrying (5xx, 408, 429, timeout, connection).
    Transient(String),
    /// Not worth retrying (other 4xx, 3xx).
    Permanent(String),
}

async fn send(worker: &Worker, msg: &OutboundMessage, out: &Outbound, url: Url) -> Sent {
    let timestamp = now_ms().div_euclid(1000);
    let mut req = worker
        .client
        .post(url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header("webhook-id", msg.id.as_str())
        .header("webhook-timestamp", timestamp.to_string())
        .body(out.body.to_vec());
    if let Some(secret) = &out.secret {
        req = req.header(
            "webhook-signature",
            secret.sign(msg.id.as_str(), timestamp, &out.body),
        );
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            // The body is not read: it is the receiver's, and the status is all we need.
            drop(resp);
            let code = status.as_u16();
            if status.is_success() {
                Sent::Delivered
            } else if status.is_server_error() || code == 408 || code == 429 {
                Sent::Transient(format!("http_{code}"))
            } else {
                Sent::Permanent(format!("http_{code}"))
            }
        }
        Err(e) if e.is_timeout() => Sent::Transient("timeout".to_owned()),
        Err(e) if e.is_connect() => Sent::Transient("connect_failed".to_owned()),
        Err(_) => Sent::Transient("transport_error".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sp(hosts: &[&str]) -> Subprocessor {
        Subprocessor {
            id: SubprocessorId::new(),
            name: "n".into(),
            purpose: "p".into(),
            data_categories: vec!["user.name".into()],
            regions: vec![Region::Eu],
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            deletion_notice_url: format!("https://{}/n", hosts[0]),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn gate_allows_only_registered_hosts_over_https() {
        let reg = [sp(&["hooks.acme.example", "2001:db8::1"])];
        let (_, who) = gate("https://hooks.acme.example/in?t=1", &reg, false).unwrap();
        assert_eq!(who, [reg[0].id.clone()]);
        // Case and a trailing dot do not get around it; ports do not matter.
        assert!(gate("https://HOOKS.acme.example.:8443/in", &reg, false).is_ok());
        assert!(gate("https://[2001:db8:0::1]/in", &reg, false).is_ok());
        let refused = |url: &str, insecure: bool| gate(url, &reg, insecure).unwrap_err();
        assert_eq!(
            refused("https://evil.example/in", false),
            Refusal {
                reason: "host_not_a_subprocessor",
                host: Some("evil.example".into())
            }
        );
        // A registered host's subdomain, or a look-alike suffix, is another host.
        assert_eq!(
            refused("https://x.hooks.acme.example/", false).reason,
            "host_not_a_subprocessor"
        );
        assert_eq!(
            refused("https://hooks.acme.example.evil.example/", false).reason,
            "host_not_a_subprocessor"
        );
        assert_eq!(
            refused("https://user:pw@hooks.acme.example/", false).reason,
            "invalid_url"
        );
        assert_eq!(
            refused("http://hooks.acme.example/", false).reason,
            "insecure_scheme"
        );
        assert!(gate("http://hooks.acme.example/", &reg, true).is_ok());
        assert_eq!(
            refused("ftp://hooks.acme.example/", true).reason,
            "invalid_url"
        );
        assert_eq!(refused("not a url", false).reason, "invalid_url");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = OutboundSettings {
            backoff_base_ms: 100,
            backoff_cap_ms: 1000,
            ..OutboundSettings::default()
        };
        assert_eq!(
            (1..=6).map(|a| s.backoff_ms(a)).collect::<Vec<_>>(),
            [100, 200, 400, 800, 1000, 1000]
        );
        assert_eq!(s.backoff_ms(1_000_000), 1000);
        assert!(OutboundSettings::default().validate().is_ok());
        let bad = OutboundSettings {
            backoff_cap_ms: 1,
            ..OutboundSettings::default()
        };
        assert!(bad.validate().is_err());
    }
}
