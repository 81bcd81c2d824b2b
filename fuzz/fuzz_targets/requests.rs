//! Every request's validation, on any protobuf the wire could carry. The
//! first byte picks the RPC; the rest is decoded as its request message, as
//! tonic would. Validation never panics; a rejection is always
//! INVALID_ARGUMENT with a bounded message that never quotes an API key; an
//! acceptance yields values the handlers can rely on.
#![no_main]

use latchkey::{
    domain::catalog::is_valid_integration_name,
    domain::clients::is_valid_client_id,
    error::Error,
    domain::{KeyKind, key_format::is_key_id},
    grpc::proto::v1 as pb,
    grpc::{audit, client_configuration as cc, integration_keys as ik},
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// A fixed "now" (2027-01-15), so a run is reproducible.
const NOW: i64 = 1_800_000_000_000_000;
/// An error message must fit comfortably in a `grpc-message` header.
const MAX_MESSAGE_LEN: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&rpc, body)) = data.split_first() else {
        return;
    };
    match rpc % 18 {
        0 => check::<pb::CreateIntegrationKeyRequest, _>(body, |r| {
            let valid = ik::validate_create(r, NOW)?;
            assert!(is_valid_integration_name(&r.integration));
            assert!(valid.expire_time.is_none_or(|t| t > NOW));
            assert!(valid.labels.len() <= 16 && valid.allowed_networks.len() <= 32);
            Ok(())
        }),
        1 => check::<pb::GetIntegrationKeyRequest, _>(body, |r| key_ref(&r.integration, &r.key_id)),
        2 => check::<pb::ListIntegrationKeysRequest, _>(body, |r| {
            let (size, after) = ik::validate_list(r)?;
            assert!((1..=1000).contains(&size));
            assert!(after.is_none_or(|(_, id)| is_key_id(KeyKind::Integration, &id)));
            Ok(())
        }),
        3 => check::<pb::DeleteIntegrationKeyRequest, _>(body, |r| {
            key_ref(&r.integration, &r.key_id)
        }),
        4 => check::<pb::VerifyIntegrationKeyRequest, _>(body, |r| {
            let endpoint = ik::validate_endpoint(&r.endpoint)?;
            assert!(!endpoint.is_empty() && endpoint.len() <= 255);
            // As judged for a trusted peer (anyone else's is ignored).
            if !r.caller_address.is_empty() {
                latchkey::security::callers::parse_caller_address(&r.caller_address)?;
            }
            Ok(())
        }),
        5 => check::<pb::UpdateIntegrationKeyRequest, _>(body, |r| {
            let changes = ik::validate_update(r, NOW)?;
            assert!(
                changes.display_name.is_some()
                    || changes.expire_time.is_some()
                    || changes.disabled.is_some()
                    || changes.labels.is_some()
                    || changes.allowed_networks.is_some()
            );
            Ok(())
        }),
        6 => check::<pb::RollIntegrationKeyRequest, _>(body, |r| {
            assert!(ik::validate_roll(r)? >= 0);
            Ok(())
        }),
        7 => check::<pb::ListIntegrationsRequest, _>(body, |r| {
            let (size, after) = ik::validate_list_integrations(r)?;
            assert!((1..=1000).contains(&size));
            drop(after);
            Ok(())
        }),
        8 => check::<pb::GetIntegrationRequest, _>(body, |r| {
            ik::validate_get_integration(r)?;
            assert!(is_valid_integration_name(&r.name));
            Ok(())
        }),
        9 => check::<pb::ConfigureRequest, _>(body, |r| {
            let valid = cc::validate_configure(r)?;
            let users = r
                .client_credentials
                .as_ref()
                .map_or(0, |c| c.user_api_keys.len());
            assert_eq!(valid.scopes.len(), users);
            assert!(is_valid_client_id(&r.client_id));
            Ok(())
        }),
        10 => check::<pb::ConfigureSettingsRequest, _>(body, |r| {
            let changes = cc::validate_configure_settings(r)?;
            assert_eq!(changes.len(), r.settings.len());
            Ok(())
        }),
        11 => {
            check::<pb::SetUserCredentialsRequest, _>(body, |r| cc::validate_set_user(r).map(drop))
        }
        12 => check::<pb::DeleteUserCredentialsRequest, _>(body, cc::validate_delete_user),
        13 => check::<pb::GetClientConfigurationRequest, _>(body, |r| {
            cc::validate_client_id(&r.client_id)
        }),
        14 => check::<pb::VerifyUserCredentialsRequest, _>(body, cc::validate_verify_user),
        15 => {
            check::<pb::CheckClientHealthRequest, _>(body, |r| cc::validate_client_id(&r.client_id))
        }
        16 => check::<pb::ListAuditEventsRequest, _>(body, |r| {
            let (size, filter) = audit::validate_list(r)?;
            assert!((1..=1000).contains(&size));
            if let (Some(start), Some(end)) = (filter.start_time, filter.end_time) {
                assert!(start < end);
            }
            Ok(())
        }),
        // CheckServiceHealth has no fields to validate; decoding is all.
        _ => check::<pb::CheckServiceHealthRequest, _>(body, |_| Ok(())),
    }
});

