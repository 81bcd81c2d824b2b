//! `latchkey.v1.IntegrationKeysService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{page_token, validate, validate::Violations};
use crate::{
    app::AppState,
    app::audit::{self, Action, Actor},
    app::auth::{self, Caller},
    app::verification::{Decision, MAX_ENDPOINT_LEN, Verdict},
    domain::time::now_micros,
    domain::{ApiKey, KeyKind},
    error::Error,
    grpc::proto::v1::{self as pb, integration_keys_service_server::IntegrationKeysService},
    grpc::time::{duration_micros, to_timestamp},
    security::callers,
    store::{
        self,
        integration_keys::{IntegrationKeyRow, KeyChanges, NewIntegrationKey},
        integrations::{Integration, IntegrationKind, IntegrationRef},
    },
};

pub struct IntegrationKeys {
    state: Arc<AppState>,
}

impl IntegrationKeys {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    async fn create(
        &self,
        request: Request<pb::CreateIntegrationKeyRequest>,
    ) -> Result<pb::CreateIntegrationKeyResponse, Error> {
        let actor = self.actor(&request).await?;
        let req = request.into_inner();
        let now = now_micros();
        let expire_time = validate_create(&req, now)?;

        let result = self.create_key(&actor, &req, expire_time, now).await;
        audit::failure(
            &self.state.db,
            &actor,
            Action::IntegrationKeyCreate,
            &req.integration,
            result,
        )
        .await
    }

    /// Stores a new key and its audit event in one transaction, so no crash
    /// can leave a key nobody recorded creating.
    async fn create_key(
        &self,
        actor: &Actor,
        req: &pb::CreateIntegrationKeyRequest,
        expire_time: Option<i64>,
        now: i64,
    ) -> Result<pb::CreateIntegrationKeyResponse, Error> {
        let integration = self.integration(&req.integration).await?;
        if integration.kind != IntegrationKind::Custom {
            return Err(Error::NotCustomIntegration);
        }
        let key = ApiKey::generate(KeyKind::Integration)?;
        let key_hash = self.state.hasher.hash(&key).await?;
        let txn = store::begin_write(&self.state.db).await?;
        let row = store::integration_keys::insert(
            &txn,
            NewIntegrationKey {
                key_id: key.key_id(),
                integration_id: integration.id,
                display_name: &req.display_name,
                key_hash,
                create_time: now,
                expire_time,
            },
        )
        .await?;
        audit::record(&txn, actor, Action::IntegrationKeyCreate, &row.key_id, true).await?;
        txn.commit().await?;
        tracing::info!(key_id = %row.key_id, integration = %integration.name, "integration key created");
        Ok(pb::CreateIntegrationKeyResponse {
            key: Some(key_to_proto(&row, &integration.name, now)),
            api_key: key.expose_secret().to_owned(),
        })
    }

    async fn get(
        &self,
        request: Request<pb::GetIntegrationKeyRequest>,
    ) -> Result<pb::GetIntegrationKeyResponse, Error> {
        auth::authenticate_partner_only(&self.state, &request).await?;
        let req = request.into_inner();
        validate_key_ref(&req.integration, &req.key_id)?;
        let integration = self.integration(&req.integration).await?;
        let row = store::integration_keys::find(&self.state.db, integration.id, &req.key_id)
            .await?
            .ok_or_else(|| Error::KeyNotFound(req.key_id.clone()))?;
        Ok(pb::GetIntegrationKeyResponse {
            key: Some(key_to_proto(&row, &integration.name, now_micros())),
        })
    }

