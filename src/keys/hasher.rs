//! argon2id hashing and verification of whole keys, off the async runtime.
//!
//! Each argon2 call holds `m_cost` KiB (19 MiB by default) and a core for tens
//! of milliseconds, so calls run on the blocking pool behind a semaphore:
//! a flood of creates or bad secrets queues here instead of stalling other
//! calls or growing memory without bound.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::ApiKey;

/// argon2id cost parameters. The defaults are OWASP's minimum for argon2id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory per hash, KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Hashes allowed to run at once; 0 means one per available core.
    pub concurrency: usize,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
            concurrency: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error("argon2 failed: {0}")]
    Argon2(String),
    #[error("hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("hasher closed")]
    Closed,
}

/// Hashes and verifies keys with argon2id on the blocking pool, at most
/// `concurrency` at a time.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// argon2 computations started, hashes and verifications alike.
    runs: Arc<AtomicU64>,
}

impl Hasher {
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(HashError::Params)?;
        let concurrency = match params.concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Ok(Self {
            params: argon_params,
            permits: Arc::new(Semaphore::new(concurrency)),
            runs: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The argon2id PHC string of the whole key, with a fresh random salt.
    pub async fn hash(&self, key: &ApiKey) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(key, move |secret| {
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(secret.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| HashError::Argon2(e.to_string()))
        })
        .await
    }

    /// Whether `key` matches the PHC string `stored` (whose own parameters
    /// apply, so keys hashed under older settings keep verifying).
    pub async fn verify(&self, key: &ApiKey, stored: &str) -> Result<bool, HashError> {
        let stored = stored.to_owned();
        self.run(key, move |secret| {
            let hash = PasswordHash::new(&stored).map_err(|e| HashError::Argon2(e.to_string()))?;
            match Argon2::default().verify_password(secret.as_bytes(), &hash) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(e) => Err(HashError::Argon2(e.to_string())),
            }
        })
        .await
    }

    /// Hashing slots free right now.
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// argon2 computations started so far.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    async fn run<T, F>(&self, key: &ApiKey, work: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&str) -> Result<T, HashError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Closed)?;
        let secret = Zeroizing::new(key.expose_secret().to_owned());
        self.runs.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&secret)
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;

    fn cheap() -> Hasher {
        Hasher::new(HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            concurrency: 2,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_key_and_no_other() {
        let hasher = cheap();
        let key = ApiKey::generate(KeyKind::Integration).unwrap();
        let other = ApiKey::generate(KeyKind::Integration).unwrap();
        let hash = hasher.hash(&key).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!hash.contains(key.expose_secret()));
        assert!(hasher.verify(&key, &hash).await.unwrap());
        assert!(!hasher.verify(&other, &hash).await.unwrap());
    }

    #[tokio::test]
    async fn default_parameters_are_owasp_argon2id() {
        let hasher = Hasher::new(HashParams::default()).unwrap();
        let key = ApiKey::generate(KeyKind::Partner).unwrap();
        let hash = hasher.hash(&key).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }
}
