//! The region's sub-processor registry: the outside parties this region's workspaces may send
//! data to, with the hosts they receive it at. It is region-level (no workspace owns it),
//! managed by the operator and public (`GET /v1/subprocessors`).
//!
//! A sub-processor listed for several regions has a row in each of those regions' databases
//! (one region's database never describes another region's flows); the HTTP layer writes each
//! region it names. A change in a region enqueues a `subprocessors.changed` webhook for every
//! workspace of that region subscribed to it, in the same transaction.
//!
//! The registry is what the outbound gate checks: a delivery leaves only to a host listed
//! here for the workspace's region (see `crates/http/src/outbox.rs`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use interlock_domain::{DomainError, Region, SubprocessorId, WorkspaceId};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Cell, col, parse_id};
use crate::datamap::FIDESLANG_DATA_CATEGORIES;
use crate::db::{Arg, Stmt};
use crate::{StoreError, now_ms};

/// Most hosts one sub-processor may list.
pub const MAX_HOSTS: usize = 32;
/// Most data categories one sub-processor may list.
pub const MAX_CATEGORIES: usize = 32;
/// Longest name, in characters.
pub const MAX_NAME: usize = 200;
/// Longest purpose, in characters.
pub const MAX_PURPOSE: usize = 1000;
/// Longest deletion notice URL, in bytes.
pub const MAX_URL: usize = 2048;

/// A registered sub-processor (public information; no personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subprocessor {
    pub id: SubprocessorId,
    pub name: String,
    pub purpose: String,
    /// fideslang data category keys of what it receives.
    pub data_categories: Vec<String>,
    pub regions: Vec<Region>,
    /// Normalised hosts (lower-case DNS names, canonical IP addresses).
    pub hosts: Vec<String>,
    /// Where erasure notices are POSTed; its host is one of `hosts`.
    pub deletion_notice_url: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Subprocessor {
    /// Whether `host` (as [`normalize_url_host`] gives it) is one of this sub-processor's.
    pub fn receives_at(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }

    /// The public description carried by `subprocessors.changed` webhooks.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.as_str(),
            "name": self.name,
            "purpose": self.purpose,
            "data_categories": self.data_categories,
            "regions": self.regions.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "hosts": self.hosts,
            "deletion_notice_url": self.deletion_notice_url,
        })
    }
}

/// A checked sub-processor description (made only by [`SubprocessorInput::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubprocessorInput {
    name: String,
    purpose: String,
    data_categories: Vec<String>,
    regions: Vec<Region>,
    hosts: Vec<String>,
    deletion_notice_url: String,
}

fn text_ok(s: &str, max: usize) -> bool {
    let n = s.chars().count();
    (1..=max).contains(&n) && !s.chars().any(char::is_control) && s.trim() == s
}

const INVALID_HOST: DomainError = DomainError::new(
    "hosts",
    "invalid_host",
    "a host is a lower-case DNS name or an IP address, without scheme, port, path or wildcard",
);

/// Check one registry host and return its normal form: a lower-case DNS name (letters,
/// digits and `-` in labels of 1–63, at most 253 bytes; IDNs as `xn--` punycode), or an IPv4
/// or IPv6 address (IPv6 with or without brackets; stored canonical, without brackets).
/// Refused: upper case, schemes, ports, paths, user info, wildcards, trailing dots, empty
/// labels, an all-numeric last label (a malformed IPv4 address).
pub fn check_host(raw: &str) -> Result<String, DomainError> {
    if raw.is_empty() || raw.len() > 253 {
        return Err(INVALID_HOST);
    }
    let bare = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let labels: Vec<&str> = raw.split('.').collect();
    for label in &labels {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(INVALID_HOST);
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(INVALID_HOST);
    }
    Ok(raw.to_owned())
}

/// The normal form of a URL's host as the URL parser gives it (`url::Host` printed): a
/// domain lower-cased without a trailing dot, an address canonical without brackets. Compare
/// the result with [`Subprocessor::receives_at`].
pub fn normalize_url_host(host: &str) -> String {
    let bare = host
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.trim_end_matches('.').to_ascii_lowercase(),
    }
}

