//! The verification hot path: "may this key call this endpoint?".
//!
//! parse + checksum (no I/O) -> cache hit (an HMAC and a map lookup) or, on
//! a miss, failure budget reserved -> indexed lookup -> one argon2 verify ->
//! cache -> state and grant checks against the current grants snapshot.
//! Concurrent first verifies of one exact key wait for a single proof.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use sea_orm::DatabaseConnection;

use crate::{
    app::budgets::SharedBudgets,
    app::grants::GrantBook,
    app::key_changes::{KeyChange, KeyChangeFeed},
    app::rate_limits::RateLimits,
    app::usage::UsageRecorder,
    domain::{ApiKey, KeyKind},
    domain::{
        key_restrictions::{self, RateLimit},
        time::{LatestSecond, now_micros},
    },
    error::Error,
    security::{
        Hasher, VerifiedKeys,
        throttle::{Admission, FailureBudgets, ThrottleSettings},
    },
    store,
};

/// Longest endpoint name VerifyIntegrationKey accepts.
pub const MAX_ENDPOINT_LEN: usize = 255;

/// The verdict about a key, as API.md's `Decision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Malformed,
    Invalid,
    Expired,
    Disabled,
    EndpointNotGranted,
    RateLimited,
    /// The caller is outside the key's allowed networks.
    CallerNotAllowed,
}

impl Decision {
    /// The metric label of the decision.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Malformed => "malformed",
            Decision::Invalid => "invalid",
            Decision::Expired => "expired",
            Decision::Disabled => "disabled",
            Decision::EndpointNotGranted => "endpoint_not_granted",
            Decision::RateLimited => "rate_limited",
            Decision::CallerNotAllowed => "caller_not_allowed",
        }
    }
}

/// What is known about a key whose secret has been proven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenKey {
    pub key_id: String,
    pub integration: String,
    pub expire_time: Option<i64>,
    /// The key's labels (told to the caller only with `Allowed`).
    pub labels: Arc<BTreeMap<String, String>>,
    /// The key's rate limit (told to the caller only with `Allowed`).
    pub rate_limit: Option<RateLimit>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    /// Set only once the secret has been proven.
    pub key: Option<ProvenKey>,
    /// With `RateLimited`: when a budget, or the key's rate limit, has a
    /// token again.
    pub retry_after: Option<Duration>,
}

impl Verdict {
    fn unproven(decision: Decision) -> Self {
        Self {
            decision,
            key: None,
            retry_after: None,
        }
    }
}

/// Why a secret was not proven.
enum Refusal {
    Invalid,
    RateLimited(Duration),
}

impl From<Refusal> for Verdict {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid => Verdict::unproven(Decision::Invalid),
            Refusal::RateLimited(retry_after) => Verdict {
                retry_after: Some(retry_after),
                ..Verdict::unproven(Decision::RateLimited)
            },
        }
    }
}

/// What the cache remembers about a verified key: enough to decide without
/// the database. Grants are not here: they come from the shared snapshot.
/// Handed out as one `Arc`: a cache hit costs one reference count.
#[derive(Debug)]
struct CachedKey {
    integration_id: i64,
    expire_time: Option<i64>,
    disabled: bool,
    /// When the read of the state above began: a change announced (or a
    /// gap in announcements noticed) after this may not be in it.
    checked_at: Instant,
    /// Restrictions, parsed once per read of the row.
    labels: Arc<BTreeMap<String, String>>,
    allowed_networks: Box<[IpNet]>,
    rate_limit: Option<RateLimit>,
    /// The latest second in which a use was handed to the usage recorder:
    /// a hot key takes the recorder's lock once a second, not once a call.
    use_noted_second: LatestSecond,
}

impl CachedKey {
    fn from_row(row: &store::integration_keys::IntegrationKeyRow, read_at: Instant) -> Arc<Self> {
        Arc::new(Self {
            integration_id: row.integration_id,
            expire_time: row.expire_time,
            disabled: row.disabled,
            checked_at: read_at,
            labels: Arc::new(key_restrictions::labels_from_column(row.labels.as_deref())),
            allowed_networks: key_restrictions::networks_from_column(
                row.allowed_networks.as_deref(),
            )
            .into(),
            rate_limit: RateLimit::from_columns(row.rate_limit, row.rate_window_ms),
            use_noted_second: LatestSecond::default(),
        })
    }

    /// Whether a use at `now` (µs) is the first in its second, and so worth
    /// recording: `last_use_time` is then at most a second early.
    fn first_use_this_second(&self, now: i64) -> bool {
        let second = u64::try_from(now.div_euclid(1_000_000)).unwrap_or(0);
        self.use_noted_second.advance_to(second)
    }
}

