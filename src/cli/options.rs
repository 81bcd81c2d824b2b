//! The options every command and `serve` take, from four layers: defaults
//! (`Settings::default()` and its parts, the only place they are written) <
//! a TOML config file (`--config FILE` / `LATCHKEY_CONFIG`) < `LATCHKEY_*`
//! environment variables < flags. clap reads the last two into `Option`s;
//! the file fills what they left empty; `Settings` fills the rest.
//!
//! The file takes the flags' names as keys, e.g.
//! `database-url = "postgres://..."`, `listen = "0.0.0.0:50051"`,
//! `key-failure-burst = 10`; an unknown key is an error naming it.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use crate::{
    config::{Settings, TlsSettings},
    security::{
        HashParams,
        callers::TrustedPeers,
        sealing::{self, MasterKey, MasterKeyOrigin},
        throttle::Budget,
    },
    telemetry::LogFormat,
};

/// Options every command takes. (No `Debug` on the command line types:
/// `bench` takes a partner key.)
#[derive(Args, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GlobalArgs {
    /// TOML file of options (the flags' names as keys); flags and LATCHKEY_*
    /// variables override it.
    #[arg(long, global = true, env = "LATCHKEY_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://FILE?mode=rwc (the default:
    /// sqlite://latchkey.db?mode=rwc), postgres://..., mysql://...
    #[arg(long, global = true, env = "LATCHKEY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Log format on stderr [default: human].
    #[arg(long, global = true, env = "LATCHKEY_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// argon2id memory per hash, KiB, at most 1048576 (1 GiB) [default:
    /// 19456, OWASP's minimum].
    #[arg(long, global = true, env = "LATCHKEY_ARGON2_MEMORY_KIB")]
    pub argon2_memory_kib: Option<u32>,
    /// argon2id passes, at most 1000 [default: 2].
    #[arg(long, global = true, env = "LATCHKEY_ARGON2_ITERATIONS")]
    pub argon2_iterations: Option<u32>,
    /// argon2id lanes [default: 1].
    #[arg(long, global = true, env = "LATCHKEY_ARGON2_PARALLELISM")]
    pub argon2_parallelism: Option<u32>,
    /// File holding the master key (base64 of 32 bytes) that seals client
    /// credentials. LATCHKEY_MASTER_KEY (the key itself) takes precedence.
    /// Without either, the embedded SQLite default uses a development key
    /// file beside the database.
    #[arg(long, global = true, env = "LATCHKEY_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

