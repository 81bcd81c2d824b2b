//! Throttling of failed verifications, per key id and per peer.
//!
//! Each key id and each peer address has a token bucket of failures. A
//! verification that would need the database or argon2 first checks that
//! neither bucket is empty, without taking a token; only a failure takes one.
//! A legitimate key therefore never spends budget, while an attacker's wrong
//! secrets quickly earn `RATE_LIMITED` answers that cost no argon2 at all.
//! (governor's limiters take a token on every check, which would charge
//! successes too, hence this small bucket.)

use std::{
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A bucket size and how fast it refills.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Failures allowed in a burst.
    pub burst: u32,
    /// Failures forgiven per second.
    pub per_second: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThrottleSettings {
    pub per_key: Budget,
    pub per_peer: Budget,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            // A typo'd secret can be retried a few times; a guessing attack on
            // one key id gets one argon2 try every ten seconds.
            per_key: Budget {
                burst: 5,
                per_second: 0.1,
            },
            // One host may fail more often (it may front many callers).
            per_peer: Budget {
                burst: 50,
                per_second: 5.0,
            },
        }
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets of one kind of key (key ids or peers), bounded in number.
struct Buckets<K> {
    budget: Budget,
    buckets: moka::sync::Cache<K, Arc<Mutex<Bucket>>>,
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static> Buckets<K> {
    fn new(budget: Budget, capacity: u64) -> Self {
        // A full bucket is the same as no bucket, so an idle bucket can be
        // dropped once it would have refilled completely.
        let refill_secs = f64::from(budget.burst) / budget.per_second.max(1e-6);
        Self {
            budget,
            buckets: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs_f64(refill_secs.clamp(1.0, 86_400.0)))
                .build(),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * self.budget.per_second).min(f64::from(self.budget.burst));
        bucket.updated = now;
    }

    fn is_empty(&self, key: &K) -> bool {
        let Some(bucket) = self.buckets.get(key) else {
            return false;
        };
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut bucket, Instant::now());
        bucket.tokens < 1.0
    }

    fn take(&self, key: K) {
        let now = Instant::now();
        let bucket = self.buckets.get_with(key, || {
            Arc::new(Mutex::new(Bucket {
                tokens: f64::from(self.budget.burst),
                updated: now,
            }))
        });
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }
}

/// Failure budgets per key id and per peer.
pub struct FailureThrottle {
    keys: Buckets<String>,
    peers: Buckets<IpAddr>,
}

impl FailureThrottle {
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            keys: Buckets::new(settings.per_key, 1_000_000),
            peers: Buckets::new(settings.per_peer, 100_000),
        }
    }

    /// True when the key id or the peer has no failures left to spend.
    pub fn is_limited(&self, key_id: &str, peer: Option<IpAddr>) -> bool {
        self.keys.is_empty(&key_id.to_owned()) || peer.is_some_and(|p| self.peers.is_empty(&p))
    }

    /// Charges one failure to the key id and the peer.
    pub fn record_failure(&self, key_id: &str, peer: Option<IpAddr>) {
        self.keys.take(key_id.to_owned());
        if let Some(peer) = peer {
            self.peers.take(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_exhaust_the_budget_and_successes_cost_nothing() {
        let throttle = FailureThrottle::new(ThrottleSettings {
            per_key: Budget {
                burst: 3,
                per_second: 0.001,
            },
            per_peer: Budget {
                burst: 100,
                per_second: 0.001,
            },
        });
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..10 {
            assert!(!throttle.is_limited("lki_a", peer), "checks are free");
        }
        for _ in 0..3 {
            assert!(!throttle.is_limited("lki_a", peer));
            throttle.record_failure("lki_a", peer);
        }
        assert!(throttle.is_limited("lki_a", peer));
        assert!(
            !throttle.is_limited("lki_b", peer),
            "other keys are unaffected"
        );
    }

    #[test]
    fn a_peer_is_limited_across_key_ids() {
        let throttle = FailureThrottle::new(ThrottleSettings {
            per_key: Budget {
                burst: 100,
                per_second: 0.001,
            },
            per_peer: Budget {
                burst: 4,
                per_second: 0.001,
            },
        });
        let peer = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 0..4 {
            throttle.record_failure(&format!("lki_{i}"), peer);
        }
        assert!(throttle.is_limited("lki_new", peer));
        assert!(!throttle.is_limited("lki_new", Some(IpAddr::from([10, 0, 0, 3]))));
    }
}
