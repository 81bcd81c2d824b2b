//! Failure budgets: how many wrong secrets a key id and a caller may present
//! before they are refused without argon2.
//!
//! Each key id and each caller (the end caller's address, IPv6 grouped by
//! /64, see `callers`) has a token bucket of failures. A check that may reach
//! argon2 first *reserves* a token from both buckets ([`FailureBudgets::reserve`]);
//! a secret that proves right gives them back ([`Reservation::succeeded`]),
//! anything else keeps them: a wrong secret, an unknown id, a call cancelled
//! or timed out mid-check. So N concurrent wrong secrets for one key id cost
//! at most the burst in argon2, whatever N, and a legitimate key spends
//! nothing.
//!
//! The key id's budget is a hard limit. The caller's is not, for one kind of
//! attempt: a caller whose budget is spent may still try a key id with a
//! clean record (no failure it has not yet been forgiven). That caller is
//! often a resource server or a load balancer relaying many end callers, and
//! one attacker behind it must not lock out every honest key presented
//! through it; each such try dirties the key id, so it costs the attacker at
//! most one argon2 per real key id per refill, in the suspect lane.
//!
//! Every reservation also says which argon2 lane the attempt belongs to: the
//! honest lane when both the key id and the caller have a clean record, else
//! the suspect lane, which may use only part of the hashing threads (see
//! `hasher`). (governor's limiters take a token on every check and give none
//! back, which would charge successes too, hence these small buckets.)

use std::{
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use super::hasher::Lane;

/// A bucket size and how fast it refills.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Failures allowed in a burst.
    pub burst: u32,
    /// Failures forgiven per second.
    pub per_second: f64,
}

impl Budget {
    /// How long an empty bucket takes to be full again (at most about 30
    /// years, for rates near zero): a bucket idle that long is the same as
    /// none.
    pub fn full_refill(&self) -> Duration {
        let secs = f64::from(self.burst) / self.per_second.max(1e-6);
        Duration::from_secs_f64(secs.clamp(0.0, 1e9))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThrottleSettings {
    pub per_key: Budget,
    /// Per caller: the end caller's address when a trusted peer names it,
    /// else the direct peer's.
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

/// Token buckets of one kind of key (key ids or callers), bounded in number.
struct Buckets<K> {
    budget: Budget,
    buckets: moka::sync::Cache<K, Arc<Mutex<Bucket>>>,
}

/// A bucket, locked and refilled up to now.
struct Held<'a> {
    bucket: MutexGuard<'a, Bucket>,
    budget: Budget,
}

impl Held<'_> {
    fn has_token(&self) -> bool {
        self.bucket.tokens >= 1.0
    }

    /// No failure on record that has not been forgiven yet.
    fn is_clean(&self) -> bool {
        self.bucket.tokens >= f64::from(self.budget.burst)
    }

    fn take(&mut self) {
        self.bucket.tokens = (self.bucket.tokens - 1.0).max(0.0);
    }

    /// How long until a token is back.
    fn retry_after(&self) -> Duration {
        let missing = (1.0 - self.bucket.tokens).max(0.0);
        let secs = missing / self.budget.per_second.max(1e-6);
        Duration::from_secs_f64(secs.clamp(0.001, 86_400.0))
    }
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static> Buckets<K> {
    fn new(budget: Budget, capacity: u64) -> Self {
        // A full bucket is the same as no bucket, so an idle bucket can be
        // dropped once it would have refilled completely.
        let idle = budget
            .full_refill()
            .clamp(Duration::from_secs(1), Duration::from_secs(86_400));
        Self {
            budget,
            buckets: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
        }
    }

    fn bucket(&self, key: K) -> Arc<Mutex<Bucket>> {
        self.buckets.get_with(key, || {
            Arc::new(Mutex::new(Bucket {
                tokens: f64::from(self.budget.burst),
                updated: Instant::now(),
            }))
        })
    }

    fn hold<'a>(&self, bucket: &'a Mutex<Bucket>) -> Held<'a> {
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * self.budget.per_second).min(f64::from(self.budget.burst));
        bucket.updated = now;
        Held {
            bucket,
            budget: self.budget,
        }
    }

    fn give_back(&self, bucket: &Mutex<Bucket>) {
        let mut held = self.hold(bucket);
        held.bucket.tokens = (held.bucket.tokens + 1.0).min(f64::from(self.budget.burst));
    }
}

/// Failure budgets per key id and per caller, for one kind of credential.
pub struct FailureBudgets {
    keys: Buckets<String>,
    callers: Buckets<IpAddr>,
}

/// The outcome of [`FailureBudgets::reserve`].
pub enum Admission<'a> {
    /// The attempt may be checked; the reservation is spent unless the
    /// secret proves right.
    Granted(Reservation<'a>),
    /// A budget is spent: answer RATE_LIMITED without checking.
    Limited { retry_after: Duration },
}

/// A failure token reserved from a key id's bucket (and its caller's, if it
/// had one left). Dropping it keeps the tokens spent.
#[must_use = "call `succeeded` when the secret proves right; dropping keeps the tokens spent"]
pub struct Reservation<'a> {
    budgets: &'a FailureBudgets,
    key: Arc<Mutex<Bucket>>,
    caller: Option<Arc<Mutex<Bucket>>>,
    lane: Lane,
}

