//! Recording the audit trail of every change. Events name who (a key id,
//! `user@client` or `cli`), what, to what, and the outcome; never a secret.

use sea_orm::ConnectionTrait;

use entity::Outcome;

pub use crate::store::audit::{AuditRow, EventFilter};
use crate::{error::Error, store};

/// What kind of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    IntegrationKeyCreate,
    IntegrationKeyUpdate,
    IntegrationKeyRoll,
    IntegrationKeyDelete,
    PartnerKeyCreate,
    PartnerKeyRevoke,
    CatalogApply,
    ClientConfigure,
    ClientSettingsChange,
    ClientUserSet,
    ClientUserDelete,
    MasterKeyRotate,
    /// A management or client-configuration call refused as
    /// UNAUTHENTICATED or PERMISSION_DENIED (sampled, see `RefusalSampler`).
    AccessRefused,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::IntegrationKeyCreate => "integration_key.create",
            Action::IntegrationKeyUpdate => "integration_key.update",
            Action::IntegrationKeyRoll => "integration_key.roll",
            Action::IntegrationKeyDelete => "integration_key.delete",
            Action::PartnerKeyCreate => "partner_key.create",
            Action::PartnerKeyRevoke => "partner_key.revoke",
            Action::CatalogApply => "catalog.apply",
            Action::ClientConfigure => "client.configure",
            Action::ClientSettingsChange => "client.settings.change",
            Action::ClientUserSet => "client.user.set",
            Action::ClientUserDelete => "client.user.delete",
            Action::MasterKeyRotate => "master_key.rotate",
            Action::AccessRefused => "access.refused",
        }
    }
}

/// Who did it and from where.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub name: String,
    pub peer: String,
}

impl Actor {
    /// The caller of an RPC: a partner key id or `user@client`.
    pub fn of(caller: &crate::app::auth::Caller, peer: Option<std::net::IpAddr>) -> Self {
        let name = match caller {
            crate::app::auth::Caller::Partner(p) => p.key_id.clone(),
            crate::app::auth::Caller::User(u) => format!("{}@{}", u.user, u.client_id),
        };
        Self {
            name,
            peer: peer.map(|p| p.to_string()).unwrap_or_default(),
        }
    }

    /// An operator at the command line.
    pub fn cli() -> Self {
        Self {
            name: "cli".into(),
            peer: String::new(),
        }
    }
}

/// Longest target stored, in characters (the column holds 255).
const MAX_TARGET_CHARS: usize = 255;