    async fn list(
        &self,
        request: Request<pb::ListIntegrationKeysRequest>,
    ) -> Result<pb::ListIntegrationKeysResponse, Error> {
        auth::authenticate_partner_only(&self.state, &request).await?;
        let req = request.into_inner();
        let (page_size, after) = validate_list(&req)?;

        let integration = self.integration(&req.integration).await?;
        let mut rows = store::integration_keys::list_page(
            &self.state.db,
            integration.id,
            after.as_ref().map(|(t, id)| (*t, id.as_str())),
            page_size + 1,
        )
        .await?;
        let next_page_token = page_token::next(&mut rows, page_size, |last| {
            page_token::encode(&[
                "k",
                &integration.name,
                &last.create_time.to_string(),
                &last.key_id,
            ])
        });
        let now = now_micros();
        Ok(pb::ListIntegrationKeysResponse {
            keys: rows
                .iter()
                .map(|row| key_to_proto(row, &integration.name, now))
                .collect(),
            next_page_token,
        })
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteIntegrationKeyRequest>,
    ) -> Result<pb::DeleteIntegrationKeyResponse, Error> {
        let actor = self.actor(&request).await?;
        let req = request.into_inner();
        validate_key_ref(&req.integration, &req.key_id)?;
        let result = async {
            let integration = self.integration(&req.integration).await?;
            let txn = store::begin_write(&self.state.db).await?;
            if !store::integration_keys::delete(&txn, integration.id, &req.key_id).await? {
                return Err(Error::KeyNotFound(req.key_id.clone()));
            }
            audit::record(&txn, &actor, Action::IntegrationKeyDelete, &req.key_id, true).await?;
            self.state
                .verifier
                .commit_key_change(txn, &req.key_id)
                .await?;
            tracing::info!(key_id = %req.key_id, integration = %integration.name, "integration key deleted");
            Ok(pb::DeleteIntegrationKeyResponse {})
        }
        .await;
        audit::failure(
            &self.state.db,
            &actor,
            Action::IntegrationKeyDelete,
            &req.key_id,
            result,
        )
        .await
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyIntegrationKeyRequest>,
    ) -> Result<pb::VerifyIntegrationKeyResponse, Error> {
        let peer = request.remote_addr().map(|addr| addr.ip());
        let pb::VerifyIntegrationKeyRequest {
            api_key,
            endpoint,
            caller_address,
        } = request.into_inner();
        let endpoint = validate_endpoint(&endpoint)?;
        let caller = callers::end_caller(peer, &caller_address, &self.state.trusted_peers)?;

        let verdict = self
            .state
            .verifier
            .verify(api_key, endpoint, caller)
            .await?;
        if verdict.decision == Decision::RateLimited {
            tokio::time::sleep(self.state.rate_limited_delay).await;
        }
        Ok(verdict_to_proto(verdict))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateIntegrationKeyRequest>,
    ) -> Result<pb::UpdateIntegrationKeyResponse, Error> {
        let actor = self.actor(&request).await?;
        let req = request.into_inner();
        let now = now_micros();
        let changes = validate_update(&req, now)?;
        let key = req.key.unwrap_or_default();
        let paths = req.update_mask.map(|mask| mask.paths).unwrap_or_default();
        let result = self.update_key(&actor, &key, changes, &paths, now).await;
        audit::failure(
            &self.state.db,
            &actor,
            Action::IntegrationKeyUpdate,
            &key.key_id,
            result,
        )
        .await
    }

    async fn update_key(
        &self,
        actor: &Actor,
        key: &pb::IntegrationKey,
        changes: KeyChanges,
        paths: &[String],
        now: i64,
    ) -> Result<pb::UpdateIntegrationKeyResponse, Error> {
        let integration = self.integration(&key.integration).await?;
        let db = &self.state.db;
        let txn = store::begin_write(db).await?;
        if !store::integration_keys::update(&txn, integration.id, &key.key_id, changes).await? {
            return Err(Error::KeyNotFound(key.key_id.clone()));
        }
        audit::record(&txn, actor, Action::IntegrationKeyUpdate, &key.key_id, true).await?;
        self.state
            .verifier
            .commit_key_change(txn, &key.key_id)
            .await?;
        let row = store::integration_keys::find(db, integration.id, &key.key_id)
            .await?
            .ok_or_else(|| Error::KeyNotFound(key.key_id.clone()))?;
        tracing::info!(key_id = %row.key_id, integration = %integration.name, ?paths, "integration key updated");
        Ok(pb::UpdateIntegrationKeyResponse {
            key: Some(key_to_proto(&row, &integration.name, now)),
        })
    }

