//! Caller identity from request metadata.

use tonic::metadata::MetadataMap;

use crate::{
    error::Error,
    keys::{ApiKey, KeyKind},
    state::AppState,
    store,
};

/// An authenticated admin: a partner key, named by its public id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    pub key_id: String,
}

/// The partner key presented in `sid`, or else in `authorization: Bearer`.
fn presented_partner_key(metadata: &MetadataMap) -> Option<String> {
    if let Some(sid) = metadata.get("sid") {
        return sid.to_str().ok().map(str::to_owned);
    }
    let authorization = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Authenticates the caller as a partner. A key proven once is cached, so
/// later calls cost an HMAC and one indexed lookup (which also notices a
/// revocation made by another process) instead of argon2.
pub async fn authenticate_partner(
    state: &AppState,
    metadata: &MetadataMap,
) -> Result<Partner, Error> {
    let presented = presented_partner_key(metadata).ok_or(Error::Unauthenticated)?;
    let key = ApiKey::parse(KeyKind::Partner, presented).map_err(|_| Error::Unauthenticated)?;
    let Some(row) = store::partner_keys::find_active(&state.db, key.key_id()).await? else {
        state.partner_keys.evict(key.key_id());
        return Err(Error::Unauthenticated);
    };
    if state.partner_keys.get(&key).is_none() {
        if !state.hasher.verify(&key, &row.key_hash).await? {
            return Err(Error::Unauthenticated);
        }
        state.partner_keys.insert(&key, ());
    }
    Ok(Partner { key_id: row.key_id })
}
