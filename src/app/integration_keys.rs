//! Integration keys: create, read, list, change, roll, delete, and the
//! integrations they belong to. Every change writes its audit event in its
//! own transaction and, for an existing key, announces it to replicas and
//! evicts it here (`Verifier::commit_key_change`).

use std::net::IpAddr;

use secrecy::SecretString;

pub use crate::store::{
    integration_keys::{IntegrationKeyRow, KeyChanges},
    integrations::{Integration, IntegrationKind, IntegrationRef},
};
use crate::{
    app::{
        App,
        audit::{self, Action},
        auth::Principal,
        verification::{Decision, Verdict},
    },
    domain::{
        ApiKey, KeyKind, key_restrictions,
        time::{LATEST_MICROS, now_micros},
    },
    error::Error,
    security::callers,
    store::{self, integration_keys::NewIntegrationKey},
};

/// A key as the API shows it: its row and its integration's name.
pub struct IntegrationKey {
    pub row: IntegrationKeyRow,
    pub integration: String,
}

/// A new key, and the key itself: shown once, in this answer only.
pub struct Issued {
    pub key: IntegrationKey,
    pub api_key: SecretString,
}

/// What a roll made: the new key (and its secret) and the old key as it is
/// now, expiring at the end of the grace period.
pub struct Rolled {
    pub issued: Issued,
    pub previous: IntegrationKey,
}

/// A page of keys, in (create_time, key_id) order; `more` when a further page
/// exists.
pub struct KeyPage {
    pub integration: String,
    pub keys: Vec<IntegrationKeyRow>,
    pub more: bool,
}

/// What CreateIntegrationKey asks for, validated.
pub struct NewKey<'a> {
    pub integration: &'a str,
    pub display_name: &'a str,
    pub expire_time: Option<i64>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub allowed_networks: Vec<ipnet::IpNet>,
    pub rate_limit: Option<key_restrictions::RateLimit>,
}

/// Stores a new key and its audit event in one transaction, so no crash can
/// leave a key nobody recorded creating.
pub async fn create(app: &App, who: &Principal, new: NewKey<'_>) -> Result<Issued, Error> {
    audit::on_failure(app, who, Action::IntegrationKeyCreate, new.integration, async {
        let integration = integration(app, new.integration).await?;
        if integration.kind != IntegrationKind::Custom {
            return Err(Error::NotCustomIntegration);
        }
        let key = ApiKey::generate(KeyKind::Integration)?;
        let key_hash = app.hasher.hash(&key).await?;
        let now = now_micros();
        let txn = store::begin_write(&app.db).await?;
        let row = store::integration_keys::insert(
            &txn,
            NewIntegrationKey {
                key_id: key.key_id(),
                integration_id: integration.id,
                display_name: new.display_name,
                key_hash,
                create_time: now,
                expire_time: new.expire_time,
                labels: key_restrictions::labels_to_column(&new.labels),
                allowed_networks: key_restrictions::networks_to_column(&new.allowed_networks),
                rate_limit: new.rate_limit.map(key_restrictions::RateLimit::to_columns),
            },
        )
        .await?;
        audit::record(&txn, &who.actor, Action::IntegrationKeyCreate, &row.key_id, true).await?;
        txn.commit().await?;
        tracing::info!(key_id = %row.key_id, integration = %integration.name, "integration key created");
        Ok(Issued {
            key: IntegrationKey {
                row,
                integration: integration.name,
            },
            api_key: key.into_secret(),
        })
    })
    .await
}

/// The key `key_id` of `integration`.
pub async fn get(app: &App, integration_name: &str, key_id: &str) -> Result<IntegrationKey, Error> {
    let integration = integration(app, integration_name).await?;
    let row = store::integration_keys::find(&app.db, integration.id, key_id)
        .await?
        .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?;
    Ok(IntegrationKey {
        row,
        integration: integration.name,
    })
}

