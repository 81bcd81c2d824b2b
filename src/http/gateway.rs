//! Every HTTP call is a gRPC call made in process: the HTTP dialects
//! translate a request into a gRPC message, send it through the very
//! service stack the gRPC listener serves (call layer, in-flight limit,
//! router, handlers), and translate the answer back. Authentication,
//! validation, throttling, audit, logs and metrics are thus the gRPC ones,
//! not a second copy that could drift; no network hop is involved.

use std::{net::SocketAddr, time::Duration};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use tonic::{Status, codegen::http, service::Routes, transport::server::TcpConnectInfo};

use crate::grpc::{call_layer::CallService, limits::InFlightLimit};

/// The gRPC service stack, as the gRPC listener serves it.
pub type GrpcStack = CallService<InFlightLimit<Routes>>;

/// What an HTTP request brings to its gRPC call besides the message. No
/// `Debug`: it carries the caller's credentials (so do the JSON bodies that
/// hold keys or client credentials, which have none either).
#[derive(Clone)]
pub struct CallContext {
    /// The credentials, as gRPC reads them: `sid` and `authorization`.
    pub sid: Option<http::HeaderValue>,
    pub authorization: Option<http::HeaderValue>,
    /// The end caller (see `http::caller`), given to gRPC as its peer.
    pub peer: SocketAddr,
    pub timeout: Option<Duration>,
}

#[derive(Clone)]
pub struct Gateway {
    grpc: GrpcStack,
}

impl Gateway {
    pub fn new(grpc: GrpcStack) -> Self {
        Self { grpc }
    }

    /// Calls the unary gRPC method at `path` (`/pkg.Service/Method`) with an
    /// encoded message; the encoded answer, or the call's status.
    pub async fn call_encoded(
        &self,
        path: &str,
        message: Bytes,
        context: &CallContext,
    ) -> Result<Bytes, Status> {
        let request = grpc_request(path, message, context)?;
        let mut grpc = self.grpc.clone();
        let ready: Result<(), std::convert::Infallible> = std::future::poll_fn(|cx| {
            <GrpcStack as tower::Service<http::Request<tonic::body::Body>>>::poll_ready(
                &mut grpc, cx,
            )
        })
        .await;
        let Ok(()) = ready;
        let Ok(response) = tower::Service::call(&mut grpc, request).await;
        let (parts, body) = response.into_parts();
        // A refusal comes in the headers alone ("trailers-only").
        if let Some(status) = Status::from_header_map(&parts.headers)
            && status.code() != tonic::Code::Ok
        {
            return Err(status);
        }
        let collected = body
            .collect()
            .await
            .map_err(|e| Status::internal(format!("reading the gRPC answer: {e}")))?;
        if let Some(trailers) = collected.trailers()
            && let Some(status) = Status::from_header_map(trailers)
            && status.code() != tonic::Code::Ok
        {
            return Err(status);
        }
        unframe(collected.to_bytes())
    }

    /// `call_encoded` with typed messages.
    pub async fn call<Req, Resp>(
        &self,
        path: &str,
        request: &Req,
        context: &CallContext,
    ) -> Result<Resp, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let answer = self
            .call_encoded(path, request.encode_to_vec().into(), context)
            .await?;
        Resp::decode(answer).map_err(|e| Status::internal(format!("decoding the gRPC answer: {e}")))
    }
}

fn grpc_request(
    path: &str,
    message: Bytes,
    context: &CallContext,
) -> Result<http::Request<tonic::body::Body>, Status> {
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0); // not compressed
    let length = u32::try_from(message.len())
        .map_err(|_| Status::invalid_argument("Bad request: message too large"))?;
    frame.put_u32(length);
    frame.put(message);
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers");
    if let Some(sid) = &context.sid {
        request = request.header("sid", sid);
    }
    if let Some(authorization) = &context.authorization {
        request = request.header(http::header::AUTHORIZATION, authorization);
    }
    if let Some(timeout) = context.timeout {
        // gRPC's timeout: at most 8 digits and a unit.
        let millis = timeout.as_millis().min(99_999_999);
        request = request.header("grpc-timeout", format!("{millis}m"));
    }
    let mut request = request
        .body(tonic::body::Body::new(http_body_util::Full::new(
            frame.freeze(),
        )))
        .map_err(|e| Status::internal(format!("building the gRPC call: {e}")))?;
    request.extensions_mut().insert(TcpConnectInfo {
        local_addr: None,
        remote_addr: Some(context.peer),
    });
    Ok(request)
}

/// The one message of a unary answer.
fn unframe(mut data: Bytes) -> Result<Bytes, Status> {
    if data.len() < 5 {
        return Err(Status::internal("the gRPC answer has no message"));
    }
    let compressed = data.get_u8();
    let length = data.get_u32() as usize;
    if compressed != 0 || data.len() < length {
        return Err(Status::internal("the gRPC answer is not one plain message"));
    }
    Ok(data.split_to(length))
}