impl SubprocessorInput {
    /// Check a description. `notice_url_host` is the host of `deletion_notice_url` as the
    /// caller's URL parser found it (the HTTP layer checks the URL's scheme and shape); it
    /// must be one of `hosts`.
    pub fn new(
        name: &str,
        purpose: &str,
        data_categories: &[String],
        regions: &[String],
        hosts: &[String],
        deletion_notice_url: &str,
        notice_url_host: &str,
    ) -> Result<Self, DomainError> {
        if !text_ok(name, MAX_NAME) {
            return Err(DomainError::new(
                "name",
                "invalid_name",
                "name must be 1 to 200 characters, without control characters or surrounding spaces",
            ));
        }
        if !text_ok(purpose, MAX_PURPOSE) {
            return Err(DomainError::new(
                "purpose",
                "invalid_purpose",
                "purpose must be 1 to 1000 characters, without control characters or surrounding spaces",
            ));
        }
        if data_categories.is_empty() || data_categories.len() > MAX_CATEGORIES {
            return Err(DomainError::new(
                "data_categories",
                "invalid_data_categories",
                "list 1 to 32 data categories",
            ));
        }
        let mut cats = Vec::with_capacity(data_categories.len());
        for c in data_categories {
            if !FIDESLANG_DATA_CATEGORIES.contains(&c.as_str()) {
                return Err(DomainError::new(
                    "data_categories",
                    "unknown_data_category",
                    "a data category is not a fideslang category key the data map uses (see GET /v1/data-map)",
                ));
            }
            cats.push(c.clone());
        }
        cats.sort();
        cats.dedup();
        if regions.is_empty() {
            return Err(DomainError::new(
                "regions",
                "invalid_regions",
                "list at least one region",
            ));
        }
        let mut regs = regions
            .iter()
            .map(|r| r.parse::<Region>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                DomainError::new(
                    "regions",
                    "invalid_region",
                    "regions must be among us, eu, au",
                )
            })?;
        regs.sort();
        regs.dedup();
        if hosts.is_empty() || hosts.len() > MAX_HOSTS {
            return Err(DomainError::new(
                "hosts",
                "invalid_hosts",
                "list 1 to 32 hosts",
            ));
        }
        let mut hs = hosts
            .iter()
            .map(|h| check_host(h))
            .collect::<Result<Vec<_>, _>>()?;
        hs.sort();
        hs.dedup();
        if deletion_notice_url.is_empty() || deletion_notice_url.len() > MAX_URL {
            return Err(DomainError::new(
                "deletion_notice_url",
                "invalid_deletion_notice_url",
                "deletion_notice_url must be an https URL of at most 2048 bytes",
            ));
        }
        if !hs.iter().any(|h| *h == normalize_url_host(notice_url_host)) {
            return Err(DomainError::new(
                "deletion_notice_url",
                "notice_host_not_listed",
                "the host of deletion_notice_url must be one of the sub-processor's hosts",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            purpose: purpose.to_owned(),
            data_categories: cats,
            regions: regs,
            hosts: hs,
            deletion_notice_url: deletion_notice_url.to_owned(),
        })
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }
}

/// What a registry change did in one region, as `subprocessors.changed` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryChange {
    Added,
    Updated,
    Removed,
}

impl RegistryChange {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryChange::Added => "added",
            RegistryChange::Updated => "updated",
            RegistryChange::Removed => "removed",
        }
    }
}

fn json_list(raw: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw)
        .map_err(|_| StoreError::Integrity(interlock_crypto::CryptoError::Malformed))
}

