//! One file per proto service. Each handler reads as decode -> authorize ->
//! domain call -> encode, returning `Result<_, Error>`; the trait methods only
//! convert the error into a `Status`.

/// A proto service's struct: the use cases it calls.
macro_rules! service {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name {
            app: std::sync::Arc<crate::app::App>,
        }

        impl $name {
            pub fn new(app: std::sync::Arc<crate::app::App>) -> Self {
                Self { app }
            }
        }
    };
}

/// Implements a generated service trait by delegating each RPC to a method
/// of the same struct that returns `Result<_, Error>`: the trait methods
/// only turn the error into a `Status` (`grpc::status`).
/// Items after the table (`@streaming { ... }`) go into the impl as written:
/// the streaming RPCs, which are not request-in, response-out.
macro_rules! rpcs {
    ($service:ty: $trait:ident {
        $($rpc:ident($request:ty) -> $response:ty = $handler:ident;)*
        $(@streaming { $($streaming:item)* })?
    }) => {
        #[tonic::async_trait]
        impl $trait for $service {
            $(
                async fn $rpc(
                    &self,
                    request: tonic::Request<$request>,
                ) -> Result<tonic::Response<$response>, tonic::Status> {
                    Ok(tonic::Response::new(self.$handler(request).await?))
                }
            )*
            $($($streaming)*)?
        }
    };
}

pub mod audit;
pub mod call_layer;
pub mod client_configuration;
pub mod health;
pub mod integration_keys;
pub mod limits;
pub mod page_token;
pub mod proto;
pub mod status;
pub mod time;
mod validate;
pub mod wire_errors;

pub use audit::Audit;
pub use client_configuration::ClientConfiguration;
pub use health::ConfigurationHealth;
pub use integration_keys::IntegrationKeys;

/// The caller's IP address, for per-peer throttling.
fn peer_of<T>(request: &tonic::Request<T>) -> Option<std::net::IpAddr> {
    request.remote_addr().map(|addr| addr.ip())
}

/// The credentials a call presents, its peer and the method called.
fn credentials<T>(request: &tonic::Request<T>) -> crate::app::auth::Credentials {
    let method = request
        .extensions()
        .get::<call_layer::CalledMethod>()
        .map_or("", |m| m.0);
    crate::app::auth::Credentials::from_headers(
        request.metadata().as_ref(),
        peer_of(request),
        method,
    )
}

/// Default page size of every List call.
const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page size of every List call; larger requests get this many.
const MAX_PAGE_SIZE: u64 = 1000;
