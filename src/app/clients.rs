//! Client configuration: configure a client, change its settings, set and
//! delete its users' API keys, read it, verify a user, check its health, and
//! re-seal its credentials under a new master key. Credentials are sealed
//! here on the way in and never leave sealed or not.

use std::net::IpAddr;

use sea_orm::{ConnectionTrait, DbErr, SqlErr};
use secrecy::{ExposeSecret, SecretString};

pub use crate::store::clients::{ClientRow, SettingRow, UserRow};
use crate::{
    app::{
        App,
        audit::{self, Action, Actor},
        auth::{self, Caller, Principal, UserCheck},
    },
    domain::{
        clients::{
            CREDENTIALS_BUCKET, Diagnostic, MIN_RECOMMENDED_API_KEY_LEN, Scope, SettingChange,
            client_diagnostics,
        },
        time::now_micros,
    },
    error::Error,
    security::sealing::{MasterKey, setting_aad},
    store::{self, clients::NewUser, clients::StoredValue},
};

/// A client's configuration as the API shows it: no key, no secret value.
pub struct Configuration {
    pub client: ClientRow,
    pub users: Vec<UserRow>,
    pub settings: Vec<SettingRow>,
}

/// A user and API key to store (validated).
pub struct NewUserKey<'a> {
    pub user: &'a str,
    pub api_key: &'a SecretString,
    pub scope: Scope,
}

/// Configure: a new client with its users and settings, in one
/// transaction. `valid` (the users and settings asked for) runs after
/// authorization: only a partner learns what is wrong with the request.
pub async fn configure<'a>(
    app: &App,
    who: &Principal,
    client_id: &str,
    valid: impl FnOnce() -> Result<(Vec<NewUserKey<'a>>, Vec<SettingChange>), Error>,
) -> Result<Configuration, Error> {
    audit::on_outcome(app, who, Action::ClientConfigure, client_id, async {
        who.require_partner("Configure")?;
        let (users, changes) = valid()?;
        // argon2 before the transaction, which must not wait on it.
        let mut hashed = Vec::with_capacity(users.len());
        for entry in &users {
            let key_hash = app
                .hasher
                .hash_secret(entry.api_key.expose_secret())
                .await?;
            hashed.push((entry, key_hash));
        }
        let now = now_micros();
        let txn = store::begin_write(&app.db).await?;
        if store::clients::find(&txn, client_id).await?.is_some() {
            return Err(Error::ClientAlreadyConfigured(client_id.to_owned()));
        }
        let client = store::clients::create(&txn, client_id, now)
            .await
            .map_err(|e| already_exists_or(e, client_id))?;
        for (entry, key_hash) in hashed {
            store::clients::upsert_user(&txn, client.id, new_user(entry, key_hash), now).await?;
        }
        write_settings(&txn, &app.master_key, &client, &changes, now).await?;
        txn.commit()
            .await
            .map_err(|e| already_exists_or(e, client_id))?;
        tracing::info!(client_id = %client.client_id, "client configured");
        configuration(app, client).await
    })
    .await
}

/// ConfigureSettings. A CLIENT user may change only `ClientSettings.*`;
/// that is decided before validation (`may_change`), so such a user learns
/// nothing about credentials, not even which of their values would be valid.
pub async fn configure_settings(
    app: &App,
    who: &Principal,
    client_id: &str,
    changes: impl FnOnce() -> Result<Vec<SettingChange>, Error>,
    names: &[&str],
) -> Result<Configuration, Error> {
    audit::on_outcome(app, who, Action::ClientSettingsChange, client_id, async {
        may_change(who, names)?;
        let changes = changes()?;
        let mut client = find_client(app, client_id).await?;
        let now = now_micros();
        let txn = store::begin_write(&app.db).await?;
        // The client row first: writers of one client queue on its lock
        // instead of deadlocking on it later (MySQL's foreign-key checks
        // share-lock it).
        store::clients::touch(&txn, client.id, now).await?;
        write_settings(&txn, &app.master_key, &client, &changes, now).await?;
        txn.commit().await?;
        client.update_time = now;
        let names: Vec<_> = changes.iter().map(|c| c.name.as_str()).collect();
        tracing::info!(client_id = %client.client_id, settings = ?names, "client settings changed");
        configuration(app, client).await
    })
    .await
}

/// Refuses a CLIENT user any `ClientCredentials.*` name.
fn may_change(who: &Principal, names: &[&str]) -> Result<(), Error> {
    if let Caller::User(user) = &who.caller
        && user.scope == Scope::Client
        && names.iter().any(|name| {
            name.split_once('.')
                .is_some_and(|(bucket, _)| bucket == CREDENTIALS_BUCKET)
        })
    {
        return Err(Error::PermissionDenied(
            "CLIENT users may change only ClientSettings.*".into(),
        ));
    }
    Ok(())
}