impl Reservation<'_> {
    /// The argon2 lane this attempt belongs to.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// The secret proved right: the reserved tokens go back.
    pub fn succeeded(self) {
        self.budgets.keys.give_back(&self.key);
        if let Some(caller) = &self.caller {
            self.budgets.callers.give_back(caller);
        }
    }

    /// The attempt was never judged (argon2 had no room for it): as
    /// `succeeded`, the tokens go back.
    pub fn not_checked(self) {
        self.succeeded();
    }
}

impl FailureBudgets {
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            keys: Buckets::new(settings.per_key, 1_000_000),
            callers: Buckets::new(settings.per_peer, 100_000),
        }
    }

    /// Reserves one failure token for an attempt on `key_id` by `caller`
    /// (kept per `callers::budget_key`), or says how long until one is
    /// available.
    pub fn reserve(&self, key_id: &str, caller: Option<IpAddr>) -> Admission<'_> {
        let key = self.keys.bucket(key_id.to_owned());
        let caller = caller.map(|c| self.callers.bucket(crate::security::callers::budget_key(c)));
        // Lock order: the key id's bucket, then the caller's.
        let mut key_held = self.keys.hold(&key);
        if !key_held.has_token() {
            return Admission::Limited {
                retry_after: key_held.retry_after(),
            };
        }
        let key_clean = key_held.is_clean();
        let (caller_clean, took_caller) = match &caller {
            None => (true, false),
            Some(bucket) => {
                let mut held = self.callers.hold(bucket);
                if held.has_token() {
                    let clean = held.is_clean();
                    held.take();
                    (clean, true)
                } else if key_clean {
                    // A spent caller may still try a clean key id (see the
                    // module docs), without a caller token to give back.
                    (false, false)
                } else {
                    return Admission::Limited {
                        retry_after: held.retry_after().max(key_held.retry_after()),
                    };
                }
            }
        };
        key_held.take();
        drop(key_held);
        let lane = if key_clean && caller_clean {
            Lane::Honest
        } else {
            Lane::Suspect
        };
        Admission::Granted(Reservation {
            budgets: self,
            key,
            caller: caller.filter(|_| took_caller),
            lane,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(per_key: u32, per_peer: u32) -> FailureBudgets {
        FailureBudgets::new(ThrottleSettings {
            per_key: Budget {
                burst: per_key,
                per_second: 0.001,
            },
            per_peer: Budget {
                burst: per_peer,
                per_second: 0.001,
            },
        })
    }

    fn granted(admission: Admission<'_>) -> Reservation<'_> {
        match admission {
            Admission::Granted(r) => r,
            Admission::Limited { .. } => panic!("limited"),
        }
    }

    fn is_limited(admission: Admission<'_>) -> bool {
        matches!(admission, Admission::Limited { .. })
    }

    #[test]
    fn failures_exhaust_the_budget_and_successes_cost_nothing() {
        let budgets = budgets(3, 100);
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..10 {
            granted(budgets.reserve("lki_a", peer)).succeeded();
        }
        let first = granted(budgets.reserve("lki_a", peer));
        assert_eq!(first.lane(), Lane::Honest, "a clean record");
        drop(first);
        for _ in 0..2 {
            let r = granted(budgets.reserve("lki_a", peer));
            assert_eq!(r.lane(), Lane::Suspect, "the key id has failed");
        }
        let Admission::Limited { retry_after } = budgets.reserve("lki_a", peer) else {
            panic!("not limited")
        };
        assert!(retry_after > Duration::from_secs(1));
        assert!(
            !is_limited(budgets.reserve("lki_b", peer)),
            "other keys are unaffected"
        );
    }

    #[test]
    fn reservations_are_taken_before_the_outcome_is_known() {
        let budgets = budgets(5, 1000);
        let held: Vec<_> = (0..5)
            .map(|_| granted(budgets.reserve("lki_a", None)))
            .collect();
        assert!(is_limited(budgets.reserve("lki_a", None)));
        for r in held {
            r.succeeded();
        }
        assert!(!is_limited(budgets.reserve("lki_a", None)));
    }

    #[test]
    fn a_spent_caller_may_try_only_clean_key_ids_in_the_suspect_lane() {
        let budgets = budgets(100, 4);
        let peer = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 0..4 {
            drop(granted(budgets.reserve(&format!("lki_{i}"), peer)));
        }
        // A key id that failed before is refused to this caller...
        assert!(is_limited(budgets.reserve("lki_0", peer)));
        // ...a clean one is tried, as a suspect, once.
        let fresh = granted(budgets.reserve("lki_new", peer));
        assert_eq!(fresh.lane(), Lane::Suspect);
        drop(fresh);
        assert!(is_limited(budgets.reserve("lki_new", peer)));
        // Another caller is unaffected.
        let other = granted(budgets.reserve("lki_other", Some(IpAddr::from([10, 0, 0, 3]))));
        assert_eq!(other.lane(), Lane::Honest);
    }
}
