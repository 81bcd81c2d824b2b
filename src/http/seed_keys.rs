//! Seed 000's integration-key routes, with the partner key in `SID` (or
//! `Authorization: Bearer`): create (201), list, get (200) and delete (204);
//! bodies in the proto3 JSON mapping of the gRPC messages, errors
//! `{"error": <status>, "message": ...}`.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
};
use latchkey_client::pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    HttpState, call_context,
    errors::{Dialect, HttpError},
    parse_json, read_body, require_json,
};

const DIALECT: Dialect = Dialect::Seed;
const SERVICE: &str = "/latchkey.v1.IntegrationKeysService";

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/integrations/{integration}/keys",
            get(list_keys).post(create_key),
        )
        .route(
            "/integrations/{integration}/keys/{key_id}",
            get(get_key).delete(delete_key),
        )
}

/// An integration key in the proto3 JSON mapping of `IntegrationKey`
/// (defaults left out). Never the secret or its hash.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyJson {
    /// The key's public id (`lki_` + 16 characters).
    key_id: String,
    integration: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    display_name: String,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    create_time: Option<String>,
    /// RFC 3339; absent: the key never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_time: Option<String>,
    /// RFC 3339; absent: never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_use_time: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    /// `INTEGRATION_KEY_STATE_ACTIVE`, `_DISABLED` or `_EXPIRED`.
    state: String,
    /// Who owns the key; absent when none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    /// CIDRs the key's callers must come from; absent: anyone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_networks: Vec<String>,
    /// Allowed verifies per window; absent: no rate limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateLimitJson>,
}

/// `RateLimit` in the proto3 JSON mapping.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RateLimitJson {
    /// Allowed verifies per window, 1 to 1,000,000.
    limit: u32,
    /// The window as a proto3 JSON duration, `1s` to `86400s`.
    window: String,
}

impl From<pb::RateLimit> for RateLimitJson {
    fn from(rate_limit: pb::RateLimit) -> Self {
        Self {
            limit: rate_limit.limit,
            window: rate_limit.window.unwrap_or_default().to_string(),
        }
    }
}

impl RateLimitJson {
    fn into_proto(self) -> Result<pb::RateLimit, HttpError> {
        let window = self.window.parse::<prost_types::Duration>().map_err(|_| {
            HttpError::bad_request(
                DIALECT,
                "rateLimit.window must be a duration such as \"60s\"",
            )
        })?;
        Ok(pb::RateLimit {
            limit: self.limit,
            window: Some(window),
        })
    }
}

impl From<pb::IntegrationKey> for KeyJson {
    fn from(key: pb::IntegrationKey) -> Self {
        Self {
            state: pb::IntegrationKeyState::try_from(key.state)
                .unwrap_or_default()
                .as_str_name()
                .to_owned(),
            key_id: key.key_id,
            integration: key.integration,
            display_name: key.display_name,
            create_time: key.create_time.map(|t| t.to_string()),
            expire_time: key.expire_time.map(|t| t.to_string()),
            last_use_time: key.last_use_time.map(|t| t.to_string()),
            disabled: key.disabled,
            labels: key.labels.into_iter().collect(),
            allowed_networks: key.allowed_networks,
            rate_limit: key.rate_limit.map(RateLimitJson::from),
        }
    }
}

/// `CreateIntegrationKeyResponse`: the key, and the full API key, returned
/// only here.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKeyJson {
    key: Option<KeyJson>,
    api_key: String,
}

/// `GetIntegrationKeyResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyEnvelopeJson {
    key: Option<KeyJson>,
}

/// `ListIntegrationKeysResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyListJson {
    keys: Vec<KeyJson>,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "String::is_empty")]
    next_page_token: String,
}

/// The optional body of a create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewKeyJson {
    /// At most 100 characters.
    #[serde(default)]
    display_name: String,
    /// RFC 3339, in the future; absent: never expires.
    #[serde(default)]
    expire_time: Option<String>,
    /// At most 16; keys `[a-z][a-z0-9_.-]{0,62}`, values up to 255 characters.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// CIDRs or addresses (at most 32); absent: anyone.
    #[serde(default)]
    allowed_networks: Vec<String>,
    /// Allowed verifies per window; absent: no rate limit.
    #[serde(default)]
    rate_limit: Option<RateLimitJson>,
}

/// A seed route's error.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeedErrorJson {
    /// The HTTP status.
    error: u16,
    /// The same message as gRPC gives.
    message: String,
}

type Answer<T> = Result<T, HttpError>;