fn key_ref(integration: &str, key_id: &str) -> Result<(), Error> {
    ik::validate_key_ref(integration, key_id)?;
    assert!(is_valid_integration_name(integration));
    assert!(is_key_id(KeyKind::Integration, key_id));
    Ok(())
}

/// Decodes `body` as `M` and runs `validate`; a rejection must be a clean,
/// bounded INVALID_ARGUMENT that quotes no API key of the request: the same
/// request with every API key masked (same length and control characters,
/// so equally valid) must be rejected with the very same message.
fn check<M, F>(body: &[u8], validate: F)
where
    M: Message + Default + Clone + 'static,
    F: Fn(&M) -> Result<(), Error>,
{
    let Ok(request) = M::decode(body) else {
        return;
    };
    let Err(err) = validate(&request) else {
        return;
    };
    let message = rejection(err);
    let mut masked = request.clone();
    if mask_api_keys(&mut masked) {
        let masked_message = validate(&masked).err().map(rejection);
        assert_eq!(
            Some(&message),
            masked_message.as_ref(),
            "an API key changed the error: it was quoted"
        );
    }
}

fn rejection(err: Error) -> String {
    assert!(
        matches!(err, Error::BadRequest(ref v) if !v.is_empty()),
        "{err:?}"
    );
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let message = status.message().to_owned();
    assert!(
        message.len() <= MAX_MESSAGE_LEN,
        "message of {} bytes",
        message.len()
    );
    message
}

/// Replaces every API key and credential value in `request` by a mask;
/// false if it has none.
fn mask_api_keys<M: 'static>(request: &mut M) -> bool {
    let any: &mut dyn std::any::Any = request;
    let keys: Vec<&mut String> = if let Some(r) = any.downcast_mut::<pb::ConfigureRequest>() {
        match &mut r.client_credentials {
            Some(c) => c
                .user_api_keys
                .iter_mut()
                .map(|u| &mut u.api_key)
                .chain([&mut c.lb_api_key, &mut c.lb_api_key_owner])
                .collect(),
            None => Vec::new(),
        }
    } else if let Some(r) = any.downcast_mut::<pb::ConfigureSettingsRequest>() {
        // Credential values are secrets; their names are not.
        r.settings
            .iter_mut()
            .filter(|s| s.name.starts_with("ClientCredentials."))
            .map(|s| &mut s.value)
            .collect()
    } else if let Some(r) = any.downcast_mut::<pb::SetUserCredentialsRequest>() {
        vec![&mut r.api_key]
    } else if let Some(r) = any.downcast_mut::<pb::VerifyUserCredentialsRequest>() {
        vec![&mut r.api_key]
    } else if let Some(r) = any.downcast_mut::<pb::VerifyIntegrationKeyRequest>() {
        vec![&mut r.api_key]
    } else {
        Vec::new()
    };
    let any_keys = !keys.is_empty();
    for key in keys {
        *key = key.chars().map(mask_char).collect();
    }
    any_keys
}

/// A character of the same UTF-8 length, control characters kept.
fn mask_char(c: char) -> char {
    if c.is_control() {
        return c;
    }
    match c.len_utf8() {
        1 => 'x',
        2 => 'é',
        3 => '€',
        _ => '😀',
    }
}
