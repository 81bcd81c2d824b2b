//! `latchkey bench`: drives a running server over real gRPC with N
//! concurrent callers per scenario for a fixed time, and prints calls/s and
//! p50/p99 latency per scenario, as a table or JSON.
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

use std::{
    future::Future,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::{Request, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    domain::{ApiKey, KeyKind, key_format::checksum},
    grpc::proto::v1::{
        CreateIntegrationKeyRequest, Decision, VerifyIntegrationKeyRequest,
        integration_keys_service_client::IntegrationKeysServiceClient,
    },
    security::{HashParams, Hasher},
    store,
};

/// How the benchmark runs. Not `Debug`: it holds a partner key.
#[derive(Clone)]
pub struct BenchOptions {
    /// A running server; `None` starts one.
    pub addr: Option<String>,
    /// Partner key for `--addr` (a started server gets its own).
    pub partner_key: Option<String>,
    /// A custom integration granted `endpoint` (for `--addr`).
    pub integration: String,
    pub endpoint: String,
    pub concurrency: usize,
    pub duration: Duration,
    /// Offered wrong secrets per second in `verify-flood`.
    pub flood_rate: u32,
    /// Prometheus metrics of the server at `addr` (a started server: its own).
    pub metrics_addr: Option<String>,
}

/// One scenario's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub calls: u64,
    pub calls_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub errors: u64,
    /// argon2 computations the server ran while the scenario ran (from its
    /// metrics; shared by scenarios that run together).
    pub argon2_runs: Option<u64>,
    /// The server's resident memory at the end of the scenario.
    pub server_rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenarios: Vec<ScenarioResult>,
    pub concurrency: usize,
    pub duration_secs: f64,
    pub cores: usize,
    /// Peak resident memory of the server while under attack (only when the
    /// bench started the server).
    pub server_rss_peak_under_attack_mib: Option<f64>,
    /// The server's peak resident memory over the whole run (VmHWM).
    pub server_rss_peak_mib: Option<f64>,
    /// The offered rate of verify-flood, calls/s.
    pub flood_rate: u32,
    pub ratios: Ratios,
}

#[derive(Debug, Serialize)]
pub struct Ratios {
    pub verify_cached_over_health: f64,
    pub create_over_argon2: f64,
    pub under_attack_over_verify_cached: f64,
    /// How much faster an unknown key id is rejected than a wrong secret
    /// (measured, never a target).
    pub unknown_over_wrong_secret: f64,
    /// Honest first verifies during verify-flood / without it.
    pub verify_miss_under_flood_over_verify_miss: f64,
    /// Creates during verify-flood / without it.
    pub create_under_flood_over_create: f64,
}

const BENCH_INTEGRATION: &str = "bench";
const BENCH_ENDPOINT: &str = "bench.v1.BenchService/Get";
/// Warm keys shared by the cached scenarios.
const WARM_KEYS: usize = 8;
/// gRPC connections the callers spread over.
const CHANNELS: usize = 4;

