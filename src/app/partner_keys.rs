//! Partner keys, the admin credential: created and revoked at the command
//! line (never over the API), each change with its audit event in the same
//! transaction.

use sea_orm::DatabaseConnection;
use secrecy::SecretString;

pub use crate::store::partner_keys::PartnerKeyRow;
use crate::{
    app::audit::{self, Action, Actor},
    domain::{ApiKey, KeyKind, key_format::is_key_id, time::now_micros},
    error::Error,
    security::{HashParams, Hasher},
    store,
};

/// A new partner key: its public id, and the key itself, shown only now.
pub struct IssuedPartnerKey {
    pub key_id: String,
    pub key: SecretString,
}

/// Creates a partner key named `name` (1 to 255 characters, no control
/// characters; surrounding whitespace is dropped).
pub async fn create(
    db: &DatabaseConnection,
    params: HashParams,
    name: &str,
) -> Result<IssuedPartnerKey, Error> {
    let name = name.trim();
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(Error::bad_field(
            "name",
            "must be 1 to 255 characters without control characters",
        ));
    }
    let hasher = Hasher::new(params).map_err(|e| Error::Internal(e.to_string()))?;
    let key = ApiKey::generate(KeyKind::Partner)?;
    let hash = hasher.hash(&key).await?;
    let txn = store::begin_write(db).await?;
    store::partner_keys::insert(&txn, key.key_id(), name, hash, now_micros()).await?;
    audit::record(
        &txn,
        &Actor::cli(),
        Action::PartnerKeyCreate,
        key.key_id(),
        true,
    )
    .await?;
    txn.commit().await?;
    Ok(IssuedPartnerKey {
        key_id: key.key_id().to_owned(),
        key: key.into_secret(),
    })
}

/// Up to `page_size` partner keys, oldest first, revoked ones included,
/// after `after` (the last of the previous page); whether more follow.
pub async fn list(
    db: &DatabaseConnection,
    after: Option<&PartnerKeyRow>,
    page_size: u64,
) -> Result<(Vec<PartnerKeyRow>, bool), Error> {
    let after = after.map(|row| (row.create_time, row.key_id.as_str()));
    let mut rows = store::partner_keys::list_page(db, after, page_size + 1).await?;
    let more = crate::app::integration_keys::truncate_page(&mut rows, page_size);
    Ok((rows, more))
}

/// Revokes `key_id` at once: every replica reads the key row on each call.
/// NOT_FOUND when there is no active key of that id.
pub async fn revoke(db: &DatabaseConnection, key_id: &str) -> Result<(), Error> {
    if !is_key_id(KeyKind::Partner, key_id) {
        return Err(Error::bad_field(
            "key_id",
            "not a partner key id (lkp_ followed by 16 letters or digits)",
        ));
    }
    let txn = store::begin_write(db).await?;
    let revoked = store::partner_keys::revoke(&txn, key_id, now_micros()).await?;
    audit::record(
        &txn,
        &Actor::cli(),
        Action::PartnerKeyRevoke,
        key_id,
        revoked,
    )
    .await?;
    txn.commit().await?;
    if revoked {
        Ok(())
    } else {
        Err(Error::KeyNotFound(key_id.to_owned()))
    }
}