fn decode(row: &sqlx::any::AnyRow) -> Result<Subprocessor, StoreError> {
    let regions = json_list(&col::<String>(row, "regions")?)?
        .iter()
        .map(|r| parse_id(r.parse::<Region>()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Subprocessor {
        id: parse_id(SubprocessorId::parse(&col::<String>(row, "id")?))?,
        name: col(row, "name")?,
        purpose: col(row, "purpose")?,
        data_categories: json_list(&col::<String>(row, "data_categories")?)?,
        regions,
        hosts: json_list(&col::<String>(row, "hosts")?)?,
        deletion_notice_url: col(row, "deletion_notice_url")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn list_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

impl Cell {
    /// Every sub-processor registered for this region, by id. Read from the store each time
    /// (it is small), so a change by another process counts at once.
    pub async fn subprocessors(&self) -> Result<Vec<Subprocessor>, StoreError> {
        const Q: &str = "SELECT id, name, purpose, data_categories, regions, hosts, deletion_notice_url, created_at, updated_at FROM subprocessors ORDER BY id";
        let rows = sqlx::query(Q)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        rows.iter().map(decode).collect()
    }

    /// One sub-processor of this region's registry.
    pub async fn subprocessor(
        &self,
        id: &SubprocessorId,
    ) -> Result<Option<Subprocessor>, StoreError> {
        const Q: &str = "SELECT id, name, purpose, data_categories, regions, hosts, deletion_notice_url, created_at, updated_at FROM subprocessors WHERE id = $1";
        let row = sqlx::query(Q)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        row.as_ref().map(decode).transpose()
    }

    /// Make this region's registry agree with `input` for sub-processor `id`: insert or update
    /// it when `input` lists this region, delete it otherwise (`input = None` deletes). In the
    /// same transaction, every workspace of the region subscribed to `subprocessors.changed`
    /// gets a webhook. `created_at` is kept from the first registration. Returns what changed
    /// here (nothing, when deleting an absent one).
    pub async fn apply_subprocessor(
        &self,
        id: &SubprocessorId,
        input: Option<&SubprocessorInput>,
        created_at: i64,
    ) -> Result<Option<RegistryChange>, StoreError> {
        let existing = self.subprocessor(id).await?;
        let now = now_ms();
        let wanted = input.filter(|i| i.regions.contains(&self.region));
        let (change, mut unit, record) = match (wanted, existing) {
            (Some(i), existing) => {
                let record = Subprocessor {
                    id: id.clone(),
                    name: i.name.clone(),
                    purpose: i.purpose.clone(),
                    data_categories: i.data_categories.clone(),
                    regions: i.regions.clone(),
                    hosts: i.hosts.clone(),
                    deletion_notice_url: i.deletion_notice_url.clone(),
                    created_at: existing.as_ref().map_or(created_at, |e| e.created_at),
                    updated_at: now,
                };
                let args = vec![
                    Arg::Text(id.to_string()),
                    Arg::Text(record.name.clone()),
                    Arg::Text(record.purpose.clone()),
                    Arg::Text(list_json(&record.data_categories)),
                    Arg::Text(list_json(&record.regions)),
                    Arg::Text(list_json(&record.hosts)),
                    Arg::Text(record.deletion_notice_url.clone()),
                    Arg::Int(record.created_at),
                    Arg::Int(now),
                ];
                if existing.is_some() {
                    let stmt = Stmt::new(
                        "UPDATE subprocessors SET name = $2, purpose = $3, data_categories = $4, regions = $5, hosts = $6, deletion_notice_url = $7, created_at = $8, updated_at = $9 WHERE id = $1",
                        args,
                    )
                    .expect(1);
                    (RegistryChange::Updated, vec![stmt], record)
                } else {
                    let stmt = Stmt::new(
                        "INSERT INTO subprocessors (id, name, purpose, data_categories, regions, hosts, deletion_notice_url, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        args,
                    );
                    (RegistryChange::Added, vec![stmt], record)
                }
            }
            (None, Some(old)) => {
                let stmt = Stmt::new(
                    "DELETE FROM subprocessors WHERE id = $1",
                    vec![Arg::Text(id.to_string())],
                )
                .expect(1);
                (RegistryChange::Removed, vec![stmt], old)
            }
            (None, None) => return Ok(None),
        };
        let data = json!({
            "action": change.as_str(),
            "region": self.region.as_str(),
            "subprocessor": record.to_json(),
        });
        unit.extend(self.broadcast_stmts("subprocessors.changed", &data).await?);
        self.writer.write(unit).await?;
        Ok(Some(change))
    }

    /// Webhook deliveries of `event` for every workspace of this region subscribed to it
    /// (a region-level event: no data subject).
    async fn broadcast_stmts(&self, event: &str, data: &Value) -> Result<Vec<Stmt>, StoreError> {
        // Only ids and event names are read across workspaces; each delivery is then sealed
        // under its own workspace's key.
        let rows = sqlx::query("SELECT workspace_id, events FROM webhooks ORDER BY workspace_id")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Db)?;
        let mut workspaces: BTreeMap<String, ()> = BTreeMap::new();
        for row in &rows {
            let events: String = col(row, "events")?;
            if super::outbox::subscribes(&events, event) {
                workspaces.insert(col(row, "workspace_id")?, ());
            }
        }
        let mut out = Vec::new();
        for ws in workspaces.keys() {
            let ws = parse_id(WorkspaceId::parse(ws))?;
            out.extend(self.webhook_stmts(&ws, event, data.clone(), None).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn hosts_are_checked_and_normalised() {
        for ok in [
            "example.com",
            "api.example.com",
            "a-b.example.co",
            "xn--bcher-kva.example",
            "localhost",
            "127.0.0.1",
        ] {
            assert_eq!(check_host(ok).unwrap(), ok, "{ok}");
        }
        assert_eq!(check_host("[::1]").unwrap(), "::1");
        assert_eq!(check_host("2001:DB8:0:0::1").unwrap(), "2001:db8::1");
        for bad in [
            "",
            "Example.com",
            "https://example.com",
            "example.com/path",
            "example.com:443",
            "*.example.com",
            "example.com.",
            "a..com",
            "-a.com",
            "a-.com",
            "user@example.com",
            "exa mple.com",
            "ex_ample.com",
            "1.2.3",
            "01.1.1.1",
            "999.1.1.1",
            "[example.com]",
            &"a".repeat(64),
            &format!("{}.com", ["a"; 130].join(".")),
        ] {
            assert!(check_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn url_hosts_normalise_like_registry_hosts() {
        assert_eq!(normalize_url_host("[::1]"), "::1");
        assert_eq!(normalize_url_host("Example.COM."), "example.com");
        assert_eq!(normalize_url_host("127.0.0.1"), "127.0.0.1");
    }

    fn input(
        cats: &[&str],
        regions: &[&str],
        hosts: &[&str],
        notice_host: &str,
    ) -> Result<SubprocessorInput, DomainError> {
        SubprocessorInput::new(
            "Acme Mail",
            "Sends email",
            &strings(cats),
            &strings(regions),
            &strings(hosts),
            "https://hooks.acme.example/erasure",
            notice_host,
        )
    }

    #[test]
    fn input_is_validated_with_stable_codes() {
        let ok = input(
            &["user.contact.email", "user.name", "user.contact.email"],
            &["eu", "us", "eu"],
            &["hooks.acme.example", "127.0.0.1"],
            "hooks.acme.example",
        )
        .unwrap();
        assert_eq!(ok.data_categories, ["user.contact.email", "user.name"]);
        assert_eq!(ok.regions, [Region::Us, Region::Eu]);
        assert_eq!(ok.hosts, ["127.0.0.1", "hooks.acme.example"]);
        let code = |r: Result<SubprocessorInput, DomainError>| r.unwrap_err().code;
        assert_eq!(
            code(input(&["user.dna"], &["eu"], &["a.example"], "a.example")),
            "unknown_data_category"
        );
        assert_eq!(
            code(input(&[], &["eu"], &["a.example"], "a.example")),
            "invalid_data_categories"
        );
        assert_eq!(
            code(input(
                &["user.name"],
                &["mars"],
                &["a.example"],
                "a.example"
            )),
            "invalid_region"
        );
        assert_eq!(
            code(input(&["user.name"], &[], &["a.example"], "a.example")),
            "invalid_regions"
        );
        assert_eq!(
            code(input(
                &["user.name"],
                &["eu"],
                &["*.a.example"],
                "a.example"
            )),
            "invalid_host"
        );
        assert_eq!(
            code(input(&["user.name"], &["eu"], &[], "a.example")),
            "invalid_hosts"
        );
        assert_eq!(
            code(input(&["user.name"], &["eu"], &["a.example"], "b.example")),
            "notice_host_not_listed"
        );
        let long = "x".repeat(201);
        assert_eq!(
            SubprocessorInput::new(
                &long,
                "p",
                &strings(&["user.name"]),
                &strings(&["eu"]),
                &strings(&["a.example"]),
                "https://a.example/",
                "a.example"
            )
            .unwrap_err()
            .code,
            "invalid_name"
        );
        assert_eq!(
            SubprocessorInput::new(
                "n",
                " p",
                &strings(&["user.name"]),
                &strings(&["eu"]),
                &strings(&["a.example"]),
                "https://a.example/",
                "a.example"
            )
            .unwrap_err()
            .code,
            "invalid_purpose"
        );
    }
}
