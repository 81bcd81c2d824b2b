//! argon2id hashing and verification of whole keys, off the async runtime.
//!
//! Each argon2 call needs `m_cost` KiB of working memory (19 MiB by default)
//! and a core for tens of milliseconds. Calls run on a fixed set of worker
//! threads, one per allowed concurrent hash, each reusing its own memory
//! block: no 19 MiB allocation per call, and a resident size that stays at
//! `concurrency x m_cost` whatever the load (allocating per call on the
//! blocking pool left hundreds of MiB parked in malloc arenas).
//!
//! Two lanes share the threads. The honest lane (creates, and credentials
//! whose key id and caller have a clean record) may use every thread; the
//! suspect lane (attempts for key ids or callers that recently failed) only
//! `suspect_threads` of them, so a flood of wrong secrets cannot take the
//! capacity honest work needs. Each lane has a bounded queue: a caller that
//! finds it full is refused at once ([`HashError::Busy`], answered
//! RESOURCE_EXHAUSTED), never left waiting, so memory stays bounded under
//! any flood. A caller that goes away while queued leaves the queue; one
//! that goes away after its job reached a thread has the job skipped if it
//! has not started, or finished and discarded if it has. Either way the
//! thread's permit is held until the thread is done with the job.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use zeroize::Zeroizing;

use super::throttle::Reservation;
use crate::domain::ApiKey;

/// Salt bytes per hash (the PHC recommendation).
const SALT_LEN: usize = 16;
/// Hash output bytes.
const OUTPUT_LEN: usize = 32;

/// argon2id cost parameters and the hashing capacity. The cost defaults are
/// OWASP's minimum for argon2id.
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
    /// Callers allowed to wait for a hashing thread, per lane; past it they
    /// are refused at once.
    pub queue: usize,
    /// Share of the hashing threads the suspect lane may use, in percent
    /// (at least one thread, and with two or more threads at least one is
    /// kept for the honest lane).
    pub suspect_share_percent: u8,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
            concurrency: 0,
            queue: 256,
            suspect_share_percent: 50,
        }
    }
}

/// Which share of argon2 an attempt may use; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Creates, and credentials with a clean record: every thread.
    Honest,
    /// Attempts for key ids or callers that recently failed: a share.
    Suspect,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Honest => "honest",
            Lane::Suspect => "suspect",
        }
    }
}

/// The most memory one argon2 computation may take, KiB (1 GiB), whether
/// configured or read from a stored hash: each hashing thread keeps its
/// largest buffer, and a stored hash naming terabytes would abort the
/// process allocating it.
pub const MAX_MEMORY_KIB: u32 = 1 << 20;

/// The most passes one argon2 computation may make, configured or stored
/// (a stored hash naming billions would hold a hashing thread for ever).
pub const MAX_ITERATIONS: u32 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error(
        "argon2 cost above the ceiling (at most {MAX_MEMORY_KIB} KiB and {MAX_ITERATIONS} passes): {0}"
    )]
    TooCostly(String),
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
    /// The lane's queue is full: try again shortly.
    #[error("argon2 queue full")]
    Busy,
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Counters of what the hasher did, for metrics and tests.
#[derive(Default)]
pub struct HashStats {
    /// argon2 computations run, per lane.
    honest_runs: AtomicU64,
    suspect_runs: AtomicU64,
    /// Callers refused because their lane's queue was full.
    rejected: AtomicU64,
    /// Jobs skipped because their caller had gone before a thread took them.
    skipped: AtomicU64,
    /// Callers waiting for a thread, per lane.
    honest_waiting: AtomicUsize,
    suspect_waiting: AtomicUsize,
    /// Jobs holding a thread's permit (queued on or running on a thread).
    holding: AtomicUsize,
}

/// A snapshot of [`HashStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashCounts {
    pub honest_runs: u64,
    pub suspect_runs: u64,
    pub rejected: u64,
    pub skipped: u64,
    pub waiting: usize,
    pub holding: usize,
}

