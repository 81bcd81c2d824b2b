//! Integration tests: a real server on 127.0.0.1:0, real tonic clients, a
//! real database. One test binary, a module per area, to keep link times down.

mod abuse;
mod audit;
mod auth;
mod authz;
mod cli;
mod client_config;
mod crash;
mod faults;
mod health;
mod helpers;
mod hostile;
mod http;
mod integration_keys;
mod integrations;
mod lifecycle;
mod names;
mod operations;
mod paging;
mod rate_limits;
mod reflection;
mod replicas;
mod resilience;
mod restrictions;
mod rotation;
mod sdk;
mod secrets;
mod secrets_session;
mod test_db;
mod tls;
mod verify;
mod watch;
