//! latchkey: a gRPC service that issues, verifies and revokes API keys for
//! integrations, and keeps per-client configuration and credentials, with no
//! secret stored in the clear.
//!
//! Layers, each using only those below it: `domain` (pure rules) <- `store`
//! (SeaORM data access), `security` (hashing, caches, budgets, sealing) <-
//! `app` (the use cases) <- `grpc` and `cli` (transports that translate).
//! The Rust SDK is its own crate, `latchkey-client` (`sdk/rust`), and the
//! benchmark is part of the binary only.

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod http;
pub mod security;
pub mod server;
pub mod store;
pub mod telemetry;

pub use error::Error;
