//! Caller identity from request metadata.

use std::net::IpAddr;

use base64::{Engine, engine::general_purpose::STANDARD};
use subtle::ConstantTimeEq;
use tonic::{codegen::http::HeaderMap, metadata::MetadataMap};
use zeroize::Zeroizing;

use crate::{
    app::AppState,
    domain::clients::{Scope, is_valid_client_id, split_basic_user, user_problem},
    domain::{ApiKey, KeyKind},
    error::Error,
    security::throttle::Admission,
    store::{
        self,
        clients::{ClientRow, UserRow},
    },
};

/// An authenticated admin: a partner key, named by its public id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    pub key_id: String,
}

/// The partner key presented in `sid`, or else in `authorization: Bearer`.
pub fn presented_partner_key(headers: &HeaderMap) -> Option<String> {
    if let Some(sid) = headers.get("sid") {
        return sid.to_str().ok().map(str::to_owned);
    }
    let authorization = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Authenticates the caller as a partner. A key proven once is cached, so
/// later calls cost an HMAC and one indexed lookup (which also notices a
/// revocation made by another process) instead of argon2. Failures spend the
/// same kind of budgets as integration keys (per key id and per caller),
/// reserved before argon2; once a budget is spent, attempts are refused
/// without argon2 until it refills, except for a key already proven here,
/// which an attack on its id cannot lock out.
async fn authenticate_partner(
    state: &AppState,
    presented: String,
    peer: Option<IpAddr>,
) -> Result<Partner, Error> {
    let key = ApiKey::parse(KeyKind::Partner, presented).map_err(|_| Error::Unauthenticated)?;
    let budgets = &state.partner_key_throttle;
    let Some(row) = store::partner_keys::find_active(&state.db, key.key_id()).await? else {
        state.partner_keys.evict(key.key_id());
        // An unknown or revoked id is a failure: the token stays spent.
        drop(budgets.reserve(key.key_id(), peer));
        return Err(Error::Unauthenticated);
    };
    let _proving;
    if state.partner_keys.get(&key).is_none() {
        _proving = state
            .partner_keys
            .lock_proof(key.key_id(), key.expose_secret())
            .await;
    }
    if state.partner_keys.get(&key).is_none() {
        let reservation = match budgets.reserve(key.key_id(), peer) {
            Admission::Granted(reservation) => reservation,
            Admission::Limited { .. } => {
                tracing::warn!(key_id = %row.key_id, "partner key attempts throttled");
                return Err(Error::Unauthenticated);
            }
        };
        if !state
            .hasher
            .check(key.expose_secret(), &row.key_hash, reservation)
            .await?
        {
            return Err(Error::Unauthenticated);
        }
        state.partner_keys.insert(&key, ());
    }
    Ok(Partner { key_id: row.key_id })
}

/// Authenticates the caller of a partner-only RPC. A valid client user is
/// known but not allowed (PERMISSION_DENIED); anything else that is not a
/// valid partner key is UNAUTHENTICATED.
pub async fn authenticate_partner_only<T>(
    state: &AppState,
    request: &tonic::Request<T>,
) -> Result<Partner, Error> {
    let peer = request.remote_addr().map(|addr| addr.ip());
    let result = identify_partner_only(state, request.metadata(), peer).await;
    if let Err(e) = &result {
        // Which call was refused is the target as far as it is known here.
        let rpc = request
            .extensions()
            .get::<crate::telemetry::CalledMethod>()
            .map_or("", |m| m.0);
        audit_refusal(state, request.metadata(), peer, rpc, e).await;
    }
    result
}

async fn identify_partner_only(
    state: &AppState,
    metadata: &MetadataMap,
    peer: Option<IpAddr>,
) -> Result<Partner, Error> {
    // With no client named, a valid user always ends in PERMISSION_DENIED.
    match identify_for_client(state, metadata, peer, "").await {
        Ok(Caller::Partner(partner)) => Ok(partner),
        Ok(Caller::User(_)) | Err(Error::PermissionDenied(_)) => Err(Error::PermissionDenied(
            "This call needs a partner key; a client user's key is only for its own client's \
             configuration and health"
                .into(),
        )),
        Err(e) => Err(e),
    }
}

/// Who is calling an RPC about one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Partner(Partner),
    User(ClientUser),
}

/// An authenticated user of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUser {
    pub client_pk: i64,
    pub client_id: String,
    pub user: String,
    pub scope: Scope,
}

