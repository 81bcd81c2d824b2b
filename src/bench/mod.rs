//! `latchkey bench`: drives a running server over real gRPC with N
//! concurrent callers per scenario for a fixed time, and prints calls/s and
//! p50/p99 latency per scenario, as a table or JSON.
//!
//! Part of the `latchkey` binary only (declared from main.rs): the library
//! the service and the SDK are built from does not contain it. Its calls go
//! through the Rust SDK, `latchkey-client`.
//!
//! Without `--addr` it starts its own `latchkey serve` (this same binary, as
//! a child process on a temporary SQLite database, default argon2 settings,
//! trusting the bench's own address to name end callers), so one command
//! measures everything, including the server's memory and, from its
//! metrics, the argon2 computations each scenario cost.
//!
//! `verify-flood` is open-loop: wrong secrets for a few key ids at a fixed
//! offered rate, from many end callers (`caller_address`), whatever the
//! answers take. It runs twice, once beside honest first verifies and once
//! beside creates, so each can be compared with its unloaded run.

mod calls;
mod load;
mod own_server;
mod report;
mod scale;

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use latchkey::{
    cli::BenchArgs,
    domain::{ApiKey, KeyKind},
    security::{HashParams, Hasher},
};
use latchkey_client::pb::Decision;

use calls::{KeyPool, Target};
use load::{Call, scenario};
use own_server::{OwnServer, Probe};
use report::{Ratios, Report, ScenarioResult, render_table};

/// Warm keys shared by the cached scenarios (and real keys of the rejection
/// scenarios).
const WARM_KEYS: usize = 8;
/// Rounds of `health` and `verify-cached` taken in turn (see
/// `alternating_rounds`).
const ALTERNATING_ROUNDS: usize = 6;
/// Key ids the open-loop flood aims at.
const FLOOD_KEYS: usize = 4;

/// `latchkey bench`: runs every scenario and prints the report.
pub async fn command(args: BenchArgs) -> anyhow::Result<()> {
    let json = args.json;
    let report = run(BenchOptions {
        addr: args.addr,
        partner_key: args.partner_key,
        integration: args.integration,
        endpoint: args.endpoint,
        concurrency: args.concurrency.max(1),
        duration: Duration::from_secs(args.duration.max(1)),
        flood_rate: args.flood_rate.max(1),
        metrics_addr: args.metrics_addr,
        scale: scale::Scale {
            keys: args.deep_keys,
            database_url: args.scale_database_url,
        },
        only_scale: args.only_scale,
    })
    .await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render_table(&report));
    }
    Ok(())
}

/// How the benchmark runs. Not `Debug`: it holds a partner key.
struct BenchOptions {
    /// A running server; `None` starts one.
    addr: Option<String>,
    /// Partner key for `addr` (a started server gets its own).
    partner_key: Option<String>,
    /// A custom integration granted `endpoint` (for `addr`).
    integration: String,
    endpoint: String,
    concurrency: usize,
    duration: Duration,
    /// Offered wrong secrets per second in `verify-flood`.
    flood_rate: u32,
    /// Prometheus metrics of the server at `addr` (a started server: its own).
    metrics_addr: Option<String>,
    /// The scale scenarios (run only on a server the bench starts).
    scale: scale::Scale,
    /// Only the scale scenarios.
    only_scale: bool,
}

/// Runs every scenario, in order, and returns the report.
async fn run(options: BenchOptions) -> anyhow::Result<Report> {
    if options.only_scale {
        let scenarios = scale_scenarios(&options).await?;
        return Ok(Report::of(scenarios, &options, None, None));
    }
    let bench = Bench::start(&options).await?;
    // Before any scenario: what a ready server holds doing nothing.
    let server_rss_idle_mib = bench.probe.rss();
    let mut scenarios = vec![bench.health().await];
    let warm = bench.warm_keys().await?;
    scenarios.push(bench.verify_cached(&warm).await);
    let alternating = bench.alternating_rounds(&warm).await;
    let (create, fresh, fresh_for_flood) = bench.create().await;
    scenarios.push(create);
    scenarios.push(bench.argon2_in_process().await?);
    scenarios.push(bench.verify_miss(&fresh).await);
    scenarios.push(bench.verify_bad(&warm).await);
    scenarios.extend(bench.under_flood(&fresh_for_flood).await?);
    let (under_attack, server_rss_peak_under_attack_mib) = bench.under_attack(&warm).await;
    scenarios.extend(under_attack);
    let server_rss_peak_mib = bench.probe.peak_rss();
    scenarios.extend(bench.rejection_costs().await?);
    scenarios.extend(scale_scenarios(&options).await?);
    let mut report = Report::of(
        scenarios,
        &options,
        server_rss_peak_under_attack_mib,
        server_rss_peak_mib,
    );
    report.ratios.set_alternating(alternating);
    report.server_rss_idle_mib = server_rss_idle_mib;
    Ok(report)
}