    async fn roll(
        &self,
        request: Request<pb::RollIntegrationKeyRequest>,
    ) -> Result<pb::RollIntegrationKeyResponse, Error> {
        let actor = self.actor(&request).await?;
        let req = request.into_inner();
        let grace = validate_roll(&req)?;
        let result = self.roll_key(&actor, &req, grace).await;
        audit::failure(
            &self.state.db,
            &actor,
            Action::IntegrationKeyRoll,
            &req.key_id,
            result,
        )
        .await
    }

    async fn roll_key(
        &self,
        actor: &Actor,
        req: &pb::RollIntegrationKeyRequest,
        grace: i64,
    ) -> Result<pb::RollIntegrationKeyResponse, Error> {
        let integration = self.integration(&req.integration).await?;
        let db = &self.state.db;
        // A first look, so a refused roll costs no argon2; the decision is
        // taken again below, on the locked row.
        let old = store::integration_keys::find(db, integration.id, &req.key_id)
            .await?
            .ok_or_else(|| Error::KeyNotFound(req.key_id.clone()))?;
        check_rollable(&old, now_micros())?;
        // Hash before the transaction: argon2 must not hold the write lock.
        let new_key = ApiKey::generate(KeyKind::Integration)?;
        let key_hash = self.state.hasher.hash(&new_key).await?;

        let txn = store::begin_write(db).await?;
        // The old key, as it is now, locked until the commit: it may have
        // been deleted, disabled or shortened while the new one was hashed.
        let old = store::integration_keys::find_for_update(&txn, integration.id, &req.key_id)
            .await?
            .ok_or_else(|| Error::KeyNotFound(req.key_id.clone()))?;
        let now = now_micros();
        check_rollable(&old, now)?;
        // Rolling never extends the old key's life.
        let old_expire = now
            .saturating_add(grace)
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
            },
        )
        .await?;
        audit::record(&txn, actor, Action::IntegrationKeyRoll, &old.key_id, true).await?;
        self.state
            .verifier
            .commit_key_change(txn, &old.key_id)
            .await?;

        let previous = IntegrationKeyRow {
            expire_time: Some(old_expire),
            ..old
        };
        tracing::info!(key_id = %new_row.key_id, previous_key_id = %previous.key_id, integration = %integration.name, "integration key rolled");
        Ok(pb::RollIntegrationKeyResponse {
            key: Some(key_to_proto(&new_row, &integration.name, now)),
            api_key: new_key.expose_secret().to_owned(),
            previous_key: Some(key_to_proto(&previous, &integration.name, now)),
        })
    }

    async fn integrations_page(
        &self,
        request: Request<pb::ListIntegrationsRequest>,
    ) -> Result<pb::ListIntegrationsResponse, Error> {
        auth::authenticate_partner_only(&self.state, &request).await?;
        let req = request.into_inner();
        let (page_size, after) = validate_list_integrations(&req)?;

        let mut rows =
            store::integrations::list(&self.state.db, after.as_deref(), page_size + 1).await?;
        let next_page_token = page_token::next(&mut rows, page_size, |last| {
            page_token::encode(&["i", &last.name])
        });
        Ok(pb::ListIntegrationsResponse {
            integrations: rows.into_iter().map(integration_to_proto).collect(),
            next_page_token,
        })
    }

    async fn describe_integration(
        &self,
        request: Request<pb::GetIntegrationRequest>,
    ) -> Result<pb::GetIntegrationResponse, Error> {
        auth::authenticate_partner_only(&self.state, &request).await?;
        let req = request.into_inner();
        validate_get_integration(&req)?;
        let integration = store::integrations::find_by_name(&self.state.db, &req.name)
            .await?
            .ok_or_else(|| Error::IntegrationNotFound(req.name.clone()))?;
        Ok(pb::GetIntegrationResponse {
            integration: Some(integration_to_proto(integration)),
        })
    }

    /// Authenticates a partner and names them for the audit trail.
    async fn actor<T>(&self, request: &Request<T>) -> Result<Actor, Error> {
        let partner = auth::authenticate_partner_only(&self.state, request).await?;
        Ok(Actor::of(
            &Caller::Partner(partner),
            super::peer_of(request),
        ))
    }

    /// The integration called `name` (without grants), or NOT_FOUND in the
    /// seed's words.
    async fn integration(&self, name: &str) -> Result<IntegrationRef, Error> {
        store::integrations::find_ref_by_name(&self.state.db, name)
            .await?
            .ok_or_else(|| Error::IntegrationNotFound(name.to_owned()))
    }
}

