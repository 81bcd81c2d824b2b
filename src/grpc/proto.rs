//! The generated protobuf and gRPC code. The only module that includes it.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

pub mod v1 {
    tonic::include_proto!("latchkey.v1");
}

/// Encoded `FileDescriptorSet` of every latchkey proto (with imports), served
/// by server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/latchkey_descriptor.bin"));

/// `Debug` for the messages that carry a key or a credential (build.rs
/// skips their derived one): every other field as usual, the secret as
/// `<redacted>`, so a `{:?}` in a log or a panic message cannot leak it.
/// The SDK's generated types get the same impls
/// (sdk/rust/src/redacted_debug.rs); keep the two in step.
mod redacted_debug {
    use std::fmt;

    use super::v1::{
        ClientCredentials, CreateIntegrationKeyResponse, RollIntegrationKeyResponse,
        SetUserCredentialsRequest, Setting, UserApiKey, VerifyIntegrationKeyRequest,
        VerifyUserCredentialsRequest,
    };

    const REDACTED: &str = "<redacted>";

    impl fmt::Debug for CreateIntegrationKeyResponse {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("CreateIntegrationKeyResponse")
                .field("key", &self.key)
                .field("api_key", &REDACTED)
                .finish()
        }
    }

    impl fmt::Debug for RollIntegrationKeyResponse {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RollIntegrationKeyResponse")
                .field("key", &self.key)
                .field("api_key", &REDACTED)
                .field("previous_key", &self.previous_key)
                .finish()
        }
    }

    impl fmt::Debug for VerifyIntegrationKeyRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("VerifyIntegrationKeyRequest")
                .field("api_key", &REDACTED)
                .field("endpoint", &self.endpoint)
                .field("caller_address", &self.caller_address)
                .finish()
        }
    }

    impl fmt::Debug for UserApiKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("UserApiKey")
                .field("user", &self.user)
                .field("api_key", &REDACTED)
                .field("scope", &self.scope)
                .finish()
        }
    }

    impl fmt::Debug for ClientCredentials {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // Both LearningBuilder values are ClientCredentials.*: secrets.
            f.debug_struct("ClientCredentials")
                .field("user_api_keys", &self.user_api_keys)
                .field("lb_api_key_owner", &REDACTED)
                .field("lb_api_key", &REDACTED)
                .finish()
        }
    }

    impl fmt::Debug for Setting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // A request names a credential without marking it secret.
            let secret = self.secret || self.name.starts_with("ClientCredentials.");
            let value: &dyn fmt::Debug = if secret { &REDACTED } else { &self.value };
            f.debug_struct("Setting")
                .field("name", &self.name)
                .field("value", value)
                .field("secret", &self.secret)
                .finish()
        }
    }

    impl fmt::Debug for SetUserCredentialsRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SetUserCredentialsRequest")
                .field("client_id", &self.client_id)
                .field("user", &self.user)
                .field("api_key", &REDACTED)
                .field("scope", &self.scope)
                .finish()
        }
    }

    impl fmt::Debug for VerifyUserCredentialsRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("VerifyUserCredentialsRequest")
                .field("client_id", &self.client_id)
                .field("user", &self.user)
                .field("api_key", &REDACTED)
                .finish()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::super::v1::*;

        const SECRET: &str = "s3cret-value-that-must-not-show";

        #[test]
        fn debug_never_shows_a_key_or_a_credential() {
            let user_key = UserApiKey {
                user: "admin".into(),
                api_key: SECRET.into(),
                scope: Scope::System.into(),
            };
            let shown = [
                format!(
                    "{:?}",
                    CreateIntegrationKeyResponse {
                        key: None,
                        api_key: SECRET.into()
                    }
                ),
                format!(
                    "{:?}",
                    RollIntegrationKeyResponse {
                        api_key: SECRET.into(),
                        ..Default::default()
                    }
                ),
                format!(
                    "{:?}",
                    VerifyIntegrationKeyRequest {
                        api_key: SECRET.into(),
                        ..Default::default()
                    }
                ),
                format!(
                    "{:?}",
                    ConfigureRequest {
                        client_id: "acme".into(),
                        client_credentials: Some(ClientCredentials {
                            user_api_keys: vec![user_key],
                            lb_api_key_owner: SECRET.into(),
                            lb_api_key: SECRET.into(),
                        }),
                        ..Default::default()
                    }
                ),
                format!(
                    "{:?}",
                    ConfigureSettingsRequest {
                        client_id: "acme".into(),
                        settings: vec![Setting {
                            name: "ClientCredentials.NursysPassword".into(),
                            value: SECRET.into(),
                            secret: false,
                        }],
                    }
                ),
                format!(
                    "{:?}",
                    SetUserCredentialsRequest {
                        api_key: SECRET.into(),
                        ..Default::default()
                    }
                ),
                format!(
                    "{:?}",
                    VerifyUserCredentialsRequest {
                        api_key: SECRET.into(),
                        ..Default::default()
                    }
                ),
            ];
            for text in &shown {
                assert!(!text.contains(SECRET), "{text}");
                assert!(text.contains("<redacted>"), "{text}");
            }
            // Settings that are not credentials show their value.
            let plain = Setting {
                name: "ClientSettings.Color".into(),
                value: "blue".into(),
                secret: false,
            };
            assert!(format!("{plain:?}").contains("blue"));
        }
    }
}
