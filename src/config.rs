//! One `Settings` struct for the server. Its `Default` holds every default;
//! the command line builds it in layers (`cli::options`): defaults < config
//! file < `LATCHKEY_*` environment variables < flags.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use crate::{
    app::verification::VerifierSettings, security::HashParams, security::callers::TrustedPeers,
    security::sealing::MasterKey, store::DbOptions,
};

/// The embedded default: a SQLite file in the working directory, created on
/// first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://latchkey.db?mode=rwc";
/// Where `serve` listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// TLS material, as PEM.
#[derive(Clone)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    /// The private key: zeroed when dropped.
    pub key_pem: secrecy::SecretSlice<u8>,
    /// With a client CA, clients must present a certificate it signed (mTLS).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("key_pem", &"<redacted>")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish()
    }
}

/// Everything the server needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database: DbOptions,
    pub listen: SocketAddr,
    /// The HTTP listener (Connect JSON, the seed and Sunshine routes); off
    /// unless given.
    pub http_listen: Option<SocketAddr>,
    /// A catalog to apply at startup, before serving.
    pub catalog: Option<PathBuf>,
    pub hash: HashParams,
    /// The verification cache and failure throttling.
    pub verifier: VerifierSettings,
    /// How long a RATE_LIMITED answer is held back. It costs the server
    /// nothing while it waits, and slows a flood of wrong secrets down to
    /// what it can no longer crowd out.
    pub rate_limited_delay: Duration,
    /// How often batched `last_use_time`s are written.
    pub usage_flush_interval: Duration,
    /// How often the catalog revision is checked, so grant changes applied by
    /// any process reach warm keys.
    pub catalog_poll_interval: Duration,
    /// The master key sealing client credentials; `None` resolves the
    /// default (`master_key_file`, else a development key file beside an
    /// embedded SQLite database).
    pub master_key: Option<Arc<MasterKey>>,
    pub master_key_file: Option<PathBuf>,
    /// How often readiness checks that the database answers.
    pub readiness_interval: Duration,
    /// Serve TLS (and mTLS with a client CA) instead of plaintext.
    pub tls: Option<TlsSettings>,
    /// After a shutdown signal, how long in-flight calls may take to finish
    /// before the server stops anyway.
    pub shutdown_grace: Duration,
    /// Per-client LearningBuilder host template, e.g.
    /// `{client_id}.lb.example.com`.
    pub client_lb_domain: Option<String>,
    /// Peers whose `caller_address` names the end caller.
    pub trusted_peers: TrustedPeers,
    /// The longest the replica-notification listener (PostgreSQL) may stay
    /// silent, or a read of the change log (MySQL/MariaDB) may take, before
    /// it is treated as broken.
    pub notify_heartbeat: Duration,
    /// How often a replica prunes the change log (MySQL/MariaDB).
    pub change_log_prune_interval: Duration,
    /// HTTP/2 and connection limits.
    pub limits: ConnectionLimits,
}

/// How much one connection, and the server as a whole, may ask at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Calls in flight in the whole server; past it, calls are shed at once
    /// with RESOURCE_EXHAUSTED (grpc.health.v1 probes are never shed).
    pub max_in_flight: usize,
    /// HTTP/2 keepalive ping interval on idle connections.
    pub keepalive_interval: Duration,
    /// A connection whose peer does not answer a ping within this is closed.
    pub keepalive_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 256,
            max_in_flight: 4096,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// The defaults, on the database at `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database: DbOptions::new(database_url),
            ..Self::default()
        }
    }
}

/// Every default of the server, written once: the command line, the config
/// file and the environment only override these.
impl Default for Settings {
    fn default() -> Self {
        Self {
            database: DbOptions::new(DEFAULT_DATABASE_URL),
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| unreachable!("the default address parses")),
            http_listen: None,
            catalog: None,
            hash: HashParams::default(),
            verifier: VerifierSettings::default(),
            rate_limited_delay: Duration::from_millis(250),
            usage_flush_interval: Duration::from_secs(2),
            catalog_poll_interval: Duration::from_secs(1),
            master_key: None,
            master_key_file: None,
            shutdown_grace: Duration::from_secs(30),
            readiness_interval: Duration::from_secs(2),
            tls: None,
            client_lb_domain: None,
            trusted_peers: TrustedPeers::default(),
            notify_heartbeat: Duration::from_secs(15),
            change_log_prune_interval: Duration::from_secs(60),
            limits: ConnectionLimits::default(),
        }
    }
}
