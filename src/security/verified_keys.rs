//! The cache of keys whose secret has already been proven with argon2.
//!
//! Entries are found by key id, which makes eviction on delete/disable a
//! single remove, and hold an HMAC-SHA256 of the verified secret under a
//! per-process random key. A hit needs the presented key's HMAC to match in
//! constant time, so the cache holds nothing that could be replayed or
//! brute-forced if memory were dumped, and a wrong secret for a cached key id
//! never counts as verified.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::domain::{ApiKey, time::LatestSecond};

type Digest = [u8; 32];

/// One verified credential: the HMAC of its secret, what is remembered
/// about it, and when it was last used.
struct Entry<V> {
    digest: Digest,
    value: V,
    /// Whole seconds since the cache's `epoch` of the latest hit (or the
    /// insert): an entry unused for `idle` is no longer a hit.
    used_second: LatestSecond,
}

/// Verified keys of one kind, with a value `V` remembered for each.
pub struct VerifiedKeys<V> {
    /// HMAC-SHA256 already keyed with a per-process random key: each use
    /// clones it, which skips hashing the key's two pads again per call.
    keyed_mac: Hmac<Sha256>,
    /// By credential id. A hit is a shard read lock and a hash lookup (the
    /// hot path of every cached verify); capacity is bounded by CLOCK-Pro
    /// eviction, idleness checked on use (`idle_seconds`).
    entries: quick_cache::sync::Cache<String, Arc<Entry<V>>>,
    epoch: Instant,
    idle_seconds: u64,
    /// Bumped by every eviction; see `insert_unless_evicted`.
    evictions: AtomicU64,
    /// One lock per exact secret being proven; see `lock_proof`. Bounded:
    /// an entry dropped while in use only costs a second proof.
    proving: moka::sync::Cache<Digest, Arc<tokio::sync::Mutex<()>>>,
}