impl HashStats {
    fn runs(&self, lane: Lane) -> &AtomicU64 {
        match lane {
            Lane::Honest => &self.honest_runs,
            Lane::Suspect => &self.suspect_runs,
        }
    }

    fn waiting(&self, lane: Lane) -> &AtomicUsize {
        match lane {
            Lane::Honest => &self.honest_waiting,
            Lane::Suspect => &self.suspect_waiting,
        }
    }
}

/// One more caller waiting in a lane, for as long as it lives (a caller
/// cancelled while it waits is counted out when its future is dropped).
struct Waiting<'a> {
    stats: &'a HashStats,
    lane: Lane,
}

impl<'a> Waiting<'a> {
    fn enter(stats: &'a HashStats, lane: Lane, limit: usize) -> Result<Self, HashError> {
        let counter = stats.waiting(lane);
        if counter.fetch_add(1, Ordering::SeqCst) >= limit {
            counter.fetch_sub(1, Ordering::SeqCst);
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("latchkey_argon2_rejected_total", "lane" => lane.as_str())
                .increment(1);
            return Err(HashError::Busy);
        }
        metrics::gauge!("latchkey_argon2_queue_depth", "lane" => lane.as_str()).increment(1.0);
        Ok(Self { stats, lane })
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.stats.waiting(self.lane).fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("latchkey_argon2_queue_depth", "lane" => self.lane.as_str()).decrement(1.0);
    }
}

/// The permits a job holds while a thread has it.
struct Held {
    _all: OwnedSemaphorePermit,
    _suspect: Option<OwnedSemaphorePermit>,
    stats: Arc<HashStats>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stats.holding.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Hashes and verifies keys with argon2id on dedicated threads, at most
/// `concurrency` at a time; see the module docs for lanes and queues.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    /// One permit per thread: held from the moment a job is handed to the
    /// threads until a thread has finished (or skipped) it.
    threads: Arc<Semaphore>,
    /// The suspect lane's share of `threads`.
    suspect_threads: Arc<Semaphore>,
    queue: usize,
    jobs: crossbeam_channel::Sender<Job>,
    stats: Arc<HashStats>,
}