/// SetUserCredentials: adds or replaces a user's API key. `valid` runs after
/// authorization: only a partner or SYSTEM user learns what is wrong.
pub async fn set_user_credentials<'a>(
    app: &App,
    who: &Principal,
    client_id: &str,
    user: &str,
    valid: impl FnOnce() -> Result<NewUserKey<'a>, Error>,
) -> Result<UserRow, Error> {
    let target = format!("{user}@{client_id}");
    audit::on_outcome(app, who, Action::ClientUserSet, &target, async {
        who.require_partner_or_system("SetUserCredentials")?;
        let entry = valid()?;
        let client = find_client(app, client_id).await?;
        let key_hash = app.hasher.hash_secret(entry.api_key.expose_secret()).await?;
        let now = now_micros();
        let txn = store::begin_write(&app.db).await?;
        store::clients::touch(&txn, client.id, now).await?;
        let row =
            store::clients::upsert_user(&txn, client.id, new_user(&entry, key_hash), now).await?;
        txn.commit().await?;
        auth::forget_client_user(app, client.id, entry.user);
        tracing::info!(client_id = %client.client_id, user = %row.user, scope = %row.scope, "user credentials set");
        Ok(row)
    })
    .await
}

/// DeleteUserCredentials. `valid` runs after authorization.
pub async fn delete_user_credentials(
    app: &App,
    who: &Principal,
    client_id: &str,
    user: &str,
    valid: impl FnOnce() -> Result<(), Error>,
) -> Result<(), Error> {
    let target = format!("{user}@{client_id}");
    audit::on_outcome(app, who, Action::ClientUserDelete, &target, async {
        who.require_partner_or_system("DeleteUserCredentials")?;
        valid()?;
        let client = find_client(app, client_id).await?;
        let txn = store::begin_write(&app.db).await?;
        store::clients::touch(&txn, client.id, now_micros()).await?;
        if !store::clients::delete_user(&txn, client.id, user).await? {
            return Err(Error::UserNotFound(user.to_owned()));
        }
        txn.commit().await?;
        auth::forget_client_user(app, client.id, user);
        tracing::info!(client_id = %client.client_id, user, "user credentials deleted");
        Ok(())
    })
    .await
}

/// GetClientConfiguration.
pub async fn get_configuration(app: &App, client_id: &str) -> Result<Configuration, Error> {
    let client = find_client(app, client_id).await?;
    configuration(app, client).await
}

/// How VerifyUserCredentials answers: an unknown client or user looks like
/// a wrong key, in answer and in time.
pub enum UserVerdict {
    Valid(Scope),
    Invalid,
    RateLimited(std::time::Duration),
}

/// VerifyUserCredentials. A RATE_LIMITED verdict is held back before it is
/// answered.
pub async fn verify_user(
    app: &App,
    client_id: &str,
    user: &str,
    api_key: &str,
    peer: Option<IpAddr>,
) -> Result<UserVerdict, Error> {
    let client = store::clients::find(&app.db, client_id).await?;
    let check = auth::check_client_user(
        app,
        client.as_ref(),
        client_id,
        user,
        api_key,
        peer,
        auth::WhenUnknown::Decoy,
    )
    .await?;
    Ok(match check {
        UserCheck::Valid(row) => UserVerdict::Valid(row.scope),
        // (`OfAnotherClient` needs `WhenUnknown::SameNameElsewhere`.)
        UserCheck::Invalid
        | UserCheck::OfAnotherClient
        | UserCheck::UnknownUser { rate_limited: None } => UserVerdict::Invalid,
        UserCheck::RateLimited(retry_after)
        | UserCheck::UnknownUser {
            rate_limited: Some(retry_after),
        } => {
            app.hold_back_rate_limited().await;
            UserVerdict::RateLimited(retry_after)
        }
    })
}

/// A client's health: `None` when it is not configured (with the host the
/// template would give it), else its diagnostics and effective host.
pub struct ClientHealth {
    pub client_id: String,
    pub diagnostics: Option<Vec<Diagnostic>>,
    pub lb_host: Option<String>,
}