/// The scale scenarios, on a server they start (none against `--addr`).
async fn scale_scenarios(options: &BenchOptions) -> anyhow::Result<Vec<ScenarioResult>> {
    if options.addr.is_some() {
        eprintln!("bench: no scale scenarios against --addr (they seed a server of their own)");
        return Ok(Vec::new());
    }
    scale::run(&options.scale, options.concurrency, options.duration).await
}

impl Report {
    fn of(
        scenarios: Vec<ScenarioResult>,
        options: &BenchOptions,
        server_rss_peak_under_attack_mib: Option<f64>,
        server_rss_peak_mib: Option<f64>,
    ) -> Self {
        Report {
            ratios: Ratios::of(&scenarios),
            scenarios,
            concurrency: options.concurrency,
            duration_secs: options.duration.as_secs_f64(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            server_rss_idle_mib: None,
            server_rss_peak_under_attack_mib,
            server_rss_peak_mib,
            flood_rate: options.flood_rate,
        }
    }
}

/// The server under test, how to reach and observe it, and how hard to
/// push.
struct Bench {
    target: Target,
    probe: Probe,
    /// The server the bench started, if it did.
    server: Option<OwnServer>,
    concurrency: usize,
    duration: Duration,
    flood_rate: u32,
}

impl Bench {
    /// Connects to `--addr`, or starts a server of its own.
    async fn start(options: &BenchOptions) -> anyhow::Result<Self> {
        let (target, probe, server) = match &options.addr {
            Some(addr) => {
                let partner_key = options
                    .partner_key
                    .as_deref()
                    .context("--addr needs --partner-key (or LATCHKEY_BENCH_PARTNER_KEY)")?;
                let target =
                    Target::connect(addr, partner_key, &options.integration, &options.endpoint)
                        .await?;
                let probe = Probe {
                    metrics: options.metrics_addr.clone(),
                    pid: None,
                };
                (target, probe, None)
            }
            None => {
                let server = OwnServer::start(&[]).await?;
                let (target, probe) = server.observe().await?;
                (target, probe, Some(server))
            }
        };
        Ok(Self {
            target,
            probe,
            server,
            concurrency: options.concurrency,
            duration: options.duration,
            flood_rate: options.flood_rate,
        })
    }

    /// Runs `call` as the scenario `name` and measures the server during it.
    async fn measured<F, Fut>(&self, name: &str, call: F) -> ScenarioResult
    where
        F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        eprintln!("bench: {name}");
        self.probe
            .measure(scenario(name, self.concurrency, self.duration, call))
            .await
    }

    /// `health`: the empty-RPC baseline.
    async fn health(&self) -> ScenarioResult {
        self.measured("health", calls::health(&self.target)).await
    }

    /// `health` and `verify-cached` again, in short rounds that alternate
    /// which goes first; returns each clean round's verify / health ratio.
    /// Two 10-s scenarios a minute apart measure the machine's drift as
    /// much as the server; the median of adjacent pairs much less so.
    async fn alternating_rounds(&self, warm: &Arc<Vec<String>>) -> Vec<f64> {
        let round = (self.duration / ALTERNATING_ROUNDS as u32).max(Duration::from_millis(500));
        eprintln!("bench: health and verify-cached in {ALTERNATING_ROUNDS} alternating rounds");
        let mut ratios = Vec::with_capacity(ALTERNATING_ROUNDS);
        for i in 0..ALTERNATING_ROUNDS {
            let health = || {
                scenario(
                    "health",
                    self.concurrency,
                    round,
                    calls::health(&self.target),
                )
            };
            let verify = || {
                let call = calls::verify_cached(&self.target, warm);
                scenario("verify-cached", self.concurrency, round, call)
            };
            let (health, verify) = if i % 2 == 0 {
                let h = health().await;
                (h, verify().await)
            } else {
                let v = verify().await;
                (health().await, v)
            };
            if health.calls_per_sec > 0.0 && health.errors == 0 && verify.errors == 0 {
                let ratio = verify.calls_per_sec / health.calls_per_sec;
                eprintln!(
                    "bench: round {}: health {:.1}/s, verify-cached {:.1}/s, ratio {ratio:.2}",
                    i + 1,
                    health.calls_per_sec,
                    verify.calls_per_sec
                );
                ratios.push(ratio);
            }
        }
        ratios
    }

