//! Who is calling: the credentials a transport read from a call (partner
//! keys in `sid` / Bearer, client users in Basic), proven against the
//! store under failure budgets, and refusals audited.

use std::net::IpAddr;

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{
    app::{
        App,
        audit::{Actor, RefusalSampler},
        budgets::SharedBudgets,
        verification::VerifierSettings,
    },
    domain::clients::{Scope, is_valid_client_id, split_basic_user, user_problem},
    domain::key_format::{KEY_ID_LEN, is_key_id},
    domain::{ApiKey, KeyKind},
    error::Error,
    security::{
        VerifiedKeys,
        throttle::{Admission, FailureBudgets},
    },
    store::{
        self,
        clients::{ClientRow, UserRow},
    },
};

/// What authentication remembers between calls.
pub(crate) struct AuthState {
    /// Partner keys already proven with argon2 (value: nothing more needed).
    partner_keys: VerifiedKeys<()>,
    /// Failed partner-key attempts, per key id and per caller.
    partner_key_budgets: FailureBudgets,
    /// The partner key ids' budgets all replicas share.
    shared_partner_key_budgets: SharedBudgets,
    /// Client users' API keys already proven, by `<client pk>:<user>`; the
    /// value is the hash they were proven against, so a key changed on any
    /// replica is re-proven.
    client_users: VerifiedKeys<String>,
    /// Failed client-user attempts, per `<client id>:<user>` (whether or
    /// not they exist) and per caller.
    client_user_budgets: FailureBudgets,
    /// The client users' budgets all replicas share.
    shared_client_user_budgets: SharedBudgets,
    /// A hash no key matches, checked for users that do not exist so that
    /// they cost what a wrong key costs (`Hasher::decoy_hash`: made without
    /// argon2, so neither startup nor the first unknown user pays a second
    /// hash).
    dummy_user_hash: String,
    /// Bounds the audit events of refused calls.
    refusals: RefusalSampler,
}

impl AuthState {
    pub(crate) fn new(
        db: &sea_orm::DatabaseConnection,
        settings: &VerifierSettings,
        hasher: &crate::security::Hasher,
    ) -> Result<Self, Error> {
        Ok(Self {
            shared_partner_key_budgets: SharedBudgets::new(db.clone(), settings.throttle.per_key),
            shared_client_user_budgets: SharedBudgets::new(db.clone(), settings.throttle.per_key),
            partner_keys: VerifiedKeys::new(settings.cache_capacity, settings.cache_idle)?,
            partner_key_budgets: FailureBudgets::new(settings.throttle),
            client_users: VerifiedKeys::new(settings.cache_capacity, settings.cache_idle)?,
            client_user_budgets: FailureBudgets::new(settings.throttle),
            dummy_user_hash: hasher.decoy_hash()?,
            refusals: RefusalSampler::default(),
        })
    }
}

/// What a transport read from one call: the credentials presented, the
/// peer they came from, and the operation called (the target of a refusal's
/// audit event when no client is named). No `Debug`: it holds secrets.
pub struct Credentials {
    partner_key: Option<SecretString>,
    basic: Option<(String, SecretString)>,
    pub peer: Option<IpAddr>,
    pub operation: &'static str,
}

impl Credentials {
    /// Reads `sid`, `authorization: Bearer` and `authorization: Basic`.
    pub fn from_headers(
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        operation: &'static str,
    ) -> Self {
        Self {
            partner_key: presented_partner_key(headers).map(SecretString::from),
            basic: presented_basic(headers)
                .map(|(name, key)| (name, SecretString::from(key.as_str()))),
            peer,
            operation,
        }
    }