#[derive(Clone, Debug)]
pub struct VerifierSettings {
    pub throttle: ThrottleSettings,
    /// How long a proven key's state (exists, disabled, expiry) is trusted
    /// without the database. Deletes and updates on this replica evict at
    /// once; this bounds staleness for changes made elsewhere. After it, the
    /// state is re-read (one indexed lookup), but the secret is not
    /// re-proven: a key id's hash never changes.
    pub cache_ttl: Duration,
    /// How long an unused proven key stays cached before its next use pays
    /// argon2 again.
    pub cache_idle: Duration,
    pub cache_capacity: u64,
    /// How many changes a `WatchKeyChanges` subscriber may fall behind
    /// before it gets a RESET instead.
    pub watch_buffer: usize,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            throttle: ThrottleSettings::default(),
            cache_ttl: Duration::from_secs(30),
            cache_idle: Duration::from_secs(3600),
            cache_capacity: 100_000,
            watch_buffer: 1024,
        }
    }
}

pub struct Verifier {
    db: DatabaseConnection,
    state_ttl: Duration,
    /// Cached states read before `epoch` + this many nanoseconds are stale
    /// (set when cross-replica notifications may have been missed). An
    /// atomic, not a lock: every cached verify reads it.
    stale_before_nanos: std::sync::atomic::AtomicU64,
    epoch: Instant,
    /// False while cross-replica notifications are known not to arrive (a
    /// broken or silent listener): then no cached state is trusted, and
    /// every verify re-reads its key (no argon2).
    notifications_flowing: std::sync::atomic::AtomicBool,
    hasher: Hasher,
    cache: Arc<VerifiedKeys<Arc<CachedKey>>>,
    budgets: FailureBudgets,
    /// The key ids' budgets all replicas share (see `budgets`).
    shared: SharedBudgets,
    /// Keys' own rate limits, counted across replicas.
    rate_limits: RateLimits,
    pub grants: Arc<GrantBook>,
    pub usage: Arc<UsageRecorder>,
    /// Key and grant changes, for `WatchKeyChanges`.
    pub changes: Arc<KeyChangeFeed>,
    metrics: VerifyMetrics,
}

/// The verify metrics' handles, registered once: a verify then updates two
/// counters without a registry lookup (label hashing, a key allocation).
struct VerifyMetrics {
    /// By `Decision as usize`.
    decisions: [metrics::Counter; DECISIONS.len()],
    cache_hits: metrics::Counter,
    cache_misses: metrics::Counter,
}

const DECISIONS: [Decision; 8] = [
    Decision::Allowed,
    Decision::Malformed,
    Decision::Invalid,
    Decision::Expired,
    Decision::Disabled,
    Decision::EndpointNotGranted,
    Decision::RateLimited,
    Decision::CallerNotAllowed,
];

impl VerifyMetrics {
    /// Registers the handles with the installed recorder (none installed:
    /// they do nothing).
    fn new() -> Self {
        Self {
            decisions: DECISIONS.map(|decision| {
                metrics::counter!("latchkey_verify_decisions_total", "decision" => decision.as_str())
            }),
            cache_hits: metrics::counter!("latchkey_verify_cache_total", "result" => "hit"),
            cache_misses: metrics::counter!("latchkey_verify_cache_total", "result" => "miss"),
        }
    }

    fn decided(&self, decision: Decision) {
        self.decisions[decision as usize].increment(1);
    }

    fn looked_up(&self, hit: bool) {
        if hit {
            self.cache_hits.increment(1);
        } else {
            self.cache_misses.increment(1);
        }
    }
}

impl Verifier {
    pub fn new(
        db: DatabaseConnection,
        hasher: Hasher,
        settings: &VerifierSettings,
    ) -> Result<Self, Error> {
        Ok(Self {
            shared: SharedBudgets::new(db.clone(), settings.throttle.per_key),
            rate_limits: RateLimits::new(db.clone()),
            db,
            state_ttl: settings.cache_ttl,
            stale_before_nanos: std::sync::atomic::AtomicU64::new(0),
            epoch: Instant::now(),
            notifications_flowing: std::sync::atomic::AtomicBool::new(true),
            hasher,
            cache: Arc::new(VerifiedKeys::new(
                settings.cache_capacity,
                settings.cache_idle,
            )?),
            budgets: FailureBudgets::new(settings.throttle),
            grants: Arc::new(GrantBook::default()),
            usage: Arc::new(UsageRecorder::default()),
            changes: Arc::new(KeyChangeFeed::new(settings.watch_buffer)),
            metrics: VerifyMetrics::new(),
        })
    }

    /// Decides whether `presented` may call `endpoint` for `caller` (the end
    /// caller, see `callers`). Errors only when the database or argon2 fails
    /// or argon2 has no room (`Error::Overloaded`); every verdict about the
    /// key is a `Verdict`.
    pub async fn verify(
        &self,
        presented: String,
        endpoint: &str,
        caller: Option<IpAddr>,
    ) -> Result<Verdict, Error> {
        let verdict = self.decide(presented, endpoint, caller).await?;
        self.metrics.decided(verdict.decision);
        Ok(verdict)
    }

