//! `latchkey.v1.ClientConfigurationService`.

use std::{collections::HashSet, sync::Arc};

use sea_orm::{DbErr, SqlErr};
use tonic::{Request, Response, Status};

use super::{peer_of, validate::Violations};
use crate::{
    app::AppState,
    app::audit::{self, Action, Actor},
    app::auth::{self, Caller, UserCheck},
    domain::clients::{
        Bucket, CREDENTIALS_BUCKET, LB_API_KEY, LB_API_KEY_OWNER, MAX_SETTING_VALUE_LEN,
        MIN_RECOMMENDED_API_KEY_LEN, Scope, SettingName, api_key_problem, client_id_problem,
        setting_value_problem, user_problem,
    },
    domain::time::now_micros,
    error::Error,
    grpc::proto::v1::{
        self as pb, client_configuration_service_server::ClientConfigurationService,
    },
    grpc::time::to_timestamp,
    security::sealing::setting_aad,
    store::{
        self,
        clients::{ClientRow, NewUser, SettingRow, StoredValue, UserRow},
    },
};

pub struct ClientConfiguration {
    state: Arc<AppState>,
}

/// A setting to write: its validated name and new value (empty: clear).
pub struct SettingChange {
    pub name: SettingName,
    pub value: String,
}

/// A valid Configure request: the scope of each entry of
/// `client_credentials.user_api_keys`, in order, and the settings to write.
pub struct ValidConfigure {
    pub scopes: Vec<Scope>,
    pub changes: Vec<SettingChange>,
}

impl ClientConfiguration {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    async fn configure(
        &self,
        request: Request<pb::ConfigureRequest>,
    ) -> Result<pb::ConfigureResponse, Error> {
        let (caller, actor, req) = self.caller(request, |r| &r.client_id).await?;
        let target = req.client_id.clone();
        let result = async {
            require_partner(&caller, "Configure")?;

            let ValidConfigure { scopes, changes } = validate_configure(&req)?;
            let credentials = req.client_credentials.unwrap_or_default();
            let users = credentials.user_api_keys.iter().zip(scopes);

            // argon2 before the transaction, which must not wait on it.
            let mut hashed = Vec::with_capacity(users.len());
            for (entry, scope) in users {
                let key_hash = self.state.hasher.hash_secret(&entry.api_key).await?;
                hashed.push((entry, scope, key_hash));
            }
            let now = now_micros();
            let db = &self.state.db;
            let txn = store::begin_write(db).await?;
            if store::clients::find(&txn, &req.client_id).await?.is_some() {
                return Err(Error::ClientAlreadyConfigured(req.client_id));
            }
            let client = store::clients::create(&txn, &req.client_id, now)
                .await
                .map_err(|e| already_exists_or(e, &req.client_id))?;
            for (entry, scope, key_hash) in hashed {
                store::clients::upsert_user(
                    &txn,
                    client.id,
                    NewUser {
                        user: &entry.user,
                        key_hash,
                        scope: scope.as_str(),
                        short_key: entry.api_key.chars().count() < MIN_RECOMMENDED_API_KEY_LEN,
                    },
                    now,
                )
                .await?;
            }
            self.write_settings(&txn, &client, &changes, now).await?;
            txn.commit()
                .await
                .map_err(|e| already_exists_or(e, &req.client_id))?;
            tracing::info!(client_id = %client.client_id, "client configured");
            Ok(pb::ConfigureResponse {
                configuration: Some(self.configuration(&client).await?),
            })
        }
        .await;
        audit::outcome(
            &self.state.db,
            &actor,
            Action::ClientConfigure,
            &target,
            result,
        )
        .await
    }

