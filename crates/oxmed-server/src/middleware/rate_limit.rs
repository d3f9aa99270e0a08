//! Request rate limits per client address, and lockouts per account after failed logins.
//!
//! Medplum limits every client IP to 60 000 requests a minute, and to 160 a minute on the
//! authentication endpoints, with counters in Redis so that a cluster shares them. oxmed runs as
//! one process, so the counters live in memory: a keyed GCRA limiter from `governor` per limit.
//! GCRA is a token bucket without a timer: a full minute's allowance is available at once, and
//! it refills continuously (one request every `60 s / limit`), so a client that exhausted it is
//! let in again bit by bit rather than all at once when a fixed window ends.
//!
//! An IP limit does not stop a password-guessing botnet, which spreads its attempts over many
//! addresses but aims them at few accounts; [`FailureLimiter`] counts failures per account.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{NotUntil, Quota};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderName, RETRY_AFTER};
use sha2::{Digest, Sha256};

use super::client_addr::{ClientAddr, UNKNOWN_CLIENT};
use crate::fhir_json::FHIR_JSON;

/// Requests per minute and client address; `0` disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// For authentication endpoints (see [`is_auth_path`]); these count against
    /// `general_per_minute` as well.
    pub auth_per_minute: u32,
    /// For every request.
    pub general_per_minute: u32,
}

impl Default for RateLimits {
    /// Medplum's defaults.
    fn default() -> Self {
        RateLimits {
            auth_per_minute: 160,
            general_per_minute: 60_000,
        }
    }
}

/// A request was refused by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests, retry after {retry_after:?}")]
pub struct Throttled {
    /// When the next request from the same client could succeed.
    pub retry_after: Duration,
}

impl Throttled {
    /// `Retry-After` is in whole seconds; rounding down would invite a retry that fails again.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// Medplum's `RateLimit` header (draft-ietf-httpapi-ratelimit-headers), so that clients that
/// read it behave as they do against Medplum.
static RATE_LIMIT: HeaderName = HeaderName::from_static("ratelimit");

impl IntoResponse for Throttled {
    /// 429 with Medplum's `tooManyRequests` `OperationOutcome`.
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "resourceType": "OperationOutcome",
            "id": "too-many-requests",
            "issue": [{
                "severity": "error",
                "code": "throttled",
                "details": { "text": "Too Many Requests" },
            }],
        });
        let secs = self.retry_after_secs();
        (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (CONTENT_TYPE, FHIR_JSON.to_owned()),
                (RETRY_AFTER, secs.to_string()),
                (RATE_LIMIT.clone(), format!("\"requests\";r=0;t={secs}")),
            ],
            body.to_string(),
        )
            .into_response()
    }
}