impl<V: Clone + Send + Sync + 'static> VerifiedKeys<V> {
    /// A cache of at most `capacity` keys, each dropped after `idle` without
    /// use.
    pub fn new(capacity: u64, idle: Duration) -> Result<Self, getrandom::Error> {
        let mut mac_key = Zeroizing::new([0u8; 32]);
        getrandom::fill(mac_key.as_mut())?;
        // HMAC accepts keys of any length; a 32-byte key cannot fail.
        let keyed_mac = <Hmac<Sha256> as KeyInit>::new_from_slice(mac_key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Ok(Self {
            keyed_mac,
            entries: quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            epoch: Instant::now(),
            idle_seconds: idle.as_secs().max(1),
            evictions: AtomicU64::new(0),
            proving: moka::sync::Cache::builder()
                .max_capacity(capacity.min(100_000))
                .time_to_idle(Duration::from_secs(60))
                .build(),
        })
    }

    /// Waits until no other caller is proving this exact `secret` for `id`,
    /// and holds that place until the guard is dropped. Concurrent first
    /// uses of one credential thus cost one argon2 and one failure token:
    /// the first proves and caches, the others then find it cached. (A
    /// caller cancelled while holding it just lets the next one prove.)
    pub async fn lock_proof(&self, id: &str, secret: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let digest = self.mac(&[id.as_bytes(), b"\0", secret.as_bytes()]);
        self.proving
            .get_with(digest, Default::default)
            .lock_owned()
            .await
    }

    /// The value remembered for `key`, if this exact key was verified. The
    /// HMAC covers the secret part only: the entry is found by the key id,
    /// and the checksum follows from both (a 43-byte secret fits one SHA-256
    /// block, the whole 70-byte key needs two).
    pub fn get(&self, key: &ApiKey) -> Option<V> {
        self.get_secret(key.key_id(), key.expose_secret_part())
    }

    /// Remembers that `key` was verified.
    pub fn insert(&self, key: &ApiKey, value: V) {
        self.insert_secret(key.key_id(), key.expose_secret_part(), value);
    }

    /// The value remembered for the credential `id` with this `secret`, if
    /// this exact secret was verified (for credentials not in latchkey's key
    /// format, such as client users' API keys).
    pub fn get_secret(&self, id: &str, secret: &str) -> Option<V> {
        let entry = self.entries.get(id)?;
        if !digests_equal(&entry.digest, &self.digest(secret)) {
            return None;
        }
        let now = self.second();
        if now.saturating_sub(entry.used_second.get()) >= self.idle_seconds {
            // Idle too long: forget it (unless it was replaced meanwhile).
            self.entries
                .remove_if(id, |current| Arc::ptr_eq(current, &entry));
            return None;
        }
        entry.used_second.advance_to(now);
        Some(entry.value.clone())
    }

    /// Remembers that `secret` was verified for the credential `id`.
    pub fn insert_secret(&self, id: &str, secret: &str, value: V) {
        let entry = Entry {
            digest: self.digest(secret),
            value,
            used_second: LatestSecond::new(self.second()),
        };
        self.entries.insert(id.to_owned(), Arc::new(entry));
    }

    /// Forgets the key with this id, if cached.
    pub fn evict(&self, key_id: &str) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(key_id);
    }

    /// Whole seconds since this cache was made.
    fn second(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    /// A counter of evictions, to be read before loading what will be
    /// inserted.
    pub fn generation(&self) -> u64 {
        self.evictions.load(Ordering::SeqCst)
    }

    /// Inserts unless any eviction happened since `generation` was read: the
    /// value may have been loaded before a delete or update that has already
    /// evicted, and caching it would resurrect the old state. Skipping only
    /// costs one more verification later.
    pub fn insert_unless_evicted(&self, key: &ApiKey, value: V, generation: u64) {
        if self.generation() == generation {
            self.insert(key, value);
            if self.generation() != generation {
                // An eviction raced with the insert: undo, to be safe.
                self.entries.remove(key.key_id());
            }
        }
    }

    fn digest(&self, secret: &str) -> Digest {
        self.mac(&[secret.as_bytes()])
    }

    /// HMAC-SHA256 under this cache's random key over `parts`, in order.
    fn mac(&self, parts: &[&[u8]]) -> Digest {
        let mut mac = self.keyed_mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Whether two digests are equal, in constant time: the XOR of each 8-byte
/// word folded into one, compared once (a byte-wise `ct_eq` would put an
/// optimisation barrier on each of the 32 bytes of every cached verify).
fn digests_equal(a: &Digest, b: &Digest) -> bool {
    let (a, b) = (a.as_chunks::<8>().0, b.as_chunks::<8>().0);
    let difference = a.iter().zip(b).fold(0u64, |acc, (x, y)| {
        acc | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y))
    });
    bool::from(difference.ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::KeyKind;

    #[test]
    fn hits_only_for_the_exact_key_and_forgets_on_evict() {
        let cache = VerifiedKeys::new(16, Duration::from_secs(60)).unwrap();
        let key = ApiKey::generate(KeyKind::Partner).unwrap();
        assert_eq!(cache.get(&key), None);
        cache.insert(&key, 7u8);
        assert_eq!(cache.get(&key), Some(7));

        // Same key id, different secret: never a hit.
        let forged = format!("{}_{}", key.key_id(), "A".repeat(43));
        let checksum = crate::domain::key_format::checksum(forged.as_bytes());
        let forged = ApiKey::parse(KeyKind::Partner, format!("{forged}{checksum}")).unwrap();
        assert_eq!(cache.get(&forged), None);

        cache.evict(key.key_id());
        assert_eq!(cache.get(&key), None);
    }

    #[test]
    fn digests_differing_in_any_byte_are_not_equal() {
        let a = [7u8; 32];
        assert!(digests_equal(&a, &a));
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 1 << (i % 8);
            assert!(!digests_equal(&a, &b), "byte {i}");
        }
    }

    #[test]
    fn an_entry_idle_too_long_is_no_longer_a_hit() {
        let mut cache = VerifiedKeys::new(16, Duration::from_secs(5)).unwrap();
        // Time passes by moving the cache's epoch back, without waiting.
        let ago = |seconds| {
            Instant::now()
                .checked_sub(Duration::from_secs(seconds))
                .unwrap()
        };
        cache.epoch = ago(10);
        let key = ApiKey::generate(KeyKind::Partner).unwrap();
        cache.insert(&key, 1u8);
        let entry = cache.entries.get(key.key_id()).unwrap();
        assert_eq!(entry.used_second.get(), 10, "inserted at second 10");
        cache.epoch = ago(14);
        assert_eq!(cache.get(&key), Some(1), "used 4 s ago");
        assert_eq!(entry.used_second.get(), 14, "a hit is a use");
        cache.epoch = ago(19);
        assert_eq!(cache.get(&key), None, "used 5 s ago");
        assert!(cache.entries.get(key.key_id()).is_none(), "and forgotten");
    }
}