/// `serve`'s options. Defaults are `Settings::default()`'s.
#[derive(Args, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "LATCHKEY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Also serve HTTP here: Connect JSON for every RPC, the seed routes,
    /// Sunshine's key API, /openapi.json [default: off].
    #[arg(long, env = "LATCHKEY_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Catalog file to apply before serving.
    #[arg(long, env = "LATCHKEY_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// argon2 hashes allowed at once; 0: one per core [default: 0].
    #[arg(long, env = "LATCHKEY_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Database connection pool size [default: 16].
    #[arg(long, env = "LATCHKEY_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Seconds to wait for a database connection before failing a call
    /// [default: 5].
    #[arg(long, env = "LATCHKEY_DB_ACQUIRE_TIMEOUT")]
    pub db_acquire_timeout: Option<u64>,
    /// Seconds a single database statement may run (PostgreSQL, MySQL)
    /// [default: 30].
    #[arg(long, env = "LATCHKEY_DB_STATEMENT_TIMEOUT")]
    pub db_statement_timeout: Option<u64>,
    /// Seconds a verified key's state is trusted without the database; then
    /// it is re-read (no argon2). Changes made on this replica take effect at
    /// once regardless; this bounds staleness for changes made elsewhere
    /// [default: 30].
    #[arg(long, env = "LATCHKEY_VERIFY_CACHE_TTL")]
    pub verify_cache_ttl: Option<u64>,
    /// Failed verifications allowed per key id before RATE_LIMITED
    /// [default: 5].
    #[arg(long, env = "LATCHKEY_KEY_FAILURE_BURST")]
    pub key_failure_burst: Option<u32>,
    /// Failed verifications forgiven per key id per minute [default: 6].
    #[arg(long, env = "LATCHKEY_KEY_FAILURES_PER_MINUTE")]
    pub key_failures_per_minute: Option<f64>,
    /// Failed verifications allowed per caller before RATE_LIMITED
    /// [default: 50].
    #[arg(long, env = "LATCHKEY_PEER_FAILURE_BURST")]
    pub peer_failure_burst: Option<u32>,
    /// Failed verifications forgiven per caller per minute [default: 300].
    #[arg(long, env = "LATCHKEY_PEER_FAILURES_PER_MINUTE")]
    pub peer_failures_per_minute: Option<f64>,
    /// Serve TLS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, env = "LATCHKEY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LATCHKEY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(long, env = "LATCHKEY_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Seconds in-flight calls get to finish after SIGTERM/Ctrl-C
    /// [default: 30].
    #[arg(long, env = "LATCHKEY_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9090).
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Per-client LearningBuilder host template, e.g. {client_id}.lb.example.com.
    #[arg(long, env = "LATCHKEY_CLIENT_LB_DOMAIN")]
    pub client_lb_domain: Option<String>,
    /// Milliseconds a RATE_LIMITED answer is held back (slows floods)
    /// [default: 250].
    #[arg(long, env = "LATCHKEY_RATE_LIMITED_DELAY_MS")]
    pub rate_limited_delay_ms: Option<u64>,
    /// Peers whose VerifyIntegrationKey `caller_address` names the end
    /// caller: comma-separated CIDRs or addresses [default: none].
    #[arg(long, env = "LATCHKEY_TRUSTED_PEERS")]
    pub trusted_peers: Option<String>,
    /// Callers that may wait for argon2, per lane; past it they get
    /// RESOURCE_EXHAUSTED at once [default: 256].
    #[arg(long, env = "LATCHKEY_ARGON2_QUEUE")]
    pub argon2_queue: Option<usize>,
    /// Percent of the argon2 threads that attempts for recently failing key
    /// ids or callers may use (at least one thread stays for the rest)
    /// [default: 50].
    #[arg(long, env = "LATCHKEY_ARGON2_SUSPECT_SHARE",
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub argon2_suspect_share: Option<u8>,
    /// Concurrent HTTP/2 streams per connection [default: 256].
    #[arg(long, env = "LATCHKEY_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: Option<u32>,
    /// Calls in flight in the whole server; more are shed with
    /// RESOURCE_EXHAUSTED (health probes never are) [default: 4096].
    #[arg(long, env = "LATCHKEY_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Seconds between HTTP/2 keepalive pings (and TCP keepalive probes)
    /// [default: 30].
    #[arg(long, env = "LATCHKEY_KEEPALIVE_INTERVAL")]
    pub keepalive_interval: Option<u64>,
    /// Seconds a ping may go unanswered before the connection is closed
    /// [default: 10].
    #[arg(long, env = "LATCHKEY_KEEPALIVE_TIMEOUT")]
    pub keepalive_timeout: Option<u64>,
    /// Seconds between checks for a catalog revision applied by another
    /// process (on PostgreSQL, a notification also reloads at once)
    /// [default: 1].
    #[arg(long, env = "LATCHKEY_CATALOG_POLL_INTERVAL")]
    pub catalog_poll_interval: Option<u64>,
    /// Seconds the replica-notification listener (PostgreSQL; heartbeats
    /// every third of it) may stay silent, or one read of the change log
    /// (MySQL/MariaDB) may take, before it is restarted and every cached key
    /// state is re-read [default: 15].
    #[arg(long, env = "LATCHKEY_NOTIFY_HEARTBEAT")]
    pub notify_heartbeat: Option<u64>,
    /// Seconds between prunes of the change log (MySQL/MariaDB; rows an
    /// hour old), each bounded by the heartbeat like a read [default: 60].
    #[arg(long, env = "LATCHKEY_CHANGE_LOG_PRUNE_INTERVAL")]
    pub change_log_prune_interval: Option<u64>,
}

/// Fills the options the command line and environment left empty from the
/// config file named by `--config` / `LATCHKEY_CONFIG`, if any.
pub fn layer_config_file(global: &mut GlobalArgs, serve: &mut ServeArgs) -> anyhow::Result<()> {
    let Some(path) = global.config.clone() else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let in_file = |e: toml::de::Error| {
        let at = e.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(":{line}:{column}")
        });
        anyhow::anyhow!(
            "config file {}{}: {}",
            path.display(),
            at.unwrap_or_default(),
            e.message().trim()
        )
    };
    let file: toml::Table = toml::from_str(&text).map_err(in_file)?;
    // Each key belongs to one of the two option sets; `serve`'s refuses
    // any key that is neither's.
    let global_names = option_names::<GlobalArgs>();
    let (global_keys, serve_keys): (toml::Table, toml::Table) = file
        .into_iter()
        .partition(|(key, _)| global_names.iter().any(|name| name == key));
    *global = layered(global, global_keys).map_err(in_file)?;
    global.config = Some(path.clone());
    *serve = layered(serve, serve_keys).map_err(in_file)?;
    Ok(())
}

