//! latchkey: a gRPC service that issues, verifies and revokes API keys for
//! integrations, and keeps per-client configuration and credentials, with no
//! secret stored in the clear.
//!
//! The binary is a thin shell over this library (see `cli`); tests use the
//! same modules. The Rust SDK is its own crate, `latchkey-client`
//! (`sdk/rust`), and the benchmark is part of the binary only.

pub mod audit;
pub mod auth;
pub mod callers;
pub mod catalog;
pub mod cli;
pub mod client_config;
pub mod config;
pub mod crypto;
pub mod error;
pub mod grants;
pub mod keys;
pub mod limits;
pub mod proto;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod usage;
pub mod verification;
pub mod wire_errors;

pub use error::Error;