/// Whether a path is an authentication endpoint with the stricter limit: `/auth/...`,
/// `/oauth2/...` and the password pages (which send emails and redeem links), also under the `/api` prefix, except `/auth/me`, which only reads the session
/// and is polled by every Medplum app.
pub fn is_auth_path(path: &str) -> bool {
    let path = match path.strip_prefix("/api") {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    };
    // The trailing-slash form is the same endpoint once the router normalizes it.
    let path = path.strip_suffix('/').unwrap_or(path);
    if path == "/auth/me" {
        return false;
    }
    [
        "/auth",
        "/oauth2",
        "/setpassword",
        "/resetpassword",
        "/verifyemail",
    ]
    .iter()
    .any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Per-address state is purged every this many checks; an idle address's state is worthless
/// once its allowance has refilled, which takes at most a minute.
const PURGE_EVERY: u64 = 4096;

type KeyedLimiter<C> = governor::RateLimiter<
    IpAddr,
    DashMapStateStore<IpAddr>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// The per-address limits of [`RateLimits`], shared by all requests.
///
/// Generic over the clock so that tests can move time; servers use the default clock.
pub struct IpRateLimiter<C: Clock = DefaultClock> {
    auth: Option<KeyedLimiter<C>>,
    general: Option<KeyedLimiter<C>>,
    clock: C,
    checks: AtomicU64,
}

impl IpRateLimiter<DefaultClock> {
    pub fn new(limits: RateLimits) -> Self {
        IpRateLimiter::with_clock(limits, DefaultClock::default())
    }
}

impl<C: Clock + Clone> IpRateLimiter<C> {
    pub fn with_clock(limits: RateLimits, clock: C) -> Self {
        let limiter = |per_minute: u32| {
            NonZeroU32::new(per_minute).map(|n| {
                governor::RateLimiter::dashmap_with_clock(Quota::per_minute(n), clock.clone())
            })
        };
        IpRateLimiter {
            auth: limiter(limits.auth_per_minute),
            general: limiter(limits.general_per_minute),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request from `ip` against the general limit, and against the auth limit too
    /// if `auth`. A refused request is not counted, so a client that keeps retrying while
    /// refused is let in as soon as its allowance refills.
    pub fn check(&self, ip: IpAddr, auth: bool) -> Result<(), Throttled> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            self.retain_recent();
        }
        let key = bucket(ip);
        // Auth first: a client refused there has not spent any of its general allowance.
        let limiters = [self.auth.as_ref().filter(|_| auth), self.general.as_ref()];
        for limiter in limiters.into_iter().flatten() {
            limiter
                .check_key(&key)
                .map_err(|not_until| self.throttled(&not_until))?;
        }
        Ok(())
    }

    fn throttled(&self, not_until: &NotUntil<C::Instant>) -> Throttled {
        Throttled {
            retry_after: not_until.wait_time_from(self.clock.now()),
        }
    }

    /// Forgets addresses whose allowance has fully refilled. [`IpRateLimiter::check`] calls it
    /// now and then; a timer may call it too.
    pub fn retain_recent(&self) {
        for limiter in [&self.auth, &self.general].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// The number of addresses remembered, over both limits.
    pub fn len(&self) -> usize {
        [&self.auth, &self.general]
            .into_iter()
            .flatten()
            .map(governor::RateLimiter::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key an address is counted under. An IPv6 client typically owns a whole /64 and can pick
/// a fresh address from it for every request, which would both evade the limit and fill the
/// table, so IPv6 addresses are counted per /64. IPv4-mapped addresses count as IPv4.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
    }
}

/// Middleware that enforces an [`IpRateLimiter`]: 429 with `Retry-After` and an
/// `OperationOutcome` when a limit is exceeded.
///
/// The client is the [`ClientAddr`] extension, so [`super::client_addr_layer`] must run first;
/// without it the TCP peer is used, and without that [`UNKNOWN_CLIENT`].
pub async fn rate_limit_layer<C>(
    State(limiter): State<Arc<IpRateLimiter<C>>>,
    req: Request,
    next: Next,
) -> Response
where
    C: Clock + Clone + Send + Sync + 'static,
{
    let extensions = req.extensions();
    let ip = extensions
        .get::<ClientAddr>()
        .map(|addr| addr.0)
        .or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip())
        })
        .unwrap_or(UNKNOWN_CLIENT);
    // Inside a nested router the URI has lost its prefix; the original one has not.
    let path = extensions
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path(), |original| original.0.path());
    let verdict = limiter.check(ip, is_auth_path(path));
    drop(limiter);
    match verdict {
        Ok(()) => next.run(req).await,
        Err(throttled) => {
            tracing::debug!(%ip, retry_after = throttled.retry_after_secs(), "rate limited");
            throttled.into_response()
        }
    }
}

/// What [`FailureLimiter`] allows; [`FailurePolicy::default`] is the intended one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Consecutive failures within `window` that lock the key.
    pub max_failures: usize,
    /// How far back failures count; also how long a key must stay quiet (after its last
    /// failure and after its lock ends) before the back-off starts over.
    pub window: Duration,
    /// The first lock; each further failure doubles it.
    pub first_lockout: Duration,
    pub max_lockout: Duration,
    /// Beyond this many keys, only locked keys are kept.
    pub max_keys: usize,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            first_lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(15 * 60),
            max_keys: 100_000,
        }
    }
}

/// Expired keys are purged every this many failures, and whenever there are too many.
const FAILURE_PURGE_EVERY: u64 = 256;

