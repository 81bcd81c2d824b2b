//! Sunshine Conversations v2's CustomIntegrationApiKeysApi, wire-compatible
//! with Zendesk's generated clients: `integrationId` is the integration
//! name, `appId` is accepted and ignored. Auth: Basic `<partner key id>:
//! <partner key secret>` (the generated clients' basicAuth), or Bearer
//! partner key. Errors `{"errors": [{"code", "title"}]}`.

use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use latchkey_client::pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    HttpState, call_context,
    errors::{Dialect, HttpError},
    gateway::CallContext,
    parse_json, read_body, require_json,
};

const DIALECT: Dialect = Dialect::Sunshine;
const SERVICE: &str = "/latchkey.v1.IntegrationKeysService";
/// Sunshine's list has no paging: one page of the largest size.
const LIST_PAGE_SIZE: i32 = 1000;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/v2/apps/{app_id}/integrations/{integration_id}/keys",
            get(list_keys).post(create_key),
        )
        .route(
            "/v2/apps/{app_id}/integrations/{integration_id}/keys/{key_id}",
            get(get_key).delete(delete_key),
        )
}

/// Sunshine's `apiKey`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyJson {
    /// The key's public id.
    id: String,
    /// Absent when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    display_name: String,
    /// The rest of the key after `<id>_`: on create only.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl ApiKeyJson {
    fn from_key(key: pb::IntegrationKey) -> Self {
        Self {
            id: key.key_id,
            display_name: key.display_name,
            secret: None,
        }
    }
}

/// `{"key": ...}`.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyEnvelopeJson {
    key: ApiKeyJson,
}

/// `{"keys": [...]}`.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyListJson {
    keys: Vec<ApiKeyJson>,
}

/// The body of a create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewApiKeyJson {
    /// At most 100 characters.
    #[serde(default)]
    display_name: String,
}

/// One error of a Sunshine error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SunshineErrorJson {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `too_many_requests`, ...
    code: String,
    title: String,
}

/// A Sunshine error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SunshineErrorsJson {
    errors: Vec<SunshineErrorJson>,
}

type Answer<T> = Result<T, HttpError>;

/// The call context, with Basic `<key id>:<secret>` turned into the
/// partner key `<key id>_<secret>` it stands for (when the user name is a
/// partner key id; anything else is left for gRPC to judge).
fn context(state: &HttpState, headers: &HeaderMap, peer: ConnectInfo<super::Peer>) -> CallContext {
    let mut context = call_context(state, headers, peer);
    if let Some((id, secret)) = latchkey_client::basic_credentials(headers)
        && id.starts_with("lkp_")
    {
        let partner_key = zeroize::Zeroizing::new(format!("{id}_{}", secret.as_str()));
        if let Ok(mut value) = HeaderValue::from_str(&partner_key) {
            value.set_sensitive(true);
            context.sid = Some(value);
            context.authorization = None;
        }
    }
    context
}