// Request validation. Pure (no state, no I/O) so that `fuzz/` drives exactly
// what the handlers run. Each returns what the handler needs, or every bad
// field at once as `Error::BadRequest`.

/// CreateIntegrationKey: the expire time as stored micros, if one was given.
pub fn validate_create(
    req: &pb::CreateIntegrationKeyRequest,
    now: i64,
) -> Result<Option<i64>, Error> {
    let mut v = Violations::default();
    v.check("integration", validate::integration_name(&req.integration));
    v.check("display_name", validate::display_name(&req.display_name));
    let expire_time = match req
        .expire_time
        .as_ref()
        .map(|t| validate::future_time(t, now))
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(problem)) => {
            v.add("expire_time", problem);
            None
        }
    };
    v.finish()?;
    Ok(expire_time)
}

/// GetIntegrationKey and DeleteIntegrationKey.
pub fn validate_key_ref(integration: &str, key_id: &str) -> Result<(), Error> {
    let mut v = Violations::default();
    v.check("integration", validate::integration_name(integration));
    v.check("key_id", validate::integration_key_id(key_id));
    v.finish()
}

/// ListIntegrationKeys: the row count and the keyset position after which
/// the page starts.
pub fn validate_list(
    req: &pb::ListIntegrationKeysRequest,
) -> Result<(u64, Option<(i64, String)>), Error> {
    let mut v = Violations::default();
    v.check("integration", validate::integration_name(&req.integration));
    let page = v.page(req.page_size, &req.page_token, |token| {
        decode_key_position(token, &req.integration)
    });
    v.finish()?;
    Ok(page)
}

/// VerifyIntegrationKey: the endpoint without a leading `/`. The key itself
/// is judged by the verifier, which answers a decision rather than an error.
pub fn validate_endpoint(endpoint: &str) -> Result<&str, Error> {
    let endpoint = endpoint.strip_prefix('/').unwrap_or(endpoint);
    let mut v = Violations::default();
    if endpoint.is_empty() {
        v.add("endpoint", "must not be empty");
    } else if endpoint.len() > MAX_ENDPOINT_LEN {
        v.add("endpoint", "must be at most 255 characters");
    }
    v.finish()?;
    Ok(endpoint)
}

