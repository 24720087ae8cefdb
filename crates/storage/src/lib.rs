//! Interlock's storage layer: one cell per region, each with its own database (a SQLite file
//! or a PostgreSQL database), its own blob folder and its own master keys.
//!
//! Invariants this crate keeps:
//! - It is the only crate that writes SQL, and every query names the workspace.
//! - Personal and content fields are sealed (AES-256-GCM under the data subject's key) before
//!   they are bound to a query or written to a blob; its public API takes and returns plaintext
//!   domain values, so no caller can write plaintext by mistake.
//! - Exact-match lookups go through blind indexes, never plaintext columns.
//! - A write is acknowledged only after its transaction is durable.

pub mod backup;
pub mod blobs;
mod cache;
pub mod cell;
pub mod datamap;
pub mod db;
pub mod ledger;
pub mod records;
pub mod schema;

pub use cell::StaffDevice;
pub use cell::{
    ActivityFilter, ActivityHead, ApiTokenInfo, Cell, CellConfig, ChainFailure, ChainReport,
    CustomRole, CutReport, DeletionCounts, LifecycleReport, LoginRecord, MessengerSecret,
    MessengerSession, REMOVED_TEAMMATE_MAX_AGE_MS, RawActivity, RetentionReport, SessionInfo,
    SessionPrincipal, SessionScope, StoredActivity, Teammate, TokenPrincipal, TokenScope,
    VISITOR_MAX_AGE_MS,
};
#[doc(hidden)]
pub use cell::{ERASURES_OF, SUBJECT_KEYS_OF};
pub use cell::{EXPIRED_TOKEN_KEEP_MS, THROTTLE_QUIET_MS, VISITOR_BATCH_MAX, VisitorBatch};
pub use cell::{GrantPrincipal, STAFF_SESSION_MS, StaffGrant, StaffMember, StaffPrincipal};
pub use cell::{
    ReviewCampaign, ReviewDecision, ReviewItem, ReviewItemKind, ReviewReport, ReviewSchedule,
    ReviewSweep, ReviewVerdict, Reviewer,
};
pub use cell::{StaffAuditBreak, StaffAuditEntry};
pub use cell::{StaffCeremony, StoredStaffPasskey};
pub use db::{Backend, Writer, WriterStats};
pub use ledger::{ErasureLedger, ErasureRecord};
pub use records::*;

use thiserror::Error;

/// Errors of the storage layer. `Db` and `Io` carry the cause for logs; the HTTP layer maps
/// them to a generic 500 and never shows their text.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("invalid input: {0}")]
    Invalid(interlock_domain::DomainError),
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("integrity failure: a stored ciphertext did not decrypt")]
    Integrity(#[source] interlock_crypto::CryptoError),
    #[error("crypto error: {0}")]
    Crypto(#[from] interlock_crypto::CryptoError),
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
    #[error("blob store error: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("the store is shutting down")]
    Closed,
}

impl StoreError {
    pub(crate) fn from_db(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    return StoreError::Conflict("unique_violation");
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => return StoreError::NotFound,
                _ => {}
            }
        }
        StoreError::Db(err)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where time comes from for work that acts on age (retention sweeps): the system clock in
/// production, a clock the test moves in tests.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that runs `offset_ms` ahead of the system clock (tests move time with it).
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    pub fn new(offset_ms: i64) -> Self {
        Self {
            offset_ms: std::sync::atomic::AtomicI64::new(offset_ms),
        }
    }

    /// Move the clock to `offset_ms` ahead of now.
    pub fn set_offset(&self, offset_ms: i64) {
        self.offset_ms
            .store(offset_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

/// A clock that stands still until moved: tests that check a duration (a lock's length) do
/// not depend on how fast the machine runs them.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        Self {
            now_ms: std::sync::atomic::AtomicI64::new(now_ms),
        }
    }

    /// Move the clock `ms` on.
    pub fn advance(&self, ms: i64) {
        self.now_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}
