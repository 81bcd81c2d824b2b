//! The client side of latchkey, for Rust services.
//!
//! - [`Client`]: the calls as plain async methods with typed errors
//!   ([`ClientError`]), the partner key attached, TLS when asked.
//! - [`pb`]: the generated messages and tonic clients of every service.
//! - [`RequireIntegrationKeyLayer`]: guards a tonic service of a resource
//!   server, so that every call must carry an integration key that latchkey
//!   allows for the called method.
//!
//! Messages that carry a key or a credential (`CreateIntegrationKeyResponse`,
//! `VerifyIntegrationKeyRequest`, `Setting`, ...) print their secrets as
//! `<redacted>` with `{:?}`.

mod api;
mod guard;
mod redacted_debug;
pub mod time;

pub use api::{Client, ClientBuilder, ClientError, PartnerKey, TlsOptions};
pub use guard::{RequireIntegrationKey, RequireIntegrationKeyLayer, VerifiedCaller};

/// The token of `authorization: Bearer <token>` (the scheme in any case,
/// the token trimmed), as the guard and the latchkey server both read it.
pub fn bearer_token(headers: &tonic::codegen::http::HeaderMap) -> Option<&str> {
    let (scheme, token) = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `(name, password)` from `authorization: Basic base64(name:password)`;
/// the password is zeroed when dropped.
pub fn basic_credentials(
    headers: &tonic::codegen::http::HeaderMap,
) -> Option<(String, zeroize::Zeroizing<String>)> {
    use base64::Engine;
    let (scheme, encoded) = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    );
    let (name, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((
        name.to_owned(),
        zeroize::Zeroizing::new(password.to_owned()),
    ))
}

/// Generated messages and clients (`pb::integration_keys_service_client::...`).
/// (The proto comments quote messages like `'<name>'`, not HTML.)
#[allow(
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant,
    rustdoc::invalid_html_tags
)]
pub mod pb {
    tonic::include_proto!("latchkey.v1");
}
