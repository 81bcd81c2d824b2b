//! The command line: `serve` (the default), `migrate`, `catalog apply`,
//! `partner-keys create|list|revoke`, `healthcheck`. Scripts depend on these;
//! keep them stable. Exit codes: 0 success, 2 bad usage (clap), 1 anything
//! else with a one-line error on stderr.

mod healthcheck;
mod master_key;
mod options;
mod partner_keys;

use options::read_file;
pub use options::{GlobalArgs, ServeArgs, serve_settings};

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sea_orm::DatabaseConnection;

use crate::{
    app::{self, audit::Actor},
    config::DEFAULT_LISTEN,
    domain::catalog::Catalog,
    server,
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

    /// Fills what the command line and environment left empty from the
    /// config file (`--config` / `LATCHKEY_CONFIG`), if one is named.
    pub fn with_config_file(mut self) -> anyhow::Result<Self> {
        let serve = match &mut self.command {
            Some(Command::Serve(args)) => args,
            _ => &mut self.serve,
        };
        options::layer_config_file(&mut self.global, serve)?;
        Ok(self)
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

#[derive(Subcommand)]
pub enum Command {
    /// Serve gRPC (the default command).
    Serve(Box<ServeArgs>),
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
    /// Keys seeded (in bulk, through the store) for the scale scenarios
    /// (`list-first-page`, `list-deep-page`, `verify-unknown-at-scale`,
    /// `verify-miss-at-scale`), on a server the bench starts.
    #[arg(long, default_value_t = 1_000_000)]
    pub deep_keys: u64,
    /// An empty database for the scale scenarios' server (PostgreSQL,
    /// MySQL/MariaDB); default: a temporary SQLite file.
    #[arg(long)]
    pub scale_database_url: Option<String>,
    /// Run the scale scenarios only.
    #[arg(long)]
    pub only_scale: bool,
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
    match cli.command.unwrap_or(Command::Serve(Box::new(cli.serve))) {
        Command::Serve(args) => {
            let mut settings = serve_settings(&global, &args)?;
            let (master_key, origin) = global.master_key()?;
            origin.warn_if_development();
            settings.master_key = Some(std::sync::Arc::new(master_key));
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
        Command::PartnerKeys(command) => partner_keys::run(&global, command).await?,
        Command::Healthcheck {
            addr,
            service,
            timeout,
            tls_ca,
            tls_domain,
            tls_client_cert,
            tls_client_key,
        } => {
            let tls =
                healthcheck::tls_options(tls_ca, tls_domain, tls_client_cert, tls_client_key)?;
            return healthcheck::run(&addr, service, Duration::from_secs(timeout), tls).await;
        }
        Command::RotateMasterKey {
            new_master_key_file,
        } => master_key::rotate(&global, new_master_key_file).await?,
        // The benchmark is part of the binary, not of this library: main.rs
        // runs it before it gets here.
        Command::Bench(_) => bail!("`bench` is run by the latchkey binary"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens and migrates the database, so every command works on a fresh one.
async fn open(global: &GlobalArgs) -> anyhow::Result<DatabaseConnection> {
    app::open_database(&global.database_url())
        .await
        .context("cannot open the database")
}
