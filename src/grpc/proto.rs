//! The generated gRPC server stubs, over the SDK's generated messages and
//! clients. The only module that includes them.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

pub mod v1 {
    // The messages and clients are the SDK's (build.rs: `extern_path`), so
    // their redacting `Debug` is written once, in sdk/rust.
    pub use latchkey_client::pb::*;
    tonic::include_proto!("latchkey.v1");
}

/// Encoded `FileDescriptorSet` of every latchkey proto (with imports), served
/// by server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/latchkey_descriptor.bin"));