impl Hasher {
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        check_cost(params.memory_kib, params.iterations)?;
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
            threads: Arc::new(Semaphore::new(concurrency)),
            suspect_threads: Arc::new(Semaphore::new(suspect_threads(
                concurrency,
                params.suspect_share_percent,
            ))),
            queue: params.queue.max(1),
            jobs,
            stats: Arc::new(HashStats::default()),
        })
    }

    /// The argon2id PHC string of the whole key, with a fresh random salt.
    pub async fn hash(&self, key: &ApiKey) -> Result<String, HashError> {
        self.hash_secret(key.expose_secret()).await
    }

    /// Whether `key` matches the PHC string `stored`; see `verify_secret`.
    pub async fn verify(&self, key: &ApiKey, stored: &str, lane: Lane) -> Result<bool, HashError> {
        self.verify_secret(key.expose_secret(), stored, lane).await
    }

    /// The argon2id PHC string of any secret (e.g. a client user's API key).
    /// Hashing is for callers already authenticated: the honest lane.
    pub async fn hash_secret(&self, secret: &str) -> Result<String, HashError> {
        let params = self.params.clone();
        let salt = random_salt()?;
        self.run(secret, Lane::Honest, move |secret, memory| {
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
            phc_string(&params, &salt, &out)
        })
        .await
    }

    /// A PHC string in this hasher's parameters that no secret matches: a
    /// random salt and a random digest, made without running argon2.
    /// Checking a secret against it costs what checking against a real hash
    /// costs (one argon2 run, same parameters) and fails, as it would for a
    /// wrong secret (a match is a 2^-256 chance). Not hashing at startup
    /// also keeps every hashing thread's working memory (the cost's KiB)
    /// unallocated until the first real hash.
    pub fn decoy_hash(&self) -> Result<String, HashError> {
        let salt = random_salt()?;
        let mut out = Zeroizing::new([0u8; OUTPUT_LEN]);
        getrandom::fill(out.as_mut()).map_err(HashError::Random)?;
        phc_string(&self.params, &salt, out.as_ref())
    }

    /// Whether `secret` matches the PHC string `stored`, whose own
    /// parameters apply (keys hashed under older settings keep verifying).
    /// The digests are compared in constant time.
    pub async fn verify_secret(
        &self,
        secret: &str,
        stored: &str,
        lane: Lane,
    ) -> Result<bool, HashError> {
        let stored = stored.to_owned();
        self.run(secret, lane, move |secret, memory| {
            let bad = |e: &dyn std::fmt::Display| HashError::StoredHash(e.to_string());
            let phc = PasswordHash::new(&stored).map_err(|e| bad(&e))?;
            let algorithm = Algorithm::try_from(phc.algorithm.as_str()).map_err(|e| bad(&e))?;
            let version = match phc.version {
                Some(v) => Version::try_from(v).map_err(|e| bad(&e))?,
                None => Version::default(),
            };
            let params = Params::try_from(&phc).map_err(|e| bad(&e))?;
            check_cost(params.m_cost(), params.t_cost())?;
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

    /// Checks `secret` against `stored` on the lane of `reservation`, and
    /// settles it: given back when the secret is right or was never judged
    /// (an error, a full queue), kept when wrong or when the caller goes
    /// away meanwhile.
    pub async fn check(
        &self,
        secret: &str,
        stored: &str,
        reservation: Reservation<'_>,
    ) -> Result<bool, HashError> {
        match self.verify_secret(secret, stored, reservation.lane()).await {
            Ok(true) => {
                reservation.succeeded();
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                reservation.not_checked();
                Err(e)
            }
        }
    }

    /// argon2 computations run so far, both lanes.
    pub fn runs(&self) -> u64 {
        let counts = self.counts();
        counts.honest_runs + counts.suspect_runs
    }

    /// What the hasher has done and holds now.
    pub fn counts(&self) -> HashCounts {
        let s = &self.stats;
        HashCounts {
            honest_runs: s.honest_runs.load(Ordering::SeqCst),
            suspect_runs: s.suspect_runs.load(Ordering::SeqCst),
            rejected: s.rejected.load(Ordering::SeqCst),
            skipped: s.skipped.load(Ordering::SeqCst),
            waiting: s.honest_waiting.load(Ordering::SeqCst)
                + s.suspect_waiting.load(Ordering::SeqCst),
            holding: s.holding.load(Ordering::SeqCst),
        }
    }

    /// Runs `work` on a hashing thread once the lane gets one.
    async fn run<T, F>(&self, secret: &str, lane: Lane, work: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&str, &mut Vec<Block>) -> Result<T, HashError> + Send + 'static,
    {
        let queued = std::time::Instant::now();
        let waiting = Waiting::enter(&self.stats, lane, self.queue)?;
        // The suspect lane first takes one of its share, then a thread:
        // at most its share of suspects is ever ahead of honest callers.
        let suspect = match lane {
            Lane::Honest => None,
            Lane::Suspect => Some(
                self.suspect_threads
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| HashError::Closed)?,
            ),
        };
        let all = self
            .threads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Closed)?;
        drop(waiting);
        metrics::histogram!("latchkey_argon2_wait_seconds", "lane" => lane.as_str())
            .record(queued.elapsed().as_secs_f64());
        self.stats.holding.fetch_add(1, Ordering::SeqCst);
        let held = Held {
            _all: all,
            _suspect: suspect,
            stats: self.stats.clone(),
        };
        let secret = Zeroizing::new(secret.to_owned());
        let (done, result) = oneshot::channel();
        let stats = self.stats.clone();
        let job: Job = Box::new(move |memory| {
            let _held = held;
            if done.is_closed() {
                // The caller is gone (cancelled or timed out): its budget
                // token is already spent, and nobody wants the answer.
                stats.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            stats.runs(lane).fetch_add(1, Ordering::SeqCst);
            metrics::counter!("latchkey_argon2_runs_total", "lane" => lane.as_str()).increment(1);
            // A panic must not take the worker thread down with it.
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&secret, memory)))
                .unwrap_or_else(|_| Err(HashError::Argon2("argon2 panicked".into())));
            let _ = done.send(outcome);
        });
        self.jobs.send(job).map_err(|_| HashError::Closed)?;
        result.await.map_err(|_| HashError::Closed)?
    }
}

