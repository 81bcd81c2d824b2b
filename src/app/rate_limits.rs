//! Per-key rate limits (`IntegrationKey.rate_limit`), counted across
//! replicas without a database round trip per verify.
//!
//! A key's limit is a token bucket of `limit` tokens refilled evenly over
//! its `window`, kept in the database the replicas share (the table of the
//! shared failure budgets, `store::budgets`). A replica does not take one
//! token per verify: it *leases* a few at once (1/32 of the limit, at least
//! one) and spends them locally, so a hot key costs one short transaction
//! per lease, not per call. Leased tokens were taken from the shared bucket,
//! so no replica can spend what another spent; what a replica holds and has
//! not spent yet (less than a lease, 1/32 of the limit) is what the other
//! replicas cannot use meanwhile, so with three replicas the count stays
//! within 10 % of the limit. Once the shared bucket is empty, a replica
//! refuses locally until it has refilled by a token.
//!
//! SQLite is one process: there the bucket lives in this process. When the
//! shared bucket cannot be reached in time (the database is down or
//! stalled), each replica falls back to a bucket of its own of the whole
//! limit for a few seconds at a time, and counts that in
//! `latchkey_rate_limit_fallbacks_total`: a database outage loosens rate
//! limits (by at most the number of replicas), it does not refuse every
//! rate-limited key nor make each of its verifies wait.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{DatabaseBackend, DatabaseConnection};

use crate::{
    domain::{key_restrictions::RateLimit, time::now_micros},
    store::{self, budgets::Bucket},
};

/// How long a lease from the shared bucket may take before this replica
/// decides on its own bucket instead.
const LEASE_TIMEOUT: Duration = Duration::from_secs(1);

/// After a failed lease, how long the key is counted on this replica alone
/// before the shared bucket is tried again: while the database is down, a
/// verify must not wait out `LEASE_TIMEOUT` each time.
const FALLBACK_FOR: Duration = Duration::from_secs(5);

/// How many tokens a replica leases at once: 1/32 of the limit, so three
/// replicas hold back less than 10 % of it.
fn lease_size(limit: RateLimit) -> u32 {
    (limit.limit / 32).max(1)
}

pub struct RateLimits {
    db: DatabaseConnection,
    /// Whether the bucket is shared through the database (not SQLite).
    shared: bool,
    /// Per key id, what this replica holds of the key's bucket. A key's
    /// verifies queue on its lock only while a lease is being fetched.
    held: moka::sync::Cache<String, Arc<tokio::sync::Mutex<Held>>>,
    fallbacks: metrics::Counter,
    refusals: metrics::Counter,
}

/// What this replica holds of one key's bucket.
#[derive(Default)]
struct Held {
    /// The limit the state below was built under: a changed limit starts
    /// afresh.
    limit: Option<RateLimit>,
    /// Tokens leased from the shared bucket and not yet spent.
    leased: u32,
    /// The shared bucket was empty: refuse without asking until then.
    empty_until: Option<Instant>,
    /// This process's own bucket (SQLite, or the shared one unreachable):
    /// tokens, and when (µs) they were counted.
    own: Option<(f64, i64)>,
    /// The shared bucket could not be reached: use `own` until then.
    alone_until: Option<Instant>,
}

impl RateLimits {
    pub fn new(db: DatabaseConnection) -> Self {
        let shared = db.get_database_backend() != DatabaseBackend::Sqlite;
        Self {
            db,
            shared,
            held: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            fallbacks: metrics::counter!("latchkey_rate_limit_fallbacks_total"),
            refusals: metrics::counter!("latchkey_rate_limit_refusals_total"),
        }
    }

