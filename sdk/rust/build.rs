//! Compiles the latchkey protos (`../../proto`, the same files the server is
//! built from) into the generated messages and tonic clients. `protox`
//! parses the protos in pure Rust, so no system `protoc` is needed.

const PROTO_ROOT: &str = "../../proto";

const PROTOS: &[&str] = &[
    "../../proto/latchkey/v1/integration_keys.proto",
    "../../proto/latchkey/v1/client_configuration.proto",
    "../../proto/latchkey/v1/health.proto",
    "../../proto/latchkey/v1/audit.proto",
];

/// Messages whose `Debug` is written by hand (src/redacted_debug.rs), to
/// leave their secrets out. The server uses these same types (its build.rs
/// names them with `extern_path`), so this list and those impls are the only ones.
const REDACTED_DEBUG: &[&str] = &[
    ".latchkey.v1.CreateIntegrationKeyResponse",
    ".latchkey.v1.RollIntegrationKeyResponse",
    ".latchkey.v1.VerifyIntegrationKeyRequest",
    ".latchkey.v1.UserApiKey",
    ".latchkey.v1.ClientCredentials",
    ".latchkey.v1.Setting",
    ".latchkey.v1.SetUserCredentialsRequest",
    ".latchkey.v1.VerifyUserCredentialsRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build prints no rerun-if-changed of its own.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let fds = protox::compile(PROTOS, [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .skip_debug(REDACTED_DEBUG)
        .compile_fds(fds)?;
    Ok(())
}