    async fn configure_settings(
        &self,
        request: Request<pb::ConfigureSettingsRequest>,
    ) -> Result<pb::ConfigureSettingsResponse, Error> {
        let (caller, actor, req) = self.caller(request, |r| &r.client_id).await?;
        let target = req.client_id.clone();
        let result = async {

            // Authorize before validating: a CLIENT user learns nothing about
            // credentials, not even which of their values would be valid.
            if let Caller::User(user) = &caller
                && user.scope == Scope::Client
                && req.settings.iter().any(|s| {
                    s.name
                        .split_once('.')
                        .is_some_and(|(bucket, _)| bucket == CREDENTIALS_BUCKET)
                })
            {
                return Err(Error::PermissionDenied(
                    "CLIENT users may change only ClientSettings.*".into(),
                ));
            }
            let changes = validate_configure_settings(&req)?;

            let client = self.client(&req.client_id).await?;
            let now = now_micros();
            let txn = store::begin_write(&self.state.db).await?;
            // The client row first: writers of one client queue on its lock
            // instead of deadlocking on it later (MySQL's foreign-key checks
            // share-lock it).
            store::clients::touch(&txn, client.id, now).await?;
            self.write_settings(&txn, &client, &changes, now).await?;
            txn.commit().await?;
            let names: Vec<_> = changes.iter().map(|c| c.name.as_str()).collect();
            tracing::info!(client_id = %client.client_id, settings = ?names, "client settings changed");
            Ok(pb::ConfigureSettingsResponse {
                configuration: Some(self.configuration(&client).await?),
            })
        }
        .await;
        audit::outcome(
            &self.state.db,
            &actor,
            Action::ClientSettingsChange,
            &target,
            result,
        )
        .await
    }

    async fn set_user_credentials(
        &self,
        request: Request<pb::SetUserCredentialsRequest>,
    ) -> Result<pb::SetUserCredentialsResponse, Error> {
        let (caller, actor, req) = self.caller(request, |r| &r.client_id).await?;
        let target = format!("{}@{}", req.user, req.client_id);
        let result = async {
            require_partner_or_system(&caller, "SetUserCredentials")?;

            let scope = validate_set_user(&req)?;

            let client = self.client(&req.client_id).await?;
            let key_hash = self.state.hasher.hash_secret(&req.api_key).await?;
            let now = now_micros();
            let txn = store::begin_write(&self.state.db).await?;
            store::clients::touch(&txn, client.id, now).await?;
            let row = store::clients::upsert_user(
                &txn,
                client.id,
                NewUser {
                    user: &req.user,
                    key_hash,
                    scope: scope.as_str(),
                    short_key: req.api_key.chars().count() < MIN_RECOMMENDED_API_KEY_LEN,
                },
                now,
            )
            .await?;
            txn.commit().await?;
            auth::forget_client_user(&self.state, client.id, &req.user);
            tracing::info!(client_id = %client.client_id, user = %row.user, scope = %row.scope, "user credentials set");
            Ok(pb::SetUserCredentialsResponse {
                user_credential: Some(user_to_proto(&row)),
            })
        }
        .await;
        audit::outcome(
            &self.state.db,
            &actor,
            Action::ClientUserSet,
            &target,
            result,
        )
        .await
    }

    async fn delete_user_credentials(
        &self,
        request: Request<pb::DeleteUserCredentialsRequest>,
    ) -> Result<pb::DeleteUserCredentialsResponse, Error> {
        let (caller, actor, req) = self.caller(request, |r| &r.client_id).await?;
        let target = format!("{}@{}", req.user, req.client_id);
        let result = async {
            require_partner_or_system(&caller, "DeleteUserCredentials")?;
            validate_delete_user(&req)?;

            let client = self.client(&req.client_id).await?;
            let txn = store::begin_write(&self.state.db).await?;
            store::clients::touch(&txn, client.id, now_micros()).await?;
            if !store::clients::delete_user(&txn, client.id, &req.user).await? {
                return Err(Error::UserNotFound(req.user.clone()));
            }
            txn.commit().await?;
            auth::forget_client_user(&self.state, client.id, &req.user);
            tracing::info!(client_id = %client.client_id, user = %req.user, "user credentials deleted");
            Ok(pb::DeleteUserCredentialsResponse {})
        }
        .await;
        audit::outcome(
            &self.state.db,
            &actor,
            Action::ClientUserDelete,
            &target,
            result,
        )
        .await
    }

    async fn get_client_configuration(
        &self,
        request: Request<pb::GetClientConfigurationRequest>,
    ) -> Result<pb::GetClientConfigurationResponse, Error> {
        let (_, _, req) = self.caller(request, |r| &r.client_id).await?;
        validate_client_id(&req.client_id)?;
        let client = self.client(&req.client_id).await?;
        Ok(pb::GetClientConfigurationResponse {
            configuration: Some(self.configuration(&client).await?),
        })
    }

