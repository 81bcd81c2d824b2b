//! The cache of keys whose secret has already been proven with argon2.
//!
//! Entries are found by key id, which makes eviction on delete/disable a
//! single remove, and hold an HMAC-SHA256 of the whole verified key under a
//! per-process random key. A hit needs the presented key's HMAC to match in
//! constant time, so the cache holds nothing that could be replayed or
//! brute-forced if memory were dumped, and a wrong secret for a cached key id
//! never counts as verified.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::domain::ApiKey;

type Digest = [u8; 32];

/// Verified keys of one kind, with a value `V` remembered for each.
pub struct VerifiedKeys<V> {
    /// HMAC-SHA256 already keyed with a per-process random key: each use
    /// clones it, which skips hashing the key's two pads again per call.
    keyed_mac: Hmac<Sha256>,
    entries: moka::sync::Cache<String, Arc<(Digest, V)>>,
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
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
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

    /// The value remembered for `key`, if this exact key was verified.
    pub fn get(&self, key: &ApiKey) -> Option<V> {
        self.get_secret(key.key_id(), key.expose_secret())
    }

    /// Remembers that `key` was verified.
    pub fn insert(&self, key: &ApiKey, value: V) {
        self.insert_secret(key.key_id(), key.expose_secret(), value);
    }

    /// The value remembered for the credential `id` with this `secret`, if
    /// this exact secret was verified (for credentials not in latchkey's key
    /// format, such as client users' API keys).
    pub fn get_secret(&self, id: &str, secret: &str) -> Option<V> {
        let entry = self.entries.get(id)?;
        let digest = self.digest(secret);
        bool::from(entry.0.ct_eq(&digest)).then(|| entry.1.clone())
    }

    /// Remembers that `secret` was verified for the credential `id`.
    pub fn insert_secret(&self, id: &str, secret: &str, value: V) {
        let digest = self.digest(secret);
        self.entries
            .insert(id.to_owned(), Arc::new((digest, value)));
    }

    /// Forgets the key with this id, if cached.
    pub fn evict(&self, key_id: &str) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(key_id);
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
                self.entries.invalidate(key.key_id());
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
}