/// Locks an account (or any other key) after repeated failures, e.g. wrong passwords, whatever
/// address they come from.
///
/// With the default policy: the fifth failure within 15 minutes locks the key for 30 s; every
/// further failure locks it again for twice as long as the lock before (60 s, 120 s, ... up to
/// 15 minutes); a success forgets the key; so does 15 minutes without failures after the last
/// lock ended. Callers call [`FailureLimiter::check`] before verifying the credential and answer
/// a locked key without verifying it, so that a guess during the lock tells nothing.
///
/// Keys are kept only as salted SHA-256 digests, so the table holds no email addresses. Keys
/// are compared exactly: normalize them first (e.g. lowercase an email) if the login does.
///
/// Concurrent attempts that all pass `check` before any of them fails are all verified; the
/// limit bounds guessing over time, not in a single burst (which the IP limit bounds).
pub struct FailureLimiter<C: Clock = DefaultClock> {
    policy: FailurePolicy,
    clock: C,
    salt: [u8; 16],
    entries: Mutex<HashMap<[u8; 32], Failures<C::Instant>>>,
    failures: AtomicU64,
}

struct Failures<I> {
    /// The latest failures, at most `max_failures` of them.
    recent: VecDeque<I>,
    /// Locks imposed since the key was last forgotten; the next lock lasts
    /// `first_lockout * 2^locks`.
    locks: u32,
    locked_until: Option<I>,
}

impl<I: Reference> Failures<I> {
    fn new() -> Self {
        Failures {
            recent: VecDeque::new(),
            locks: 0,
            locked_until: None,
        }
    }

    fn is_locked(&self, now: I) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// Whether the key has been quiet long enough that keeping it changes nothing.
    fn is_expired(&self, now: I, window: Nanos) -> bool {
        let last = self.recent.back().copied();
        let quiet_since = match (last, self.locked_until) {
            (Some(last), Some(until)) => last.max(until),
            (Some(at), None) | (None, Some(at)) => at,
            (None, None) => return true,
        };
        now >= quiet_since + window
    }
}

impl FailureLimiter<DefaultClock> {
    pub fn new(policy: FailurePolicy) -> Self {
        FailureLimiter::with_clock(policy, DefaultClock::default())
    }
}

impl Default for FailureLimiter<DefaultClock> {
    fn default() -> Self {
        FailureLimiter::new(FailurePolicy::default())
    }
}

impl<C: Clock> FailureLimiter<C> {
    pub fn with_clock(policy: FailurePolicy, clock: C) -> Self {
        FailureLimiter {
            policy,
            clock,
            // A random salt per process keeps the digests from being matched against a list of
            // known addresses; `uuid` is already here for its random v4 ids.
            salt: uuid::Uuid::new_v4().into_bytes(),
            entries: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
        }
    }

