//! The generated protobuf and gRPC code. The only module that includes it.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

pub mod v1 {
    tonic::include_proto!("latchkey.v1");
}

/// Encoded `FileDescriptorSet` of every latchkey proto (with imports), served
/// by server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/latchkey_descriptor.bin"));