/// `given` (flags and environment) over `file`: a key set in both keeps the
/// given value.
fn layered<T: Serialize + DeserializeOwned>(
    given: &T,
    mut file: toml::Table,
) -> Result<T, toml::de::Error> {
    // toml leaves `None` fields out, so only what was given overrides.
    let given = toml::Table::try_from(given)
        .map_err(|e| serde::de::Error::custom(format!("options: {e}")))?;
    // Name the key a bad value belongs to: serde's message does not.
    for (key, value) in &file {
        let alone = toml::Table::from_iter([(key.clone(), value.clone())]);
        if let Err(e) = alone.try_into::<T>() {
            return Err(serde::de::Error::custom(format!(
                "{key}: {}",
                e.message().trim()
            )));
        }
    }
    file.extend(given);
    file.try_into()
}

/// The long flag names of `T`'s options: the config file's keys.
fn option_names<T: Args>() -> Vec<String> {
    T::augment_args(clap::Command::new("options"))
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect()
}

impl GlobalArgs {
    /// The database URL: given, else the embedded default.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| Settings::default().database.url)
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_default()
    }

    /// The master key from LATCHKEY_MASTER_KEY, --master-key-file or the
    /// development default. Read from the environment, never from a flag,
    /// so the key does not show in process listings.
    pub fn master_key(&self) -> anyhow::Result<(MasterKey, MasterKeyOrigin)> {
        let from_env = std::env::var("LATCHKEY_MASTER_KEY")
            .ok()
            .map(Zeroizing::new);
        Ok(sealing::resolve_master_key(
            &self.database_url(),
            from_env.as_deref().map(String::as_str),
            self.master_key_file.as_deref(),
        )?)
    }

    /// argon2 parameters: the given ones over the defaults.
    pub fn hash_params(&self) -> HashParams {
        let default = HashParams::default();
        HashParams {
            memory_kib: self.argon2_memory_kib.unwrap_or(default.memory_kib),
            iterations: self.argon2_iterations.unwrap_or(default.iterations),
            parallelism: self.argon2_parallelism.unwrap_or(default.parallelism),
            ..default
        }
    }
}

/// The server's settings: `Settings::default()` with every option given.
/// The master key is left to `Settings::master_key`'s default (resolved at
/// start: LATCHKEY_MASTER_KEY, else the key file).
pub fn serve_settings(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<Settings> {
    let mut s = Settings::default();
    s.database.url = global.database_url();
    s.master_key_file = global.master_key_file.clone();
    s.hash = HashParams {
        concurrency: args.hash_concurrency.unwrap_or(s.hash.concurrency),
        queue: args.argon2_queue.unwrap_or(s.hash.queue),
        suspect_share_percent: args
            .argon2_suspect_share
            .unwrap_or(s.hash.suspect_share_percent),
        ..global.hash_params()
    };
    s.tls = tls(args)?;
    set(&mut s.listen, args.listen);
    s.http_listen = args.http_listen.or(s.http_listen);
    s.catalog = args.catalog.clone().or(s.catalog);
    s.client_lb_domain = args.client_lb_domain.clone().or(s.client_lb_domain);
    if let Some(peers) = &args.trusted_peers {
        s.trusted_peers =
            TrustedPeers::parse(peers).map_err(|e| anyhow::anyhow!("--trusted-peers: {e}"))?;
    }
    set(&mut s.shutdown_grace, args.shutdown_grace.map(secs));
    set(
        &mut s.notify_heartbeat,
        args.notify_heartbeat.map(at_least_one_sec),
    );
    set(
        &mut s.catalog_poll_interval,
        args.catalog_poll_interval.map(at_least_one_sec),
    );
    set(
        &mut s.change_log_prune_interval,
        args.change_log_prune_interval.map(at_least_one_sec),
    );
    set(
        &mut s.rate_limited_delay,
        args.rate_limited_delay_ms.map(millis),
    );
    let limits = &mut s.limits;
    set(
        &mut limits.max_concurrent_streams,
        args.max_concurrent_streams.map(|n| n.max(1)),
    );
    set(
        &mut limits.max_in_flight,
        args.max_in_flight.map(|n| n.max(1)),
    );
    set(
        &mut limits.keepalive_interval,
        args.keepalive_interval.map(at_least_one_sec),
    );
    set(
        &mut limits.keepalive_timeout,
        args.keepalive_timeout.map(at_least_one_sec),
    );
    let db = &mut s.database;
    // A pool of none cannot serve (and sqlx panics building one).
    set(
        &mut db.max_connections,
        args.db_max_connections.map(|n| n.max(1)),
    );
    set(&mut db.acquire_timeout, args.db_acquire_timeout.map(secs));
    set(
        &mut db.statement_timeout,
        args.db_statement_timeout.map(at_least_one_sec),
    );
    let verifier = &mut s.verifier;
    set(
        &mut verifier.cache_ttl,
        args.verify_cache_ttl.map(at_least_one_sec),
    );
    budget(
        &mut verifier.throttle.per_key,
        args.key_failure_burst,
        args.key_failures_per_minute,
    );
    budget(
        &mut verifier.throttle.per_peer,
        args.peer_failure_burst,
        args.peer_failures_per_minute,
    );
    Ok(s)
}

fn set<T>(field: &mut T, given: Option<T>) {
    if let Some(value) = given {
        *field = value;
    }
}

fn budget(budget: &mut Budget, burst: Option<u32>, per_minute: Option<f64>) {
    set(&mut budget.burst, burst);
    set(&mut budget.per_second, per_minute.map(|n| n / 60.0));
}

/// Longest duration an option may set (about a century): timers and
/// deadlines add options to the current instant, which would overflow, and
/// panic, for a value near `u64::MAX` seconds.
const MAX_OPTION_SECS: u64 = 100 * 365 * 24 * 3600;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n.min(MAX_OPTION_SECS))
}