    /// `Err(retry_after)` while `key` is locked.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        let entries = self.lock();
        match entries.get(&self.digest(key)).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until.duration_since(now).into()),
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, key: &str) {
        let now = self.clock.now();
        let window = nanos(self.policy.window);
        let digest = self.digest(key);
        let mut entries = self.lock();
        let failures = entries.entry(digest).or_insert_with(Failures::new);
        if failures.is_expired(now, window) {
            *failures = Failures::new();
        }
        // Adding to the past rather than subtracting from now: `Reference::saturating_sub`
        // answers `now` itself when the clock is younger than the window.
        while failures
            .recent
            .front()
            .is_some_and(|&at| at + window <= now)
        {
            failures.recent.pop_front();
        }
        if failures.recent.len() >= self.policy.max_failures.max(1) {
            failures.recent.pop_front();
        }
        failures.recent.push_back(now);
        if failures.locks > 0 || failures.recent.len() >= self.policy.max_failures {
            let lockout = self
                .policy
                .first_lockout
                .saturating_mul(2u32.saturating_pow(failures.locks))
                .min(self.policy.max_lockout);
            failures.locked_until = Some(now + nanos(lockout));
            failures.locks = failures.locks.saturating_add(1);
        }
        let count = self.failures.fetch_add(1, Ordering::Relaxed);
        if count % FAILURE_PURGE_EVERY == FAILURE_PURGE_EVERY - 1
            || entries.len() > self.policy.max_keys
        {
            self.purge_locked(&mut entries, now);
        }
    }

    /// Forgets `key`: a success ends the streak of failures.
    pub fn record_success(&self, key: &str) {
        let digest = self.digest(key);
        self.lock().remove(&digest);
    }

    /// Drops expired keys; [`FailureLimiter::record_failure`] calls it now and then.
    pub fn purge(&self) {
        let now = self.clock.now();
        let mut entries = self.lock();
        self.purge_locked(&mut entries, now);
    }

    fn purge_locked(&self, entries: &mut HashMap<[u8; 32], Failures<C::Instant>>, now: C::Instant) {
        let window = nanos(self.policy.window);
        entries.retain(|_, failures| !failures.is_expired(now, window));
        if entries.len() > self.policy.max_keys {
            // Under a flood of failures on distinct keys, forgetting unlocked keys gives each
            // of them back at most `max_failures - 1` attempts, while a locked key, which cost
            // the attacker `max_failures` failures, stays locked.
            entries.retain(|_, failures| failures.is_locked(now));
        }
        if entries.capacity() > 4 * entries.len().max(1024) {
            entries.shrink_to_fit();
        }
    }

    /// The number of keys remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn digest(&self, key: &str) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.salt)
            .chain_update(key.as_bytes())
            .finalize()
            .into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Failures<C::Instant>>> {
        // Every update leaves the map consistent, so a panic elsewhere while holding the lock
        // does not make its content wrong.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `Nanos::from(Duration)` panics past 584 years; a configured duration that long means
/// "forever", and a century is as good.
fn nanos(duration: Duration) -> Nanos {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    Nanos::from(duration.min(CENTURY))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use governor::clock::FakeRelativeClock;
    use tower::ServiceExt;

    use super::super::client_addr::client_addr_layer;
    use super::*;

    const EXPECTED_BODY: &str = r#"{"resourceType":"OperationOutcome","id":"too-many-requests","issue":[{"severity":"error","code":"throttled","details":{"text":"Too Many Requests"}}]}"#;

    struct Harness {
        app: Router,
        clock: FakeRelativeClock,
        limiter: Arc<IpRateLimiter<FakeRelativeClock>>,
    }

    /// The production layer order: client address first, then the limit. One trusted proxy,
    /// so that each test request can say which client it is from.
    fn harness(limits: RateLimits) -> Harness {
        let clock = FakeRelativeClock::default();
        let limiter = Arc::new(IpRateLimiter::with_clock(limits, clock.clone()));
        let app = Router::new()
            .route("/auth/login", post(|| async { "ok" }))
            .route("/auth/me", get(|| async { "ok" }))
            .route("/oauth2/token", post(|| async { "ok" }))
            .route("/api/oauth2/token", post(|| async { "ok" }))
            .route("/fhir/R4/Patient", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                limiter.clone(),
                rate_limit_layer,
            ))
            .layer(axum::middleware::from_fn_with_state(1, client_addr_layer));
        Harness {
            app,
            clock,
            limiter,
        }
    }

    impl Harness {
        async fn send(&self, method: &str, path: &str, ip: &str) -> Response {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header("x-forwarded-for", ip)
                .body(Body::empty())
                .unwrap();
            self.app.clone().oneshot(req).await.unwrap()
        }

        async fn status(&self, method: &str, path: &str, ip: &str) -> StatusCode {
            self.send(method, path, ip).await.status()
        }

        /// Sends `n` requests and asserts all pass.
        async fn pass(&self, n: usize, method: &str, path: &str, ip: &str) {
            for i in 0..n {
                let status = self.status(method, path, ip).await;
                assert_eq!(status, StatusCode::OK, "request {} to {path}", i + 1);
            }
        }
    }

    #[test]
    fn auth_paths() {
        for path in [
            "/auth/login",
            "/auth/newuser",
            "/auth",
            "/oauth2/token",
            "/oauth2/authorize",
            "/api/auth/login",
            "/api/oauth2/token",
            "/auth/login/",
        ] {
            assert!(is_auth_path(path), "{path}");
        }
        for path in [
            "/auth/me",
            "/auth/me/",
            "/api/auth/me",
            "/authx",
            "/oauth2x/token",
            "/fhir/R4/Patient",
            "/api",
            "/apiauth/login",
            "/fhir/R4/auth/login",
            "/",
        ] {
            assert!(!is_auth_path(path), "{path}");
        }
    }

    #[test]
    fn defaults_are_medplums() {
        let limits = RateLimits::default();
        assert_eq!(limits.auth_per_minute, 160);
        assert_eq!(limits.general_per_minute, 60_000);
    }

    #[tokio::test]
    async fn the_161st_auth_request_is_refused_with_an_outcome() {
        let h = harness(RateLimits::default());
        h.pass(160, "POST", "/auth/login", "203.0.113.1").await;
        let response = h.send("POST", "/auth/login", "203.0.113.1").await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let headers = response.headers();
        assert_eq!(
            headers[CONTENT_TYPE],
            "application/fhir+json; charset=utf-8"
        );
        // One request refills every 60 s / 160 = 375 ms, so the next one is due within a second.
        assert_eq!(headers[RETRY_AFTER], "1");
        assert_eq!(headers["ratelimit"], "\"requests\";r=0;t=1");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        assert_eq!(body, EXPECTED_BODY.as_bytes());
        // The same body as the JSON Medplum sends, not merely the same text.
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["issue"][0]["code"], "throttled");

        // Another client is unaffected, and so is the general API for the same client.
        assert_eq!(
            h.status("POST", "/auth/login", "203.0.113.2").await,
            StatusCode::OK
        );
        assert_eq!(
            h.status("GET", "/fhir/R4/Patient", "203.0.113.1").await,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn auth_endpoints_share_one_allowance() {
        let h = harness(RateLimits {
            auth_per_minute: 3,
            general_per_minute: 0,
        });
        h.pass(1, "POST", "/auth/login", "203.0.113.1").await;
        h.pass(1, "POST", "/oauth2/token", "203.0.113.1").await;
        h.pass(1, "POST", "/api/oauth2/token", "203.0.113.1").await;
        for path in ["/auth/login", "/oauth2/token", "/api/oauth2/token"] {
            assert_eq!(
                h.status("POST", path, "203.0.113.1").await,
                StatusCode::TOO_MANY_REQUESTS,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn api_prefixed_token_endpoint_is_auth_limited() {
        let h = harness(RateLimits {
            auth_per_minute: 2,
            general_per_minute: 1000,
        });
        h.pass(2, "POST", "/api/oauth2/token", "203.0.113.1").await;
        assert_eq!(
            h.status("POST", "/api/oauth2/token", "203.0.113.1").await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[tokio::test]
    async fn auth_me_is_not_auth_limited() {
        let h = harness(RateLimits {
            auth_per_minute: 2,
            general_per_minute: 1000,
        });
        h.pass(2, "POST", "/auth/login", "203.0.113.1").await;
        assert_eq!(
            h.status("POST", "/auth/login", "203.0.113.1").await,
            StatusCode::TOO_MANY_REQUESTS
        );
        h.pass(20, "GET", "/auth/me", "203.0.113.1").await;
    }

    #[tokio::test]
    async fn general_limit_refuses_the_sixth_request() {
        let h = harness(RateLimits {
            auth_per_minute: 160,
            general_per_minute: 5,
        });
        h.pass(5, "GET", "/fhir/R4/Patient", "203.0.113.1").await;
        let response = h.send("GET", "/fhir/R4/Patient", "203.0.113.1").await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        // 5 a minute refill one every 12 s.
        assert_eq!(response.headers()[RETRY_AFTER], "12");
        // Auth requests count against the general limit too.
        assert_eq!(
            h.status("POST", "/auth/login", "203.0.113.1").await,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            h.status("GET", "/fhir/R4/Patient", "203.0.113.2").await,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn auth_requests_use_up_the_general_allowance() {
        let h = harness(RateLimits {
            auth_per_minute: 160,
            general_per_minute: 3,
        });
        h.pass(3, "POST", "/auth/login", "203.0.113.1").await;
        assert_eq!(
            h.status("GET", "/fhir/R4/Patient", "203.0.113.1").await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[tokio::test]
    async fn allowance_refills_with_time() {
        let h = harness(RateLimits {
            auth_per_minute: 160,
            general_per_minute: 5,
        });
        let ip = "203.0.113.1";
        h.pass(5, "GET", "/fhir/R4/Patient", ip).await;
        assert_eq!(
            h.status("GET", "/fhir/R4/Patient", ip).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        h.clock.advance(Duration::from_secs(11));
        assert_eq!(
            h.status("GET", "/fhir/R4/Patient", ip).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        let response = h.send("GET", "/fhir/R4/Patient", ip).await;
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        // Refused requests were not counted, so the one due at 12 s is there.
        h.clock.advance(Duration::from_secs(1));
        h.pass(1, "GET", "/fhir/R4/Patient", ip).await;
        assert_eq!(
            h.status("GET", "/fhir/R4/Patient", ip).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // A full minute refills the whole allowance, and no more.
        h.clock.advance(Duration::from_secs(60));
        h.pass(5, "GET", "/fhir/R4/Patient", ip).await;
        assert_eq!(
            h.status("GET", "/fhir/R4/Patient", ip).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[tokio::test]
    async fn zero_disables_a_limit() {
        let h = harness(RateLimits {
            auth_per_minute: 0,
            general_per_minute: 0,
        });
        h.pass(300, "POST", "/auth/login", "203.0.113.1").await;
        assert!(h.limiter.is_empty());
    }

    #[tokio::test]
    async fn without_client_addr_the_peer_or_unspecified_is_used() {
        let clock = FakeRelativeClock::default();
        let limiter = Arc::new(IpRateLimiter::with_clock(
            RateLimits {
                auth_per_minute: 1,
                general_per_minute: 0,
            },
            clock,
        ));
        // No `client_addr_layer`: the limit falls back on its own.
        let app = Router::new()
            .route("/auth/login", post(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                limiter,
                rate_limit_layer,
            ));
        let send = |peer: Option<&str>| {
            let mut req = Request::builder()
                .method("POST")
                .uri("/auth/login")
                .header("x-forwarded-for", "198.51.100.1")
                .body(Body::empty())
                .unwrap();
            if let Some(peer) = peer {
                let peer: SocketAddr = peer.parse().unwrap();
                req.extensions_mut().insert(ConnectInfo(peer));
            }
            app.clone().oneshot(req)
        };
        assert_eq!(send(None).await.unwrap().status(), StatusCode::OK);
        assert_eq!(
            send(None).await.unwrap().status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        // A different peer is a different client; the header is not believed.
        assert_eq!(
            send(Some("192.0.2.1:4000")).await.unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(
            send(Some("192.0.2.1:4001")).await.unwrap().status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[tokio::test]
    async fn production_wiring_over_a_real_connection() {
        // The stack the server is meant to use, around the whole router, served with
        // `into_make_service_with_connect_info`: no proxy trusted, so the header is ignored and
        // the TCP peer is the client.
        let limiter = Arc::new(IpRateLimiter::new(RateLimits {
            auth_per_minute: 1,
            general_per_minute: 60_000,
        }));
        let router = Router::new()
            .route("/auth/login", post(|| async { "ok" }))
            .route("/auth/me", get(|| async { "ok" }));
        let app = tower::ServiceBuilder::new()
            .layer(tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash())
            .layer(axum::middleware::from_fn_with_state(0, client_addr_layer))
            .layer(axum::middleware::from_fn_with_state(
                limiter,
                rate_limit_layer,
            ))
            .service(router);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
            )
            .await
        });
        let client = reqwest::Client::new();
        let post = |spoof: &'static str| {
            client
                .post(format!("http://{addr}/auth/login/"))
                .header("x-forwarded-for", spoof)
                .send()
        };
        let first = post("198.51.100.1").await.unwrap().status();
        let second = post("198.51.100.2").await.unwrap();
        let me = client
            .get(format!("http://{addr}/auth/me/"))
            .send()
            .await
            .unwrap()
            .status();
        server.abort();
        assert_eq!(first, StatusCode::OK);
        assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(second.headers().contains_key(RETRY_AFTER));
        assert_eq!(me, StatusCode::OK);
    }

    #[tokio::test]
    async fn ipv6_clients_are_counted_per_64() {
        let h = harness(RateLimits {
            auth_per_minute: 2,
            general_per_minute: 0,
        });
        h.pass(1, "POST", "/auth/login", "2001:db8:1:2::1").await;
        h.pass(1, "POST", "/auth/login", "2001:db8:1:2:ffff::9")
            .await;
        assert_eq!(
            h.status("POST", "/auth/login", "[2001:db8:1:2::77]:443")
                .await,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            h.status("POST", "/auth/login", "2001:db8:1:3::1").await,
            StatusCode::OK
        );
    }

    #[test]
    fn idle_addresses_are_purged() {
        let clock = FakeRelativeClock::default();
        let limiter = IpRateLimiter::with_clock(RateLimits::default(), clock.clone());
        for i in 0..200u8 {
            let ip = IpAddr::from([192, 0, 2, i]);
            limiter.check(ip, i % 2 == 0).unwrap();
        }
        // 200 in the general table, 100 in the auth table.
        assert_eq!(limiter.len(), 300);
        limiter.retain_recent();
        assert_eq!(limiter.len(), 300, "nothing has refilled yet");
        clock.advance(Duration::from_secs(61));
        limiter.retain_recent();
        assert!(limiter.is_empty());
    }

    #[test]
    fn checks_purge_by_themselves() {
        let clock = FakeRelativeClock::default();
        let limiter = IpRateLimiter::with_clock(RateLimits::default(), clock.clone());
        for i in 0..100u8 {
            limiter.check(IpAddr::from([192, 0, 2, i]), false).unwrap();
        }
        clock.advance(Duration::from_secs(61));
        let ip = IpAddr::from([198, 51, 100, 1]);
        for _ in 0..PURGE_EVERY {
            limiter.check(ip, false).unwrap();
            clock.advance(Duration::from_millis(1));
        }
        assert!(limiter.len() < 10, "{} addresses kept", limiter.len());
    }

    #[test]
    fn retry_after_rounds_up() {
        let secs = |d| Throttled { retry_after: d }.retry_after_secs();
        assert_eq!(secs(Duration::ZERO), 1);
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_millis(1001)), 2);
        assert_eq!(secs(Duration::from_secs(12)), 12);
    }

    fn failure_limiter() -> (FailureLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            FailureLimiter::with_clock(FailurePolicy::default(), clock.clone()),
            clock,
        )
    }

    const ALICE: &str = "alice@example.com";

    #[test]
    fn fifth_failure_locks_the_account_for_30_seconds() {
        let (limiter, clock) = failure_limiter();
        for _ in 0..4 {
            assert_eq!(limiter.check(ALICE), Ok(()));
            limiter.record_failure(ALICE);
            clock.advance(Duration::from_secs(10));
        }
        assert_eq!(limiter.check(ALICE), Ok(()));
        limiter.record_failure(ALICE);
        assert_eq!(limiter.check(ALICE), Err(Duration::from_secs(30)));
        // Other accounts are not affected.
        assert_eq!(limiter.check("bob@example.com"), Ok(()));
        clock.advance(Duration::from_secs(29));
        assert_eq!(limiter.check(ALICE), Err(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.check(ALICE), Ok(()));
    }

    #[test]
    fn back_off_doubles_up_to_fifteen_minutes() {
        let (limiter, clock) = failure_limiter();
        for _ in 0..4 {
            limiter.record_failure(ALICE);
        }
        let mut lockouts = Vec::new();
        for _ in 0..8 {
            limiter.record_failure(ALICE);
            let Err(lockout) = limiter.check(ALICE) else {
                panic!("not locked");
            };
            lockouts.push(lockout.as_secs());
            clock.advance(lockout);
            assert_eq!(limiter.check(ALICE), Ok(()));
        }
        assert_eq!(lockouts, [30, 60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn success_resets_the_count_and_the_back_off() {
        let (limiter, clock) = failure_limiter();
        for _ in 0..4 {
            limiter.record_failure(ALICE);
        }
        limiter.record_success(ALICE);
        limiter.record_failure(ALICE);
        assert_eq!(limiter.check(ALICE), Ok(()), "the count started over");
        for _ in 0..5 {
            limiter.record_failure(ALICE);
        }
        assert_eq!(limiter.check(ALICE), Err(Duration::from_secs(60)));
        clock.advance(Duration::from_secs(60));
        limiter.record_success(ALICE);
        for _ in 0..5 {
            limiter.record_failure(ALICE);
        }
        assert_eq!(limiter.check(ALICE), Err(Duration::from_secs(30)));
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let (limiter, clock) = failure_limiter();
        // Failures at 0, 4, 8 and 12 minutes.
        limiter.record_failure(ALICE);
        for _ in 0..3 {
            clock.advance(Duration::from_secs(4 * 60));
            limiter.record_failure(ALICE);
        }
        // At 15:00 the one at 0 is 15 minutes old and no longer counts: four within the window.
        clock.advance(Duration::from_secs(3 * 60));
        limiter.record_failure(ALICE);
        assert_eq!(limiter.check(ALICE), Ok(()));
        // At 15:01 those at 4, 8, 12, 15 and 15:01 are five.
        clock.advance(Duration::from_secs(1));
        limiter.record_failure(ALICE);
        assert_eq!(limiter.check(ALICE), Err(Duration::from_secs(30)));
    }

    #[test]
    fn a_quiet_quarter_of_an_hour_after_the_lock_restarts_the_back_off() {
        let (limiter, clock) = failure_limiter();
        for _ in 0..6 {
            limiter.record_failure(ALICE);
        }
        assert_eq!(limiter.check(ALICE), Err(Duration::from_secs(60)));
        // Just short of 15 minutes after the lock ended, the back-off is still remembered.
        clock.advance(Duration::from_secs(60 + 15 * 60 - 1));
        limiter.record_failure(ALICE);
        assert_eq!(limiter.check(ALICE), Err(Duration::from_secs(120)));
        clock.advance(Duration::from_secs(120 + 15 * 60));
        limiter.record_failure(ALICE);
        assert_eq!(limiter.check(ALICE), Ok(()));
    }

    #[test]
    fn expired_keys_are_purged() {
        let (limiter, clock) = failure_limiter();
        for i in 0..100 {
            limiter.record_failure(&format!("user{i}@example.com"));
        }
        for _ in 0..5 {
            limiter.record_failure(ALICE);
        }
        assert_eq!(limiter.len(), 101);
        limiter.purge();
        assert_eq!(limiter.len(), 101, "nothing has expired yet");
        clock.advance(Duration::from_secs(15 * 60));
        limiter.purge();
        assert_eq!(
            limiter.len(),
            1,
            "only the key locked until 0:30 still matters"
        );
        clock.advance(Duration::from_secs(30));
        limiter.purge();
        assert!(limiter.is_empty());
    }

    #[test]
    fn the_key_table_is_bounded() {
        let clock = FakeRelativeClock::default();
        let policy = FailurePolicy {
            max_keys: 50,
            ..FailurePolicy::default()
        };
        let limiter = FailureLimiter::with_clock(policy, clock);
        for _ in 0..5 {
            limiter.record_failure(ALICE);
        }
        for i in 0..1000 {
            limiter.record_failure(&format!("user{i}@example.com"));
            assert!(limiter.len() <= 51, "{} keys", limiter.len());
        }
        // The locked account survived the flood.
        assert!(limiter.check(ALICE).is_err());
    }

    #[test]
    fn keys_are_kept_as_salted_digests() {
        let (limiter, _) = failure_limiter();
        let (other, _) = failure_limiter();
        limiter.record_failure(ALICE);
        other.record_failure(ALICE);
        let digest = *limiter.lock().keys().next().unwrap();
        let other_digest = *other.lock().keys().next().unwrap();
        // Not the plain digest, which a list of known addresses would reveal.
        assert_ne!(digest[..], Sha256::digest(ALICE.as_bytes())[..]);
        assert_ne!(digest, other_digest);
    }
}
