//! Partner-key authentication of every management call.

use latchkey::{
    domain::{ApiKey, KeyKind, key_format::checksum},
    grpc::proto::v1::{
        CreateIntegrationKeyRequest, DeleteIntegrationKeyRequest, GetIntegrationKeyRequest,
        GetIntegrationRequest, ListIntegrationKeysRequest, ListIntegrationsRequest,
        integration_keys_service_client::IntegrationKeysServiceClient,
    },
    store,
};
use tonic::{Code, Request, Status, transport::Channel};

use crate::helpers::{TestApp, assert_status, create_partner_key, spawn_app, with_sid};

/// Calls every management RPC with `credential` applied to its request and
/// returns each outcome, named.
async fn call_every_management_rpc(
    client: &mut IntegrationKeysServiceClient<Channel>,
    credential: impl Fn(&mut tonic::metadata::MetadataMap),
) -> Vec<(&'static str, Result<(), Status>)> {
    fn req<T>(message: T, credential: &impl Fn(&mut tonic::metadata::MetadataMap)) -> Request<T> {
        let mut request = Request::new(message);
        credential(request.metadata_mut());
        request
    }
    let key_ref = (
        "learner-activity".to_owned(),
        "lki_0000000000000000".to_owned(),
    );
    vec![
        (
            "CreateIntegrationKey",
            client
                .create_integration_key(req(
                    CreateIntegrationKeyRequest {
                        integration: key_ref.0.clone(),
                        ..Default::default()
                    },
                    &credential,
                ))
                .await
                .map(drop),
        ),
        (
            "GetIntegrationKey",
            client
                .get_integration_key(req(
                    GetIntegrationKeyRequest {
                        integration: key_ref.0.clone(),
                        key_id: key_ref.1.clone(),
                    },
                    &credential,
                ))
                .await
                .map(drop),
        ),
        (
            "ListIntegrationKeys",
            client
                .list_integration_keys(req(
                    ListIntegrationKeysRequest {
                        integration: key_ref.0.clone(),
                        ..Default::default()
                    },
                    &credential,
                ))
                .await
                .map(drop),
        ),
        (
            "DeleteIntegrationKey",
            client
                .delete_integration_key(req(
                    DeleteIntegrationKeyRequest {
                        integration: key_ref.0.clone(),
                        key_id: key_ref.1.clone(),
                    },
                    &credential,
                ))
                .await
                .map(drop),
        ),
        (
            "ListIntegrations",
            client
                .list_integrations(req(ListIntegrationsRequest::default(), &credential))
                .await
                .map(drop),
        ),
        (
            "GetIntegration",
            client
                .get_integration(req(
                    GetIntegrationRequest {
                        name: key_ref.0.clone(),
                    },
                    &credential,
                ))
                .await
                .map(drop),
        ),
    ]
}

fn assert_all_unauthenticated(outcomes: Vec<(&str, Result<(), Status>)>) {
    for (rpc, outcome) in outcomes {
        let status = outcome.expect_err(rpc);
        assert_eq!(status.code(), Code::Unauthenticated, "{rpc}: {status:?}");
        assert_eq!(status.message(), "Invalid credentials", "{rpc}");
    }
}

/// A well-formed partner key (right checksum) with the given id and a secret
/// that is not the real one.
fn forged_partner_key(key_id: &str) -> String {
    let body = format!("{key_id}_{}", "Q".repeat(43));
    let sum = checksum(body.as_bytes());
    format!("{body}{sum}")
}

async fn client(app: &TestApp) -> IntegrationKeysServiceClient<Channel> {
    app.keys_client().await
}

#[tokio::test]
async fn every_management_call_needs_a_credential() {
    let app = spawn_app().await;
    let mut client = client(&app).await;
    assert_all_unauthenticated(call_every_management_rpc(&mut client, |_| {}).await);
}

#[tokio::test]
async fn unknown_malformed_and_forged_partner_keys_are_refused() {
    let app = spawn_app().await;
    let mut client = client(&app).await;
    let real_id = &app.partner_key[..20];
    let unknown = ApiKey::generate(KeyKind::Partner)
        .unwrap()
        .expose_secret()
        .to_owned();
    let integration_key = ApiKey::generate(KeyKind::Integration)
        .unwrap()
        .expose_secret()
        .to_owned();
    for bad in [
        "garbage".to_owned(),
        String::new(),
        unknown,
        forged_partner_key(real_id),
        integration_key,
        // The real key with one character changed: fails the checksum.
        format!("{}x", &app.partner_key[..app.partner_key.len() - 1]),
    ] {
        let outcomes = call_every_management_rpc(&mut client, |m| {
            m.insert("sid", bad.parse().unwrap());
        })
        .await;
        assert_all_unauthenticated(outcomes);
    }
    let outcomes = call_every_management_rpc(&mut client, |m| {
        m.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    })
    .await;
    assert_all_unauthenticated(outcomes);
}