/// UpdateIntegrationKey: the changes its update mask names.
pub fn validate_update(
    req: &pb::UpdateIntegrationKeyRequest,
    now: i64,
) -> Result<KeyChanges, Error> {
    let default_key = pb::IntegrationKey::default();
    let key = req.key.as_ref().unwrap_or(&default_key);
    let mut v = Violations::default();
    v.check(
        "key.integration",
        validate::integration_name(&key.integration),
    );
    v.check("key.key_id", validate::integration_key_id(&key.key_id));
    let paths = req.update_mask.as_ref().map_or(&[][..], |m| &m.paths[..]);
    if paths.is_empty() {
        v.add(
            "update_mask",
            "must name at least one of display_name, expire_time, disabled",
        );
    }
    let mut changes = KeyChanges::default();
    for path in paths {
        match path.as_str() {
            "display_name" => {
                v.check(
                    "key.display_name",
                    validate::display_name(&key.display_name),
                );
                changes.display_name = Some(key.display_name.clone());
            }
            "expire_time" => match key
                .expire_time
                .as_ref()
                .map(|t| validate::future_time(t, now))
            {
                None => changes.expire_time = Some(None),
                Some(Ok(t)) => changes.expire_time = Some(Some(t)),
                Some(Err(problem)) => v.add("key.expire_time", problem),
            },
            "disabled" => changes.disabled = Some(key.disabled),
            _ => v.add(
                "update_mask",
                "unknown path; allowed: display_name, expire_time, disabled",
            ),
        }
    }
    v.finish()?;
    Ok(changes)
}

/// RollIntegrationKey: the grace period in micros (0 if none).
pub fn validate_roll(req: &pb::RollIntegrationKeyRequest) -> Result<i64, Error> {
    let mut v = Violations::default();
    v.check("integration", validate::integration_name(&req.integration));
    v.check("key_id", validate::integration_key_id(&req.key_id));
    let grace = match req.grace_period.as_ref().map(duration_micros) {
        None => 0,
        Some(Some(grace)) => grace,
        Some(None) => {
            v.add("grace_period", "must be a valid duration of at least 0");
            0
        }
    };
    v.finish()?;
    Ok(grace)
}

/// ListIntegrations: the row count and the name after which the page starts.
pub fn validate_list_integrations(
    req: &pb::ListIntegrationsRequest,
) -> Result<(u64, Option<String>), Error> {
    let mut v = Violations::default();
    let page = v.page(req.page_size, &req.page_token, |token| {
        page_token::decode::<2>(token)
            .filter(|[kind, name]| {
                kind == "i" && crate::domain::catalog::is_valid_integration_name(name)
            })
            .map(|[_, name]| name)
    });
    v.finish()?;
    Ok(page)
}

/// GetIntegration.
pub fn validate_get_integration(req: &pb::GetIntegrationRequest) -> Result<(), Error> {
    let mut v = Violations::default();
    v.check("name", validate::integration_name(&req.name));
    v.finish()
}

/// The (create_time, key_id) position of a ListIntegrationKeys token, if it
/// was made for this integration.
fn decode_key_position(token: &str, integration: &str) -> Option<(i64, String)> {
    let [kind, for_integration, create_time, key_id] = page_token::decode::<4>(token)?;
    if kind != "k" || for_integration != integration {
        return None;
    }
    let create_time = create_time.parse().ok()?;
    crate::domain::key_format::is_key_id(KeyKind::Integration, &key_id)
        .then_some((create_time, key_id))
}

fn key_state(row: &IntegrationKeyRow, now: i64) -> pb::IntegrationKeyState {
    if row.disabled {
        pb::IntegrationKeyState::Disabled
    } else if row.expire_time.is_some_and(|t| t <= now) {
        pb::IntegrationKeyState::Expired
    } else {
        pb::IntegrationKeyState::Active
    }
}

