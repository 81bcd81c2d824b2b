//! `Debug` for the messages that carry a key or a credential (build.rs
//! skips their derived one): every other field as usual, the secret as
//! `<redacted>`, so a `{:?}` in a log or a panic message cannot leak it.
//! The server uses these same types (its build.rs maps the package here
//! with `extern_path`), so these are the only impls.

use std::fmt;

use crate::pb::{
    ClientCredentials, CreateIntegrationKeyResponse, RollIntegrationKeyResponse,
    SetUserCredentialsRequest, Setting, UserApiKey, VerifyIntegrationKeyRequest,
    VerifyUserCredentialsRequest,
};

const REDACTED: &str = "<redacted>";

/// `Debug` for a message from its fields in order, each shown as usual or,
/// marked `secret`, as `<redacted>`.
macro_rules! redacted_debug {
    ($($message:ident { $($field:ident $(: $secret:ident)?),* $(,)? })*) => {$(
        impl fmt::Debug for $message {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($message))
                    $(.field(stringify!($field), redacted_debug!(@value self.$field $(, $secret)?)))*
                    .finish()
            }
        }
    )*};
    (@value $value:expr) => { &$value };
    (@value $value:expr, secret) => { &REDACTED };
}

redacted_debug! {
    CreateIntegrationKeyResponse { key, api_key: secret }
    RollIntegrationKeyResponse { key, api_key: secret, previous_key }
    VerifyIntegrationKeyRequest { api_key: secret, endpoint, caller_address }
    UserApiKey { user, api_key: secret, scope }
    // Both LearningBuilder values are ClientCredentials.*: secrets.
    ClientCredentials { user_api_keys, lb_api_key_owner: secret, lb_api_key: secret }
    SetUserCredentialsRequest { client_id, user, api_key: secret, scope }
    VerifyUserCredentialsRequest { client_id, user, api_key: secret }
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

#[cfg(test)]
mod tests {
    use crate::pb::*;

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
