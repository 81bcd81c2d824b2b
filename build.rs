//! Compiles `proto/` into tonic server and client stubs, plus the encoded file
//! descriptor set that server reflection serves. `protox` parses the protos in
//! pure Rust, so no system `protoc` is needed.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/latchkey/v1/integration_keys.proto",
    "proto/latchkey/v1/client_configuration.proto",
    "proto/latchkey/v1/health.proto",
    "proto/latchkey/v1/audit.proto",
];

/// Messages whose `Debug` is written by hand, to leave their secrets out.
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
    println!("cargo:rerun-if-changed=proto");

    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("latchkey_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Messages that carry a key or credential get a redacting Debug
        // (src/proto.rs) instead of the derived one.
        .skip_debug(REDACTED_DEBUG)
        .compile_fds(fds)?;
    Ok(())
}
