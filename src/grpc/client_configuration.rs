//! `latchkey.v1.ClientConfigurationService`: decode -> authenticate ->
//! `app` call -> encode.

use std::collections::HashSet;

use secrecy::SecretString;
use tonic::Request;

use super::{credentials, peer_of, validate::Violations};
use crate::{
    app::{
        auth,
        clients::{self, Configuration, NewUserKey, UserRow, UserVerdict},
    },
    domain::clients::{
        Bucket, LB_API_KEY, LB_API_KEY_OWNER, MAX_SETTING_VALUE_LEN, Scope, SettingChange,
        SettingName, api_key_problem, client_id_problem, setting_value_problem, user_problem,
    },
    error::Error,
    grpc::{
        proto::v1::{self as pb, client_configuration_service_server::ClientConfigurationService},
        time::to_timestamp,
    },
};

service!(ClientConfiguration);

/// A valid Configure request: the scope of each entry of
/// `client_credentials.user_api_keys`, in order, and the settings to write.
pub struct ValidConfigure {
    pub scopes: Vec<Scope>,
    pub changes: Vec<SettingChange>,
}

impl ClientConfiguration {
    async fn configure(
        &self,
        request: Request<pb::ConfigureRequest>,
    ) -> Result<pb::ConfigureResponse, Error> {
        let (who, req) = self.caller(request, |r| &r.client_id).await?;
        let default_credentials = pb::ClientCredentials::default();
        let credentials = req
            .client_credentials
            .as_ref()
            .unwrap_or(&default_credentials);
        let keys: Vec<SecretString> = credentials
            .user_api_keys
            .iter()
            .map(|entry| SecretString::from(entry.api_key.as_str()))
            .collect();
        let configuration = clients::configure(&self.app, &who, &req.client_id, || {
            let ValidConfigure { scopes, changes } = validate_configure(&req)?;
            let users = credentials
                .user_api_keys
                .iter()
                .zip(&keys)
                .zip(scopes)
                .map(|((entry, api_key), scope)| NewUserKey {
                    user: &entry.user,
                    api_key,
                    scope,
                })
                .collect();
            Ok((users, changes))
        })
        .await?;
        Ok(pb::ConfigureResponse {
            configuration: Some(configuration_to_proto(&configuration)),
        })
    }

    async fn configure_settings(
        &self,
        request: Request<pb::ConfigureSettingsRequest>,
    ) -> Result<pb::ConfigureSettingsResponse, Error> {
        let (who, req) = self.caller(request, |r| &r.client_id).await?;
        let names: Vec<&str> = req.settings.iter().map(|s| s.name.as_str()).collect();
        let configuration = clients::configure_settings(
            &self.app,
            &who,
            &req.client_id,
            || validate_configure_settings(&req),
            &names,
        )
        .await?;
        Ok(pb::ConfigureSettingsResponse {
            configuration: Some(configuration_to_proto(&configuration)),
        })
    }

    async fn set_user_credentials(
        &self,
        request: Request<pb::SetUserCredentialsRequest>,
    ) -> Result<pb::SetUserCredentialsResponse, Error> {
        let (who, req) = self.caller(request, |r| &r.client_id).await?;
        let api_key = SecretString::from(req.api_key.as_str());
        let row = clients::set_user_credentials(&self.app, &who, &req.client_id, &req.user, || {
            Ok(NewUserKey {
                user: &req.user,
                api_key: &api_key,
                scope: validate_set_user(&req)?,
            })
        })
        .await?;
        Ok(pb::SetUserCredentialsResponse {
            user_credential: Some(user_to_proto(&row)),
        })
    }

    async fn delete_user_credentials(
        &self,
        request: Request<pb::DeleteUserCredentialsRequest>,
    ) -> Result<pb::DeleteUserCredentialsResponse, Error> {
        let (who, req) = self.caller(request, |r| &r.client_id).await?;
        clients::delete_user_credentials(&self.app, &who, &req.client_id, &req.user, || {
            validate_delete_user(&req)
        })
        .await?;
        Ok(pb::DeleteUserCredentialsResponse {})
    }

    async fn get_client_configuration(
        &self,
        request: Request<pb::GetClientConfigurationRequest>,
    ) -> Result<pb::GetClientConfigurationResponse, Error> {
        let (_, req) = self.caller(request, |r| &r.client_id).await?;
        validate_client_id(&req.client_id)?;
        let configuration = clients::get_configuration(&self.app, &req.client_id).await?;
        Ok(pb::GetClientConfigurationResponse {
            configuration: Some(configuration_to_proto(&configuration)),
        })
    }

    async fn verify_user_credentials(
        &self,
        request: Request<pb::VerifyUserCredentialsRequest>,
    ) -> Result<pb::VerifyUserCredentialsResponse, Error> {
        let peer = peer_of(&request);
        let req = request.into_inner();
        validate_verify_user(&req)?;
        let verdict =
            clients::verify_user(&self.app, &req.client_id, &req.user, &req.api_key, peer).await?;
        let invalid = pb::VerifyUserCredentialsResponse::default();
        Ok(match verdict {
            UserVerdict::Valid(scope) => pb::VerifyUserCredentialsResponse {
                valid: true,
                scope: scope_to_proto(scope).into(),
                ..invalid
            },
            UserVerdict::Invalid => invalid,
            UserVerdict::RateLimited(retry_after) => pb::VerifyUserCredentialsResponse {
                rate_limited: true,
                retry_after: super::integration_keys::to_duration(retry_after),
                ..invalid
            },
        })
    }

    /// Authenticates the caller of an RPC about the client `client_id(req)`.
    async fn caller<T>(
        &self,
        request: Request<T>,
        client_id: impl FnOnce(&T) -> &str,
    ) -> Result<(auth::Principal, T), Error> {
        let credentials = credentials(&request);
        let req = request.into_inner();
        let who = auth::for_client(&self.app, &credentials, client_id(&req)).await?;
        Ok((who, req))
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

fn scope_from_proto(scope: i32) -> Option<Scope> {
    match pb::Scope::try_from(scope) {
        Ok(pb::Scope::System) => Some(Scope::System),
        Ok(pb::Scope::Client) => Some(Scope::Client),
        _ => None,
    }
}

fn scope_to_proto(scope: Scope) -> pb::Scope {
    match scope {
        Scope::System => pb::Scope::System,
        Scope::Client => pb::Scope::Client,
    }
}

fn user_to_proto(row: &UserRow) -> pb::UserCredential {
    pb::UserCredential {
        user: row.user.clone(),
        scope: scope_to_proto(row.scope).into(),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
    }
}

fn configuration_to_proto(configuration: &Configuration) -> pb::ClientConfiguration {
    let Configuration {
        client,
        users,
        settings,
    } = configuration;
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

rpcs! {
    ClientConfiguration: ClientConfigurationService {
        configure(pb::ConfigureRequest) -> pb::ConfigureResponse = configure;
        configure_settings(pb::ConfigureSettingsRequest) -> pb::ConfigureSettingsResponse = configure_settings;
        set_user_credentials(pb::SetUserCredentialsRequest) -> pb::SetUserCredentialsResponse = set_user_credentials;
        delete_user_credentials(pb::DeleteUserCredentialsRequest) -> pb::DeleteUserCredentialsResponse = delete_user_credentials;
        get_client_configuration(pb::GetClientConfigurationRequest) -> pb::GetClientConfigurationResponse = get_client_configuration;
        verify_user_credentials(pb::VerifyUserCredentialsRequest) -> pb::VerifyUserCredentialsResponse = verify_user_credentials;
    }
}