/// Runs every scenario and returns the report.
pub async fn run(options: BenchOptions) -> anyhow::Result<Report> {
    let mut server = None;
    let (addr, partner_key, integration, endpoint) = match &options.addr {
        Some(addr) => (
            addr.clone(),
            options
                .partner_key
                .clone()
                .context("--addr needs --partner-key (or LATCHKEY_BENCH_PARTNER_KEY)")?,
            options.integration.clone(),
            options.endpoint.clone(),
        ),
        None => {
            let started = OwnServer::start(&[]).await?;
            let addr = started.addr.clone();
            let key = started.partner_key.clone();
            server = Some(started);
            (
                addr,
                key,
                BENCH_INTEGRATION.to_owned(),
                BENCH_ENDPOINT.to_owned(),
            )
        }
    };
    let mut probe = Probe {
        metrics: server
            .as_ref()
            .map(|s: &OwnServer| s.metrics_addr.clone())
            .or_else(|| options.metrics_addr.clone()),
        pid: server.as_ref().and_then(|s| s.child.id()),
    };
    let channels = connect(&addr).await?;
    let target = Target {
        channels,
        partner_key: Arc::new(partner_key),
        integration: Arc::new(integration),
        endpoint: Arc::new(endpoint),
    };
    let n = options.concurrency.max(1);
    let d = options.duration;
    let mut scenarios = Vec::new();

    eprintln!("bench: health");
    scenarios.push(
        probe
            .measure(scenario("health", n, d, {
                let target = target.clone();
                move |worker| {
                    let mut client = HealthClient::new(target.channel(worker));
                    async move {
                        client
                            .check(HealthCheckRequest::default())
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                }
            }))
            .await,
    );

    eprintln!("bench: preparing {WARM_KEYS} warm keys");
    let mut warm = Vec::with_capacity(WARM_KEYS);
    for _ in 0..WARM_KEYS {
        let key = target.create().await?;
        if target.verify(key.clone()).await? != Decision::Allowed {
            bail!(
                "a new key is not allowed on {}: is {} granted it?",
                target.endpoint,
                target.integration
            );
        }
        warm.push(key);
    }
    let warm = Arc::new(warm);

    eprintln!("bench: verify-cached");
    scenarios.push(
        probe
            .measure(scenario(
                "verify-cached",
                n,
                d,
                verify_cached(&target, &warm),
            ))
            .await,
    );

    eprintln!("bench: create");
    let fresh = Arc::new(Mutex::new(Vec::new()));
    scenarios.push(
        probe
            .measure(scenario("create", n, d, {
                let target = target.clone();
                let fresh = fresh.clone();
                move |_| {
                    let target = target.clone();
                    let fresh = fresh.clone();
                    async move {
                        let key = target.create().await.map_err(|e| e.to_string())?;
                        fresh.lock().unwrap_or_else(|e| e.into_inner()).push(key);
                        Ok(())
                    }
                }
            }))
            .await,
    );
    // Half the fresh keys are kept for the honest verifies under flood.
    let fresh_for_flood = {
        let mut all = fresh.lock().unwrap_or_else(|e| e.into_inner());
        let half = all.len() / 2;
        Arc::new(Mutex::new(all.split_off(half)))
    };

    eprintln!("bench: argon2 (in process)");
    let hasher = Hasher::new(HashParams::default())?;
    scenarios.push(
        scenario("argon2", n, d, move |_| {
            let hasher = hasher.clone();
            async move {
                let key = ApiKey::generate(KeyKind::Integration).map_err(|e| e.to_string())?;
                hasher.hash(&key).await.map(drop).map_err(|e| e.to_string())
            }
        })
        .await,
    );

    eprintln!("bench: verify-miss");
    scenarios.push(
        probe
            .measure(scenario("verify-miss", n, d, verify_fresh(&target, &fresh)))
            .await,
    );

    eprintln!("bench: verify-bad");
    scenarios.push(
        probe
            .measure(scenario("verify-bad", n, d, verify_bad(&target, &warm)))
            .await,
    );

    // The open-loop flood, for a few key ids of its own, beside honest
    // first verifies and then beside creates.
    let mut flood_keys = Vec::with_capacity(FLOOD_KEYS);
    for _ in 0..FLOOD_KEYS {
        flood_keys.push(target.create().await?);
    }
    let flood_keys = Arc::new(flood_keys);
    for (name, flood_name, honest) in [
        ("verify-miss-under-flood", "verify-flood-vs-miss", true),
        ("create-under-flood", "verify-flood-vs-create", false),
    ] {
        eprintln!(
            "bench: verify-flood at {}/s with {name}",
            options.flood_rate
        );
        let before = probe.argon2_runs().await;
        let flood = flood(&target, &flood_keys, options.flood_rate, d);
        let (flood, beside) = if honest {
            tokio::join!(
                flood,
                scenario(name, n, d, verify_fresh(&target, &fresh_for_flood))
            )
        } else {
            tokio::join!(flood, scenario(name, n, d, creating(&target)))
        };
        let runs = probe
            .argon2_runs()
            .await
            .zip(before)
            .map(|(a, b)| a.saturating_sub(b));
        let flood = ScenarioResult {
            name: flood_name.to_owned(),
            ..flood
        };
        for mut result in [flood, beside] {
            result.argon2_runs = runs;
            result.server_rss_mib = probe.rss();
            scenarios.push(result);
        }
    }

    eprintln!("bench: verify-cached-under-attack");
    let pid = server.as_ref().and_then(|s| s.child.id());
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        async move {
            let mut peak: Option<f64> = None;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(rss) = pid.and_then(rss_mib) {
                    peak = Some(peak.map_or(rss, |p: f64| p.max(rss)));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        }
    });
    let (legit, flood) = tokio::join!(
        probe.measure(scenario(
            "verify-cached-under-attack",
            n,
            d,
            verify_cached(&target, &warm)
        )),
        probe.measure(scenario(
            "verify-bad-flood",
            n,
            d,
            verify_bad(&target, &warm)
        )),
    );
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let server_rss_peak_under_attack_mib = sampler.await.ok().flatten();
    scenarios.push(legit);
    scenarios.push(flood);

    // What a rejection costs: an unknown key id is rejected after one indexed
    // read, a wrong secret for a real key id only after argon2. Throttling
    // would hide the difference (both would be RATE_LIMITED), so when the
    // bench runs its own server, this pair runs against a second one with
    // failure budgets too large to bind.
    let server_rss_peak_mib = probe.pid.and_then(|pid| proc_status_mib(pid, "VmHWM:"));
    let (unthrottled, rejection_target) = match server {
        Some(server) => {
            server.stop().await;
            eprintln!("bench: restarting the server unthrottled for verify-unknown");
            let unthrottled = OwnServer::start(&[
                "--key-failure-burst",
                "1000000000",
                "--peer-failure-burst",
                "1000000000",
            ])
            .await?;
            probe = Probe {
                metrics: Some(unthrottled.metrics_addr.clone()),
                pid: unthrottled.child.id(),
            };
            let target = Target {
                channels: connect(&unthrottled.addr).await?,
                partner_key: Arc::new(unthrottled.partner_key.clone()),
                ..target.clone()
            };
            (Some(unthrottled), target)
        }
        None => (None, target.clone()),
    };
    let mut real_keys = Vec::with_capacity(WARM_KEYS);
    for _ in 0..WARM_KEYS {
        real_keys.push(rejection_target.create().await?);
    }
    let real_keys = Arc::new(real_keys);
    for (name, key_for) in [
        ("verify-unknown", unknown_key as fn(&str) -> String),
        ("verify-wrong-secret", wrong_secret),
    ] {
        eprintln!("bench: {name}");
        // RATE_LIMITED would mean throttling decided, not the lookup or the
        // hash: counted as an error, so a throttled server shows.
        let call = verifying(&rejection_target, &real_keys, key_for, |d| {
            d == Decision::Invalid
        });
        scenarios.push(probe.measure(scenario(name, n, d, call)).await);
    }
    if let Some(server) = unthrottled {
        server.stop().await;
    }

    let rate = |name: &str| {
        scenarios
            .iter()
            .find(|s| s.name == name)
            .map_or(0.0, |s| s.calls_per_sec)
    };
    let ratio = |a: &str, b: &str| {
        if rate(b) > 0.0 {
            rate(a) / rate(b)
        } else {
            0.0
        }
    };
    let ratios = Ratios {
        verify_cached_over_health: ratio("verify-cached", "health"),
        create_over_argon2: ratio("create", "argon2"),
        under_attack_over_verify_cached: ratio("verify-cached-under-attack", "verify-cached"),
        unknown_over_wrong_secret: ratio("verify-unknown", "verify-wrong-secret"),
        verify_miss_under_flood_over_verify_miss: ratio("verify-miss-under-flood", "verify-miss"),
        create_under_flood_over_create: ratio("create-under-flood", "create"),
    };
    Ok(Report {
        scenarios,
        concurrency: n,
        duration_secs: d.as_secs_f64(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        server_rss_peak_under_attack_mib,
        server_rss_peak_mib,
        flood_rate: options.flood_rate,
        ratios,
    })
}

/// The human-readable report.
pub fn render_table(report: &Report) -> String {
    let mut out = format!(
        "{:<28} {:>11} {:>10} {:>10} {:>8} {:>8} {:>9}\n",
        "scenario", "calls/s", "p50 us", "p99 us", "errors", "argon2", "RSS MiB"
    );
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for s in &report.scenarios {
        out.push_str(&format!(
            "{:<28} {:>11.1} {:>10} {:>10} {:>8} {:>8} {:>9}\n",
            s.name,
            s.calls_per_sec,
            s.p50_us,
            s.p99_us,
            s.errors,
            or_dash(s.argon2_runs.map(|r| r.to_string())),
            or_dash(s.server_rss_mib.map(|r| format!("{r:.1}"))),
        ));
    }
    let r = &report.ratios;
    out.push_str(&format!(
        "\nconcurrency {} for {:.0}s per scenario on {} cores; verify-flood offered {}/s\n\
         verify-cached / health:                  {:.2} (target >= 0.80)\n\
         create / argon2:                         {:.2} (target >= 0.85)\n\
         verify-cached under attack / unattacked: {:.2} (target >= 0.70)\n\
         verify-miss under flood / unloaded:      {:.2} (target >= 0.40)\n\
         create under flood / unloaded:           {:.2} (target >= 0.40)\n\
         verify-unknown / verify-wrong-secret:    {:.1} (measured, no target)\n",
        report.concurrency,
        report.duration_secs,
        report.cores,
        report.flood_rate,
        r.verify_cached_over_health,
        r.create_over_argon2,
        r.under_attack_over_verify_cached,
        r.verify_miss_under_flood_over_verify_miss,
        r.create_under_flood_over_create,
        r.unknown_over_wrong_secret,
    ));
    if let Some(rss) = report.server_rss_peak_under_attack_mib {
        out.push_str(&format!(
            "server RSS peak under attack:            {rss:.1} MiB (target < 200)\n"
        ));
    }
    if let Some(rss) = report.server_rss_peak_mib {
        out.push_str(&format!(
            "server RSS peak (VmHWM), whole run:      {rss:.1} MiB\n"
        ));
    }
    out
}

/// The error a verify-miss caller returns once no fresh key is left; such
/// calls are not counted.
const EXHAUSTED: &str = "no fresh key left";

#[derive(Clone)]
struct Target {
    channels: Vec<Channel>,
    partner_key: Arc<String>,
    integration: Arc<String>,
    endpoint: Arc<String>,
}

impl Target {
    fn channel(&self, worker: usize) -> Channel {
        self.channels[worker % self.channels.len()].clone()
    }

    async fn create(&self) -> anyhow::Result<String> {
        let mut request = Request::new(CreateIntegrationKeyRequest {
            integration: self.integration.to_string(),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("sid", self.partner_key.parse()?);
        let response = IntegrationKeysServiceClient::new(self.channel(0))
            .create_integration_key(request)
            .await
            .map_err(|s| anyhow::anyhow!("create: {}: {}", s.code(), s.message()))?;
        Ok(response.into_inner().api_key)
    }

    async fn verify(&self, api_key: String) -> anyhow::Result<Decision> {
        let client = IntegrationKeysServiceClient::new(self.channel(0));
        verify_with(client, api_key, self.endpoint.to_string())
            .await
            .map_err(anyhow::Error::msg)
    }
}

/// Key ids the open-loop flood aims at.
const FLOOD_KEYS: usize = 4;

/// Creates keys, dropping them.
fn creating(target: &Target) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    let target = target.clone();
    move |_| {
        let target = target.clone();
        Box::pin(async move { target.create().await.map(drop).map_err(|e| e.to_string()) })
    }
}

/// Verifies each key of `fresh` once (every call pays argon2), as its
/// honest holder would, from an end caller of its own.
fn verify_fresh(
    target: &Target,
    fresh: &Arc<Mutex<Vec<String>>>,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    let target = target.clone();
    let fresh = fresh.clone();
    move |worker| {
        let client = IntegrationKeysServiceClient::new(target.channel(worker));
        let endpoint = target.endpoint.to_string();
        let next = fresh.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Box::pin(async move {
            let key = next.ok_or(EXHAUSTED)?;
            let caller = format!("198.51.100.{}", worker % 250);
            match verify_from(client, key, endpoint, caller).await? {
                Decision::Allowed => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
    }
}

/// The open-loop flood: `rate` wrong secrets per second for `keys`' ids,
/// each from one of many attacking end callers, sent on schedule whatever
/// the answers take. Every answer the server may give an attacker (INVALID,
/// RATE_LIMITED, RESOURCE_EXHAUSTED) counts as a call; anything else is an
/// error.
async fn flood(
    target: &Target,
    keys: &Arc<Vec<String>>,
    rate: u32,
    duration: Duration,
) -> ScenarioResult {
    const TICK: Duration = Duration::from_millis(10);
    let per_tick = (f64::from(rate) * TICK.as_secs_f64()).max(1.0) as usize;
    let start = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = tokio::task::JoinSet::new();
    let mut sent = 0usize;
    while start.elapsed() < duration {
        tick.tick().await;
        for _ in 0..per_tick {
            let client = IntegrationKeysServiceClient::new(target.channel(sent));
            let key = wrong_secret(&keys[sent % keys.len()]);
            let caller = format!("203.0.{}.{}", (sent / 250) % 250, sent % 250);
            let endpoint = target.endpoint.to_string();
            sent += 1;
            calls.spawn(async move {
                let t = Instant::now();
                let outcome = match verify_from(client, key, endpoint, caller).await {
                    Ok(Decision::Invalid | Decision::RateLimited) => Ok(()),
                    Ok(other) => Err(format!("{other:?}")),
                    Err(e) if e.contains("ResourceExhausted") => Ok(()),
                    Err(e) => Err(e),
                };
                (outcome, t.elapsed())
            });
        }
    }
    let mut latencies = Vec::with_capacity(sent);
    let mut errors = 0u64;
    while let Some(joined) = calls.join_next().await {
        match joined {
            Ok((Ok(()), latency)) => latencies.push(micros(latency)),
            Ok((Err(e), _)) => {
                if errors == 0 {
                    eprintln!("bench: verify-flood: first error: {e}");
                }
                errors += 1;
            }
            Err(_) => errors += 1,
        }
    }
    summarize("verify-flood", latencies, errors, start.elapsed())
}

/// A scenario's call: one RPC, `Err` describing anything unexpected.
type Call = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Verifies the warm keys as they are: every call should be allowed.
fn verify_cached(
    target: &Target,
    warm: &Arc<Vec<String>>,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    verifying(target, warm, str::to_owned, |d| d == Decision::Allowed)
}

/// Wrong secrets for real key ids: the attack shape.
fn verify_bad(
    target: &Target,
    warm: &Arc<Vec<String>>,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    verifying(target, warm, wrong_secret, |d| {
        matches!(d, Decision::Invalid | Decision::RateLimited)
    })
}

/// Each worker verifies `key_for(its warm key)`; the call succeeds when the
/// decision is `expected`.
fn verifying(
    target: &Target,
    warm: &Arc<Vec<String>>,
    key_for: fn(&str) -> String,
    expected: fn(Decision) -> bool,
) -> impl Fn(usize) -> Call + Clone + Send + Sync + 'static {
    let target = target.clone();
    let warm = warm.clone();
    move |worker| {
        let client = IntegrationKeysServiceClient::new(target.channel(worker));
        let api_key = key_for(&warm[worker % warm.len()]);
        let endpoint = target.endpoint.to_string();
        Box::pin(async move {
            match verify_with(client, api_key, endpoint).await? {
                decision if expected(decision) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
    }
}

/// One VerifyIntegrationKey call.
async fn verify_with(
    client: IntegrationKeysServiceClient<Channel>,
    api_key: String,
    endpoint: String,
) -> Result<Decision, String> {
    verify_from(client, api_key, endpoint, String::new()).await
}

/// One VerifyIntegrationKey call on behalf of the end caller `caller`
/// (honoured by a server that trusts the bench).
async fn verify_from(
    mut client: IntegrationKeysServiceClient<Channel>,
    api_key: String,
    endpoint: String,
    caller_address: String,
) -> Result<Decision, String> {
    let response = client
        .verify_integration_key(VerifyIntegrationKeyRequest {
            api_key,
            endpoint,
            caller_address,
        })
        .await
        .map_err(|s| format!("verify: {:?}: {}", s.code(), s.message()))?;
    Ok(response.into_inner().decision())
}

/// The same key id with a fresh random secret (and a valid checksum).
fn wrong_secret(api_key: &str) -> String {
    let key_id = &api_key[..crate::domain::key_format::KEY_ID_LEN];
    let guess = ApiKey::generate(KeyKind::Integration)
        .map(|k| k.expose_secret()[crate::domain::key_format::KEY_ID_LEN..64].to_owned())
        .unwrap_or_default();
    let body = format!("{key_id}{guess}");
    format!("{body}{}", checksum(body.as_bytes()))
}

/// A whole key with a valid checksum whose key id was never issued (a fresh
/// random one for every call, so no cache or throttle bucket is shared).
fn unknown_key(_real: &str) -> String {
    ApiKey::generate(KeyKind::Integration)
        .map(|k| k.expose_secret().to_owned())
        .unwrap_or_default()
}

/// Runs `call` from `concurrency` callers for `duration` and measures it.
async fn scenario<F, Fut>(
    name: &str,
    concurrency: usize,
    duration: Duration,
    call: F,
) -> ScenarioResult
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let call = call.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            while Instant::now() < deadline {
                let t = Instant::now();
                match call(worker).await {
                    Ok(()) => latencies.push(micros(t.elapsed())),
                    Err(e) if e == EXHAUSTED => break,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error, Instant::now())
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut end = start;
    for worker in workers {
        if let Ok((l, e, first, finished)) = worker.await {
            latencies.extend(l);
            errors += e;
            end = end.max(finished);
            if let Some(first) = first.filter(|_| errors == e) {
                eprintln!("bench: {name}: first error: {first}");
            }
        }
    }
    summarize(name, latencies, errors, end.duration_since(start))
}

/// A scenario's figures from its successful calls' latencies.
fn summarize(name: &str, mut latencies: Vec<u64>, errors: u64, took: Duration) -> ScenarioResult {
    latencies.sort_unstable();
    let elapsed = took.as_secs_f64().max(1e-9);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    ScenarioResult {
        name: name.to_owned(),
        calls: latencies.len() as u64,
        calls_per_sec: latencies.len() as f64 / elapsed,
        p50_us: pick(0.50),
        p99_us: pick(0.99),
        errors,
        argon2_runs: None,
        server_rss_mib: None,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn connect(addr: &str) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(CHANNELS);
    for _ in 0..CHANNELS {
        channels.push(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                .connect()
                .await
                .with_context(|| format!("cannot connect to {addr}"))?,
        );
    }
    Ok(channels)
}

/// Resident memory of process `pid`, MiB (Linux).
fn rss_mib(pid: u32) -> Option<f64> {
    proc_status_mib(pid, "VmRSS:")
}

/// A memory figure (`VmRSS:`, `VmHWM:`) of process `pid`, MiB (Linux).
fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What the bench can see of the server beside its answers.
struct Probe {
    /// Its Prometheus metrics, HOST:PORT.
    metrics: Option<String>,
    pid: Option<u32>,
}

impl Probe {
    /// Runs `scenario` and adds the server's argon2 computations during it
    /// and its resident memory after it.
    async fn measure(&self, scenario: impl Future<Output = ScenarioResult>) -> ScenarioResult {
        let before = self.argon2_runs().await;
        let mut result = scenario.await;
        result.argon2_runs = self
            .argon2_runs()
            .await
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before));
        result.server_rss_mib = self.rss();
        result
    }

    fn rss(&self) -> Option<f64> {
        self.pid.and_then(rss_mib)
    }

    /// `latchkey_argon2_runs_total`, summed over lanes.
    async fn argon2_runs(&self) -> Option<u64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.metrics.as_ref()?;
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
            .await
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        let total = text
            .lines()
            .filter(|l| l.starts_with("latchkey_argon2_runs_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        Some(total as u64)
    }
}

/// A `latchkey serve` child process on a temporary database.
struct OwnServer {
    child: tokio::process::Child,
    addr: String,
    metrics_addr: String,
    partner_key: String,
    _dir: tempfile::TempDir,
}

impl OwnServer {
    async fn start(extra_args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        );
        let catalog = dir.path().join("catalog.toml");
        std::fs::write(
            &catalog,
            format!(
                "[[integrations]]\nname = \"{BENCH_INTEGRATION}\"\nkind = \"custom\"\n\
                 description = \"latchkey bench\"\nendpoints = [\"bench.v1.BenchService/*\"]\n"
            ),
        )?;
        let partner_key = create_partner_key(&database_url).await?;
        let metrics_addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.to_string()
        };
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--catalog")
            .arg(&catalog)
            .args(["--metrics-listen", &metrics_addr])
            // The bench names the end callers it plays.
            .args(["--trusted-peers", "127.0.0.1"])
            .args(extra_args)
            .env("LATCHKEY_DATABASE_URL", &database_url)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start latchkey serve")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = serving_addr(&line) {
                    return Ok(addr);
                }
            }
            bail!("latchkey serve exited before serving")
        })
        .await
        .context("latchkey serve did not start within 60 s")??;
        // Keep draining the log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            addr,
            metrics_addr,
            partner_key,
            _dir: dir,
        })
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

fn serving_addr(json_line: &str) -> Option<String> {
    if !json_line.contains("latchkey serving") {
        return None;
    }
    let start = json_line.find("\"addr\":\"")? + 8;
    let end = start + json_line[start..].find('"')?;
    Some(json_line[start..end].to_owned())
}

async fn create_partner_key(database_url: &str) -> anyhow::Result<String> {
    let db = store::connect(&store::DbOptions::new(database_url)).await?;
    store::migrate(&db).await?;
    let key = ApiKey::generate(KeyKind::Partner)?;
    let hash = Hasher::new(HashParams::default())?.hash(&key).await?;
    store::partner_keys::insert(
        &db,
        key.key_id(),
        "bench",
        hash,
        crate::domain::time::now_micros(),
    )
    .await?;
    db.close().await?;
    Ok(key.expose_secret().to_owned())
}
