//! `GET /openapi.json`: OpenAPI 3.1 of the seed and Sunshine routes,
//! generated from their handlers' `#[utoipa::path]` and their bodies' types.

use axum::{Json, Router, routing::get};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme},
};

use super::{HttpState, seed_clients, seed_keys, sunshine};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "latchkey HTTP API",
        description = "The seed routes (integration keys, client configuration) and Sunshine \
                       Conversations' custom integration key API. Every latchkey RPC is also \
                       served as Connect unary JSON at POST /latchkey.v1.<Service>/<Method>."
    ),
    paths(
        seed_keys::create_key,
        seed_keys::list_keys,
        seed_keys::get_key,
        seed_keys::delete_key,
        seed_clients::configure,
        seed_clients::configure_settings,
        seed_clients::set_user_credentials,
        seed_clients::client_health,
        sunshine::create_key,
        sunshine::list_keys,
        sunshine::get_key,
        sunshine::delete_key,
    ),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// How the routes take credentials.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "sid",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "SID",
                "A partner key",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

pub fn routes() -> Router<HttpState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