/// Creates a key for a custom integration.
#[utoipa::path(
    post, operation_id = "createCustomIntegrationKey", path = "/v2/apps/{appId}/integrations/{integrationId}/keys", tag = "Sunshine Conversations: custom integration API keys",
    params(
        ("appId" = String, Path, description = "Accepted and ignored"),
        ("integrationId" = String, Path, description = "The integration's name"),
    ),
    request_body(content = NewApiKeyJson, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `secret` is returned only here", body = ApiKeyEnvelopeJson),
        (status = 400, description = "Bad request, or a builtin integration", body = SunshineErrorsJson),
        (status = 401, description = "Invalid credentials", body = SunshineErrorsJson),
        (status = 404, description = "Integration not found", body = SunshineErrorsJson),
    ),
    security(("basic" = []), ("bearer" = [])),
)]
pub async fn create_key(
    State(state): State<HttpState>,
    Path((_app_id, integration)): Path<(String, String)>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
    body: Body,
) -> Answer<Response> {
    let context = context(&state, &headers, peer);
    let body = read_body(body, DIALECT).await?;
    require_json(&headers, &body, DIALECT)?;
    let new: NewApiKeyJson = parse_json(&body, DIALECT)?;
    let request = pb::CreateIntegrationKeyRequest {
        integration,
        display_name: new.display_name,
        expire_time: None,
        ..Default::default()
    };
    let created: pb::CreateIntegrationKeyResponse = state
        .call(
            &format!("{SERVICE}/CreateIntegrationKey"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    let key = created.key.unwrap_or_default();
    let secret = created
        .api_key
        .strip_prefix(&format!("{}_", key.key_id))
        .map(str::to_owned);
    let body = ApiKeyEnvelopeJson {
        key: ApiKeyJson {
            secret,
            ..ApiKeyJson::from_key(key)
        },
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Lists a custom integration's keys.
#[utoipa::path(
    get, operation_id = "listCustomIntegrationKeys", path = "/v2/apps/{appId}/integrations/{integrationId}/keys", tag = "Sunshine Conversations: custom integration API keys",
    params(
        ("appId" = String, Path, description = "Accepted and ignored"),
        ("integrationId" = String, Path, description = "The integration's name"),
    ),
    responses(
        (status = 200, description = "The integration's keys (the first 1000), without secrets", body = ApiKeyListJson),
        (status = 401, description = "Invalid credentials", body = SunshineErrorsJson),
        (status = 404, description = "Integration not found", body = SunshineErrorsJson),
    ),
    security(("basic" = []), ("bearer" = [])),
)]
pub async fn list_keys(
    State(state): State<HttpState>,
    Path((_app_id, integration)): Path<(String, String)>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
) -> Answer<Json<ApiKeyListJson>> {
    let context = context(&state, &headers, peer);
    let request = pb::ListIntegrationKeysRequest {
        integration,
        page_size: LIST_PAGE_SIZE,
        page_token: String::new(),
    };
    let page: pb::ListIntegrationKeysResponse = state
        .call(
            &format!("{SERVICE}/ListIntegrationKeys"),
            &request,
            &context,
            DIALECT,
        )
        .await?;
    Ok(Json(ApiKeyListJson {
        keys: page.keys.into_iter().map(ApiKeyJson::from_key).collect(),
    }))
}

/// Reads one key, without its secret.
#[utoipa::path(
    get, operation_id = "getCustomIntegrationKey", path = "/v2/apps/{appId}/integrations/{integrationId}/keys/{keyId}", tag = "Sunshine Conversations: custom integration API keys",
    params(
        ("appId" = String, Path, description = "Accepted and ignored"),
        ("integrationId" = String, Path, description = "The integration's name"),
        ("keyId" = String, Path, description = "The key's public id"),
    ),
    responses(
        (status = 200, description = "The key, without its secret", body = ApiKeyEnvelopeJson),
        (status = 401, description = "Invalid credentials", body = SunshineErrorsJson),
        (status = 404, description = "Integration or key not found", body = SunshineErrorsJson),
    ),
    security(("basic" = []), ("bearer" = [])),
)]
pub async fn get_key(
    State(state): State<HttpState>,
    Path((_app_id, integration, key_id)): Path<(String, String, String)>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
) -> Answer<Json<ApiKeyEnvelopeJson>> {
    let context = context(&state, &headers, peer);
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
    Ok(Json(ApiKeyEnvelopeJson {
        key: ApiKeyJson::from_key(got.key.unwrap_or_default()),
    }))
}

/// Deletes a key.
#[utoipa::path(
    delete, operation_id = "deleteCustomIntegrationKey", path = "/v2/apps/{appId}/integrations/{integrationId}/keys/{keyId}", tag = "Sunshine Conversations: custom integration API keys",
    params(
        ("appId" = String, Path, description = "Accepted and ignored"),
        ("integrationId" = String, Path, description = "The integration's name"),
        ("keyId" = String, Path, description = "The key's public id"),
    ),
    responses(
        (status = 200, description = "Deleted: `{}`", body = Object),
        (status = 401, description = "Invalid credentials", body = SunshineErrorsJson),
        (status = 404, description = "Integration or key not found", body = SunshineErrorsJson),
    ),
    security(("basic" = []), ("bearer" = [])),
)]
pub async fn delete_key(
    State(state): State<HttpState>,
    Path((_app_id, integration, key_id)): Path<(String, String, String)>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
) -> Answer<Json<serde_json::Value>> {
    let context = context(&state, &headers, peer);
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
    Ok(Json(serde_json::json!({})))
}
