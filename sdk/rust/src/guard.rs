//! A tower layer for resource servers: verify the caller's integration key
//! against latchkey before the call reaches the service.
//!
//! ```no_run
//! # async fn example(channel: tonic::transport::Channel) -> Result<(), Box<dyn std::error::Error>> {
//! use latchkey_client::RequireIntegrationKeyLayer;
//! use tower::Layer;
//! # use tonic_health::server::health_reporter;
//! # let (_, my_service) = health_reporter();
//! let guard = RequireIntegrationKeyLayer::new(channel); // a Channel to latchkey
//! tonic::transport::Server::builder()
//!     .add_service(guard.layer(my_service)) // the one line
//!     .serve("127.0.0.1:50052".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The key is taken from `authorization: Bearer <key>`, or Basic
//! `<key id>:<rest of the key>` (the Sunshine form), or another header (see
//! [`RequireIntegrationKeyLayer::with_header`]), and the endpoint is the
//! called method's full name (`pkg.Service/Method`). Allowed decisions are
//! cached locally; denials are not. With
//! [`RequireIntegrationKeyLayer::watching_changes`] the guard subscribes to
//! latchkey's `WatchKeyChanges` and evicts a key the moment latchkey says it
//! changed (deleted, disabled, rolled, its grants changed), so allowed
//! verdicts can be kept long; while that stream is down it falls back to the
//! short cache TTL and says so in its logs. The stream carries heartbeats: a
//! stream silent for three heartbeat intervals counts as down (a stalled
//! connection is not a quiet one). Verdicts of keys with a rate limit are
//! never cached: latchkey has to count every use. Calls without a valid
//! key get `UNAUTHENTICATED`, calls to a method the key's integration is not
//! granted get `PERMISSION_DENIED`, keys latchkey rate-limits (and calls it
//! sheds for load) get `RESOURCE_EXHAUSTED` with `google.rpc.RetryInfo`, and
//! calls made while latchkey cannot be reached get `UNAVAILABLE`. The
//! guard tells latchkey the address its own caller connected from
//! (`caller_address`), so latchkey's failure budgets are kept per end
//! caller once this resource server is in latchkey's `--trusted-peers`.

use std::{
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tonic::{
    Request, Status,
    body::Body,
    codegen::http::{self, HeaderMap, HeaderName},
    server::NamedService,
    transport::Channel,
};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};
use zeroize::Zeroizing;

use crate::{
    pb::{
        Decision, VerifyIntegrationKeyRequest, WatchEventKind, WatchKeyChangesRequest,
        WatchKeyChangesResponse, integration_keys_service_client::IntegrationKeysServiceClient,
    },
    time::{from_timestamp, now_micros},
};

/// `RESOURCE_EXHAUSTED` with `google.rpc.RetryInfo`, as latchkey answers it.
fn resource_exhausted(message: &str, retry_after: Duration) -> Status {
    let mut details = ErrorDetails::new();
    details.set_retry_info(Some(retry_after));
    Status::with_error_details(tonic::Code::ResourceExhausted, message, details)
}

/// The address this server's own caller connected from (plaintext or TLS).
fn peer_address<B>(request: &http::Request<B>) -> Option<IpAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|tls| tls.get_ref().remote_addr())
        })
        .map(|addr| addr.ip().to_canonical())
}

/// Who called: put in the request's extensions when the key is allowed, so
/// handlers can read it with `request.extensions().get::<VerifiedCaller>()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCaller {
    pub integration: String,
    pub key_id: String,
}

#[derive(Clone)]
struct CachedAllow {
    caller: VerifiedCaller,
    expire_time: Option<i64>,
    cached_at: std::time::Instant,
}

struct Shared {
    channel: Channel,
    header: Option<HeaderName>,
    mac_key: Zeroizing<[u8; 32]>,
    allowed: moka::sync::Cache<[u8; 32], CachedAllow>,
    /// How long a verdict is trusted without a working change stream.
    ttl: Duration,
    /// How long a verification may take before the call is refused
    /// `UNAVAILABLE`.
    verify_timeout: Duration,
    watch: Option<Watch>,
    /// Bumped by every change applied: a verdict asked for before a change
    /// arrived is not cached after it (it may predate the change).
    changes_seen: std::sync::atomic::AtomicU64,
}