    /// Spends one of `key_id`'s tokens under `limit`: `Ok(())` when the
    /// verify is allowed, `Err(retry_after)` when the key is over its limit.
    pub async fn admit(&self, key_id: &str, limit: RateLimit) -> Result<(), Duration> {
        let held = self.held.get_with_by_ref(key_id, Default::default);
        let mut held = held.lock().await;
        if held.limit != Some(limit) {
            // Leases were sized for the old limit; tokens spent from this
            // process's own bucket stay spent, as in the shared one.
            *held = Held {
                limit: Some(limit),
                own: held.own,
                ..Held::default()
            };
        }
        let admitted = if self.shared {
            self.admit_shared(&mut held, key_id, limit).await
        } else {
            own_bucket(&mut held, limit)
        };
        if admitted.is_err() {
            self.refusals.increment(1);
        }
        admitted
    }

    async fn admit_shared(
        &self,
        held: &mut Held,
        key_id: &str,
        limit: RateLimit,
    ) -> Result<(), Duration> {
        if held.leased > 0 {
            held.leased -= 1;
            return Ok(());
        }
        let now = Instant::now();
        if let Some(until) = held.empty_until.filter(|until| *until > now) {
            return Err(until - now);
        }
        if held.alone_until.is_some_and(|until| until > now) {
            return own_bucket(held, limit);
        }
        let bucket = bucket(limit);
        let subject = format!("rl:{key_id}");
        // Boxed: a database future is large, and this path is taken once
        // per lease, not per verify (see `Verifier::decide`).
        let lease = Box::pin(store::budgets::take_up_to(
            &self.db,
            &subject,
            bucket,
            now_micros(),
            lease_size(limit),
        ));
        match tokio::time::timeout(LEASE_TIMEOUT, lease).await {
            Ok(Ok(taken)) if taken.granted > 0 => {
                held.empty_until = None;
                held.alone_until = None;
                held.own = None;
                held.leased = taken.granted - 1;
                Ok(())
            }
            Ok(Ok(taken)) => {
                let retry_after = bucket.until_one_token(taken.tokens_left);
                held.empty_until = Some(now + retry_after);
                Err(retry_after)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot lease rate-limit tokens; counting on this replica alone");
                self.fallbacks.increment(1);
                held.alone_until = Some(now + FALLBACK_FOR);
                own_bucket(held, limit)
            }
            Err(_) => {
                tracing::warn!(
                    "leasing rate-limit tokens timed out; counting on this replica alone"
                );
                self.fallbacks.increment(1);
                held.alone_until = Some(now + FALLBACK_FOR);
                own_bucket(held, limit)
            }
        }
    }
}

/// The token bucket of `limit`, as the shared store keeps it.
fn bucket(limit: RateLimit) -> Bucket {
    Bucket {
        burst: f64::from(limit.limit),
        per_second: limit.per_second(),
    }
}

/// Spends a token of this process's own bucket for the key (the same
/// bucket arithmetic as the shared one's).
fn own_bucket(held: &mut Held, limit: RateLimit) -> Result<(), Duration> {
    let bucket = bucket(limit);
    let now = now_micros();
    let (tokens, then) = held.own.unwrap_or((bucket.burst, now));
    let tokens = bucket.refilled(tokens, then, now);
    if tokens >= 1.0 {
        held.own = Some((tokens - 1.0, now));
        Ok(())
    } else {
        held.own = Some((tokens, now));
        Err(bucket.until_one_token(tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_bucket_allows_the_limit_then_says_when_to_retry() {
        let limit = RateLimit::new(3, Duration::from_secs(30)).unwrap();
        let mut held = Held::default();
        for _ in 0..3 {
            assert_eq!(own_bucket(&mut held, limit), Ok(()));
        }
        let retry_after = own_bucket(&mut held, limit).unwrap_err();
        // One token per 10 s.
        assert!(retry_after > Duration::from_secs(9) && retry_after <= Duration::from_secs(10));
    }

    #[test]
    fn leases_hold_back_less_than_a_thirtieth() {
        for limit in [1, 31, 32, 100, 1000, 1_000_000] {
            let rate = RateLimit::new(limit, Duration::from_secs(60)).unwrap();
            let lease = lease_size(rate);
            assert!(lease >= 1);
            assert!(
                limit < 64 || f64::from(lease) <= f64::from(limit) / 32.0,
                "{limit}"
            );
        }
    }
}