    /// Who the credential says is calling, for logs and the audit trail: a
    /// partner key's public id (only if the presented value is a well-formed
    /// key), or a Basic user name. Never any part of a secret: a key sent as
    /// the Basic user name (`curl -u KEY:`) is named by its public id at
    /// most, and a user name with no password, which is how such tools send
    /// a credential, is not named at all.
    pub fn claimed_caller(&self) -> Option<String> {
        if let Some(presented) = &self.partner_key {
            return ApiKey::parse(KeyKind::Partner, presented.expose_secret().to_owned())
                .ok()
                .map(|key| key.key_id().to_owned());
        }
        let (name, api_key) = self.basic.as_ref()?;
        if let Some(named) = key_shaped_name(name) {
            return Some(named);
        }
        if api_key.expose_secret().is_empty() {
            return Some(UNNAMED_BASIC.into());
        }
        (name.len() <= 200 && !name.chars().any(char::is_control)).then(|| name.clone())
    }
}

/// How logs and the audit trail name a Basic credential that may itself be
/// a secret.
const UNNAMED_BASIC: &str = "basic:<redacted>";

/// For a Basic user name that starts like a latchkey key: its public id if
/// it has a well-formed one, else the redacted marker. `None` for any other
/// name.
fn key_shaped_name(name: &str) -> Option<String> {
    let kinds = [KeyKind::Partner, KeyKind::Integration];
    let kind = kinds.into_iter().find(|kind| {
        name.strip_prefix(kind.prefix())
            .is_some_and(|rest| rest.starts_with('_'))
    })?;
    let id = name.get(..KEY_ID_LEN).filter(|id| is_key_id(kind, id));
    Some(id.map_or_else(|| UNNAMED_BASIC.to_owned(), str::to_owned))
}

/// An authenticated caller, and how the audit trail names them.
pub struct Principal {
    pub caller: Caller,
    pub actor: Actor,
}

impl Principal {
    fn new(caller: Caller, peer: Option<IpAddr>) -> Self {
        let actor = Actor::of(&caller, peer);
        Self { caller, actor }
    }

    /// PERMISSION_DENIED unless the caller holds a partner key.
    pub fn require_partner(&self, operation: &str) -> Result<(), Error> {
        match &self.caller {
            Caller::Partner(_) => Ok(()),
            Caller::User(_) => Err(Error::PermissionDenied(format!(
                "{operation} needs a partner key"
            ))),
        }
    }

    /// PERMISSION_DENIED unless the caller holds a partner key or is a
    /// SYSTEM user of the client.
    pub fn require_partner_or_system(&self, operation: &str) -> Result<(), Error> {
        match &self.caller {
            Caller::User(user) if user.scope != Scope::System => Err(Error::PermissionDenied(
                format!("{operation} needs a partner key or a SYSTEM user"),
            )),
            _ => Ok(()),
        }
    }
}

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
    latchkey_client::bearer_token(headers).map(str::to_owned)
}

/// Authenticates the caller as a partner. A key proven once is cached, so
/// later calls cost an HMAC and one indexed lookup (which also notices a
/// revocation made by another process) instead of argon2. Failures spend the
/// same kind of budgets as integration keys (per key id and per caller),
/// reserved before argon2; once a budget is spent, attempts are refused
/// without argon2 until it refills, except for a key already proven here,
/// which an attack on its id cannot lock out.
async fn authenticate_partner(
    app: &App,
    presented: &SecretString,
    peer: Option<IpAddr>,
) -> Result<Partner, Error> {
    let key = ApiKey::parse(KeyKind::Partner, presented.expose_secret().to_owned())
        .map_err(|_| Error::Unauthenticated)?;
    let budgets = &app.auth.partner_key_budgets;
    let Some(row) = store::partner_keys::find_active(&app.db, key.key_id()).await? else {
        app.auth.partner_keys.evict(key.key_id());
        // An unknown or revoked id is a failure: the token stays spent.
        drop(budgets.reserve(key.key_id(), peer));
        return Err(Error::Unauthenticated);
    };
    let _proving;
    if app.auth.partner_keys.get(&key).is_none() {
        _proving = app
            .auth
            .partner_keys
            .lock_proof(key.key_id(), key.expose_secret())
            .await;
    }
    if app.auth.partner_keys.get(&key).is_none() {
        let reservation = match budgets.reserve(key.key_id(), peer) {
            Admission::Granted(reservation) => reservation,
            Admission::Limited { .. } => {
                tracing::warn!(key_id = %row.key_id, "partner key attempts throttled");
                return Err(Error::Unauthenticated);
            }
        };
        let check = |reservation| {
            app.hasher
                .check(key.expose_secret(), &row.key_hash, reservation)
        };
        let subject = format!("pk:{}", key.key_id());
        if app
            .auth
            .shared_partner_key_budgets
            .checked(subject, reservation, check)
            .await?
            != Ok(true)
        {
            return Err(Error::Unauthenticated);
        }
        app.auth.partner_keys.insert(&key, ());
    }
    Ok(Partner { key_id: row.key_id })
}

