//! argon2id hashing and verification of whole keys, off the async runtime.
//!
//! Each argon2 call needs `m_cost` KiB of working memory (19 MiB by default)
//! and a core for tens of milliseconds. Calls run on a fixed set of worker
//! threads, one per allowed concurrent hash, each reusing its own memory
//! block: no 19 MiB allocation per call, and a resident size that stays at
//! `concurrency x m_cost` whatever the load (allocating per call on the
//! blocking pool left hundreds of MiB parked in malloc arenas). An async
//! semaphore in front queues callers, so a flood of creates or bad secrets
//! waits here instead of stalling other calls or growing memory.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};
use zeroize::Zeroizing;

use super::ApiKey;

/// Salt bytes per hash (the PHC recommendation).
const SALT_LEN: usize = 16;
/// Hash output bytes.
const OUTPUT_LEN: usize = 32;

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
    #[error("stored hash is not a usable argon2 PHC string: {0}")]
    StoredHash(String),
    #[error("OS random generator: {0}")]
    Random(getrandom::Error),
    #[error("cannot start hashing threads: {0}")]
    Threads(std::io::Error),
    #[error("hashing worker stopped")]
    Closed,
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Hashes and verifies keys with argon2id on dedicated threads, at most
/// `concurrency` at a time.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    jobs: crossbeam_channel::Sender<Job>,
    /// argon2 computations started, hashes and verifications alike.
    runs: Arc<AtomicU64>,
}

impl Hasher {
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(HashError::Params)?;
        let concurrency = match params.concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for i in 0..concurrency {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                // Ends when every Hasher clone (every sender) is dropped.
                .spawn(move || {
                    let mut memory = Vec::new();
                    while let Ok(job) = queue.recv() {
                        job(&mut memory);
                    }
                })
                .map_err(HashError::Threads)?;
        }
        Ok(Self {
            params: argon_params,
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs,
            runs: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The argon2id PHC string of the whole key, with a fresh random salt.
    pub async fn hash(&self, key: &ApiKey) -> Result<String, HashError> {
        self.hash_secret(key.expose_secret()).await
    }

    /// Whether `key` matches the PHC string `stored`; see `verify_secret`.
    pub async fn verify(&self, key: &ApiKey, stored: &str) -> Result<bool, HashError> {
        self.verify_secret(key.expose_secret(), stored).await
    }

    /// The argon2id PHC string of any secret (e.g. a client user's API key).
    pub async fn hash_secret(&self, secret: &str) -> Result<String, HashError> {
        let params = self.params.clone();
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(HashError::Random)?;
        self.run(secret, move |secret, memory| {
            let mut out = [0u8; OUTPUT_LEN];
            compute(
                Algorithm::Argon2id,
                Version::V0x13,
                &params,
                secret,
                &salt,
                &mut out,
                memory,
            )?;
            let phc = PasswordHash {
                algorithm: ARGON2ID_IDENT,
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params)
                    .map_err(|e| HashError::Argon2(e.to_string()))?,
                salt: Some(Salt::new(&salt).map_err(|e| HashError::Argon2(e.to_string()))?),
                hash: Some(Output::new(&out).map_err(|e| HashError::Argon2(e.to_string()))?),
            };
            Ok(phc.to_string())
        })
        .await
    }

    /// Whether `secret` matches the PHC string `stored`, whose own
    /// parameters apply (keys hashed under older settings keep verifying).
    /// The digests are compared in constant time.
    pub async fn verify_secret(&self, secret: &str, stored: &str) -> Result<bool, HashError> {
        let stored = stored.to_owned();
        self.run(secret, move |secret, memory| {
            let bad = |e: &dyn std::fmt::Display| HashError::StoredHash(e.to_string());
            let phc = PasswordHash::new(&stored).map_err(|e| bad(&e))?;
            let algorithm = Algorithm::try_from(phc.algorithm.as_str()).map_err(|e| bad(&e))?;
            let version = match phc.version {
                Some(v) => Version::try_from(v).map_err(|e| bad(&e))?,
                None => Version::default(),
            };
            let params = Params::try_from(&phc).map_err(|e| bad(&e))?;
            let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
                return Err(bad(&"missing salt or hash"));
            };
            let mut out = Zeroizing::new(vec![0u8; expected.len()]);
            compute(
                algorithm,
                version,
                &params,
                secret,
                salt.as_ref(),
                &mut out,
                memory,
            )?;
            Ok(out.ct_eq(expected.as_bytes()).into())
        })
        .await
    }

    /// argon2 computations started so far.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Runs `work` on a hashing thread once a slot is free.
    async fn run<T, F>(&self, secret: &str, work: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&str, &mut Vec<Block>) -> Result<T, HashError> + Send + 'static,
    {
        // Queue depth and wait: how far argon2 is behind its callers.
        let queued = std::time::Instant::now();
        metrics::gauge!("latchkey_argon2_queue_depth").increment(1.0);
        let permit = self.permits.acquire().await;
        metrics::gauge!("latchkey_argon2_queue_depth").decrement(1.0);
        metrics::histogram!("latchkey_argon2_wait_seconds").record(queued.elapsed().as_secs_f64());
        let _permit = permit.map_err(|_| HashError::Closed)?;
        let secret = Zeroizing::new(secret.to_owned());
        let (done, result) = oneshot::channel();
        self.runs.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move |memory| {
            // A panic must not take the worker thread down with it.
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&secret, memory)))
                .unwrap_or_else(|_| Err(HashError::Argon2("argon2 panicked".into())));
            let _ = done.send(outcome);
        });
        self.jobs.send(job).map_err(|_| HashError::Closed)?;
        result.await.map_err(|_| HashError::Closed)?
    }
}

/// argon2 into `out`, in `memory` (grown to the parameters' size if needed
/// and kept for the next call).
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    secret: &str,
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<(), HashError> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(secret.as_bytes(), salt, out, &mut memory[..blocks])
        .map_err(|e| HashError::Argon2(e.to_string()))
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
    async fn hashes_are_standard_phc_strings() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let hasher = cheap();
        let key = ApiKey::generate(KeyKind::Integration).unwrap();
        // Ours verifies with the argon2 crate's own verifier...
        let ours = hasher.hash(&key).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(key.expose_secret().as_bytes(), &parsed)
                .is_ok()
        );
        // ...and a hash made by the argon2 crate (other parameters) verifies with ours.
        let params = Params::new(128, 2, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(key.expose_secret().as_bytes())
            .unwrap()
            .to_string();
        assert!(hasher.verify(&key, &theirs).await.unwrap());
        let other = ApiKey::generate(KeyKind::Integration).unwrap();
        assert!(!hasher.verify(&other, &theirs).await.unwrap());
        assert!(hasher.verify(&key, "not a hash").await.is_err());
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
