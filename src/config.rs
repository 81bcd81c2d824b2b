//! One `Settings` struct for the server, built from the command line (flags
//! override `LATCHKEY_*` environment variables, which override defaults).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::{keys::HashParams, store::DbOptions};

/// The embedded default: a SQLite file in the working directory, created on
/// first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://latchkey.db?mode=rwc";
/// Where `serve` listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Everything the server needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database: DbOptions,
    pub listen: SocketAddr,
    /// A catalog to apply at startup, before serving.
    pub catalog: Option<PathBuf>,
    pub hash: HashParams,
    /// How long a verified key is trusted without argon2 (partner keys are
    /// still checked for revocation in the database on every call).
    pub verified_key_ttl: Duration,
    /// How many verified keys each cache holds.
    pub verified_key_capacity: u64,
}

impl Settings {
    /// Defaults for a database URL.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database: DbOptions::new(database_url),
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| unreachable!("the default address parses")),
            catalog: None,
            hash: HashParams::default(),
            verified_key_ttl: Duration::from_secs(60),
            verified_key_capacity: 100_000,
        }
    }
}