    async fn verify_user_credentials(
        &self,
        request: Request<pb::VerifyUserCredentialsRequest>,
    ) -> Result<pb::VerifyUserCredentialsResponse, Error> {
        let peer = peer_of(&request);
        let req = request.into_inner();
        validate_verify_user(&req)?;
        let invalid = pb::VerifyUserCredentialsResponse::default();
        // An unknown client is checked like an unknown user: no faster.
        let client = store::clients::find(&self.state.db, &req.client_id).await?;
        match auth::check_client_user(
            &self.state,
            client.as_ref(),
            &req.client_id,
            &req.user,
            &req.api_key,
            peer,
        )
        .await?
        {
            UserCheck::Valid(row) => Ok(pb::VerifyUserCredentialsResponse {
                valid: true,
                scope: scope_to_proto(&row.scope).into(),
                ..invalid
            }),
            UserCheck::Invalid | UserCheck::UnknownUser { rate_limited: None } => Ok(invalid),
            UserCheck::RateLimited(retry_after)
            | UserCheck::UnknownUser {
                rate_limited: Some(retry_after),
            } => {
                tokio::time::sleep(self.state.rate_limited_delay).await;
                Ok(pb::VerifyUserCredentialsResponse {
                    rate_limited: true,
                    retry_after: super::integration_keys::to_duration(retry_after),
                    ..invalid
                })
            }
        }
    }

    /// Authenticates the caller of an RPC about the client `client_id(req)`,
    /// and names them for the audit trail.
    async fn caller<T>(
        &self,
        request: Request<T>,
        client_id: impl FnOnce(&T) -> &str,
    ) -> Result<(Caller, Actor, T), Error> {
        let peer = peer_of(&request);
        let (metadata, _, req) = request.into_parts();
        let caller =
            auth::authenticate_for_client(&self.state, &metadata, peer, client_id(&req)).await?;
        let actor = Actor::of(&caller, peer);
        Ok((caller, actor, req))
    }

    /// The client, or NOT_FOUND (only partners can get here with an unknown
    /// id: a user's own client always exists).
    async fn client(&self, client_id: &str) -> Result<ClientRow, Error> {
        store::clients::find(&self.state.db, client_id)
            .await?
            .ok_or_else(|| Error::ClientNotFound(client_id.to_owned()))
    }

