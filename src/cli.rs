//! The command line: `serve` (the default), `migrate`, `catalog apply`,
//! `partner-keys create|list|revoke`, `healthcheck`. Scripts depend on these;
//! keep them stable. Exit codes: 0 success, 2 bad usage (clap), 1 anything
//! else with a one-line error on stderr.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use latchkey_client::{Client, TlsOptions};
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::{
    app::{self, audit::Actor},
    config::{ConnectionLimits, DEFAULT_DATABASE_URL, DEFAULT_LISTEN, Settings, TlsSettings},
    domain::catalog::Catalog,
    error::Error,
    grpc::time::to_timestamp,
    security::callers::TrustedPeers,
    security::sealing::{self, MasterKey, MasterKeyOrigin},
    security::{
        HashParams, Hasher,
        throttle::{Budget, ThrottleSettings},
    },
    server, store,
    telemetry::LogFormat,
};

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Issues, verifies and revokes API keys for integrations, over gRPC"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// `serve`'s options, when no command is given.
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Parses the command line as people type it: global options (those
    /// every command takes) before or after the command, and `serve`'s own
    /// options at the top level only when no command is given. (clap's
    /// `args_conflicts_with_subcommands` would also refuse global options
    /// before a command, so the second rule is checked here.) Exits with 2
    /// and clap's message on bad usage.
    pub fn parse_args() -> Self {
        Self::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// `parse_args` over `args` (the program name first).
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(args)?;
        if let Some((name, _)) = matches.subcommand() {
            let serve_only = ServeArgs::augment_args(clap::Command::new("serve"));
            for arg in serve_only.get_arguments() {
                if matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
                    let flag = arg.get_long().unwrap_or(arg.get_id().as_str());
                    return Err(command.error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "'--{flag}' is an option of 'serve', not of '{name}' \
                             (write it after 'serve')"
                        ),
                    ));
                }
            }
        }
        Self::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
    }
}

