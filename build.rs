//! Compiles `proto/` into tonic server stubs (over the SDK's messages), plus the encoded file
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build prints no rerun-if-changed of its own.
    println!("cargo:rerun-if-changed=proto");

    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("latchkey_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        // The messages (with the redacting Debug of those that carry a key
        // or a credential) and the clients are the SDK's: one set of types
        // for the server, its tests and every Rust caller.
        .extern_path(".latchkey.v1", "::latchkey_client::pb")
        .compile_fds(fds)?;
    Ok(())
}
