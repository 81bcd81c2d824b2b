//! What every service shares: the database, the hasher and the caches.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    config::Settings,
    error::Error,
    keys::{Hasher, VerifiedKeys},
    store::QueryStats,
    verification::Verifier,
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
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        db_stats: Arc<QueryStats>,
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
        })
    }
}
