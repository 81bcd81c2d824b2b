//! The client side of latchkey, for Rust services.
//!
//! - [`Client`]: the calls as plain async methods with typed errors
//!   ([`ClientError`]), the partner key attached, TLS when asked.
//! - [`pb`]: the generated messages and tonic clients of every service.
//! - [`RequireIntegrationKeyLayer`]: guards a tonic service of a resource
//!   server, so that every call must carry an integration key that latchkey
//!   allows for the called method.

mod api;
mod guard;

pub use api::{Client, ClientBuilder, ClientError, PartnerKey, TlsOptions};
pub use guard::{RequireIntegrationKey, RequireIntegrationKeyLayer, VerifiedCaller};

/// Generated messages and clients (`pb::integration_keys_service_client::...`).
pub use crate::grpc::proto::v1 as pb;