/// How many threads the suspect lane may use out of `threads`.
fn suspect_threads(threads: usize, share_percent: u8) -> usize {
    let share = threads * usize::from(share_percent.min(100)) / 100;
    let keep_one_honest = if threads > 1 { threads - 1 } else { 1 };
    share.clamp(1, keep_one_honest)
}

/// Refuses an argon2 cost above `MAX_MEMORY_KIB` or `MAX_ITERATIONS`.
fn check_cost(memory_kib: u32, iterations: u32) -> Result<(), HashError> {
    if memory_kib > MAX_MEMORY_KIB || iterations > MAX_ITERATIONS {
        return Err(HashError::TooCostly(format!(
            "{memory_kib} KiB, {iterations} passes"
        )));
    }
    Ok(())
}

/// A fresh random salt.
fn random_salt() -> Result<[u8; SALT_LEN], HashError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(HashError::Random)?;
    Ok(salt)
}

/// The standard PHC string of an argon2id (v19) digest `out` of a secret
/// under `params` and `salt`.
fn phc_string(params: &Params, salt: &[u8], out: &[u8]) -> Result<String, HashError> {
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(argon2_error)?,
        salt: Some(Salt::new(salt).map_err(argon2_error)?),
        hash: Some(Output::new(out).map_err(argon2_error)?),
    };
    Ok(phc.to_string())
}