    /// Writes settings: secrets sealed under the master key, empty values
    /// cleared.
    async fn write_settings<C: sea_orm::ConnectionTrait>(
        &self,
        db: &C,
        client: &ClientRow,
        changes: &[SettingChange],
        now: i64,
    ) -> Result<(), Error> {
        let key = &self.state.master_key;
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

    /// The client's configuration as the API shows it: no key, no secret.
    async fn configuration(&self, client: &ClientRow) -> Result<pb::ClientConfiguration, Error> {
        let db = &self.state.db;
        let client = store::clients::find(db, &client.client_id)
            .await?
            .ok_or_else(|| Error::ClientNotFound(client.client_id.clone()))?;
        let users = store::clients::users(db, client.id).await?;
        let settings = store::clients::settings(db, client.id).await?;
        Ok(configuration_to_proto(&client, &users, &settings))
    }
}

// Request validation. Pure (no state, no I/O) so that `fuzz/` drives exactly
// what the handlers run. Each returns every bad field at once as
// `Error::BadRequest`, and never repeats a value that may be a secret.

/// GetClientConfiguration and CheckClientHealth.
pub fn validate_client_id(client_id: &str) -> Result<(), Error> {
    let mut v = Violations::default();
    v.check("client_id", client_id_problem(client_id));
    v.finish()
}

/// Configure.
pub fn validate_configure(req: &pb::ConfigureRequest) -> Result<ValidConfigure, Error> {
    let mut v = Violations::default();
    v.check("client_id", client_id_problem(&req.client_id));
    let default_credentials = pb::ClientCredentials::default();
    let credentials = req
        .client_credentials
        .as_ref()
        .unwrap_or(&default_credentials);
    let mut scopes = Vec::with_capacity(credentials.user_api_keys.len());
    let mut seen = HashSet::new();
    for (i, entry) in credentials.user_api_keys.iter().enumerate() {
        let field = |f: &str| format!("client_credentials.user_api_keys[{i}].{f}");
        v.check(&field("user"), user_problem(&entry.user));
        v.check(&field("api_key"), api_key_problem(&entry.api_key));
        if !seen.insert(entry.user.as_str()) {
            v.add(&field("user"), "is listed twice");
        }
        match scope_from_proto(entry.scope) {
            Some(scope) => scopes.push(scope),
            None => v.add(&field("scope"), "must be SCOPE_SYSTEM or SCOPE_CLIENT"),
        }
    }
    let mut changes = Vec::new();
    for (field, name, value) in [
        (
            "client_credentials.lb_api_key_owner",
            LB_API_KEY_OWNER,
            &credentials.lb_api_key_owner,
        ),
        (
            "client_credentials.lb_api_key",
            LB_API_KEY,
            &credentials.lb_api_key,
        ),
    ] {
        if value.len() > MAX_SETTING_VALUE_LEN {
            v.add(field, "must be at most 4096 bytes");
        } else if !value.is_empty() {
            changes.push(SettingChange {
                name: SettingName::parse(name).map_err(Error::Internal)?,
                value: value.clone(),
            });
        }
    }
    let mut names: Vec<_> = req.client_settings.iter().collect();
    names.sort();
    for (name, value) in names {
        match SettingName::in_bucket(Bucket::Settings, name) {
            Err(problem) => v.add("client_settings", &problem),
            Ok(name) => match setting_value_problem(&name, value) {
                Some(problem) => v.add("client_settings", &problem),
                None if value.is_empty() => {}
                None => changes.push(SettingChange {
                    name,
                    value: value.clone(),
                }),
            },
        }
    }
    v.finish()?;
    Ok(ValidConfigure { scopes, changes })
}

/// ConfigureSettings: the settings to write, in request order.
pub fn validate_configure_settings(
    req: &pb::ConfigureSettingsRequest,
) -> Result<Vec<SettingChange>, Error> {
    let mut v = Violations::default();
    v.check("client_id", client_id_problem(&req.client_id));
    if req.settings.is_empty() {
        v.add("settings", "must name at least one setting");
    }
    let mut changes = Vec::with_capacity(req.settings.len());
    let mut seen = HashSet::new();
    for (i, setting) in req.settings.iter().enumerate() {
        match SettingName::parse(&setting.name) {
            Err(problem) => v.add(&format!("settings[{i}].name"), &problem),
            Ok(name) => {
                if !seen.insert(name.as_str().to_owned()) {
                    v.add(
                        &format!("settings[{i}].name"),
                        &format!("'{name}' is listed twice"),
                    );
                }
                match setting_value_problem(&name, &setting.value) {
                    Some(problem) => v.add(&format!("settings[{i}].value"), &problem),
                    None => changes.push(SettingChange {
                        name,
                        value: setting.value.clone(),
                    }),
                }
            }
        }
    }
    v.finish()?;
    Ok(changes)
}

/// SetUserCredentials: the user's scope.
pub fn validate_set_user(req: &pb::SetUserCredentialsRequest) -> Result<Scope, Error> {
    let mut v = Violations::default();
    v.check("client_id", client_id_problem(&req.client_id));
    v.check("user", user_problem(&req.user));
    v.check("api_key", api_key_problem(&req.api_key));
    let scope = scope_from_proto(req.scope);
    if scope.is_none() {
        v.add("scope", "must be SCOPE_SYSTEM or SCOPE_CLIENT");
    }
    v.finish()?;
    scope.ok_or_else(|| Error::Internal("scope checked above".into()))
}

/// DeleteUserCredentials.
pub fn validate_delete_user(req: &pb::DeleteUserCredentialsRequest) -> Result<(), Error> {
    let mut v = Violations::default();
    v.check("client_id", client_id_problem(&req.client_id));
    v.check("user", user_problem(&req.user));
    v.finish()
}

/// VerifyUserCredentials. The key's content is judged by the check, which
/// answers `valid: false` rather than an error.
pub fn validate_verify_user(req: &pb::VerifyUserCredentialsRequest) -> Result<(), Error> {
    let mut v = Violations::default();
    v.check("client_id", client_id_problem(&req.client_id));
    v.check("user", user_problem(&req.user));
    if req.api_key.is_empty() {
        v.add("api_key", "must not be empty");
    }
    v.finish()
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

fn require_partner(caller: &Caller, rpc: &str) -> Result<(), Error> {
    match caller {
        Caller::Partner(_) => Ok(()),
        Caller::User(_) => Err(Error::PermissionDenied(format!(
            "{rpc} needs a partner key"
        ))),
    }
}

fn require_partner_or_system(caller: &Caller, rpc: &str) -> Result<(), Error> {
    match caller {
        Caller::User(user) if user.scope != Scope::System => Err(Error::PermissionDenied(format!(
            "{rpc} needs a partner key or a SYSTEM user"
        ))),
        _ => Ok(()),
    }
}

fn scope_from_proto(scope: i32) -> Option<Scope> {
    match pb::Scope::try_from(scope) {
        Ok(pb::Scope::System) => Some(Scope::System),
        Ok(pb::Scope::Client) => Some(Scope::Client),
        _ => None,
    }
}

fn scope_to_proto(scope: &str) -> pb::Scope {
    match Scope::parse(scope) {
        Some(Scope::System) => pb::Scope::System,
        Some(Scope::Client) => pb::Scope::Client,
        None => pb::Scope::Unspecified,
    }
}

fn user_to_proto(row: &UserRow) -> pb::UserCredential {
    pb::UserCredential {
        user: row.user.clone(),
        scope: scope_to_proto(&row.scope).into(),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
    }
}

fn configuration_to_proto(
    client: &ClientRow,
    users: &[UserRow],
    settings: &[SettingRow],
) -> pb::ClientConfiguration {
    pb::ClientConfiguration {
        client_id: client.client_id.clone(),
        users: users.iter().map(user_to_proto).collect(),
        settings: settings
            .iter()
            .map(|s| pb::Setting {
                name: s.name.clone(),
                // Secrets are never returned, sealed or not.
                value: if s.secret {
                    String::new()
                } else {
                    s.value.clone()
                },
                secret: s.secret,
            })
            .collect(),
        create_time: Some(to_timestamp(client.create_time)),
        update_time: Some(to_timestamp(client.update_time)),
    }
}

#[tonic::async_trait]
impl ClientConfigurationService for ClientConfiguration {
    async fn configure(
        &self,
        request: Request<pb::ConfigureRequest>,
    ) -> Result<Response<pb::ConfigureResponse>, Status> {
        Ok(Response::new(
            ClientConfiguration::configure(self, request).await?,
        ))
    }

    async fn configure_settings(
        &self,
        request: Request<pb::ConfigureSettingsRequest>,
    ) -> Result<Response<pb::ConfigureSettingsResponse>, Status> {
        Ok(Response::new(
            ClientConfiguration::configure_settings(self, request).await?,
        ))
    }

    async fn set_user_credentials(
        &self,
        request: Request<pb::SetUserCredentialsRequest>,
    ) -> Result<Response<pb::SetUserCredentialsResponse>, Status> {
        Ok(Response::new(
            ClientConfiguration::set_user_credentials(self, request).await?,
        ))
    }

    async fn delete_user_credentials(
        &self,
        request: Request<pb::DeleteUserCredentialsRequest>,
    ) -> Result<Response<pb::DeleteUserCredentialsResponse>, Status> {
        Ok(Response::new(
            ClientConfiguration::delete_user_credentials(self, request).await?,
        ))
    }

    async fn get_client_configuration(
        &self,
        request: Request<pb::GetClientConfigurationRequest>,
    ) -> Result<Response<pb::GetClientConfigurationResponse>, Status> {
        Ok(Response::new(
            ClientConfiguration::get_client_configuration(self, request).await?,
        ))
    }

    async fn verify_user_credentials(
        &self,
        request: Request<pb::VerifyUserCredentialsRequest>,
    ) -> Result<Response<pb::VerifyUserCredentialsResponse>, Status> {
        Ok(Response::new(
            ClientConfiguration::verify_user_credentials(self, request).await?,
        ))
    }
}
