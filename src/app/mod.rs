//! The use cases. Each operation owns its transaction, its audit event and
//! its cache eviction / replica notification; gRPC and the CLI call these
//! and nothing below them.

pub mod audit;
pub mod auth;
pub mod budgets;
pub mod catalog;
pub mod clients;
pub mod grants;
pub mod health;
pub mod integration_keys;
pub mod key_changes;
pub mod partner_keys;
pub mod rate_limits;
pub mod usage;
pub mod verification;

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;

use crate::{
    config::Settings,
    error::Error,
    security::{Hasher, callers::TrustedPeers, sealing::MasterKey},
    store::QueryStats,
};

/// Opens the database at `url` and brings its schema up to date: what every
/// command does first.
pub async fn open_database(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let db = crate::store::connect(&crate::store::DbOptions::new(url)).await?;
    crate::store::migrate(&db).await?;
    Ok(db)
}

/// What every use case shares: the database, the hasher, the verifier and
/// what authentication remembers between calls.
pub struct App {
    pub db: DatabaseConnection,
    /// What the pool has run (for metrics and tests).
    pub db_stats: Arc<QueryStats>,
    pub hasher: Hasher,
    pub verifier: verification::Verifier,
    auth: auth::AuthState,
    master_key: Arc<MasterKey>,
    policy: Policy,
}

/// Settings the use cases apply on every call.
struct Policy {
    /// How long a RATE_LIMITED answer is held back.
    rate_limited_delay: Duration,
    /// Peers whose `caller_address` is believed.
    trusted_peers: TrustedPeers,
    /// Per-client host template, e.g. `{client_id}.lb.example.com`.
    client_lb_domain: Option<String>,
}

impl App {
    pub fn new(
        db: DatabaseConnection,
        db_stats: Arc<QueryStats>,
        master_key: Arc<MasterKey>,
        settings: &Settings,
    ) -> Result<Self, Error> {
        let hasher = Hasher::new(settings.hash).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Self {
            verifier: verification::Verifier::new(db.clone(), hasher.clone(), &settings.verifier)?,
            auth: auth::AuthState::new(&db, &settings.verifier, &hasher)?,
            db,
            db_stats,
            hasher,
            master_key,
            policy: Policy {
                rate_limited_delay: settings.rate_limited_delay,
                trusted_peers: settings.trusted_peers.clone(),
                client_lb_domain: settings.client_lb_domain.clone(),
            },
        })
    }

    /// Whether `peer` is in `--trusted-peers` (a resource server or proxy).
    pub fn is_trusted_peer(&self, peer: std::net::IpAddr) -> bool {
        self.policy.trusted_peers.contains(peer)
    }

    /// Holds a RATE_LIMITED answer back, so a guesser gains nothing from
    /// asking again at once. The call leaves its place among the calls in
    /// flight first: a crowd of guesses held back must not crowd out the
    /// calls being served.
    async fn hold_back_rate_limited(&self) {
        crate::security::in_flight::leave();
        tokio::time::sleep(self.policy.rate_limited_delay).await;
    }
}
