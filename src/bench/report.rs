//! What `latchkey bench` prints: the figures of each scenario, the ratios
//! between them, as JSON (`--json`, whose shape `.ci/run` checks) or a table.

use serde::Serialize;

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
    /// Resident memory of the server once ready, before any scenario (only
    /// when the bench started the server).
    pub server_rss_idle_mib: Option<f64>,
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
    /// The median of `verify_cached_over_health` over short alternating
    /// rounds of the two on the same server (0 when none ran cleanly).
    pub verify_cached_over_health_alternating: f64,
    /// How many alternating rounds that median is of.
    pub alternating_rounds: usize,
    pub create_over_argon2: f64,
    pub under_attack_over_verify_cached: f64,
    /// How much faster an unknown key id is rejected than a wrong secret
    /// (measured, never a target).
    pub unknown_over_wrong_secret: f64,
    /// Honest first verifies during verify-flood / without it.
    pub verify_miss_under_flood_over_verify_miss: f64,
    /// Creates during verify-flood / without it.
    pub create_under_flood_over_create: f64,
    /// The last page of the seeded listing / its first page (calls/s).
    pub list_deep_over_first: f64,
    /// Verifies of unknown ids against the seeded table / against the
    /// small one.
    pub unknown_at_scale_over_unknown: f64,
}

impl Ratios {
    /// Records the ratios of alternating verify-cached / health rounds.
    pub fn set_alternating(&mut self, mut ratios: Vec<f64>) {
        ratios.sort_by(f64::total_cmp);
        self.alternating_rounds = ratios.len();
        self.verify_cached_over_health_alternating = match ratios.len() {
            0 => 0.0,
            n if n % 2 == 1 => ratios[n / 2],
            n => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
        };
    }

    /// The ratios between the calls/s of `scenarios` (0 when a divisor is
    /// missing or did nothing).
    pub fn of(scenarios: &[ScenarioResult]) -> Self {
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
        Ratios {
            verify_cached_over_health: ratio("verify-cached", "health"),
            verify_cached_over_health_alternating: 0.0,
            alternating_rounds: 0,
            create_over_argon2: ratio("create", "argon2"),
            under_attack_over_verify_cached: ratio("verify-cached-under-attack", "verify-cached"),
            unknown_over_wrong_secret: ratio("verify-unknown", "verify-wrong-secret"),
            verify_miss_under_flood_over_verify_miss: ratio(
                "verify-miss-under-flood",
                "verify-miss",
            ),
            create_under_flood_over_create: ratio("create-under-flood", "create"),
            list_deep_over_first: ratio("list-deep-page", "list-first-page"),
            unknown_at_scale_over_unknown: ratio("verify-unknown-at-scale", "verify-unknown"),
        }
    }
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
    if r.alternating_rounds > 0 {
        out.push_str(&format!(
            "verify-cached / health, alternating:     {:.2} (median of {} short rounds, each pair on the same server)\n",
            r.verify_cached_over_health_alternating, r.alternating_rounds
        ));
    }
    if r.list_deep_over_first > 0.0 {
        out.push_str(&format!(
            "list: last page / first page:            {:.2} (target >= 0.83, i.e. at most 1.2x the cost)\n",
            r.list_deep_over_first
        ));
    }
    if r.unknown_at_scale_over_unknown > 0.0 {
        out.push_str(&format!(
            "verify-unknown at scale / small table:   {:.2} (measured, no target)\n",
            r.unknown_at_scale_over_unknown
        ));
    }
    if let Some(rss) = report.server_rss_idle_mib {
        out.push_str(&format!(
            "server RSS idle, after start:            {rss:.1} MiB (target <= 20, release build)\n"
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::Ratios;

    fn ratios() -> Ratios {
        Ratios::of(&[])
    }

    #[test]
    fn the_alternating_ratio_is_the_median_of_the_clean_rounds() {
        let mut r = ratios();
        r.set_alternating(vec![0.9, 0.7, 1.0]);
        assert_eq!(
            (
                r.alternating_rounds,
                r.verify_cached_over_health_alternating
            ),
            (3, 0.9)
        );
        r.set_alternating(vec![0.8, 1.0, 0.7, 0.9]);
        assert!((r.verify_cached_over_health_alternating - 0.85).abs() < 1e-9);
        r.set_alternating(vec![]);
        assert_eq!(
            (
                r.alternating_rounds,
                r.verify_cached_over_health_alternating
            ),
            (0, 0.0)
        );
    }
}
