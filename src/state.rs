//! What every service shares: the database, the hasher and the caches.

use sea_orm::DatabaseConnection;

use crate::{
    config::Settings,
    error::Error,
    keys::{Hasher, VerifiedKeys},
};

pub struct AppState {
    pub db: DatabaseConnection,
    pub hasher: Hasher,
    /// Partner keys already proven with argon2 (value: nothing more needed).
    pub partner_keys: VerifiedKeys<()>,
}

impl AppState {
    pub fn new(db: DatabaseConnection, settings: &Settings) -> Result<Self, Error> {
        Ok(Self {
            db,
            hasher: Hasher::new(settings.hash).map_err(|e| Error::Internal(e.to_string()))?,
            partner_keys: VerifiedKeys::new(
                settings.verified_key_capacity,
                settings.verified_key_ttl,
            )?,
        })
    }
}