/// The change stream a watching guard follows.
struct Watch {
    /// Sent as `sid` (a partner key); none when this resource server is in
    /// latchkey's `--trusted-peers`.
    partner_key: Option<Zeroizing<String>>,
    /// Whether the stream is up (after its first RESET), so that cached
    /// verdicts may outlive `ttl`.
    up: std::sync::atomic::AtomicBool,
    /// Started at the first call (a runtime is needed).
    started: std::sync::Once,
    /// How often latchkey is asked to show the stream is alive.
    heartbeat: Duration,
}

/// How long a watching guard keeps a verdict while the stream is up; an
/// eviction from the stream ends it sooner.
const WATCHED_TTL: Duration = Duration::from_secs(3600);

/// Builds [`RequireIntegrationKey`] services; see the module docs.
#[derive(Clone)]
pub struct RequireIntegrationKeyLayer {
    shared: Arc<Shared>,
}

impl RequireIntegrationKeyLayer {
    /// Verifies through latchkey at `channel`, caching allowed keys for 5 s.
    pub fn new(channel: Channel) -> Self {
        Self::build(
            channel,
            Settings {
                header: None,
                ttl: Duration::from_secs(5),
                verify_timeout: Duration::from_secs(5),
                watch: None,
                heartbeat: DEFAULT_HEARTBEAT,
            },
        )
    }

    /// Reads the raw key from `header` instead of `authorization`.
    pub fn with_header(self, header: HeaderName) -> Self {
        self.rebuild(|settings| settings.header = Some(header))
    }

    /// How long an allowed (key, endpoint) is trusted without asking
    /// latchkey again while no change stream says otherwise; this bounds how
    /// long a deleted key keeps working here. Zero disables the cache.
    pub fn with_cache_ttl(self, ttl: Duration) -> Self {
        self.rebuild(|settings| settings.ttl = ttl)
    }

    /// Follows latchkey's `WatchKeyChanges` and evicts changed keys at once,
    /// keeping verdicts up to an hour while the stream is up (the cache TTL
    /// applies again while it is down). `partner_key` authenticates the
    /// stream; pass `None` when this resource server is in latchkey's
    /// `--trusted-peers`.
    pub fn watching_changes(self, partner_key: Option<String>) -> Self {
        self.rebuild(|settings| settings.watch = Some(partner_key.map(Zeroizing::new)))
    }

    /// How long a verification may take (default 5 s) before the call is
    /// refused `UNAVAILABLE`: a latchkey that hangs must not hang this
    /// server's calls.
    pub fn with_verify_timeout(self, timeout: Duration) -> Self {
        self.rebuild(|settings| settings.verify_timeout = timeout)
    }

    /// How often a watching guard asks latchkey for a heartbeat when
    /// nothing changes (1 s to 5 min; default 5 s). Three intervals without
    /// any message and the stream counts as stalled: the guard falls back
    /// to the cache TTL and reconnects. `Duration::ZERO` asks for none and
    /// turns stall detection off (for a latchkey that sends no heartbeats).
    pub fn with_heartbeat(self, interval: Duration) -> Self {
        let interval = if interval.is_zero() {
            interval
        } else {
            interval.clamp(MIN_HEARTBEAT, MAX_HEARTBEAT)
        };
        self.rebuild(|settings| settings.heartbeat = interval)
    }

