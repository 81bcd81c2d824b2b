//! The two ways the bench offers load, and how it sums up what came back:
//! closed-loop callers (each waits for its previous call) and an open-loop
//! flood (calls sent on schedule whatever the answers take).

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use super::report::ScenarioResult;

/// A scenario's call: one RPC, `Err` describing anything unexpected.
pub type Call = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The error a caller returns once it has nothing left to do (no fresh key
/// left); such calls are not counted and the caller stops.
pub const EXHAUSTED: &str = "no fresh key left";

/// Runs `call(worker)` from `concurrency` callers for `duration`, each
/// waiting for its previous call, and measures it.
pub async fn scenario<F, Fut>(
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

/// Sends `rate` calls per second (`call(n)` for the n-th) for `duration`,
/// on schedule whatever the answers take, and measures them once all have
/// answered.
pub async fn open_loop(
    name: &str,
    rate: u32,
    duration: Duration,
    mut call: impl FnMut(usize) -> Call,
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
            let call = call(sent);
            sent += 1;
            calls.spawn(async move {
                let t = Instant::now();
                (call.await, t.elapsed())
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
                    eprintln!("bench: {name}: first error: {e}");
                }
                errors += 1;
            }
            Err(_) => errors += 1,
        }
    }
    summarize(name, latencies, errors, start.elapsed())
}

/// A scenario's figures from its successful calls' latencies (µs).
fn summarize(name: &str, latencies: Vec<u64>, errors: u64, took: Duration) -> ScenarioResult {
    let elapsed = took.as_secs_f64().max(1e-9);
    let histogram = histogram(&latencies);
    ScenarioResult {
        name: name.to_owned(),
        calls: latencies.len() as u64,
        calls_per_sec: latencies.len() as f64 / elapsed,
        p50_us: histogram.value_at_quantile(0.50),
        p99_us: histogram.value_at_quantile(0.99),
        errors,
        argon2_runs: None,
        server_rss_mib: None,
    }
}

/// Latencies (µs, 1 µs to an hour; longer ones count as an hour) in an HDR
/// histogram, 3 significant digits.
fn histogram(latencies: &[u64]) -> hdrhistogram::Histogram<u64> {
    const AN_HOUR_US: u64 = 3_600_000_000;
    let mut histogram = hdrhistogram::Histogram::new_with_bounds(1, AN_HOUR_US, 3)
        .unwrap_or_else(|_| unreachable!("fixed, valid bounds and precision"));
    for &latency in latencies {
        histogram.saturating_record(latency);
    }
    histogram
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_latencies() {
        let latencies: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(histogram(&latencies).value_at_quantile(0.50), 50);
        assert_eq!(histogram(&latencies).value_at_quantile(0.99), 99);
        assert_eq!(histogram(&[7]).value_at_quantile(0.99), 7);
        assert_eq!(histogram(&[]).value_at_quantile(0.50), 0);
    }

    #[tokio::test]
    async fn a_scenario_counts_calls_and_errors() {
        let result = scenario("t", 2, Duration::from_millis(50), |worker| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if worker == 0 {
                Ok(())
            } else {
                Err("boom".to_owned())
            }
        })
        .await;
        assert!(result.calls > 0 && result.errors > 0, "{result:?}");
        assert!(result.p50_us >= 5_000, "{result:?}");
    }
}