fn argon2_error(e: impl std::fmt::Display) -> HashError {
    HashError::Argon2(e.to_string())
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
    use crate::domain::KeyKind;

    fn cheap() -> Hasher {
        Hasher::new(HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            concurrency: 2,
            ..HashParams::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_stored_hash_above_the_cost_ceiling_is_refused_not_computed() {
        let hasher = cheap();
        let key = ApiKey::generate(KeyKind::Integration).unwrap();
        let hash = hasher.hash(&key).await.unwrap();
        assert!(hash.contains("m=64,"), "{hash}");
        // Terabytes, or billions of passes: refused before any allocation.
        for (from, to) in [("m=64,", "m=4294967295,"), ("t=1,", "t=4294967295,")] {
            let costly = hash.replace(from, to);
            let refused = hasher.verify(&key, &costly, Lane::Honest).await;
            assert!(
                matches!(refused, Err(HashError::TooCostly(_))),
                "{refused:?}"
            );
        }
        // The hasher still works.
        assert!(hasher.verify(&key, &hash, Lane::Honest).await.unwrap());
    }

    #[test]
    fn a_configured_cost_above_the_ceiling_is_refused() {
        let params = |memory_kib, iterations| HashParams {
            memory_kib,
            iterations,
            parallelism: 1,
            concurrency: 1,
            ..HashParams::default()
        };
        assert!(matches!(
            Hasher::new(params(MAX_MEMORY_KIB + 1, 2)),
            Err(HashError::TooCostly(_))
        ));
        assert!(matches!(
            Hasher::new(params(19_456, MAX_ITERATIONS + 1)),
            Err(HashError::TooCostly(_))
        ));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_key_and_no_other() {
        let hasher = cheap();
        let key = ApiKey::generate(KeyKind::Integration).unwrap();
        let other = ApiKey::generate(KeyKind::Integration).unwrap();
        let hash = hasher.hash(&key).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!hash.contains(key.expose_secret()));
        assert!(hasher.verify(&key, &hash, Lane::Honest).await.unwrap());
        assert!(!hasher.verify(&other, &hash, Lane::Honest).await.unwrap());
    }

    #[tokio::test]
    async fn a_decoy_hash_costs_one_run_to_check_and_none_to_make() {
        let hasher = cheap();
        let decoy = hasher.decoy_hash().unwrap();
        assert_eq!(hasher.runs(), 0, "made without argon2");
        let real = hasher
            .hash(&ApiKey::generate(KeyKind::Partner).unwrap())
            .await
            .unwrap();
        // Same shape as a real hash: parameters, salt and digest lengths.
        let shape = |phc: &str| {
            let parsed = PasswordHash::new(phc).unwrap();
            let params = parsed.params.to_string();
            let salt_len = parsed.salt.unwrap().len();
            (params, salt_len, parsed.hash.unwrap().len())
        };
        assert_eq!(shape(&decoy), shape(&real));
        assert_ne!(
            decoy,
            hasher.decoy_hash().unwrap(),
            "a fresh salt and digest each time"
        );
        let key = ApiKey::generate(KeyKind::Partner).unwrap();
        assert!(!hasher.verify(&key, &decoy, Lane::Honest).await.unwrap());
        assert_eq!(hasher.runs(), 2, "the real hash, then one check");
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
        assert!(hasher.verify(&key, &theirs, Lane::Honest).await.unwrap());
        let other = ApiKey::generate(KeyKind::Integration).unwrap();
        assert!(!hasher.verify(&other, &theirs, Lane::Honest).await.unwrap());
        assert!(
            hasher
                .verify(&key, "not a hash", Lane::Suspect)
                .await
                .is_err()
        );
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

    #[test]
    fn the_suspect_lane_never_takes_every_thread() {
        assert_eq!(suspect_threads(1, 50), 1);
        assert_eq!(suspect_threads(2, 50), 1);
        assert_eq!(suspect_threads(2, 100), 1);
        assert_eq!(suspect_threads(8, 50), 4);
        assert_eq!(suspect_threads(8, 0), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_lane_refuses_at_once_and_cancelled_callers_leave_no_trace() {
        let params = HashParams {
            memory_kib: 4096,
            iterations: 4,
            parallelism: 1,
            concurrency: 1,
            queue: 2,
            suspect_share_percent: 50,
        };
        let hasher = Hasher::new(params).unwrap();
        let key = ApiKey::generate(KeyKind::Integration).unwrap();
        let hash = hasher.hash(&key).await.unwrap();
        // 40 suspects at once: one runs, two wait, the rest are refused.
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let hasher = hasher.clone();
                let hash = hash.clone();
                let key = ApiKey::generate(KeyKind::Integration).unwrap();
                tokio::spawn(async move { hasher.verify(&key, &hash, Lane::Suspect).await })
            })
            .collect();
        let mut busy = 0;
        for call in calls {
            match call.await.unwrap() {
                Err(HashError::Busy) => busy += 1,
                Ok(valid) => assert!(!valid),
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy >= 30, "{busy} refused");
        // Callers dropped while waiting or running leave nothing counted.
        // Slow hashes (hundreds of ms each) keep all three in the lane long
        // enough to see them there before they are dropped.
        let hasher = Hasher::new(HashParams {
            iterations: 300,
            ..params
        })
        .unwrap();
        let hash = hasher.hash(&key).await.unwrap();
        let dropped: Vec<_> = (0..3)
            .map(|_| {
                let hasher = hasher.clone();
                let hash = hash.clone();
                let key = ApiKey::generate(KeyKind::Integration).unwrap();
                tokio::spawn(async move { hasher.verify(&key, &hash, Lane::Honest).await })
            })
            .collect();
        // Only once all three are in the lane (one running, two queued) is
        // dropping them a test of cancellation.
        until(&hasher, "the three callers to be in the lane", |c| {
            c.waiting + c.holding == 3
        })
        .await;
        for call in &dropped {
            call.abort();
        }
        until(&hasher, "the dropped callers to leave the lane", |c| {
            c.waiting == 0 && c.holding == 0
        })
        .await;
        assert!(hasher.verify(&key, &hash, Lane::Honest).await.unwrap());
    }

    /// Polls the lane's counts until `done` holds, for at most 30 s.
    async fn until(hasher: &Hasher, what: &str, done: impl Fn(&HashCounts) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let counts = hasher.counts();
            if done(&counts) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {counts:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
