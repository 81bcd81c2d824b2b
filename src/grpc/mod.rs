//! One file per proto service. Each handler reads as decode -> authorize ->
//! domain call -> encode, returning `Result<_, Error>`; the trait methods only
//! convert the error into a `Status`.

pub mod audit;
pub mod client_configuration;
pub mod health;
pub mod integration_keys;
pub mod limits;
mod page_token;
pub mod proto;
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

/// Default page size of every List call.
const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page size of every List call; larger requests get this many.
const MAX_PAGE_SIZE: u64 = 1000;