/// The outcome of checking a client user's API key. `UnknownUser` and
/// `Invalid` cost the same (argon2 against a dummy hash) and spend the same
/// budget; callers that answer outside latchkey must answer them alike.
pub enum UserCheck {
    Valid(UserRow),
    /// The client (or the user in it) does not exist; `rate_limited` when
    /// its budget was spent, exactly as a known user's would be.
    UnknownUser {
        rate_limited: Option<std::time::Duration>,
    },
    Invalid,
    RateLimited(std::time::Duration),
}

/// How many other clients' users of the same name a bare Basic name is
/// tried against (each try is one argon2 verify, throttled).
const MAX_OTHER_CLIENTS_TRIED: u64 = 3;

/// Authenticates the caller of an RPC about `client_id`: a partner key
/// (`sid` / Bearer), or a client user with `authorization: Basic
/// base64(<user>:<api_key>)`. A user named `<user>@<client>` belongs to
/// that client, and asking about any other client is PERMISSION_DENIED; a
/// bare `<user>` is looked up in `client_id`.
pub async fn authenticate_for_client(
    state: &AppState,
    metadata: &MetadataMap,
    peer: Option<IpAddr>,
    client_id: &str,
) -> Result<Caller, Error> {
    let result = identify_for_client(state, metadata, peer, client_id).await;
    if let Err(e) = &result {
        audit_refusal(state, metadata, peer, client_id, e).await;
    }
    result
}

/// An audit event (sampled) for a call refused as UNAUTHENTICATED or
/// PERMISSION_DENIED, naming the caller as far as the credential claims it
/// (a well-formed partner key's public id, or the Basic user name).
async fn audit_refusal(
    state: &AppState,
    metadata: &MetadataMap,
    peer: Option<IpAddr>,
    target: &str,
    error: &Error,
) {
    if !matches!(error, Error::Unauthenticated | Error::PermissionDenied(_)) {
        return;
    }
    let actor = crate::app::audit::Actor {
        name: claimed_caller(metadata.as_ref()).unwrap_or_else(|| "anonymous".into()),
        peer: peer.map(|p| p.to_string()).unwrap_or_default(),
    };
    crate::app::audit::refusal(&state.db, &state.refusals, &actor, target).await;
}

/// Who the credential says is calling, for logs and the audit trail: a
/// partner key's public id (only if the presented value is a well-formed
/// key), or a Basic user name. Never any part of a secret.
pub fn claimed_caller(headers: &HeaderMap) -> Option<String> {
    if let Some(presented) = presented_partner_key(headers) {
        return ApiKey::parse(KeyKind::Partner, presented)
            .ok()
            .map(|key| key.key_id().to_owned());
    }
    let (name, _api_key) = presented_basic(headers)?;
    (name.len() <= 200 && !name.chars().any(char::is_control)).then_some(name)
}

async fn identify_for_client(
    state: &AppState,
    metadata: &MetadataMap,
    peer: Option<IpAddr>,
    client_id: &str,
) -> Result<Caller, Error> {
    if let Some(presented) = presented_partner_key(metadata.as_ref()) {
        return authenticate_partner(state, presented, peer)
            .await
            .map(Caller::Partner);
    }
    let (name, api_key) = presented_basic(metadata.as_ref()).ok_or(Error::Unauthenticated)?;
    let (user, own_client) = split_basic_user(&name);
    // Stored user names and client ids are validated, so a name or id that
    // would fail validation belongs to no one; it is not looked up either
    // (PostgreSQL refuses a NUL in a text parameter).
    if user_problem(user).is_some() {
        return Err(Error::Unauthenticated);
    }
    let home = own_client.unwrap_or(client_id);
    let client = if is_valid_client_id(home) {
        store::clients::find(&state.db, home).await?
    } else {
        None
    };
    // No client can have an invalid id: nothing to hide there.
    let check = if is_valid_client_id(home) {
        check_client_user(state, client.as_ref(), home, user, &api_key, peer).await?
    } else {
        UserCheck::UnknownUser { rate_limited: None }
    };
    let (client, row) = match (client, check) {
        (Some(client), UserCheck::Valid(row)) => (client, row),
        (_, UserCheck::UnknownUser { .. }) if own_client.is_none() => {
            // A bare name that is not a user of this client: if it is a
            // valid user of another client, the caller is known but not
            // allowed here.
            return Err(
                if is_user_of_another_client(state, user, &api_key, peer).await? {
                    Error::PermissionDenied("Users may only access their own client".into())
                } else {
                    Error::Unauthenticated
                },
            );
        }
        _ => return Err(Error::Unauthenticated),
    };
    if client.client_id != client_id {
        return Err(Error::PermissionDenied(
            "Users may only access their own client".into(),
        ));
    }
    let scope = Scope::parse(&row.scope)
        .ok_or_else(|| Error::Internal(format!("user '{}' has unknown scope", row.user)))?;
    Ok(Caller::User(ClientUser {
        client_pk: client.id,
        client_id: client.client_id,
        user: row.user,
        scope,
    }))
}

