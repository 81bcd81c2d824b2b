//! The use cases. Each operation owns its transaction, its audit event and
//! its cache eviction / replica notification; gRPC and the CLI call these
//! and nothing below them.

pub mod audit;
pub mod auth;
pub mod grants;
pub mod usage;
pub mod verification;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    app::verification::Verifier,
    config::Settings,
    domain::{ApiKey, KeyKind},
    error::Error,
    security::callers::TrustedPeers,
    security::sealing::MasterKey,
    security::{Hasher, VerifiedKeys, throttle::FailureBudgets},
    store::QueryStats,
};

pub struct AppState {
    pub db: DatabaseConnection,
    /// What the pool has run (for metrics and tests).
    pub db_stats: Arc<QueryStats>,
    pub hasher: Hasher,
    /// Partner keys already proven with argon2 (value: nothing more needed).
    pub partner_keys: VerifiedKeys<()>,
    pub verifier: Verifier,
    pub rate_limited_delay: std::time::Duration,
    /// Client users' API keys already proven, by `<client pk>:<user>`; the
    /// value is the hash they were proven against, so a key changed on any
    /// replica is re-proven.
    pub client_users: VerifiedKeys<String>,
    /// Failed client-user attempts, per `<client id>:<user>` (whether or
    /// not they exist) and per caller.
    pub client_user_throttle: FailureBudgets,
    /// Failed partner-key attempts, per key id and per caller.
    pub partner_key_throttle: FailureBudgets,
    /// Peers whose `caller_address` is believed.
    pub trusted_peers: TrustedPeers,
    /// Bounds the audit events of refused calls.
    pub refusals: crate::app::audit::RefusalSampler,
    /// A hash of no one's key, checked for users that do not exist so that
    /// they cost what a wrong key costs (made on first use).
    dummy_user_hash: tokio::sync::OnceCell<String>,
    pub master_key: Arc<MasterKey>,
    pub client_lb_domain: Option<String>,
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        db_stats: Arc<QueryStats>,
        master_key: Arc<MasterKey>,
        settings: &Settings,
    ) -> Result<Self, Error> {
        let hasher = Hasher::new(settings.hash).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Self {
            verifier: Verifier::new(db.clone(), hasher.clone(), &settings.verifier)?,
            partner_keys: VerifiedKeys::new(
                settings.verifier.cache_capacity,
                settings.verifier.cache_idle,
            )?,
            db,
            db_stats,
            hasher,
            rate_limited_delay: settings.rate_limited_delay,
            client_users: VerifiedKeys::new(
                settings.verifier.cache_capacity,
                settings.verifier.cache_idle,
            )?,
            client_user_throttle: FailureBudgets::new(settings.verifier.throttle),
            partner_key_throttle: FailureBudgets::new(settings.verifier.throttle),
            trusted_peers: settings.trusted_peers.clone(),
            refusals: crate::app::audit::RefusalSampler::default(),
            dummy_user_hash: tokio::sync::OnceCell::new(),
            master_key,
            client_lb_domain: settings.client_lb_domain.clone(),
        })
    }

    /// The hash unknown users are checked against; see `dummy_user_hash`.
    pub async fn dummy_user_hash(&self) -> Result<&str, Error> {
        self.dummy_user_hash
            .get_or_try_init(|| async {
                let nobody = ApiKey::generate(KeyKind::Partner)?;
                Ok::<_, Error>(self.hasher.hash(&nobody).await?)
            })
            .await
            .map(String::as_str)
    }
}