/// `target` as it can be stored: a refused request's target may be raw
/// input (e.g. `<user>@<client>` before validation), and the event must not
/// be lost to a value the column refuses: PostgreSQL takes no NUL in text
/// and no more than 255 characters.
fn storable_target(target: &str) -> String {
    target
        .chars()
        .take(MAX_TARGET_CHARS)
        .map(|c| {
            if c == '\0' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

/// Appends one event.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    action: Action,
    target: &str,
    success: bool,
) -> Result<(), Error> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id)?;
    let event_id = hex::encode(id);
    store::audit::insert(
        db,
        store::audit::NewEvent {
            event_id: &event_id,
            time: crate::domain::time::now_micros(),
            actor: &actor.name,
            action: action.as_str(),
            target: &storable_target(target),
            outcome: if success {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            peer: &actor.peer,
        },
    )
    .await?;
    Ok(())
}

/// Records how a change attempt by an authenticated caller ended, and
/// passes its result on. Malformed requests and infrastructure failures are
/// not changes and are not recorded; refusals are.
pub async fn outcome<C: ConnectionTrait, T>(
    db: &C,
    actor: &Actor,
    action: Action,
    target: &str,
    result: Result<T, Error>,
) -> Result<T, Error> {
    let success = match &result {
        Ok(_) => true,
        Err(
            Error::PermissionDenied(_)
            | Error::IntegrationNotFound(_)
            | Error::KeyNotFound(_)
            | Error::ClientNotFound(_)
            | Error::UserNotFound(_)
            | Error::ClientAlreadyConfigured(_)
            | Error::NotCustomIntegration
            | Error::KeyExpired(_)
            | Error::KeyDisabled(_),
        ) => false,
        Err(_) => return result,
    };
    if let Err(e) = record(db, actor, action, target, success).await {
        // The change itself stands; a lost audit record is loud.
        tracing::error!(error = %e, action = action.as_str(), target, "cannot record audit event");
    }
    result
}

/// `outcome` for a change that records its success itself, in the
/// transaction that makes the change: only a failure is recorded here.
pub async fn failure<C: ConnectionTrait, T>(
    db: &C,
    actor: &Actor,
    action: Action,
    target: &str,
    result: Result<T, Error>,
) -> Result<T, Error> {
    match result {
        Ok(done) => Ok(done),
        Err(e) => outcome(db, actor, action, target, Err(e)).await,
    }
}

/// Runs `change` by `who` and records how it ended (`outcome`).
pub async fn on_outcome<T>(
    app: &crate::app::App,
    who: &crate::app::auth::Principal,
    action: Action,
    target: &str,
    change: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    outcome(&app.db, &who.actor, action, target, change.await).await
}

/// Runs `change` by `who`, which records its success itself in the
/// transaction that makes it, and records only a failure (`failure`).
pub async fn on_failure<T>(
    app: &crate::app::App,
    who: &crate::app::auth::Principal,
    action: Action,
    target: &str,
    change: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    failure(&app.db, &who.actor, action, target, change.await).await
}

/// Keeps the audit trail of refusals bounded: a flood of refused calls must
/// not become a flood of rows. Within each minute, at most
/// `PER_ACTOR_PER_MINUTE` events per claimed actor, `PER_PEER_PER_MINUTE`
/// per peer address and `GLOBAL_PER_MINUTE` in all are recorded; the rest
/// are only counted (`latchkey_refusals_total{recorded="false"}`).
pub struct RefusalSampler {
    per_actor: moka::sync::Cache<String, std::sync::Arc<std::sync::atomic::AtomicU32>>,
    per_peer: moka::sync::Cache<String, std::sync::Arc<std::sync::atomic::AtomicU32>>,
    global: std::sync::Mutex<(std::time::Instant, u32)>,
}

const PER_ACTOR_PER_MINUTE: u32 = 5;
const PER_PEER_PER_MINUTE: u32 = 30;
const GLOBAL_PER_MINUTE: u32 = 600;
const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for RefusalSampler {
    fn default() -> Self {
        let window = || {
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(MINUTE)
                .build()
        };
        Self {
            per_actor: window(),
            per_peer: window(),
            global: std::sync::Mutex::new((std::time::Instant::now(), 0)),
        }
    }
}

impl RefusalSampler {
    /// Whether a refusal by `actor` from `peer` is recorded (each call
    /// counts, recorded or not).
    pub fn admit(&self, actor: &Actor) -> bool {
        use std::sync::atomic::Ordering;
        let under =
            |cache: &moka::sync::Cache<String, std::sync::Arc<std::sync::atomic::AtomicU32>>,
             key: &str,
             limit: u32| {
                cache
                    .get_with(key.to_owned(), Default::default)
                    .fetch_add(1, Ordering::SeqCst)
                    < limit
            };
        let actor_ok = under(&self.per_actor, &actor.name, PER_ACTOR_PER_MINUTE);
        let peer_ok = under(&self.per_peer, &actor.peer, PER_PEER_PER_MINUTE);
        let global_ok = {
            let mut global = self.global.lock().unwrap_or_else(|e| e.into_inner());
            if global.0.elapsed() >= MINUTE {
                *global = (std::time::Instant::now(), 0);
            }
            global.1 += 1;
            global.1 <= GLOBAL_PER_MINUTE
        };
        actor_ok && peer_ok && global_ok
    }
}

/// Records that a call by `actor` about `target` was refused, if the
/// sampler admits it. Never fails the call: a lost event is logged.
pub async fn refusal<C: ConnectionTrait>(
    db: &C,
    sampler: &RefusalSampler,
    actor: &Actor,
    target: &str,
) {
    let recorded = sampler.admit(actor);
    metrics::counter!("latchkey_refusals_total", "recorded" => if recorded { "true" } else { "false" })
        .increment(1);
    if recorded && let Err(e) = record(db, actor, Action::AccessRefused, target, false).await {
        tracing::error!(error = %e, target, "cannot record a refused call");
    }
}

/// ListAuditEvents: up to `page_size` events matching `filter`, newest
/// first, and whether older ones remain.
pub async fn list(
    app: &crate::app::App,
    filter: EventFilter<'_>,
    page_size: u64,
) -> Result<(Vec<AuditRow>, bool), Error> {
    let mut rows = store::audit::list(&app.db, filter, page_size + 1).await?;
    let more = crate::app::integration_keys::truncate_page(&mut rows, page_size);
    Ok((rows, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_stored_without_nul_and_cut_to_the_column() {
        assert_eq!(storable_target("key@acme"), "key@acme");
        assert_eq!(storable_target("a\0b"), "a\u{fffd}b");
        let long = storable_target(&"é".repeat(1000));
        assert_eq!(long.chars().count(), MAX_TARGET_CHARS);
    }
}