    async fn decide(
        &self,
        presented: String,
        endpoint: &str,
        caller: Option<IpAddr>,
    ) -> Result<Verdict, Error> {
        let Ok(key) = ApiKey::parse(KeyKind::Integration, presented) else {
            return Ok(Verdict::unproven(Decision::Malformed));
        };
        let hit = self.cache.get(&key);
        self.metrics.looked_up(hit.is_some());
        // The slow paths are boxed: their futures (database, argon2) are
        // large, and unboxed they would make every cached verify's future
        // as large, copied into place on each call.
        let cached = match hit {
            Some(cached) if self.is_fresh(&cached) => cached,
            // Proven before: re-read the state, no argon2 and no throttling
            // (an attack on this key id must not lock its holder out).
            Some(_) => match Box::pin(self.reread(&key)).await? {
                Some(cached) => cached,
                None => return Ok(Verdict::unproven(Decision::Invalid)),
            },
            None => match Box::pin(self.prove_once(&key, caller)).await? {
                Ok(cached) => cached,
                Err(refusal) => return Ok(refusal.into()),
            },
        };

        let now = now_micros();
        // The snapshot guard is dropped before any await below.
        let (decision, integration) = {
            let grants = self.grants.snapshot();
            let Some(integration) = grants.by_integration_id.get(&cached.integration_id) else {
                // Integrations holding keys are never removed; treat the
                // impossible as unknown rather than guess.
                return Ok(Verdict::unproven(Decision::Invalid));
            };
            let decision = if cached.disabled {
                Decision::Disabled
            } else if cached.expire_time.is_some_and(|t| t <= now) {
                Decision::Expired
            } else if !key_restrictions::caller_allowed(&cached.allowed_networks, caller) {
                Decision::CallerNotAllowed
            } else if integration.allows(endpoint) {
                Decision::Allowed
            } else {
                Decision::EndpointNotGranted
            };
            (decision, integration.name.clone())
        };
        // Only what would be allowed counts against the key's rate limit.
        let mut retry_after = None;
        let decision = match (decision, cached.rate_limit) {
            (Decision::Allowed, Some(limit)) => {
                // Boxed, like the slow paths: most keys have no limit.
                match Box::pin(self.rate_limits.admit(key.key_id(), limit)).await {
                    Ok(()) => Decision::Allowed,
                    Err(wait) => {
                        retry_after = Some(wait);
                        Decision::RateLimited
                    }
                }
            }
            (decision, _) => decision,
        };
        if decision == Decision::Allowed && cached.first_use_this_second(now) {
            self.usage.record(key.key_id(), now);
        }
        Ok(Verdict {
            decision,
            key: Some(ProvenKey {
                key_id: key.key_id().to_owned(),
                integration,
                expire_time: cached.expire_time,
                labels: cached.labels.clone(),
                rate_limit: cached.rate_limit,
            }),
            retry_after,
        })
    }

    /// `prove`, once for all concurrent callers presenting this exact key:
    /// the first proves, the others wait and then find it cached (or, if it
    /// was not proven, try for themselves).
    async fn prove_once(
        &self,
        key: &ApiKey,
        caller: Option<IpAddr>,
    ) -> Result<Result<Arc<CachedKey>, Refusal>, Error> {
        let _proving = self
            .cache
            .lock_proof(key.key_id(), key.expose_secret())
            .await;
        if let Some(cached) = self.cache.get(key).filter(|c| self.is_fresh(c)) {
            return Ok(Ok(cached));
        }
        self.prove(key, caller).await
    }

    /// The slow path: proves the secret with argon2 and caches the key, or
    /// says why not. A failure token is reserved before anything else and
    /// kept unless the secret proves right (or was never judged).
    async fn prove(
        &self,
        key: &ApiKey,
        caller: Option<IpAddr>,
    ) -> Result<Result<Arc<CachedKey>, Refusal>, Error> {
        let reservation = match self.budgets.reserve(key.key_id(), caller) {
            Admission::Granted(reservation) => reservation,
            Admission::Limited { retry_after } => {
                return Ok(Err(Refusal::RateLimited(retry_after)));
            }
        };
        // Taken before the read: a delete or update that evicts this key
        // while we verify makes `insert_unless_evicted` skip caching a stale
        // row.
        let generation = self.cache.generation();
        let read_at = Instant::now();
        let row = match store::integration_keys::find_by_id(&self.db, key.key_id()).await {
            Ok(Some(row)) => row,
            // An unknown key id is a failure like a wrong secret.
            Ok(None) => return Ok(Err(Refusal::Invalid)),
            Err(e) => {
                reservation.not_checked();
                return Err(e.into());
            }
        };
        let subject = format!("ik:{}", key.key_id());
        let check = |reservation| {
            self.hasher
                .check(key.expose_secret(), &row.key_hash, reservation)
        };
        match self.shared.checked(subject, reservation, check).await? {
            Err(retry_after) => return Ok(Err(Refusal::RateLimited(retry_after))),
            Ok(false) => return Ok(Err(Refusal::Invalid)),
            Ok(true) => {}
        }
        let cached = CachedKey::from_row(&row, read_at);
        self.cache
            .insert_unless_evicted(key, cached.clone(), generation);
        Ok(Ok(cached))
    }