/// Authenticates the caller of a partner-only RPC. A valid client user is
/// known but not allowed (PERMISSION_DENIED); anything else that is not a
/// valid partner key is UNAUTHENTICATED.
pub async fn partner(app: &App, credentials: &Credentials) -> Result<Principal, Error> {
    let result = identify_partner_only(app, credentials).await;
    if let Err(e) = &result {
        // Which call was refused is the target as far as it is known here.
        audit_refusal(app, credentials, credentials.operation, e).await;
    }
    let partner = result?;
    Ok(Principal::new(Caller::Partner(partner), credentials.peer))
}

async fn identify_partner_only(app: &App, credentials: &Credentials) -> Result<Partner, Error> {
    // With no client named, a valid user always ends in PERMISSION_DENIED.
    match identify_for_client(app, credentials, "").await {
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

/// The outcome of checking a client user's API key. `UnknownUser`,
/// `Invalid` and `OfAnotherClient` cost the same (one argon2 run) and spend
/// the same budget; callers that answer outside latchkey must answer
/// `UnknownUser` and `Invalid` alike.
pub enum UserCheck {
    Valid(UserRow),
    /// Not a user of the client, but the key is right for the user of that
    /// name of another client (see `WhenUnknown::SameNameElsewhere`).
    OfAnotherClient,
    /// The client (or the user in it) does not exist; `rate_limited` when
    /// its budget was spent, exactly as a known user's would be.
    UnknownUser {
        rate_limited: Option<std::time::Duration>,
    },
    Invalid,
    RateLimited(std::time::Duration),
}

/// What the key of a user the client does not have is checked against:
/// one argon2 run either way, so an unknown user costs what a known user
/// with a wrong key costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenUnknown {
    /// The decoy hash: the answer is always `UnknownUser`.
    Decoy,
    /// The hash of the oldest user of the same name of another client
    /// (the decoy if there is none): a right key for it is
    /// `OfAnotherClient`. For a bare Basic name, whose caller may belong
    /// to another client.
    SameNameElsewhere,
}

/// Authenticates the caller of an RPC about `client_id`: a partner key
/// (`sid` / Bearer), or a client user with `authorization: Basic
/// base64(<user>:<api_key>)`. A user named `<user>@<client>` belongs to
/// that client, and asking about any other client is PERMISSION_DENIED; a
/// bare `<user>` is looked up in `client_id`.
pub async fn for_client(
    app: &App,
    credentials: &Credentials,
    client_id: &str,
) -> Result<Principal, Error> {
    let result = identify_for_client(app, credentials, client_id).await;
    if let Err(e) = &result {
        audit_refusal(app, credentials, client_id, e).await;
    }
    Ok(Principal::new(result?, credentials.peer))
}

/// An audit event (sampled) for a call refused as UNAUTHENTICATED or
/// PERMISSION_DENIED, naming the caller as far as the credential claims it
/// (a well-formed partner key's public id, or the Basic user name).
async fn audit_refusal(app: &App, credentials: &Credentials, target: &str, error: &Error) {
    if !matches!(error, Error::Unauthenticated | Error::PermissionDenied(_)) {
        return;
    }
    let actor = Actor {
        name: credentials
            .claimed_caller()
            .unwrap_or_else(|| "anonymous".into()),
        peer: credentials.peer.map(|p| p.to_string()).unwrap_or_default(),
    };
    crate::app::audit::refusal(&app.db, &app.auth.refusals, &actor, target).await;
}

async fn identify_for_client(
    app: &App,
    credentials: &Credentials,
    client_id: &str,
) -> Result<Caller, Error> {
    let peer = credentials.peer;
    if let Some(presented) = &credentials.partner_key {
        return authenticate_partner(app, presented, peer)
            .await
            .map(Caller::Partner);
    }
    let (name, api_key) = credentials.basic.as_ref().ok_or(Error::Unauthenticated)?;
    let api_key = api_key.expose_secret();
    let (user, own_client) = split_basic_user(name);
    // Stored user names and client ids are validated, so a name or id that
    // would fail validation belongs to no one; it is not looked up either
    // (PostgreSQL refuses a NUL in a text parameter).
    if user_problem(user).is_some() {
        return Err(Error::Unauthenticated);
    }
    let home = own_client.unwrap_or(client_id);
    let client = if is_valid_client_id(home) {
        store::clients::find(&app.db, home).await?
    } else {
        None
    };
    // A bare name that is not a user of this client may be a user of
    // another, who is known but not allowed here.
    let when_unknown = match own_client {
        None => WhenUnknown::SameNameElsewhere,
        Some(_) => WhenUnknown::Decoy,
    };
    // No client can have an invalid id: nothing to hide about `user@<it>`.
    // A bare name with no client named (a partner-only RPC) is still
    // checked, against a same-named user anywhere.
    let check = if is_valid_client_id(home) || own_client.is_none() {
        check_client_user(
            app,
            client.as_ref(),
            home,
            user,
            api_key,
            peer,
            when_unknown,
        )
        .await?
    } else {
        UserCheck::UnknownUser { rate_limited: None }
    };
    let (client, row) = match (client, check) {
        (Some(client), UserCheck::Valid(row)) => (client, row),
        (_, UserCheck::OfAnotherClient) => {
            return Err(Error::PermissionDenied(
                "Users may only access their own client".into(),
            ));
        }
        _ => return Err(Error::Unauthenticated),
    };
    if client.client_id != client_id {
        return Err(Error::PermissionDenied(
            "Users may only access their own client".into(),
        ));
    }
    let scope = row.scope;
    Ok(Caller::User(ClientUser {
        client_pk: client.id,
        client_id: client.client_id,
        user: row.user,
        scope,
    }))
}

/// Checks a client user's API key: a cache hit costs an HMAC and the user's
/// row; otherwise one argon2 verify, with a failure token reserved first
/// from the budgets of `<client_id>:<user>` and of the caller. A user (or
/// client) that does not exist is checked, under the same budgets, against
/// what `when_unknown` says (one argon2 run either way), so it cannot be
/// told from a wrong key by answer or time.
pub(crate) async fn check_client_user(
    app: &App,
    client: Option<&ClientRow>,
    client_id: &str,
    user: &str,
    api_key: &str,
    caller: Option<IpAddr>,
    when_unknown: WhenUnknown,
) -> Result<UserCheck, Error> {
    let row = match client {
        Some(client) => store::clients::find_user(&app.db, client.id, user).await?,
        None => None,
    };
    let elsewhere = match (&row, when_unknown) {
        (None, WhenUnknown::SameNameElsewhere) => {
            store::clients::oldest_user_named(&app.db, user).await?
        }
        _ => None,
    };
    // Whose hash the key is checked against: the client's user, else the
    // same-named user of another client, else (none) the decoy.
    let target = row.as_ref().or(elsewhere.as_ref());
    let known = row.is_some();
    // A right key: the client's user, or a user of another client.
    let found = |row: Option<UserRow>| match row {
        Some(row) => UserCheck::Valid(row),
        None => UserCheck::OfAnotherClient,
    };
    let limited = |retry_after| {
        if known {
            UserCheck::RateLimited(retry_after)
        } else {
            UserCheck::UnknownUser {
                rate_limited: Some(retry_after),
            }
        }
    };
    // The cached hash must still be the stored one: the key may have been
    // replaced by another process since it was proven here. A key proven
    // before passes without argon2 or budgets: an attack on the name must
    // not lock out its holder.
    let cached = |target: &UserRow| {
        app.auth
            .client_users
            .get_secret(&user_cache_id(target.client_pk, user), api_key)
            .is_some_and(|cached| bool::from(cached.as_bytes().ct_eq(target.key_hash.as_bytes())))
    };
    let _proving = match target {
        Some(target) => {
            if cached(target) {
                return Ok(found(row));
            }
            let proving = app
                .auth
                .client_users
                .lock_proof(&user_cache_id(target.client_pk, user), api_key)
                .await;
            if cached(target) {
                return Ok(found(row));
            }
            Some(proving)
        }
        None => None,
    };
    let reservation = match app
        .auth
        .client_user_budgets
        .reserve(&format!("{client_id}:{user}"), caller)
    {
        Admission::Granted(reservation) => reservation,
        Admission::Limited { retry_after } => return Ok(limited(retry_after)),
    };
    let stored = target.map_or(app.auth.dummy_user_hash.as_str(), |t| t.key_hash.as_str());
    let check = |reservation| app.hasher.check(api_key, stored, reservation);
    let subject = format!("cu:{client_id}:{user}");
    let proven = match app
        .auth
        .shared_client_user_budgets
        .checked(subject, reservation, check)
        .await?
    {
        Ok(proven) => proven,
        Err(retry_after) => return Ok(limited(retry_after)),
    };
    Ok(match target {
        Some(target) if proven => {
            app.auth.client_users.insert_secret(
                &user_cache_id(target.client_pk, user),
                api_key,
                target.key_hash.clone(),
            );
            found(row)
        }
        _ if known => UserCheck::Invalid,
        _ => UserCheck::UnknownUser { rate_limited: None },
    })
}

/// The verified-key cache's name for a client user.
fn user_cache_id(client_pk: i64, user: &str) -> String {
    format!("{client_pk}:{user}")
}

/// Forgets a client user's proven key (after it changed or was deleted).
pub(crate) fn forget_client_user(app: &App, client_pk: i64, user: &str) {
    app.auth.client_users.evict(&user_cache_id(client_pk, user));
}

/// `(name, api_key)` from `authorization: Basic base64(name:api_key)`.
pub fn presented_basic(headers: &HeaderMap) -> Option<(String, Zeroizing<String>)> {
    latchkey_client::basic_credentials(headers)
}

/// Who the credentials in `headers` claim to be (see
/// `Credentials::claimed_caller`), for the call log.
pub fn claimed_caller(headers: &HeaderMap) -> Option<String> {
    Credentials::from_headers(headers, None, "").claimed_caller()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic_caller(name: &str, password: &str) -> Option<String> {
        Credentials {
            partner_key: None,
            basic: Some((name.to_owned(), SecretString::from(password))),
            peer: None,
            operation: "",
        }
        .claimed_caller()
    }

    #[test]
    fn a_key_sent_as_the_basic_user_name_is_named_by_its_id_at_most() {
        for kind in [KeyKind::Partner, KeyKind::Integration] {
            let key = ApiKey::generate(kind).unwrap();
            let named = basic_caller(key.expose_secret(), "").unwrap();
            assert_eq!(named, key.key_id());
            // A mistyped key is still a secret, its id still public.
            let typo = format!("{}x", key.expose_secret());
            assert_eq!(basic_caller(&typo, "pw").unwrap(), key.key_id());
        }
        // Key-shaped but no well-formed id: not named.
        assert_eq!(basic_caller("lkp_short_secret", "").unwrap(), UNNAMED_BASIC);
        assert_eq!(basic_caller("lki_é", "pw").unwrap(), UNNAMED_BASIC);
    }

    #[test]
    fn a_user_name_with_no_password_is_not_named() {
        assert_eq!(
            basic_caller("3f9a-anything-a-user-key-could-be", "").unwrap(),
            UNNAMED_BASIC
        );
        assert_eq!(basic_caller("admin@acme", "secret").unwrap(), "admin@acme");
    }
}