fn key_to_proto(row: &IntegrationKeyRow, integration: &str, now: i64) -> pb::IntegrationKey {
    pb::IntegrationKey {
        key_id: row.key_id.clone(),
        integration: integration.to_owned(),
        display_name: row.display_name.clone(),
        create_time: Some(to_timestamp(row.create_time)),
        expire_time: row.expire_time.map(to_timestamp),
        last_use_time: row.last_use_time.map(to_timestamp),
        disabled: row.disabled,
        state: key_state(row, now).into(),
    }
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

fn verdict_to_proto(verdict: Verdict) -> pb::VerifyIntegrationKeyResponse {
    let decision = match verdict.decision {
        Decision::Allowed => pb::Decision::Allowed,
        Decision::Malformed => pb::Decision::Malformed,
        Decision::Invalid => pb::Decision::Invalid,
        Decision::Expired => pb::Decision::Expired,
        Decision::Disabled => pb::Decision::Disabled,
        Decision::EndpointNotGranted => pb::Decision::EndpointNotGranted,
        Decision::RateLimited => pb::Decision::RateLimited,
    };
    let key = verdict.key;
    pb::VerifyIntegrationKeyResponse {
        decision: decision.into(),
        integration: key
            .as_ref()
            .map(|k| k.integration.clone())
            .unwrap_or_default(),
        key_id: key.as_ref().map(|k| k.key_id.clone()).unwrap_or_default(),
        expire_time: key.and_then(|k| k.expire_time).map(to_timestamp),
        retry_after: verdict.retry_after.and_then(to_duration),
    }
}

/// A proto Duration (none for one too long to express).
pub(super) fn to_duration(d: std::time::Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

fn integration_to_proto(integration: Integration) -> pb::Integration {
    pb::Integration {
        name: integration.name,
        kind: match integration.kind {
            IntegrationKind::Custom => pb::IntegrationKind::Custom,
            IntegrationKind::Builtin => pb::IntegrationKind::Builtin,
        }
        .into(),
        description: integration.description,
        endpoints: integration.endpoints,
    }
}

#[tonic::async_trait]
impl IntegrationKeysService for IntegrationKeys {
    async fn create_integration_key(
        &self,
        request: Request<pb::CreateIntegrationKeyRequest>,
    ) -> Result<Response<pb::CreateIntegrationKeyResponse>, Status> {
        Ok(Response::new(self.create(request).await?))
    }

    async fn get_integration_key(
        &self,
        request: Request<pb::GetIntegrationKeyRequest>,
    ) -> Result<Response<pb::GetIntegrationKeyResponse>, Status> {
        Ok(Response::new(self.get(request).await?))
    }

    async fn list_integration_keys(
        &self,
        request: Request<pb::ListIntegrationKeysRequest>,
    ) -> Result<Response<pb::ListIntegrationKeysResponse>, Status> {
        Ok(Response::new(self.list(request).await?))
    }

    async fn delete_integration_key(
        &self,
        request: Request<pb::DeleteIntegrationKeyRequest>,
    ) -> Result<Response<pb::DeleteIntegrationKeyResponse>, Status> {
        Ok(Response::new(self.delete(request).await?))
    }

    async fn verify_integration_key(
        &self,
        request: Request<pb::VerifyIntegrationKeyRequest>,
    ) -> Result<Response<pb::VerifyIntegrationKeyResponse>, Status> {
        Ok(Response::new(self.verify(request).await?))
    }

    async fn update_integration_key(
        &self,
        request: Request<pb::UpdateIntegrationKeyRequest>,
    ) -> Result<Response<pb::UpdateIntegrationKeyResponse>, Status> {
        Ok(Response::new(self.update(request).await?))
    }

    async fn roll_integration_key(
        &self,
        request: Request<pb::RollIntegrationKeyRequest>,
    ) -> Result<Response<pb::RollIntegrationKeyResponse>, Status> {
        Ok(Response::new(self.roll(request).await?))
    }

    async fn list_integrations(
        &self,
        request: Request<pb::ListIntegrationsRequest>,
    ) -> Result<Response<pb::ListIntegrationsResponse>, Status> {
        Ok(Response::new(self.integrations_page(request).await?))
    }

    async fn get_integration(
        &self,
        request: Request<pb::GetIntegrationRequest>,
    ) -> Result<Response<pb::GetIntegrationResponse>, Status> {
        Ok(Response::new(self.describe_integration(request).await?))
    }
}
