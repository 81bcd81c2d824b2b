//! Seed 001's Cert Registry routes: `POST /configure` (the seed's PascalCase
//! document), `POST /configureSettings/{CLIENT_ID}`, `POST
//! /setUserCredentials/{CLIENT_ID}` and `GET /health/{CLIENT_ID}`. A partner
//! key, or Basic `user:api_key` of the client's users, with API.md's
//! permissions. Answers never carry a secret; errors as the seed routes'.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use latchkey_client::pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    HttpState, call_context,
    errors::{Dialect, HttpError},
    parse_json, read_body, require_json,
    seed_keys::SeedErrorJson,
};

const DIALECT: Dialect = Dialect::Seed;
const CONFIGURATION: &str = "/latchkey.v1.ClientConfigurationService";
const HEALTH: &str = "/latchkey.v1.HealthService";

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/configure", post(configure))
        .route("/configureSettings/{client_id}", post(configure_settings))
        .route(
            "/setUserCredentials/{client_id}",
            post(set_user_credentials),
        )
        .route("/health/{client_id}", get(client_health))
}

/// The seed's `/configure` document.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ConfigureJson {
    client_id: String,
    #[serde(default)]
    client_credentials: Option<ClientCredentialsJson>,
    /// Setting names without the `ClientSettings.` prefix.
    #[serde(default)]
    client_settings: HashMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ClientCredentialsJson {
    #[serde(default)]
    user_api_keys: Vec<UserApiKeyJson>,
    #[serde(default)]
    lb_api_key_owner: String,
    #[serde(default)]
    lb_api_key: String,
}

/// A user's API key, as the seed writes it (lower-case names).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserApiKeyJson {
    user: String,
    api_key: String,
    scope: ScopeJson,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ScopeJson {
    System,
    Client,
}

impl From<ScopeJson> for pb::Scope {
    fn from(scope: ScopeJson) -> Self {
        match scope {
            ScopeJson::System => pb::Scope::System,
            ScopeJson::Client => pb::Scope::Client,
        }
    }
}

fn scope_json(scope: i32) -> Option<ScopeJson> {
    match pb::Scope::try_from(scope) {
        Ok(pb::Scope::System) => Some(ScopeJson::System),
        Ok(pb::Scope::Client) => Some(ScopeJson::Client),
        _ => None,
    }
}

/// `POST /configureSettings/{CLIENT_ID}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigureSettingsJson {
    settings: Vec<SettingChangeJson>,
}

/// A setting change: the prefixed name (`ClientSettings.<Name>` or
/// `ClientCredentials.<Name>`); an empty value clears it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingChangeJson {
    name: String,
    #[serde(default)]
    value: String,
}

/// `POST /setUserCredentials/{CLIENT_ID}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetUserCredentialsJson {
    user: String,
    api_key: String,
    scope: ScopeJson,
}

/// A client's configuration: users and settings, never a secret
/// (`ClientCredentials.*` values are empty, with `Secret` true).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigurationJson {
    client_id: String,
    users: Vec<UserJson>,
    settings: Vec<SettingJson>,
    /// RFC 3339.
    create_time: Option<String>,
    /// RFC 3339.
    update_time: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct UserJson {
    user: String,
    scope: Option<ScopeJson>,
    create_time: Option<String>,
    update_time: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SettingJson {
    name: String,
    value: String,
    secret: bool,
}

/// `GET /health/{CLIENT_ID}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ClientHealthJson {
    client_id: String,
    /// `HEALTHY`, `DEGRADED`, `UNHEALTHY` or `NOT_CONFIGURED`.
    status: String,
    lb_host: String,
    diagnostics: Vec<DiagnosticJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DiagnosticJson {
    name: String,
    /// `PASS`, `WARN` or `FAIL`.
    status: String,
    detail: String,
}

impl From<pb::UserCredential> for UserJson {
    fn from(user: pb::UserCredential) -> Self {
        Self {
            scope: scope_json(user.scope),
            user: user.user,
            create_time: user.create_time.map(|t| t.to_string()),
            update_time: user.update_time.map(|t| t.to_string()),
        }
    }
}

impl From<pb::ClientConfiguration> for ConfigurationJson {
    fn from(configuration: pb::ClientConfiguration) -> Self {
        Self {
            client_id: configuration.client_id,
            users: configuration
                .users
                .into_iter()
                .map(UserJson::from)
                .collect(),
            settings: configuration
                .settings
                .into_iter()
                .map(|s| SettingJson {
                    name: s.name,
                    value: s.value,
                    secret: s.secret,
                })
                .collect(),
            create_time: configuration.create_time.map(|t| t.to_string()),
            update_time: configuration.update_time.map(|t| t.to_string()),
        }
    }
}

type Answer<T> = Result<T, HttpError>;

/// A JSON request body of type `T`.
async fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: Body) -> Answer<T> {
    let body = read_body(body, DIALECT).await?;
    require_json(headers, &body, DIALECT)?;
    parse_json(&body, DIALECT)
}