    /// Keys proven once, so that verifying them again is a cache hit.
    async fn warm_keys(&self) -> anyhow::Result<Arc<Vec<String>>> {
        eprintln!("bench: preparing {WARM_KEYS} warm keys");
        let mut warm = Vec::with_capacity(WARM_KEYS);
        for _ in 0..WARM_KEYS {
            let key = self.target.create().await.context("create")?;
            let decision = self
                .target
                .verify(key.clone())
                .await
                .map_err(|s| anyhow::anyhow!("verify: {:?}: {}", s.code(), s.message()))?;
            if decision != Decision::Allowed {
                bail!(
                    "a new key is not allowed on {}: is {} granted it?",
                    self.target.endpoint,
                    self.target.integration
                );
            }
            warm.push(key);
        }
        Ok(Arc::new(warm))
    }

    /// `verify-cached`: the warm keys again and again.
    async fn verify_cached(&self, warm: &Arc<Vec<String>>) -> ScenarioResult {
        let call = calls::verify_cached(&self.target, warm);
        self.measured("verify-cached", call).await
    }

    /// `create`; returns its result and the keys it made, in two halves:
    /// for `verify-miss` and for `verify-miss-under-flood`.
    async fn create(&self) -> (ScenarioResult, KeyPool, KeyPool) {
        let made = KeyPool::default();
        let result = self
            .measured("create", calls::creating_into(&self.target, &made))
            .await;
        let mut all = made.lock().unwrap_or_else(|e| e.into_inner());
        let half = all.len() / 2;
        let second_half = all.split_off(half);
        let first_half = std::mem::take(&mut *all);
        (
            result,
            Arc::new(Mutex::new(first_half)),
            Arc::new(Mutex::new(second_half)),
        )
    }

    /// `argon2`: the server's hash, in this process with the same
    /// parallelism: the ceiling for `create`.
    async fn argon2_in_process(&self) -> anyhow::Result<ScenarioResult> {
        eprintln!("bench: argon2 (in process)");
        let hasher = Hasher::new(HashParams::default())?;
        let call = move |_| -> Call {
            let hasher = hasher.clone();
            Box::pin(async move {
                let key = ApiKey::generate(KeyKind::Integration).map_err(|e| e.to_string())?;
                hasher.hash(&key).await.map(drop).map_err(|e| e.to_string())
            })
        };
        Ok(scenario("argon2", self.concurrency, self.duration, call).await)
    }

    /// `verify-miss`: fresh keys, argon2 once each.
    async fn verify_miss(&self, fresh: &KeyPool) -> ScenarioResult {
        let call = calls::verify_fresh(&self.target, fresh);
        self.measured("verify-miss", call).await
    }

    /// `verify-bad`: wrong secrets for real key ids.
    async fn verify_bad(&self, warm: &Arc<Vec<String>>) -> ScenarioResult {
        let call = calls::verify_bad(&self.target, warm);
        self.measured("verify-bad", call).await
    }

    /// The open-loop flood, for a few key ids of its own, beside honest
    /// first verifies and then beside creates: four results.
    async fn under_flood(&self, fresh: &KeyPool) -> anyhow::Result<Vec<ScenarioResult>> {
        let mut keys = Vec::with_capacity(FLOOD_KEYS);
        for _ in 0..FLOOD_KEYS {
            keys.push(self.target.create().await.context("create")?);
        }
        let keys = Arc::new(keys);
        let mut results = Vec::with_capacity(4);
        results.extend(
            self.flood_beside(
                "verify-flood-vs-miss",
                &keys,
                "verify-miss-under-flood",
                calls::verify_fresh(&self.target, fresh),
            )
            .await,
        );
        results.extend(
            self.flood_beside(
                "verify-flood-vs-create",
                &keys,
                "create-under-flood",
                calls::creating(&self.target),
            )
            .await,
        );
        Ok(results)
    }