#[tokio::test]
async fn sid_and_bearer_both_authenticate() {
    let app = spawn_app().await;
    let mut client = client(&app).await;
    let key = app.partner_key.clone();
    for outcome in call_every_management_rpc(&mut client, |m| {
        m.insert("sid", key.parse().unwrap());
    })
    .await
    {
        // Authenticated: whatever the outcome, it is not UNAUTHENTICATED.
        if let (rpc, Err(status)) = outcome {
            assert_ne!(status.code(), Code::Unauthenticated, "{rpc}");
        }
    }
    let bearer = format!("Bearer {key}");
    for outcome in call_every_management_rpc(&mut client, |m| {
        m.insert("authorization", bearer.parse().unwrap());
    })
    .await
    {
        if let (rpc, Err(status)) = outcome {
            assert_ne!(status.code(), Code::Unauthenticated, "{rpc}");
        }
    }
    client
        .list_integrations(with_sid(ListIntegrationsRequest::default(), &key))
        .await
        .expect("a valid sid lists integrations");
}

#[tokio::test]
async fn a_revoked_partner_key_stops_working_at_once_even_when_cached() {
    let app = spawn_app().await;
    let mut client = client(&app).await;
    let second = create_partner_key(&app.db, "second admin").await;
    // Warm the cache for both keys.
    for key in [&app.partner_key, &second] {
        client
            .list_integrations(with_sid(ListIntegrationsRequest::default(), key))
            .await
            .expect("valid key");
    }
    // Revoke out of band, as `latchkey partner-keys revoke` does from
    // another process.
    assert!(
        store::partner_keys::revoke(&app.db, &second[..20], latchkey::domain::time::now_micros())
            .await
            .unwrap()
    );
    assert_status(
        client
            .list_integrations(with_sid(ListIntegrationsRequest::default(), &second))
            .await,
        Code::Unauthenticated,
        "Invalid credentials",
    );
    // The other key is unaffected.
    client
        .list_integrations(with_sid(
            ListIntegrationsRequest::default(),
            &app.partner_key,
        ))
        .await
        .expect("other key still valid");
}

#[tokio::test]
async fn a_wrong_secret_for_a_cached_key_id_is_refused() {
    let app = spawn_app().await;
    let mut client = client(&app).await;
    client
        .list_integrations(app.as_partner(ListIntegrationsRequest::default()))
        .await
        .expect("warm the cache");
    assert_status(
        client
            .list_integrations(with_sid(
                ListIntegrationsRequest::default(),
                &forged_partner_key(&app.partner_key[..20]),
            ))
            .await,
        Code::Unauthenticated,
        "Invalid credentials",
    );
}

/// The key with this key id and a different (checksummed) secret.
fn wrong_partner_secret(partner_key: &str) -> String {
    let guess = ApiKey::generate(KeyKind::Partner).unwrap();
    let body = format!("{}{}", &partner_key[..20], &guess.expose_secret()[20..64]);
    format!("{body}{}", checksum(body.as_bytes()))
}

#[tokio::test]
async fn guessing_a_partner_key_is_throttled_without_argon2_and_recovers() {
    use latchkey::security::throttle::{Budget, ThrottleSettings};
    // Three failures per key id, one forgiven every 5 s.
    let app = crate::helpers::spawn_app_with(|s| {
        s.verifier.throttle = ThrottleSettings {
            per_key: Budget {
                burst: 3,
                per_second: 0.2,
            },
            per_peer: Budget {
                burst: 1000,
                per_second: 0.2,
            },
        }
    })
    .await;
    let target = create_partner_key(&app.db, "target").await;
    let channel = app.channel().await;
    let list = |key: String| {
        let mut client = IntegrationKeysServiceClient::new(channel.clone());
        async move {
            client
                .list_integrations(with_sid(ListIntegrationsRequest::default(), &key))
                .await
                .map(drop)
        }
    };
    // The app's own partner key is proven (cached) before the attack.
    list(app.partner_key.clone()).await.unwrap();
    let bad = wrong_partner_secret(&target);
    for _ in 0..3 {
        assert_status(
            list(bad.clone()).await,
            Code::Unauthenticated,
            "Invalid credentials",
        );
    }
    let runs = app.state.hasher.runs();
    // Spent: even the right key is refused, without argon2.
    assert_status(
        list(target.clone()).await,
        Code::Unauthenticated,
        "Invalid credentials",
    );
    assert_status(
        list(bad.clone()).await,
        Code::Unauthenticated,
        "Invalid credentials",
    );
    assert_eq!(app.state.hasher.runs(), runs, "no argon2 while throttled");
    // Another partner key, proven before, is not affected.
    list(app.partner_key.clone()).await.unwrap();
    // The budget refills.
    crate::helpers::eventually(
        std::time::Duration::from_secs(30),
        "the budget to refill",
        || {
            let attempt = list(target.clone());
            async move { attempt.await.ok() }
        },
    )
    .await;
}