/// Creates a key for an integration.
#[utoipa::path(
    post, operation_id = "seedCreateIntegrationKey", path = "/integrations/{integration}/keys", tag = "seed 000: integration keys",
    params(("integration" = String, Path, description = "The integration's name")),
    request_body(content = Option<NewKeyJson>, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `apiKey` is returned only here", body = CreatedKeyJson),
        (status = 400, description = "Bad request, or a builtin integration", body = SeedErrorJson),
        (status = 401, description = "Invalid credentials", body = SeedErrorJson),
        (status = 404, description = "Integration not found", body = SeedErrorJson),
    ),
    security(("sid" = []), ("bearer" = [])),
)]
pub async fn create_key(
    State(state): State<HttpState>,
    Path(integration): Path<String>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Response> {
    let context = call_context(&state, &headers, peer);
    let body = read_body(body, DIALECT).await?;
    require_json(&headers, &body, DIALECT)?;
    let new: NewKeyJson = parse_json(&body, DIALECT)?;
    let expire_time = new
        .expire_time
        .map(|t| {
            t.parse::<prost_types::Timestamp>()
                .map_err(|_| HttpError::bad_request(DIALECT, "expireTime must be an RFC 3339 time"))
        })
        .transpose()?;
    let request = pb::CreateIntegrationKeyRequest {
        integration,
        display_name: new.display_name,
        expire_time,
        labels: new.labels.into_iter().collect(),
        allowed_networks: new.allowed_networks,
        rate_limit: new.rate_limit.map(RateLimitJson::into_proto).transpose()?,
    };
    let created: pb::CreateIntegrationKeyResponse = state
        .call(
            &format!("{SERVICE}/CreateIntegrationKey"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    let body = CreatedKeyJson {
        key: created.key.map(KeyJson::from),
        api_key: created.api_key,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Lists an integration's keys, oldest first.
#[utoipa::path(
    get, operation_id = "seedListIntegrationKeys", path = "/integrations/{integration}/keys", tag = "seed 000: integration keys",
    params(
        ("integration" = String, Path, description = "The integration's name"),
        ("pageSize" = Option<i32>, Query, description = "0 or absent: 50; at most 1000"),
        ("pageToken" = Option<String>, Query, description = "`nextPageToken` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page, oldest first", body = KeyListJson),
        (status = 400, description = "Bad request (e.g. a bad page token)", body = SeedErrorJson),
        (status = 401, description = "Invalid credentials", body = SeedErrorJson),
        (status = 404, description = "Integration not found", body = SeedErrorJson),
    ),
    security(("sid" = []), ("bearer" = [])),
)]
pub async fn list_keys(
    State(state): State<HttpState>,
    Path(integration): Path<String>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer<Json<KeyListJson>> {
    let context = call_context(&state, &headers, peer);
    let mut request = pb::ListIntegrationKeysRequest {
        integration,
        ..Default::default()
    };
    for (name, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match &*name {
            "pageSize" | "page_size" => {
                request.page_size = value.parse().map_err(|_| {
                    HttpError::bad_request(DIALECT, "pageSize must be a whole number")
                })?;
            }
            "pageToken" | "page_token" => request.page_token = value.into_owned(),
            _ => {}
        }
    }
    let page: pb::ListIntegrationKeysResponse = state
        .call(
            &format!("{SERVICE}/ListIntegrationKeys"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    Ok(Json(KeyListJson {
        keys: page.keys.into_iter().map(KeyJson::from).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// Reads one key, without its secret.
#[utoipa::path(
    get, operation_id = "seedGetIntegrationKey", path = "/integrations/{integration}/keys/{key_id}", tag = "seed 000: integration keys",
    params(
        ("integration" = String, Path, description = "The integration's name"),
        ("key_id" = String, Path, description = "The key's public id"),
    ),
    responses(
        (status = 200, description = "The key, without its secret", body = KeyEnvelopeJson),
        (status = 401, description = "Invalid credentials", body = SeedErrorJson),
        (status = 404, description = "Integration or key not found", body = SeedErrorJson),
    ),
    security(("sid" = []), ("bearer" = [])),
)]
pub async fn get_key(
    State(state): State<HttpState>,
    Path((integration, key_id)): Path<(String, String)>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
) -> Answer<Json<KeyEnvelopeJson>> {
    let context = call_context(&state, &headers, peer);
    let request = pb::GetIntegrationKeyRequest {
        integration,
        key_id,
    };
    let got: pb::GetIntegrationKeyResponse = state
        .call(
            &format!("{SERVICE}/GetIntegrationKey"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    Ok(Json(KeyEnvelopeJson {
        key: got.key.map(KeyJson::from),
    }))
}

/// Deletes a key: it no longer verifies.
#[utoipa::path(
    delete, operation_id = "seedDeleteIntegrationKey", path = "/integrations/{integration}/keys/{key_id}", tag = "seed 000: integration keys",
    params(
        ("integration" = String, Path, description = "The integration's name"),
        ("key_id" = String, Path, description = "The key's public id"),
    ),
    responses(
        (status = 204, description = "Deleted: the key no longer verifies"),
        (status = 401, description = "Invalid credentials", body = SeedErrorJson),
        (status = 404, description = "Integration or key not found", body = SeedErrorJson),
    ),
    security(("sid" = []), ("bearer" = [])),
)]
pub async fn delete_key(
    State(state): State<HttpState>,
    Path((integration, key_id)): Path<(String, String)>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
) -> Answer<StatusCode> {
    let context = call_context(&state, &headers, peer);
    let request = pb::DeleteIntegrationKeyRequest {
        integration,
        key_id,
    };
    let _: pb::DeleteIntegrationKeyResponse = state
        .call(
            &format!("{SERVICE}/DeleteIntegrationKey"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