    /// The flood (`flood_name`, on `keys`) and the scenario `name` at the
    /// same time; both get the argon2 runs of the server while they ran.
    async fn flood_beside<F, Fut>(
        &self,
        flood_name: &str,
        keys: &Arc<Vec<String>>,
        name: &str,
        call: F,
    ) -> [ScenarioResult; 2]
    where
        F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        eprintln!("bench: verify-flood at {}/s with {name}", self.flood_rate);
        let before = self.probe.argon2_runs().await;
        let (flood, beside) = tokio::join!(
            load::open_loop(
                flood_name,
                self.flood_rate,
                self.duration,
                calls::flood_call(&self.target, keys),
            ),
            scenario(name, self.concurrency, self.duration, call),
        );
        let runs = self.probe.argon2_runs_since(before).await;
        [flood, beside].map(|mut result| {
            result.argon2_runs = runs;
            result.server_rss_mib = self.probe.rss();
            result
        })
    }

    /// `verify-cached-under-attack` beside `verify-bad-flood`, sampling the
    /// server's memory; returns both and the peak memory seen.
    async fn under_attack(&self, warm: &Arc<Vec<String>>) -> ([ScenarioResult; 2], Option<f64>) {
        eprintln!("bench: verify-cached-under-attack");
        let pid = self.probe.pid;
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = tokio::spawn({
            let sampling = sampling.clone();
            async move {
                let mut peak: Option<f64> = None;
                while sampling.load(Ordering::Relaxed) {
                    if let Some(rss) =
                        pid.and_then(|pid| own_server::proc_status_mib(pid, "VmRSS:"))
                    {
                        peak = Some(peak.map_or(rss, |p| p.max(rss)));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                peak
            }
        });
        let (n, d) = (self.concurrency, self.duration);
        let (legit, attack) = tokio::join!(
            self.probe.measure(scenario(
                "verify-cached-under-attack",
                n,
                d,
                calls::verify_cached(&self.target, warm)
            )),
            self.probe.measure(scenario(
                "verify-bad-flood",
                n,
                d,
                calls::verify_bad(&self.target, warm)
            )),
        );
        sampling.store(false, Ordering::Relaxed);
        let peak = sampler.await.ok().flatten();
        ([legit, attack], peak)
    }

    /// What a rejection costs: an unknown key id is rejected after one
    /// indexed read, a wrong secret for a real key id only after argon2.
    /// Throttling would hide the difference (both would be RATE_LIMITED), so
    /// when the bench runs its own server, this pair runs against a second
    /// one with failure budgets too large to bind. Stops the servers the
    /// bench started.
    async fn rejection_costs(self) -> anyhow::Result<Vec<ScenarioResult>> {
        let (target, probe, unthrottled) = match self.server {
            Some(server) => {
                server.stop().await;
                eprintln!("bench: restarting the server unthrottled for verify-unknown");
                let unthrottled = OwnServer::start(&own_server::UNTHROTTLED).await?;
                let (target, probe) = unthrottled.observe().await?;
                (target, probe, Some(unthrottled))
            }
            None => (self.target, self.probe, None),
        };
        let bench = Bench {
            target,
            probe,
            server: None,
            ..self
        };
        let mut real = Vec::with_capacity(WARM_KEYS);
        for _ in 0..WARM_KEYS {
            real.push(bench.target.create().await.context("create")?);
        }
        let real = Arc::new(real);
        let mut results = Vec::with_capacity(2);
        for (name, key_for) in [
            ("verify-unknown", calls::unknown_key as fn(&str) -> String),
            ("verify-wrong-secret", calls::wrong_secret),
        ] {
            let call = calls::verify_rejected(&bench.target, &real, key_for);
            results.push(bench.measured(name, call).await);
        }
        if let Some(server) = unthrottled {
            server.stop().await;
        }
        Ok(results)
    }
}