/// Configures a new client: users, credentials, settings.
#[utoipa::path(
    post, operation_id = "configure", path = "/configure", tag = "seed 001: client configuration",
    request_body(content = ConfigureJson, content_type = "application/json"),
    responses(
        (status = 201, description = "Configured", body = ConfigurationJson),
        (status = 400, description = "Bad request", body = SeedErrorJson),
        (status = 401, description = "Invalid credentials", body = SeedErrorJson),
        (status = 403, description = "Not allowed", body = SeedErrorJson),
        (status = 409, description = "The client is already configured", body = SeedErrorJson),
    ),
    security(("sid" = []), ("bearer" = [])),
)]
pub async fn configure(
    State(state): State<HttpState>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Response> {
    let context = call_context(&state, &headers, peer);
    let document: ConfigureJson = json_body(&headers, body).await?;
    let request = pb::ConfigureRequest {
        client_id: document.client_id,
        client_credentials: document.client_credentials.map(|c| pb::ClientCredentials {
            user_api_keys: c
                .user_api_keys
                .into_iter()
                .map(|k| pb::UserApiKey {
                    user: k.user,
                    api_key: k.api_key,
                    scope: pb::Scope::from(k.scope) as i32,
                })
                .collect(),
            lb_api_key_owner: c.lb_api_key_owner,
            lb_api_key: c.lb_api_key,
        }),
        client_settings: document.client_settings,
    };
    let configured: pb::ConfigureResponse = state
        .call(
            &format!("{CONFIGURATION}/Configure"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    let body = ConfigurationJson::from(configured.configuration.unwrap_or_default());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Changes a client's settings, all or nothing.
#[utoipa::path(
    post, operation_id = "configureSettings", path = "/configureSettings/{client_id}", tag = "seed 001: client configuration",
    params(("client_id" = String, Path, description = "The client")),
    request_body(content = ConfigureSettingsJson, content_type = "application/json"),
    responses(
        (status = 200, description = "All changes applied", body = ConfigurationJson),
        (status = 400, description = "Bad request (nothing applied)", body = SeedErrorJson),
        (status = 401, description = "Invalid credentials", body = SeedErrorJson),
        (status = 403, description = "Not allowed", body = SeedErrorJson),
        (status = 404, description = "Client not found", body = SeedErrorJson),
    ),
    security(("sid" = []), ("bearer" = []), ("basic" = [])),
)]
pub async fn configure_settings(
    State(state): State<HttpState>,
    Path(client_id): Path<String>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Json<ConfigurationJson>> {
    let context = call_context(&state, &headers, peer);
    let document: ConfigureSettingsJson = json_body(&headers, body).await?;
    let request = pb::ConfigureSettingsRequest {
        client_id,
        settings: document
            .settings
            .into_iter()
            .map(|s| pb::Setting {
                name: s.name,
                value: s.value,
                secret: false,
            })
            .collect(),
    };
    let configured: pb::ConfigureSettingsResponse = state
        .call(
            &format!("{CONFIGURATION}/ConfigureSettings"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    Ok(Json(ConfigurationJson::from(
        configured.configuration.unwrap_or_default(),
    )))
}

/// Sets a user's API key and scope.
#[utoipa::path(
    post, operation_id = "setUserCredentials", path = "/setUserCredentials/{client_id}", tag = "seed 001: client configuration",
    params(("client_id" = String, Path, description = "The client")),
    request_body(content = SetUserCredentialsJson, content_type = "application/json"),
    responses(
        (status = 200, description = "Set; the key itself is never returned", body = UserJson),
        (status = 400, description = "Bad request", body = SeedErrorJson),
        (status = 401, description = "Invalid credentials", body = SeedErrorJson),
        (status = 403, description = "Not allowed", body = SeedErrorJson),
        (status = 404, description = "Client not found", body = SeedErrorJson),
    ),
    security(("sid" = []), ("bearer" = []), ("basic" = [])),
)]
pub async fn set_user_credentials(
    State(state): State<HttpState>,
    Path(client_id): Path<String>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Json<UserJson>> {
    let context = call_context(&state, &headers, peer);
    let document: SetUserCredentialsJson = json_body(&headers, body).await?;
    let request = pb::SetUserCredentialsRequest {
        client_id,
        user: document.user,
        api_key: document.api_key,
        scope: pb::Scope::from(document.scope) as i32,
    };
    let set: pb::SetUserCredentialsResponse = state
        .call(
            &format!("{CONFIGURATION}/SetUserCredentials"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    Ok(Json(UserJson::from(
        set.user_credential.unwrap_or_default(),
    )))
}

/// Checks a client's configuration health.
#[utoipa::path(
    get, operation_id = "clientHealth", path = "/health/{client_id}", tag = "seed 001: client configuration",
    params(("client_id" = String, Path, description = "The client")),
    responses(
        (status = 200, description = "The client's configuration health", body = ClientHealthJson),
        (status = 401, description = "Invalid credentials", body = SeedErrorJson),
        (status = 403, description = "Not allowed", body = SeedErrorJson),
    ),
    security(("sid" = []), ("bearer" = []), ("basic" = [])),
)]
pub async fn client_health(
    State(state): State<HttpState>,
    Path(client_id): Path<String>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
) -> Answer<Json<ClientHealthJson>> {
    let context = call_context(&state, &headers, peer);
    let request = pb::CheckClientHealthRequest { client_id };
    let health: pb::CheckClientHealthResponse = state
        .call(
            &format!("{HEALTH}/CheckClientHealth"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    let status = pb::HealthStatus::try_from(health.status)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("HEALTH_STATUS_")
        .to_owned();
    Ok(Json(ClientHealthJson {
        client_id: health.client_id,
        status,
        lb_host: health.lb_host,
        diagnostics: health
            .diagnostics
            .into_iter()
            .map(|d| DiagnosticJson {
                status: pb::DiagnosticStatus::try_from(d.status)
                    .unwrap_or_default()
                    .as_str_name()
                    .trim_start_matches("DIAGNOSTIC_STATUS_")
                    .to_owned(),
                name: d.name,
                detail: d.detail,
            })
            .collect(),
    }))
}
