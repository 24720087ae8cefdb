//! The messenger's edge: abuse limits (rate limiters and message size), the client address,
//! and the extractor that turns a messenger session token into a [`MessengerAuth`].
//!
//! Invariants:
//! - A messenger session token is accepted only by handlers that take [`MessengerAuth`]; the
//!   workspace extractor refuses it (its prefix is `ilm_`, not `ilk_`), so a session reaches
//!   nothing but the messenger routes.
//! - Rate limits are checked before any store is read or written.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use interlock_crypto::{RegionToken, TokenKind};
use interlock_storage::{Cell, MessengerSession};

use crate::AppState;
use crate::error::ApiError;

/// The messenger's abuse limits. Every rate is per minute, with a burst of the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessengerLimits {
    pub boots_per_minute_per_ip: u32,
    pub boots_per_minute_per_workspace: u32,
    pub messages_per_minute_per_ip: u32,
    pub messages_per_minute_per_workspace: u32,
    /// Largest message body, in bytes of UTF-8.
    pub max_message_bytes: usize,
    /// How long a messenger session lasts.
    pub session_ttl_s: i64,
}

impl Default for MessengerLimits {
    fn default() -> Self {
        Self {
            boots_per_minute_per_ip: 60,
            boots_per_minute_per_workspace: 1200,
            messages_per_minute_per_ip: 120,
            messages_per_minute_per_workspace: 2400,
            max_message_bytes: 16 * 1024,
            session_ttl_s: 3600,
        }
    }
}

/// What a rate limit is for.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Boot,
    Message,
}

/// Keyed token buckets (GCRA, from `governor`) for boots and messages.
pub struct RateLimits {
    boots_ip: DefaultKeyedRateLimiter<IpAddr>,
    boots_ws: DefaultKeyedRateLimiter<String>,
    messages_ip: DefaultKeyedRateLimiter<IpAddr>,
    messages_ws: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

fn verdict(
    result: Result<(), governor::NotUntil<governor::clock::QuantaInstant>>,
) -> Result<(), ApiError> {
    result.map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        // Round up: a client that waits Retry-After seconds must find a token.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::RateLimited {
            retry_after_s: secs.max(1),
        }
    })
}

impl RateLimits {
    pub fn new(limits: &MessengerLimits) -> Self {
        Self {
            boots_ip: RateLimiter::keyed(per_minute(limits.boots_per_minute_per_ip)),
            boots_ws: RateLimiter::keyed(per_minute(limits.boots_per_minute_per_workspace)),
            messages_ip: RateLimiter::keyed(per_minute(limits.messages_per_minute_per_ip)),
            messages_ws: RateLimiter::keyed(per_minute(limits.messages_per_minute_per_workspace)),
            checks: AtomicU64::new(0),
        }
    }

    /// Take one token for `action` from the address's and the workspace's buckets, or say
    /// how long to wait. The address is checked first, so one noisy client cannot drain the
    /// workspace's budget.
    pub fn check(&self, action: Action, ip: IpAddr, workspace: &str) -> Result<(), ApiError> {
        // Forget idle keys now and then so the maps stay bounded by recent traffic.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.boots_ip.retain_recent();
            self.boots_ws.retain_recent();
            self.messages_ip.retain_recent();
            self.messages_ws.retain_recent();
        }
        let (by_ip, by_ws) = match action {
            Action::Boot => (&self.boots_ip, &self.boots_ws),
            Action::Message => (&self.messages_ip, &self.messages_ws),
        };
        verdict(by_ip.check_key(&ip))?;
        let key = workspace.to_owned();
        verdict(by_ws.check_key(&key))
    }
}

/// The client's address, from the TCP connection. (Behind a proxy this is the proxy's address:
/// forwarded headers are not trusted.)
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(ip))
    }
}

/// A request authenticated with a live messenger session token: the session (one contact of
/// one workspace) and its region's cell.
#[derive(Debug, Clone)]
pub struct MessengerAuth {
    pub session: MessengerSession,
    pub cell: Arc<Cell>,
}

const INVALID: ApiError = ApiError::Unauthorized {
    code: "invalid_token",
    detail: "the messenger session token is not valid or has expired; boot again",
};

impl FromRequestParts<Arc<AppState>> for MessengerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = crate::extract::bearer(parts)?;
        let region = RegionToken::region_of(TokenKind::MessengerSession, token).ok_or(INVALID)?;
        let cell = state.cell(region)?;
        let session = cell.messenger_session(token).await?.ok_or(INVALID)?;
        Ok(MessengerAuth { session, cell })
    }
}