    /// Whether this guard's change stream is up (it watches, and latchkey's
    /// stream has started and not ended or gone silent): while it is,
    /// verdicts outlive the cache TTL. For readiness checks and metrics.
    pub fn change_stream_up(&self) -> bool {
        self.shared
            .watch
            .as_ref()
            .is_some_and(|w| w.up.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn rebuild(self, change: impl FnOnce(&mut Settings)) -> Self {
        let shared = &self.shared;
        let mut settings = Settings {
            header: shared.header.clone(),
            ttl: shared.ttl,
            verify_timeout: shared.verify_timeout,
            watch: shared.watch.as_ref().map(|w| w.partner_key.clone()),
            heartbeat: shared
                .watch
                .as_ref()
                .map_or(DEFAULT_HEARTBEAT, |w| w.heartbeat),
        };
        change(&mut settings);
        Self::build(shared.channel.clone(), settings)
    }

    fn build(channel: Channel, settings: Settings) -> Self {
        let Settings {
            header,
            ttl,
            verify_timeout,
            watch,
            heartbeat,
        } = settings;
        let mut mac_key = Zeroizing::new([0u8; 32]);
        // Without OS randomness the cache key is still a SHA-256 of the key;
        // only the per-process keying is lost.
        let _ = getrandom::fill(mac_key.as_mut());
        let longest = if watch.is_some() {
            ttl.max(WATCHED_TTL)
        } else {
            ttl
        };
        Self {
            shared: Arc::new(Shared {
                channel,
                header,
                mac_key,
                allowed: moka::sync::Cache::builder()
                    .max_capacity(if ttl.is_zero() { 0 } else { 10_000 })
                    .time_to_live(longest.max(Duration::from_millis(1)))
                    .support_invalidation_closures()
                    .build(),
                ttl,
                verify_timeout,
                watch: watch.map(|partner_key| Watch {
                    partner_key,
                    up: std::sync::atomic::AtomicBool::new(false),
                    started: std::sync::Once::new(),
                    heartbeat,
                }),
                changes_seen: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }
}

/// What `rebuild` carries over.
struct Settings {
    header: Option<HeaderName>,
    ttl: Duration,
    verify_timeout: Duration,
    watch: Option<Option<Zeroizing<String>>>,
    heartbeat: Duration,
}

const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
const MAX_HEARTBEAT: Duration = Duration::from_secs(300);
/// Heartbeat intervals without any message after which a stream is stalled.
const STALLED_AFTER_HEARTBEATS: u32 = 3;

impl<S> Layer<S> for RequireIntegrationKeyLayer {
    type Service = RequireIntegrationKey<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireIntegrationKey {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// A tonic service that only lets through calls whose integration key
/// latchkey allows for the called method.
#[derive(Clone)]
pub struct RequireIntegrationKey<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: NamedService> NamedService for RequireIntegrationKey<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for RequireIntegrationKey<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays here.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        shared.start_watching();
        Box::pin(async move {
            let endpoint = request.uri().path().trim_start_matches('/').to_owned();
            let key = shared.presented_key(request.headers());
            let caller = peer_address(&request);
            match shared.check(key, endpoint, caller).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

impl Shared {
    fn presented_key(&self, headers: &HeaderMap) -> Option<Zeroizing<String>> {
        let value = match &self.header {
            Some(name) => headers.get(name)?.to_str().ok()?,
            None => match crate::bearer_token(headers) {
                Some(token) => token,
                None => return basic_key(headers),
            },
        };
        Some(Zeroizing::new(value.trim().to_owned()))
    }

    /// Whether a cached verdict may still be used: within the cache TTL, or
    /// at any age while the change stream is up.
    fn trusted(&self, hit: &CachedAllow) -> bool {
        let watched = self
            .watch
            .as_ref()
            .is_some_and(|w| w.up.load(std::sync::atomic::Ordering::SeqCst));
        watched || hit.cached_at.elapsed() < self.ttl
    }

    /// Starts following `WatchKeyChanges` (once, from the first call), if
    /// this guard watches.
    fn start_watching(self: &Arc<Self>) {
        let Some(watch) = &self.watch else {
            return;
        };
        let weak = Arc::downgrade(self);
        watch.started.call_once(|| {
            tokio::spawn(follow_changes(weak));
        });
    }

    /// Applies one change from the stream.
    fn apply(&self, change: &WatchKeyChangesResponse) {
        if change.kind() == WatchEventKind::Heartbeat {
            // A sign of life, not a change.
            return;
        }
        self.changes_seen
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match change.kind() {
            WatchEventKind::KeyChanged => {
                let key_id = change.key_id.clone();
                let _ = self
                    .allowed
                    .invalidate_entries_if(move |_, cached| cached.caller.key_id == key_id);
            }
            WatchEventKind::IntegrationChanged => {
                let integration = change.integration.clone();
                let _ = self.allowed.invalidate_entries_if(move |_, cached| {
                    cached.caller.integration == integration
                });
            }
            // RESET, and kinds this guard does not know: drop everything.
            _ => self.allowed.invalidate_all(),
        }
    }

    fn cache_key(&self, key: &str, endpoint: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.mac_key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(key.as_bytes());
        mac.update(b"\0");
        mac.update(endpoint.as_bytes());
        mac.finalize().into_bytes().into()
    }

    async fn check(
        &self,
        key: Option<Zeroizing<String>>,
        endpoint: String,
        caller: Option<IpAddr>,
    ) -> Result<VerifiedCaller, Status> {
        let key = key.ok_or_else(|| Status::unauthenticated("Invalid credentials"))?;
        let cache_key = self.cache_key(&key, &endpoint);
        let now = now_micros();
        if let Some(hit) = self.allowed.get(&cache_key)
            && hit.expire_time.is_none_or(|t| t > now)
            && self.trusted(&hit)
        {
            return Ok(hit.caller);
        }
        let changes_seen = self.changes_seen.load(std::sync::atomic::Ordering::SeqCst);
        let mut request = Request::new(VerifyIntegrationKeyRequest {
            api_key: key.to_string(),
            endpoint,
            caller_address: caller.map(|ip| ip.to_string()).unwrap_or_default(),
        });
        // Tells latchkey too, so it can stop working on an abandoned call.
        request.set_timeout(self.verify_timeout);
        let mut client = IntegrationKeysServiceClient::new(self.channel.clone());
        let verdict =
            tokio::time::timeout(self.verify_timeout, client.verify_integration_key(request))
                .await
                .unwrap_or_else(|_| {
                    Err(Status::deadline_exceeded("latchkey did not answer in time"))
                })
                .map_err(|status| {
                    tracing::warn!(code = ?status.code(), "latchkey verification failed");
                    if status.code() == tonic::Code::ResourceExhausted {
                        // latchkey is shedding load: so does this server.
                        let retry_after = status
                            .get_details_retry_info()
                            .and_then(|info| info.retry_delay)
                            .unwrap_or(Duration::from_secs(1));
                        return resource_exhausted("Key verification is overloaded", retry_after);
                    }
                    Status::unavailable("Key verification is unavailable")
                })?
                .into_inner();
        match verdict.decision() {
            Decision::Allowed => {
                let caller = VerifiedCaller {
                    integration: verdict.integration,
                    key_id: verdict.key_id,
                };
                let expire_time = verdict.expire_time.as_ref().and_then(from_timestamp);
                let cached = CachedAllow {
                    caller: caller.clone(),
                    expire_time,
                    cached_at: std::time::Instant::now(),
                };
                // A rate-limited key's every use must reach latchkey.
                let cacheable = verdict.rate_limit.is_none();
                if cacheable
                    && self.changes_seen.load(std::sync::atomic::Ordering::SeqCst) == changes_seen
                {
                    self.allowed.insert(cache_key, cached);
                    if self.changes_seen.load(std::sync::atomic::Ordering::SeqCst) != changes_seen {
                        // A change raced with the insert: undo, to be safe.
                        self.allowed.invalidate(&cache_key);
                    }
                }
                Ok(caller)
            }
            Decision::EndpointNotGranted => Err(Status::permission_denied(
                "This key may not call this endpoint",
            )),
            Decision::CallerNotAllowed => Err(Status::permission_denied(
                "This key may not be used from this address",
            )),
            Decision::RateLimited => {
                let retry_after = verdict
                    .retry_after
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(Duration::from_secs(1));
                Err(resource_exhausted(
                    "Too many requests; retry later",
                    retry_after,
                ))
            }
            _ => Err(Status::unauthenticated("Invalid credentials")),
        }
    }
}

/// `<key id>_<rest>` from `authorization: Basic base64(<key id>:<rest>)`.
fn basic_key(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    let (id, rest) = crate::basic_credentials(headers)?;
    Some(Zeroizing::new(format!("{id}_{}", rest.as_str())))
}

/// Follows `WatchKeyChanges` for as long as the guard lives: evicts what
/// changed, and while the stream is down (not yet open, broken, refused,
/// stalled) lets cached verdicts live only the cache TTL. Reconnects with
/// exponential backoff, from half a second up to 30 s.
async fn follow_changes(guard: std::sync::Weak<Shared>) {
    let mut backoff = Backoff::default();
    loop {
        let Some(shared) = guard.upgrade() else {
            return;
        };
        let Some(watch) = &shared.watch else {
            return;
        };
        let (channel, partner_key, heartbeat) = (
            shared.channel.clone(),
            watch.partner_key.clone(),
            watch.heartbeat,
        );
        drop(shared);
        let mut request = Request::new(watch_request(heartbeat));
        if let Some(key) = &partner_key
            && let Ok(mut value) = tonic::metadata::MetadataValue::try_from(key.as_str())
        {
            value.set_sensitive(true);
            request.metadata_mut().insert("sid", value);
        }
        // A call that cannot even start (a stalled connection) is bounded
        // like a silent stream.
        let stalled_after = stalled_after(heartbeat);
        let opened = tokio::time::timeout(
            stalled_after,
            IntegrationKeysServiceClient::new(channel).watch_key_changes(request),
        )
        .await;
        match opened {
            Ok(Ok(stream)) => {
                follow_stream(&guard, stream.into_inner(), stalled_after, &mut backoff).await;
            }
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), "cannot watch latchkey key changes; retrying");
            }
            Err(_) => tracing::warn!("latchkey did not open the change stream in time; retrying"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The stream request: heartbeats every `heartbeat`, or none for zero.
fn watch_request(heartbeat: Duration) -> WatchKeyChangesRequest {
    WatchKeyChangesRequest {
        heartbeat_interval: (!heartbeat.is_zero())
            .then(|| prost_types::Duration::try_from(heartbeat).ok())
            .flatten(),
    }
}

/// How long a stream may stay silent before it counts as stalled: three
/// heartbeats, or (no heartbeats asked for) practically forever.
fn stalled_after(heartbeat: Duration) -> Duration {
    if heartbeat.is_zero() {
        Duration::from_secs(365 * 86_400)
    } else {
        heartbeat * STALLED_AFTER_HEARTBEATS
    }
}

/// Applies one stream's messages until it ends, fails or stalls (no
/// message, not even a heartbeat, for `stalled_after`); then marks the
/// stream down and drops every cached verdict (changes may have been
/// missed). Dropping the stream cancels the call.
async fn follow_stream(
    guard: &std::sync::Weak<Shared>,
    mut stream: tonic::Streaming<WatchKeyChangesResponse>,
    stalled_after: Duration,
    backoff: &mut Backoff,
) {
    loop {
        let message = tokio::time::timeout(stalled_after, stream.message()).await;
        let Some(shared) = guard.upgrade() else {
            return;
        };
        let Some(watch) = &shared.watch else {
            return;
        };
        let why = match message {
            Ok(Ok(Some(change))) => {
                shared.apply(&change);
                if change.kind() == WatchEventKind::Reset {
                    watch.up.store(true, std::sync::atomic::Ordering::SeqCst);
                    backoff.reset();
                }
                continue;
            }
            Ok(Ok(None) | Err(_)) => "ended",
            Err(_) => "went silent",
        };
        watch.up.store(false, std::sync::atomic::Ordering::SeqCst);
        shared.allowed.invalidate_all();
        tracing::warn!("latchkey change stream {why}; cached verdicts fall back to the cache TTL");
        return;
    }
}

/// Delays between reconnection attempts: doubling from half a second to
/// 30 s, each with random jitter (so guards restarted together do not
/// reconnect in step), back to the start once a stream is up.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    fn next_delay(&mut self) -> Duration {
        let base = Self::FIRST
            .saturating_mul(1 << self.failures.min(6))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        let mut random = [0u8; 2];
        let _ = getrandom::fill(&mut random);
        // Between half and all of the base delay.
        let fraction = 0.5 + f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX) / 2.0;
        base.mul_f64(fraction)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_can_be_turned_off_for_servers_without_them() {
        assert_eq!(
            watch_request(Duration::from_secs(5)).heartbeat_interval,
            Some(prost_types::Duration {
                seconds: 5,
                nanos: 0
            })
        );
        assert_eq!(
            stalled_after(Duration::from_secs(5)),
            Duration::from_secs(15)
        );
        assert_eq!(watch_request(Duration::ZERO).heartbeat_interval, None);
        assert!(stalled_after(Duration::ZERO) > Duration::from_secs(86_400));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(250) && first <= Backoff::FIRST);
        for _ in 0..20 {
            assert!(backoff.next_delay() <= Backoff::MAX);
        }
        assert!(backoff.next_delay() >= Backoff::MAX / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= Backoff::FIRST);
    }
}