/// CheckClientHealth.
pub async fn client_health(app: &App, client_id: &str) -> Result<ClientHealth, Error> {
    let template = app.policy.client_lb_domain.as_deref();
    let Some(client) = store::clients::find(&app.db, client_id).await? else {
        return Ok(ClientHealth {
            client_id: client_id.to_owned(),
            diagnostics: None,
            lb_host: template.map(|t| t.replace("{client_id}", client_id)),
        });
    };
    let users = store::clients::users(&app.db, client.id).await?;
    let settings = store::clients::settings(&app.db, client.id).await?;
    let key = &app.master_key;
    let opens = |s: &SettingRow| {
        key.decrypt(&s.value, &setting_aad(&client.client_id, &s.name))
            .is_ok()
    };
    let keyring = key.versions().collect::<Vec<_>>().join(", ");
    let (diagnostics, lb_host) = client_diagnostics(
        &client.client_id,
        &users,
        &settings,
        (key.version(), &keyring, &opens),
        template,
    );
    Ok(ClientHealth {
        client_id: client.client_id,
        diagnostics: Some(diagnostics),
        lb_host,
    })
}

/// Settings re-sealed per transaction by `rotate_master_key`.
const RESEAL_BATCH: u64 = 100;

/// Re-seals every secret setting not yet under the keyring's sealing key,
/// in batches: each batch locks its rows, re-reads and re-seals them, and
/// commits. A replica writing meanwhile waits for the batch holding its row
/// and then writes over it, sealed under its own sealing key; roll out the
/// keyring `new,old` to every replica before rotating, so that is `new`.
/// Audited when done. Returns how many values were re-sealed.
pub async fn rotate_master_key(
    app_db: &sea_orm::DatabaseConnection,
    ring: &MasterKey,
) -> Result<usize, Error> {
    let mut resealed = 0;
    loop {
        let txn = store::begin_write(app_db).await?;
        let batch =
            store::clients::secret_settings_to_reseal(&txn, ring.version(), RESEAL_BATCH).await?;
        if batch.is_empty() {
            txn.commit().await?;
            break;
        }
        for (row, client_id) in &batch {
            let aad = setting_aad(client_id, &row.name);
            let plain = ring.decrypt(&row.value, &aad).map_err(|_| {
                Error::Internal(format!(
                    "{} of client '{client_id}' opens under no key of the master keyring ({}); \
                     {resealed} value(s) were re-sealed before it, this batch was not",
                    row.name,
                    ring.versions().collect::<Vec<_>>().join(", ")
                ))
            })?;
            let sealed = ring.encrypt(&plain, &aad)?;
            store::clients::reseal_setting(&txn, row.id, sealed, ring.version()).await?;
        }
        txn.commit().await?;
        resealed += batch.len();
    }
    let target = format!(
        "master key {} (keyring {})",
        ring.version(),
        ring.versions().collect::<Vec<_>>().join(", ")
    );
    audit::record(
        app_db,
        &Actor::cli(),
        Action::MasterKeyRotate,
        &target,
        true,
    )
    .await?;
    Ok(resealed)
}

/// The client `client_id`, or NOT_FOUND (only partners can get here with an
/// unknown id: a user's own client always exists).
async fn find_client(app: &App, client_id: &str) -> Result<ClientRow, Error> {
    store::clients::find(&app.db, client_id)
        .await?
        .ok_or_else(|| Error::ClientNotFound(client_id.to_owned()))
}

/// `client`'s users and settings beside it.
async fn configuration(app: &App, client: ClientRow) -> Result<Configuration, Error> {
    let users = store::clients::users(&app.db, client.id).await?;
    let settings = store::clients::settings(&app.db, client.id).await?;
    Ok(Configuration {
        client,
        users,
        settings,
    })
}

fn new_user<'a>(entry: &NewUserKey<'a>, key_hash: String) -> NewUser<'a> {
    NewUser {
        user: entry.user,
        key_hash,
        scope: entry.scope,
        short_key: entry.api_key.expose_secret().chars().count() < MIN_RECOMMENDED_API_KEY_LEN,
    }
}

/// Writes settings: secrets sealed under the master key, empty values
/// cleared.
async fn write_settings<C: ConnectionTrait>(
    db: &C,
    key: &MasterKey,
    client: &ClientRow,
    changes: &[SettingChange],
    now: i64,
) -> Result<(), Error> {
    for change in changes {
        let name = change.name.as_str();
        if change.value.is_empty() {
            store::clients::delete_setting(db, client.id, name).await?;
            continue;
        }
        let stored = if change.name.is_secret() {
            StoredValue {
                value: key.encrypt(&change.value, &setting_aad(&client.client_id, name))?,
                secret: true,
                key_version: Some(key.version().to_owned()),
            }
        } else {
            StoredValue {
                value: change.value.clone(),
                secret: false,
                key_version: None,
            }
        };
        store::clients::upsert_setting(db, client.id, name, stored, now).await?;
    }
    Ok(())
}

/// A unique-index violation while creating a client means another call
/// created it first.
fn already_exists_or(err: DbErr, client_id: &str) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            Error::ClientAlreadyConfigured(client_id.to_owned())
        }
        _ => err.into(),
    }
}