/// Options every command takes. (No `Debug` on the command line types:
/// `bench` takes a partner key.)
#[derive(Args, Clone)]
pub struct GlobalArgs {
    /// Database URL: sqlite://FILE?mode=rwc, postgres://..., mysql://...
    #[arg(long, global = true, env = "LATCHKEY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Log format on stderr.
    #[arg(long, global = true, env = "LATCHKEY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// argon2id memory per hash, KiB (OWASP minimum: 19456).
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ARGON2_MEMORY_KIB",
        default_value_t = 19456
    )]
    pub argon2_memory_kib: u32,
    /// argon2id passes.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ARGON2_ITERATIONS",
        default_value_t = 2
    )]
    pub argon2_iterations: u32,
    /// argon2id lanes.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ARGON2_PARALLELISM",
        default_value_t = 1
    )]
    pub argon2_parallelism: u32,
    /// File holding the master key (base64 of 32 bytes) that seals client
    /// credentials. LATCHKEY_MASTER_KEY (the key itself) takes precedence.
    /// Without either, the embedded SQLite default uses a development key
    /// file beside the database.
    #[arg(long, global = true, env = "LATCHKEY_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl GlobalArgs {
    /// The master key from LATCHKEY_MASTER_KEY, --master-key-file or the
    /// development default. Read from the environment, never from a flag,
    /// so the key does not show in process listings.
    fn master_key(&self) -> anyhow::Result<(MasterKey, MasterKeyOrigin)> {
        let from_env = std::env::var("LATCHKEY_MASTER_KEY")
            .ok()
            .map(Zeroizing::new);
        Ok(sealing::resolve_master_key(
            &self.database_url,
            from_env.as_deref().map(String::as_str),
            self.master_key_file.as_deref(),
        )?)
    }

    fn hash_params(&self, concurrency: usize) -> HashParams {
        HashParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
            concurrency,
            ..HashParams::default()
        }
    }
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Catalog file to apply before serving.
    #[arg(long, env = "LATCHKEY_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// argon2 hashes allowed at once; 0: one per core.
    #[arg(long, env = "LATCHKEY_HASH_CONCURRENCY", default_value_t = 0)]
    pub hash_concurrency: usize,
    /// Database connection pool size.
    #[arg(long, env = "LATCHKEY_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Seconds to wait for a database connection before failing a call.
    #[arg(long, env = "LATCHKEY_DB_ACQUIRE_TIMEOUT", default_value_t = 5)]
    pub db_acquire_timeout: u64,
    /// Seconds a single database statement may run (PostgreSQL, MySQL).
    #[arg(long, env = "LATCHKEY_DB_STATEMENT_TIMEOUT", default_value_t = 30)]
    pub db_statement_timeout: u64,
    /// Seconds a verified key's state is trusted without the database; then
    /// it is re-read (no argon2). Changes made on this replica take effect at
    /// once regardless; this bounds staleness for changes made elsewhere.
    #[arg(long, env = "LATCHKEY_VERIFY_CACHE_TTL", default_value_t = 30)]
    pub verify_cache_ttl: u64,
    /// Failed verifications allowed per key id before RATE_LIMITED.
    #[arg(long, env = "LATCHKEY_KEY_FAILURE_BURST", default_value_t = 5)]
    pub key_failure_burst: u32,
    /// Failed verifications forgiven per key id per minute.
    #[arg(long, env = "LATCHKEY_KEY_FAILURES_PER_MINUTE", default_value_t = 6.0)]
    pub key_failures_per_minute: f64,
    /// Failed verifications allowed per peer address before RATE_LIMITED.
    #[arg(long, env = "LATCHKEY_PEER_FAILURE_BURST", default_value_t = 50)]
    pub peer_failure_burst: u32,
    /// Failed verifications forgiven per peer address per minute.
    #[arg(
        long,
        env = "LATCHKEY_PEER_FAILURES_PER_MINUTE",
        default_value_t = 300.0
    )]
    pub peer_failures_per_minute: f64,
    /// Serve TLS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, env = "LATCHKEY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LATCHKEY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(long, env = "LATCHKEY_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Seconds in-flight calls get to finish after SIGTERM/Ctrl-C.
    #[arg(long, env = "LATCHKEY_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9090).
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Per-client LearningBuilder host template, e.g. {client_id}.lb.example.com.
    #[arg(long, env = "LATCHKEY_CLIENT_LB_DOMAIN")]
    pub client_lb_domain: Option<String>,
    /// Milliseconds a RATE_LIMITED answer is held back (slows floods).
    #[arg(long, env = "LATCHKEY_RATE_LIMITED_DELAY_MS", default_value_t = 250)]
    pub rate_limited_delay_ms: u64,
    /// Peers whose VerifyIntegrationKey `caller_address` names the end
    /// caller: comma-separated CIDRs or addresses (default: none).
    #[arg(long, env = "LATCHKEY_TRUSTED_PEERS", default_value = "")]
    pub trusted_peers: String,
    /// Callers that may wait for argon2, per lane; past it they get
    /// RESOURCE_EXHAUSTED at once.
    #[arg(long, env = "LATCHKEY_ARGON2_QUEUE", default_value_t = 256)]
    pub argon2_queue: usize,
    /// Percent of the argon2 threads that attempts for recently failing key
    /// ids or callers may use (at least one thread stays for the rest).
    #[arg(long, env = "LATCHKEY_ARGON2_SUSPECT_SHARE", default_value_t = 50,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub argon2_suspect_share: u8,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, env = "LATCHKEY_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// Calls in flight in the whole server; more are shed with
    /// RESOURCE_EXHAUSTED (health probes never are).
    #[arg(long, env = "LATCHKEY_MAX_IN_FLIGHT", default_value_t = 4096)]
    pub max_in_flight: usize,
    /// Seconds between HTTP/2 keepalive pings (and TCP keepalive probes).
    #[arg(long, env = "LATCHKEY_KEEPALIVE_INTERVAL", default_value_t = 30)]
    pub keepalive_interval: u64,
    /// Seconds between checks for a catalog revision applied by another
    /// process (on PostgreSQL, a notification also reloads at once).
    #[arg(long, env = "LATCHKEY_CATALOG_POLL_INTERVAL", default_value_t = 1)]
    pub catalog_poll_interval: u64,
    /// PostgreSQL: seconds the replica-notification listener may stay silent
    /// (heartbeats every third of it) before it is reconnected and every
    /// cached key state is re-read.
    #[arg(long, env = "LATCHKEY_NOTIFY_HEARTBEAT", default_value_t = 15)]
    pub notify_heartbeat: u64,
    /// Seconds a ping may go unanswered before the connection is closed.
    #[arg(long, env = "LATCHKEY_KEEPALIVE_TIMEOUT", default_value_t = 10)]
    pub keepalive_timeout: u64,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve gRPC (the default command).
    Serve(ServeArgs),
    /// Bring the database schema up to date.
    Migrate,
    /// Manage the integration catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Manage partner keys (the credentials of management calls).
    #[command(subcommand)]
    PartnerKeys(PartnerKeysCommand),
    /// Probe a server's grpc.health.v1 status: exit 0 only when SERVING.
    Healthcheck {
        /// Server address, HOST:PORT.
        #[arg(long, default_value = DEFAULT_LISTEN)]
        addr: String,
        /// Service to check; empty for the server as a whole.
        #[arg(long, default_value = "")]
        service: String,
        /// Seconds before giving up.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
        /// Connect with TLS, trusting this PEM CA.
        #[arg(long)]
        tls_ca: Option<PathBuf>,
        /// Name on the server's certificate (default: the host of --addr).
        #[arg(long, requires = "tls_ca")]
        tls_domain: Option<String>,
        /// Client certificate and key (PEM) for a server requiring mTLS.
        #[arg(long, requires_all = ["tls_ca", "tls_client_key"])]
        tls_client_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_client_cert")]
        tls_client_key: Option<PathBuf>,
    },
    /// Measure a server: calls/s and p50/p99 latency per scenario.
    Bench(BenchArgs),
    /// Re-seal every stored client credential under the first key of the
    /// master keyring (LATCHKEY_MASTER_KEY=new,old), in batches under row
    /// locks: safe while replicas run and write.
    RotateMasterKey {
        /// A new key's file, sealing before the current keys: read if it
        /// exists, else created (mode 0600) with a new random key. Without
        /// it, the keyring's first key seals (the development key file of
        /// the embedded default is then replaced by a new key).
        #[arg(long)]
        new_master_key_file: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct BenchArgs {
    /// A running server; without it the bench starts its own on a temporary
    /// SQLite database.
    #[arg(long)]
    pub addr: Option<String>,
    /// Partner key for --addr.
    #[arg(long, env = "LATCHKEY_BENCH_PARTNER_KEY", hide_env_values = true)]
    pub partner_key: Option<String>,
    /// Custom integration to create keys in (for --addr).
    #[arg(long, default_value = "bench")]
    pub integration: String,
    /// Endpoint that integration is granted (for --addr).
    #[arg(long, default_value = "bench.v1.BenchService/Get")]
    pub endpoint: String,
    /// Concurrent callers per scenario.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Offered rate of the open-loop verify-flood, wrong secrets per second.
    #[arg(long, default_value_t = 2000)]
    pub flood_rate: u32,
    /// The Prometheus metrics of the server at --addr (HOST:PORT), to count
    /// its argon2 computations per scenario.
    #[arg(long)]
    pub metrics_addr: Option<String>,
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Reconcile integrations and grants to FILE in one transaction.
    Apply {
        file: PathBuf,
        /// Print the changes without making them.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum PartnerKeysCommand {
    /// Create a partner key and print it (only it) on stdout. It is not shown
    /// again.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List partner keys (ids and names, never the keys).
    List,
    /// Revoke a partner key by id.
    Revoke { key_id: String },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => {
            let settings = serve_settings(&global, &args)?;
            if let Some(addr) = args.metrics_listen {
                crate::telemetry::install_metrics(addr)
                    .with_context(|| format!("cannot serve metrics on {addr}"))?;
                tracing::info!(%addr, "metrics served");
            }
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("cannot listen on {}", settings.listen))?;
            server::run(settings, listener, server::shutdown_signal()).await?;
        }
        Command::Migrate => {
            let db = open(&global).await?;
            db.close().await?;
            eprintln!("database is up to date");
        }
        Command::Catalog(CatalogCommand::Apply { file, dry_run }) => {
            let catalog = Catalog::load(&file)?;
            let db = open(&global).await?;
            let applied = app::catalog::apply(&db, &Actor::cli(), &catalog, dry_run).await?;
            db.close().await?;
            for change in &applied.changes {
                println!("{change}");
            }
            match (dry_run, applied.revision) {
                (true, _) => eprintln!(
                    "dry run: {} change(s), nothing applied",
                    applied.changes.len()
                ),
                (false, Some(revision)) => eprintln!(
                    "applied catalog revision {revision}: {} change(s)",
                    applied.changes.len()
                ),
                (false, None) => eprintln!("catalog already applied: no changes"),
            }
        }
        Command::PartnerKeys(command) => partner_keys(&global, command).await?,
        Command::Healthcheck {
            addr,
            service,
            timeout,
            tls_ca,
            tls_domain,
            tls_client_cert,
            tls_client_key,
        } => {
            let tls = match tls_ca {
                None => None,
                Some(ca) => Some(TlsOptions {
                    ca_pem: Some(read_file(&ca)?),
                    domain: tls_domain,
                    identity: match (tls_client_cert, tls_client_key) {
                        (Some(cert), Some(key)) => Some((read_file(&cert)?, read_file(&key)?)),
                        _ => None,
                    },
                }),
            };
            return healthcheck(&addr, service, Duration::from_secs(timeout), tls).await;
        }
        Command::RotateMasterKey {
            new_master_key_file,
        } => rotate_master_key(&global, new_master_key_file).await?,
        // The benchmark is part of the binary, not of this library: main.rs
        // runs it before it gets here.
        Command::Bench(_) => bail!("`bench` is run by the latchkey binary"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-seals every stored credential under the sealing (first) key of the
/// master keyring. The keyring is LATCHKEY_MASTER_KEY / --master-key-file
/// (`new,old`), or, with `--new-master-key-file`, that file's key before the
/// current ones; the development key file of the embedded default is
/// replaced by a new key when neither names one.
async fn rotate_master_key(global: &GlobalArgs, new_file: Option<PathBuf>) -> anyhow::Result<()> {
    let (current, origin) = global.master_key()?;
    let single = current.versions().count() == 1;
    let (ring, new_path, replace_dev_file) = match (new_file, &origin) {
        (Some(path), _) => {
            let key = if path.exists() {
                sealing::read_key_file(&path)?
            } else {
                let key = MasterKey::generate()?;
                sealing::write_key_file(&path, &key)?;
                key
            };
            if key.version() == current.version() {
                bail!("the new master key is the current one");
            }
            (MasterKey::sealing_with(key, &current), Some(path), None)
        }
        (None, MasterKeyOrigin::DevelopmentFile(dev)) if single => {
            // Written beside the old one first; swapped in after the commit.
            let mut staged = dev.clone().into_os_string();
            staged.push(".new");
            let staged = PathBuf::from(staged);
            let _ = std::fs::remove_file(&staged);
            let key = MasterKey::generate()?;
            sealing::write_key_file(&staged, &key)?;
            (
                MasterKey::sealing_with(key, &current),
                Some(dev.clone()),
                Some(staged),
            )
        }
        (None, _) => (current, None, None),
    };
    let db = open(global).await?;
    let count = app::clients::rotate_master_key(&db, &ring).await?;
    db.close().await?;
    if let (Some(staged), Some(path)) = (replace_dev_file, &new_path) {
        std::fs::rename(&staged, path)
            .with_context(|| format!("cannot move {} to {}", staged.display(), path.display()))?;
    }
    let next = match &new_path {
        Some(path) => format!("use {} from now on", path.display()),
        None => "every value now opens under the first key alone".into(),
    };
    eprintln!(
        "re-encrypted {count} credential(s) to master key {}; {next}",
        ring.version()
    );
    Ok(())
}

fn read_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn serve_settings(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<Settings> {
    let mut settings = Settings::new(global.database_url.clone());
    let (master_key, origin) = global.master_key()?;
    origin.warn_if_development();
    settings.master_key = Some(Arc::new(master_key));
    settings.client_lb_domain = args.client_lb_domain.clone();
    settings.shutdown_grace = Duration::from_secs(args.shutdown_grace);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        settings.tls = Some(TlsSettings {
            cert_pem: read_file(cert)?,
            key_pem: read_file(key)?,
            client_ca_pem: args.tls_client_ca.as_deref().map(read_file).transpose()?,
        });
    }
    settings.listen = args.listen;
    settings.catalog = args.catalog.clone();
    settings.hash = HashParams {
        queue: args.argon2_queue,
        suspect_share_percent: args.argon2_suspect_share,
        ..global.hash_params(args.hash_concurrency)
    };
    settings.trusted_peers = TrustedPeers::parse(&args.trusted_peers)
        .map_err(|e| anyhow::anyhow!("--trusted-peers: {e}"))?;
    settings.notify_heartbeat = Duration::from_secs(args.notify_heartbeat.max(1));
    settings.catalog_poll_interval = Duration::from_secs(args.catalog_poll_interval.max(1));
    settings.limits = ConnectionLimits {
        max_concurrent_streams: args.max_concurrent_streams.max(1),
        max_in_flight: args.max_in_flight.max(1),
        keepalive_interval: Duration::from_secs(args.keepalive_interval.max(1)),
        keepalive_timeout: Duration::from_secs(args.keepalive_timeout.max(1)),
    };
    settings.database.max_connections = args.db_max_connections;
    settings.database.acquire_timeout = Duration::from_secs(args.db_acquire_timeout);
    settings.database.statement_timeout = Duration::from_secs(args.db_statement_timeout.max(1));
    settings.verifier.cache_ttl = Duration::from_secs(args.verify_cache_ttl.max(1));
    settings.verifier.throttle = ThrottleSettings {
        per_key: Budget {
            burst: args.key_failure_burst,
            per_second: args.key_failures_per_minute / 60.0,
        },
        per_peer: Budget {
            burst: args.peer_failure_burst,
            per_second: args.peer_failures_per_minute / 60.0,
        },
    };
    settings.rate_limited_delay = Duration::from_millis(args.rate_limited_delay_ms);
    Ok(settings)
}

/// Opens and migrates the database, so every command works on a fresh one.
async fn open(global: &GlobalArgs) -> anyhow::Result<DatabaseConnection> {
    let db = store::connect(&store::DbOptions::new(global.database_url.clone()))
        .await
        .context("cannot open the database")?;
    store::migrate(&db)
        .await
        .context("cannot migrate the database")?;
    Ok(db)
}

async fn partner_keys(global: &GlobalArgs, command: PartnerKeysCommand) -> anyhow::Result<()> {
    let db = open(global).await?;
    match command {
        PartnerKeysCommand::Create { name } => {
            let hasher = Hasher::new(global.hash_params(1))?;
            let issued = app::partner_keys::create(&db, &hasher, &name)
                .await
                .map_err(|e| match e {
                    Error::BadRequest(_) => anyhow::anyhow!(
                        "--name must be 1 to 255 characters without control characters"
                    ),
                    e => e.into(),
                })?;
            eprintln!(
                "created partner key {} ({}); it is shown only now",
                issued.key_id,
                name.trim()
            );
            println!("{}", issued.key.expose_secret());
        }
        PartnerKeysCommand::List => {
            println!("{:<20}  {:<27}  {:<7}  NAME", "KEY_ID", "CREATED", "STATUS");
            for row in app::partner_keys::list(&db).await? {
                let status = if row.revoke_time.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<20}  {:<27}  {:<7}  {}",
                    row.key_id,
                    to_timestamp(row.create_time).to_string(),
                    status,
                    row.name
                );
            }
        }
        PartnerKeysCommand::Revoke { key_id } => {
            match app::partner_keys::revoke(&db, &key_id).await {
                Ok(()) => eprintln!("revoked partner key {key_id}"),
                Err(Error::KeyNotFound(_)) => bail!("no active partner key {key_id}"),
                Err(Error::BadRequest(_)) => {
                    bail!("not a partner key id (lkp_ followed by 16 letters or digits)")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    db.close().await?;
    Ok(())
}

async fn healthcheck(
    addr: &str,
    service: String,
    timeout: Duration,
    tls: Option<TlsOptions>,
) -> anyhow::Result<ExitCode> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut builder = Client::builder(format!("{scheme}://{addr}")).timeout(timeout);
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let channel = builder
        .channel()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service })
        .await
        .map_err(|status| anyhow::anyhow!("health check failed: {}", status.message()))?;
    let status = response.into_inner().status();
    if status == ServingStatus::Serving {
        println!("SERVING");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{}", status.as_str_name());
        Ok(ExitCode::FAILURE)
    }
}