    /// Refreshes the state of a key whose secret was already proven; `None`
    /// (and eviction) when the key no longer exists.
    async fn reread(&self, key: &ApiKey) -> Result<Option<Arc<CachedKey>>, Error> {
        let generation = self.cache.generation();
        let read_at = Instant::now();
        let Some(row) = store::integration_keys::find_by_id(&self.db, key.key_id()).await? else {
            self.cache.evict(key.key_id());
            return Ok(None);
        };
        let cached = CachedKey::from_row(&row, read_at);
        self.cache
            .insert_unless_evicted(key, cached.clone(), generation);
        Ok(Some(cached))
    }

    fn is_fresh(&self, cached: &CachedKey) -> bool {
        if !self
            .notifications_flowing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return false;
        }
        let stale_before =
            self.epoch + Duration::from_nanos(self.stale_before_nanos.load(Ordering::SeqCst));
        cached.checked_at.elapsed() < self.state_ttl && cached.checked_at >= stale_before
    }

    /// Whether cross-replica notifications are arriving.
    pub fn notifications_flowing(&self) -> bool {
        self.notifications_flowing
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How long a cached key state is trusted without notifications.
    pub fn state_ttl(&self) -> Duration {
        self.state_ttl
    }

    /// Sets whether cross-replica notifications are arriving (see
    /// `notifications_flowing`). Either change also makes every cached
    /// state stale: going down, changes may already have been missed;
    /// coming back, states read meanwhile may predate the new listener.
    pub fn set_notifications_flowing(&self, flowing: bool) {
        self.mark_all_stale();
        self.notifications_flowing
            .store(flowing, std::sync::atomic::Ordering::SeqCst);
        self.mark_all_stale();
        // Watchers' caches are stale for the same reasons.
        self.changes.publish(KeyChange::Reset);
    }

    /// Forgets a key on this replica (a change made elsewhere was announced).
    pub fn forget(&self, key_id: &str) {
        self.cache.evict(key_id);
        self.changes.publish(KeyChange::Key(key_id.to_owned()));
    }

    /// Commits `txn`, which changed `key_id`, with the replica notification
    /// inside it (PostgreSQL delivers a NOTIFY at commit, and only then), and
    /// forgets the key here. Once the commit starts it runs in a task of its
    /// own, so a caller that goes away (a deadline, a reset stream) cannot
    /// leave the change committed but still cached on this replica.
    pub async fn commit_key_change(
        &self,
        txn: sea_orm::DatabaseTransaction,
        key_id: &str,
    ) -> Result<(), Error> {
        store::notify::publish_key_change(&txn, key_id).await?;
        let (cache, changes) = (self.cache.clone(), self.changes.clone());
        let key_id = key_id.to_owned();
        tokio::spawn(async move {
            let committed = txn.commit().await;
            // Whatever the outcome: forgetting costs at most a re-read.
            cache.evict(&key_id);
            changes.publish(KeyChange::Key(key_id));
            committed
        })
        .await
        .map_err(|e| Error::Internal(format!("key change task: {e}")))??;
        Ok(())
    }

    /// Treats every cached state as stale: the next verify of each key
    /// re-reads it (no argon2).
    pub fn mark_all_stale(&self) {
        let since_epoch = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stale_before_nanos
            .fetch_max(since_epoch, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_metrics_are_indexed_by_the_decision() {
        for (index, decision) in DECISIONS.iter().enumerate() {
            assert_eq!(*decision as usize, index, "{decision:?}");
        }
    }

    #[test]
    fn a_use_is_noted_once_per_second() {
        let row_time = Instant::now();
        let cached = Arc::new(CachedKey {
            integration_id: 1,
            expire_time: None,
            disabled: false,
            checked_at: row_time,
            labels: Arc::default(),
            allowed_networks: Box::new([]),
            rate_limit: None,
            use_noted_second: LatestSecond::default(),
        });
        assert!(cached.first_use_this_second(5_000_000));
        assert!(!cached.first_use_this_second(5_999_999));
        assert!(cached.first_use_this_second(6_000_000));
        // A clone (what a cache hit hands out) shares the note.
        assert!(!cached.clone().first_use_this_second(6_500_000));
    }
}