async fn is_user_of_another_client(
    state: &AppState,
    user: &str,
    api_key: &str,
    peer: Option<IpAddr>,
) -> Result<bool, Error> {
    for client in
        store::clients::clients_with_user(&state.db, user, MAX_OTHER_CLIENTS_TRIED).await?
    {
        if let UserCheck::Valid(_) =
            check_client_user(state, Some(&client), &client.client_id, user, api_key, peer).await?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Checks a client user's API key: a cache hit costs an HMAC and the user's
/// row; otherwise one argon2 verify, with a failure token reserved first
/// from the budgets of `<client_id>:<user>` and of the caller. A user (or
/// client) that does not exist is checked against a dummy hash under the
/// same budgets, so it cannot be told from a wrong key by answer or time.
pub async fn check_client_user(
    state: &AppState,
    client: Option<&ClientRow>,
    client_id: &str,
    user: &str,
    api_key: &str,
    caller: Option<IpAddr>,
) -> Result<UserCheck, Error> {
    let row = match client {
        Some(client) => store::clients::find_user(&state.db, client.id, user).await?,
        None => None,
    };
    // The cached hash must still be the stored one: the key may have been
    // replaced by another process since it was proven here.
    let cached = |client: &ClientRow, row: &UserRow| {
        state
            .client_users
            .get_secret(&user_cache_id(client.id, user), api_key)
            .is_some_and(|cached| bool::from(cached.as_bytes().ct_eq(row.key_hash.as_bytes())))
    };
    let _proving = match (client, &row) {
        (Some(client), Some(row)) => {
            if cached(client, row) {
                return Ok(UserCheck::Valid(row.clone()));
            }
            let proving = state
                .client_users
                .lock_proof(&user_cache_id(client.id, user), api_key)
                .await;
            if cached(client, row) {
                return Ok(UserCheck::Valid(row.clone()));
            }
            Some(proving)
        }
        _ => None,
    };
    let reservation = match state
        .client_user_throttle
        .reserve(&format!("{client_id}:{user}"), caller)
    {
        Admission::Granted(reservation) => reservation,
        Admission::Limited { retry_after } => {
            return Ok(match row {
                Some(_) => UserCheck::RateLimited(retry_after),
                None => UserCheck::UnknownUser {
                    rate_limited: Some(retry_after),
                },
            });
        }
    };
    let stored = match &row {
        Some(row) => row.key_hash.as_str(),
        None => state.dummy_user_hash().await?,
    };
    let proven = state.hasher.check(api_key, stored, reservation).await?;
    Ok(match (client, row) {
        (Some(client), Some(row)) if proven => {
            state.client_users.insert_secret(
                &user_cache_id(client.id, user),
                api_key,
                row.key_hash.clone(),
            );
            UserCheck::Valid(row)
        }
        (_, Some(_)) => UserCheck::Invalid,
        (_, None) => UserCheck::UnknownUser { rate_limited: None },
    })
}

/// The verified-key cache's name for a client user.
fn user_cache_id(client_pk: i64, user: &str) -> String {
    format!("{client_pk}:{user}")
}

/// Forgets a client user's proven key (after it changed or was deleted).
pub fn forget_client_user(state: &AppState, client_pk: i64, user: &str) {
    state.client_users.evict(&user_cache_id(client_pk, user));
}

/// `(name, api_key)` from `authorization: Basic base64(name:api_key)`.
pub fn presented_basic(headers: &HeaderMap) -> Option<(String, Zeroizing<String>)> {
    let authorization = headers.get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(STANDARD.decode(encoded.trim()).ok()?);
    let text = std::str::from_utf8(&decoded).ok()?;
    let (name, api_key) = text.split_once(':')?;
    Some((name.to_owned(), Zeroizing::new(api_key.to_owned())))
}