/// Up to `page_size` keys of `integration` after the keyset position `after`.
pub async fn list(
    app: &App,
    integration_name: &str,
    after: Option<(i64, &str)>,
    page_size: u64,
) -> Result<KeyPage, Error> {
    let integration = integration(app, integration_name).await?;
    let mut keys =
        store::integration_keys::list_page(&app.db, integration.id, after, page_size + 1).await?;
    let more = truncate_page(&mut keys, page_size);
    Ok(KeyPage {
        integration: integration.name,
        keys,
        more,
    })
}

/// Deletes a key; replicas forget it at the commit.
pub async fn delete(
    app: &App,
    who: &Principal,
    integration_name: &str,
    key_id: &str,
) -> Result<(), Error> {
    audit::on_failure(app, who, Action::IntegrationKeyDelete, key_id, async {
        let integration = integration(app, integration_name).await?;
        let txn = store::begin_write(&app.db).await?;
        if !store::integration_keys::delete(&txn, integration.id, key_id).await? {
            return Err(Error::KeyNotFound(key_id.to_owned()));
        }
        audit::record(&txn, &who.actor, Action::IntegrationKeyDelete, key_id, true).await?;
        app.verifier.commit_key_change(txn, key_id).await?;
        tracing::info!(key_id, integration = %integration.name, "integration key deleted");
        Ok(())
    })
    .await
}

/// Applies `changes` to a key; replicas forget it at the commit. `paths`
/// (the update mask) is only logged.
pub async fn update(
    app: &App,
    who: &Principal,
    integration_name: &str,
    key_id: &str,
    changes: KeyChanges,
    paths: &[String],
) -> Result<IntegrationKey, Error> {
    audit::on_failure(app, who, Action::IntegrationKeyUpdate, key_id, async {
        let integration = integration(app, integration_name).await?;
        let txn = store::begin_write(&app.db).await?;
        if !store::integration_keys::update(&txn, integration.id, key_id, changes).await? {
            return Err(Error::KeyNotFound(key_id.to_owned()));
        }
        audit::record(&txn, &who.actor, Action::IntegrationKeyUpdate, key_id, true).await?;
        app.verifier.commit_key_change(txn, key_id).await?;
        let row = store::integration_keys::find(&app.db, integration.id, key_id)
            .await?
            .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?;
        tracing::info!(key_id, integration = %integration.name, ?paths, "integration key updated");
        Ok(IntegrationKey {
            row,
            integration: integration.name,
        })
    })
    .await
}

/// Issues a successor with the same name and expiry, and shortens the old
/// key to `grace` (micros) from now: never longer than it had.
pub async fn roll(
    app: &App,
    who: &Principal,
    integration_name: &str,
    key_id: &str,
    grace: i64,
) -> Result<Rolled, Error> {
    audit::on_failure(app, who, Action::IntegrationKeyRoll, key_id, async {
        roll_key(app, who, integration_name, key_id, grace).await
    })
    .await
}

