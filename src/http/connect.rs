//! Connect unary JSON for every unary RPC of every latchkey service:
//! `POST /latchkey.v1.<Service>/<Method>` with the request in the proto3
//! JSON mapping, answered in the same mapping or with a Connect error.
//! Messages are transcoded through the services' own descriptors, so a new
//! RPC or field needs no code here.

use std::sync::LazyLock;

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, SerializeOptions};
use tonic::{Code, Status};

use super::{
    HttpState, call_context,
    errors::{Dialect, HttpError, answer},
    json_error, read_body, require_json,
};

/// The latchkey services' descriptors (the set reflection serves).
static POOL: LazyLock<Result<DescriptorPool, prost_reflect::DescriptorError>> =
    LazyLock::new(|| DescriptorPool::decode(crate::grpc::proto::FILE_DESCRIPTOR_SET));

pub fn routes() -> Router<HttpState> {
    Router::new().route("/{service}/{method}", post(unary))
}

/// The unary method `service`/`method`, if latchkey serves it.
fn unary_method(service: &str, method: &str) -> Option<MethodDescriptor> {
    if !service.starts_with("latchkey.v1.") {
        return None;
    }
    let pool = POOL.as_ref().ok()?;
    pool.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method && !m.is_client_streaming() && !m.is_server_streaming())
}

async fn unary(
    State(state): State<HttpState>,
    Path((service, method)): Path<(String, String)>,
    peer: ConnectInfo<super::Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(descriptor) = unary_method(&service, &method) else {
        return answer(
            Dialect::Connect,
            StatusCode::NOT_FOUND,
            Code::Unimplemented,
            &format!("No unary method {service}/{method}"),
        );
    };
    let context = call_context(&state, &headers, peer);
    match call(&state, &descriptor, &headers, body, &context).await {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn call(
    state: &HttpState,
    descriptor: &MethodDescriptor,
    headers: &HeaderMap,
    body: Body,
    context: &super::gateway::CallContext,
) -> Result<Vec<u8>, HttpError> {
    let body = read_body(body, Dialect::Connect).await?;
    require_json(headers, &body, Dialect::Connect)?;
    let request = from_json(descriptor.input(), &body)?;
    let path = format!(
        "/{}/{}",
        descriptor.parent_service().full_name(),
        descriptor.name()
    );
    let answer = state
        .gateway
        .call_encoded(&path, request.encode_to_vec().into(), context)
        .await
        .map_err(|status| HttpError::new(Dialect::Connect, status))?;
    let answer = DynamicMessage::decode(descriptor.output(), answer).map_err(|e| {
        HttpError::new(
            Dialect::Connect,
            Status::internal(format!("decoding the answer: {e}")),
        )
    })?;
    to_json(&answer).map_err(|status| HttpError::new(Dialect::Connect, status))
}

/// A message from its proto3 JSON form (an empty body is `{}`).
fn from_json(
    descriptor: prost_reflect::MessageDescriptor,
    body: &[u8],
) -> Result<DynamicMessage, HttpError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let message = DynamicMessage::deserialize(descriptor, &mut deserializer)
        .and_then(|message| deserializer.end().map(|()| message))
        .map_err(|e| json_error(Dialect::Connect, &e))?;
    Ok(message)
}

/// A message in its proto3 JSON form (field names in lowerCamelCase,
/// defaults left out).
fn to_json(message: &DynamicMessage) -> Result<Vec<u8>, Status> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .map_err(|e| Status::internal(format!("encoding the answer: {e}")))?;
    Ok(out)
}