fn millis(n: u64) -> Duration {
    Duration::from_millis(n).min(secs(MAX_OPTION_SECS))
}

fn at_least_one_sec(n: u64) -> Duration {
    secs(n.max(1))
}

/// TLS material from `--tls-cert`, `--tls-key` and `--tls-client-ca`.
fn tls(args: &ServeArgs) -> anyhow::Result<Option<TlsSettings>> {
    match (&args.tls_cert, &args.tls_key, &args.tls_client_ca) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), ca) => Ok(Some(TlsSettings {
            cert_pem: read_file(cert)?,
            key_pem: read_file(key)?.into(),
            client_ca_pem: ca.as_deref().map(read_file).transpose()?,
        })),
        _ => anyhow::bail!("--tls-cert and --tls-key go together (and --tls-client-ca needs both)"),
    }
}

pub fn read_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

    fn parse(args: &[&str], file: &str) -> anyhow::Result<Cli> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("latchkey.toml");
        std::fs::write(&path, file)?;
        let path = path.to_string_lossy().into_owned();
        let mut argv = vec!["latchkey", "--config", path.as_str()];
        argv.extend_from_slice(args);
        Cli::try_parse_args(argv)?.with_config_file()
    }

    #[test]
    fn the_file_fills_what_flags_leave_empty() {
        let file = "listen = \"127.0.0.1:7000\"\nkey-failure-burst = 9\nargon2-iterations = 3\n";
        let cli = parse(&["serve", "--key-failure-burst", "2"], file).unwrap();
        let Some(crate::cli::Command::Serve(serve)) = &cli.command else {
            panic!("serve expected");
        };
        assert_eq!(serve.listen, Some("127.0.0.1:7000".parse().unwrap()));
        assert_eq!(serve.key_failure_burst, Some(2), "the flag wins");
        assert_eq!(cli.global.argon2_iterations, Some(3));
        // No command: serve's options at the top level get the file too.
        let cli = parse(&[], file).unwrap();
        assert_eq!(cli.serve.key_failure_burst, Some(9));
    }

    #[test]
    fn defaults_are_settings_defaults() {
        let cli = parse(&[], "").unwrap();
        let settings = serve_settings(&cli.global, &cli.serve).unwrap();
        let defaults = Settings::default();
        assert_eq!(settings.listen, defaults.listen);
        assert_eq!(settings.database.url, defaults.database.url);
        assert_eq!(settings.limits, defaults.limits);
        assert_eq!(settings.hash.memory_kib, defaults.hash.memory_kib);
        assert_eq!(
            settings.verifier.throttle.per_key.burst,
            defaults.verifier.throttle.per_key.burst
        );
    }

    #[test]
    fn out_of_range_numbers_are_bounded_not_fatal() {
        // The largest a config file can hold (TOML integers are i64).
        let huge = i64::MAX.to_string();
        let mut args = vec!["serve", "--db-max-connections", "0"];
        for flag in [
            "--catalog-poll-interval",
            "--keepalive-interval",
            "--db-acquire-timeout",
            "--rate-limited-delay-ms",
        ] {
            args.extend([flag, huge.as_str()]);
        }
        let cli = parse(&args, "").unwrap();
        let Some(crate::cli::Command::Serve(serve)) = &cli.command else {
            panic!("serve expected");
        };
        let settings = serve_settings(&cli.global, serve).unwrap();
        assert_eq!(settings.database.max_connections, 1);
        let century = Duration::from_secs(MAX_OPTION_SECS);
        assert_eq!(settings.catalog_poll_interval, century);
        assert_eq!(settings.limits.keepalive_interval, century);
        assert_eq!(settings.database.acquire_timeout, century);
        assert_eq!(settings.rate_limited_delay, century);
        // What the server does with them must not overflow.
        let now = std::time::Instant::now();
        assert!(now.checked_add(century).is_some());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse(&[], "colour = \"blue\"\n").err().unwrap();
        assert!(format!("{err:#}").contains("colour"), "{err:#}");
    }
}