async fn roll_key(
    app: &App,
    who: &Principal,
    integration_name: &str,
    key_id: &str,
    grace: i64,
) -> Result<Rolled, Error> {
    let integration = integration(app, integration_name).await?;
    let db = &app.db;
    // A first look, so a refused roll costs no argon2; the decision is taken
    // again below, on the locked row.
    let old = store::integration_keys::find(db, integration.id, key_id)
        .await?
        .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?;
    check_rollable(&old, now_micros())?;
    // Hash before the transaction: argon2 must not hold the write lock.
    let new_key = ApiKey::generate(KeyKind::Integration)?;
    let key_hash = app.hasher.hash(&new_key).await?;

    let txn = store::begin_write(db).await?;
    // The old key, as it is now, locked until the commit: it may have been
    // deleted, disabled or shortened while the new one was hashed.
    let old = store::integration_keys::find_for_update(&txn, integration.id, key_id)
        .await?
        .ok_or_else(|| Error::KeyNotFound(key_id.to_owned()))?;
    let now = now_micros();
    check_rollable(&old, now)?;
    // A grace period reaching past year 9999 ends there.
    let old_expire = now
        .saturating_add(grace)
        .min(LATEST_MICROS)
        .min(old.expire_time.unwrap_or(i64::MAX));
    let shortened = KeyChanges {
        expire_time: Some(Some(old_expire)),
        ..KeyChanges::default()
    };
    store::integration_keys::update(&txn, integration.id, &old.key_id, shortened).await?;
    let new_row = store::integration_keys::insert(
        &txn,
        NewIntegrationKey {
            key_id: new_key.key_id(),
            integration_id: integration.id,
            display_name: &old.display_name,
            key_hash,
            create_time: now,
            expire_time: old.expire_time,
            // The new key keeps the old one's restrictions (its rate limit
            // is counted apart from the old key's during the grace period).
            labels: old.labels.clone(),
            allowed_networks: old.allowed_networks.clone(),
            rate_limit: old.rate_limit.zip(old.rate_window_ms),
        },
    )
    .await?;
    audit::record(
        &txn,
        &who.actor,
        Action::IntegrationKeyRoll,
        &old.key_id,
        true,
    )
    .await?;
    app.verifier.commit_key_change(txn, &old.key_id).await?;

    let previous = IntegrationKeyRow {
        expire_time: Some(old_expire),
        ..old
    };
    tracing::info!(key_id = %new_row.key_id, previous_key_id = %previous.key_id, integration = %integration.name, "integration key rolled");
    Ok(Rolled {
        issued: Issued {
            key: IntegrationKey {
                row: new_row,
                integration: integration.name.clone(),
            },
            api_key: new_key.into_secret(),
        },
        previous: IntegrationKey {
            row: previous,
            integration: integration.name,
        },
    })
}

/// Whether `key` may be rolled at `now`: not once it is disabled (the
/// successor would work) or expired (it would be born expired).
fn check_rollable(key: &IntegrationKeyRow, now: i64) -> Result<(), Error> {
    if key.disabled {
        return Err(Error::KeyDisabled(key.key_id.clone()));
    }
    if key.expire_time.is_some_and(|t| t <= now) {
        return Err(Error::KeyExpired(key.key_id.clone()));
    }
    Ok(())
}

/// Decides whether `api_key` may call `endpoint`. The budgets are kept for
/// the end caller: `caller_address` when `peer` is trusted to name it, else
/// the peer. A RATE_LIMITED verdict is held back before it is answered.
pub async fn verify(
    app: &App,
    api_key: String,
    endpoint: &str,
    peer: Option<IpAddr>,
    caller_address: &str,
) -> Result<Verdict, Error> {
    let caller = callers::end_caller(peer, caller_address, &app.policy.trusted_peers)?;
    let verdict = app.verifier.verify(api_key, endpoint, caller).await?;
    if verdict.decision == Decision::RateLimited {
        // Boxed: the timer would otherwise be part of every verify's future.
        Box::pin(app.hold_back_rate_limited()).await;
    }
    Ok(verdict)
}

/// A page of integrations in name order, after `after`.
pub async fn list_integrations(
    app: &App,
    after: Option<&str>,
    page_size: u64,
) -> Result<(Vec<Integration>, bool), Error> {
    let mut rows = store::integrations::list(&app.db, after, page_size + 1).await?;
    let more = truncate_page(&mut rows, page_size);
    Ok((rows, more))
}

/// The integration `name` with its grants.
pub async fn get_integration(app: &App, name: &str) -> Result<Integration, Error> {
    store::integrations::find_by_name(&app.db, name)
        .await?
        .ok_or_else(|| Error::IntegrationNotFound(name.to_owned()))
}

/// The integration called `name` (without grants), or NOT_FOUND in the seed's
/// words.
async fn integration(app: &App, name: &str) -> Result<IntegrationRef, Error> {
    store::integrations::find_ref_by_name(&app.db, name)
        .await?
        .ok_or_else(|| Error::IntegrationNotFound(name.to_owned()))
}

/// Cuts a page read with one extra row back to `page_size`; whether the
/// extra row was there (a further page exists).
pub(crate) fn truncate_page<T>(rows: &mut Vec<T>, page_size: u64) -> bool {
    let page_size = usize::try_from(page_size).unwrap_or(usize::MAX);
    let more = rows.len() > page_size;
    rows.truncate(page_size);
    more
}
