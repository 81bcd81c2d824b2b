//! A whole session of every flow, against a real `latchkey serve` at trace
//! level: partner keys, integration keys (create, verify, get, list, update,
//! roll, delete, refusals), client configuration (configure, settings, user
//! credentials, verification, health), the audit trail and master-key
//! rotation. Afterwards no secret the session created or presented (keys,
//! user API keys, client credentials, the master key, stored hashes) is in
//! the server's log, a command's output, an error message, any answer but
//! the one that handed a new key out, or the database.

use std::fmt::Debug;

use latchkey::{
    domain::{ApiKey, KeyKind},
    grpc::proto::v1::{
        self as pb, audit_service_client::AuditServiceClient,
        client_configuration_service_client::ClientConfigurationServiceClient,
        health_service_client::HealthServiceClient,
        integration_keys_service_client::IntegrationKeysServiceClient,
    },
};
use sea_orm::EntityTrait;
use tonic::{Status, transport::Channel};

use crate::{
    cli::latchkey,
    helpers::{basic, with_sid},
    secrets::ServeProcess,
    test_db::TestDb,
};

const INTEGRATION: &str = "learner-activity";
const OUTLINE: &str = "course.v1.CourseService/GetOutline";
const CLIENT: &str = "acme";
const ADMIN_KEY: &str = "admin-secret-key-5f1e2d3c4b5a6978";
const VIEWER_KEY: &str = "viewer-secret-key-0a9b8c7d6e5f4a3b";
const OPS_KEY: &str = "ops-secret-key-77aa66bb55cc44dd";
const OPS_KEY_2: &str = "ops-secret-key-rotated-1f2e3d4c";
const LB_API_KEY: &str = "lb-api-key-secret-c0ffee1234567890";
const TOKEN_SETTING: &str = "ClientCredentials.WebhookToken";
const TOKEN_VALUE: &str = "webhook-token-secret-8e7d6c5b4a39";
/// A secret pasted into fields where it does not belong.
const PASTED: &str = "pasted-secret-9d8c7b6a5f4e3d2c1b0a";

/// Everything the session saw that is not a new key being handed out.
#[derive(Default)]
struct Seen {
    /// Error messages (and details) of refused calls.
    errors: Vec<String>,
    /// Successful answers that carry no new key.
    answers: Vec<String>,
}

impl Seen {
    /// Records a call's answer; panics if `ok` does not match the outcome.
    fn call<T: Debug>(
        &mut self,
        what: &str,
        result: Result<tonic::Response<T>, Status>,
        ok: bool,
    ) -> Option<T> {
        match result {
            Ok(response) => {
                assert!(ok, "{what}: expected a refusal, got {response:?}");
                self.answers.push(format!("{response:?}"));
                Some(response.into_inner())
            }
            Err(status) => {
                assert!(!ok, "{what}: {status:?}");
                assert!(
                    !matches!(status.code(), tonic::Code::Internal | tonic::Code::Unknown),
                    "{what}: {status:?}"
                );
                self.errors.push(format!("{status:?}"));
                None
            }
        }
    }
}

/// Every argon2 hash and sealed value the database held at any snapshot.
#[derive(Default)]
struct Digests {
    hashes: std::collections::BTreeSet<String>,
    sealed: std::collections::BTreeSet<String>,
    /// Sealed values in the latest snapshot.
    sealed_now: usize,
}

impl Digests {
    async fn add_from(&mut self, url: &str) {
        let db = latchkey::store::connect(&latchkey::store::DbOptions::new(url.to_owned()))
            .await
            .unwrap();
        self.add(&db).await;
        db.close().await.unwrap();
    }

    async fn add(&mut self, db: &sea_orm::DatabaseConnection) {
        let keys = entity::integration_key::Entity::find()
            .all(db)
            .await
            .unwrap();
        let partners = entity::partner_key::Entity::find().all(db).await.unwrap();
        let users = entity::client_user::Entity::find().all(db).await.unwrap();
        self.hashes.extend(keys.into_iter().map(|r| r.key_hash));
        self.hashes.extend(partners.into_iter().map(|r| r.key_hash));
        self.hashes.extend(users.into_iter().map(|r| r.key_hash));
        let sealed: Vec<String> = entity::client_setting::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.secret)
            .map(|s| s.value)
            .collect();
        self.sealed_now = sealed.len();
        self.sealed.extend(sealed);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_of_every_flow_leaves_no_secret_behind() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(dir.path()).await;
    let url = test_db.url.clone();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, crate::helpers::TEST_CATALOG).unwrap();
    // (stdout, stderr) of a command that must succeed.
    let cli = |args: &[&str]| {
        let output = latchkey(&url, args);
        assert!(output.status.success(), "{args:?}: {output:?}");
        (
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    // Creation prints the new key on stdout (its one showing); stderr and
    // every other command's output are scanned.
    let mut outputs = Vec::new();
    let (created, err) = cli(&["partner-keys", "create", "--name", "ops"]);
    let partner_key = created.trim().to_owned();
    outputs.push(err);
    let (created, err) = cli(&["partner-keys", "create", "--name", "leaver"]);
    let revoked_partner = created.trim().to_owned();
    outputs.push(err);
    let (out, err) = cli(&["partner-keys", "revoke", &revoked_partner[..20]]);
    outputs.extend([out, err]);
    let (out, err) = cli(&["partner-keys", "list"]);
    outputs.extend([out, err]);

    let mut server = ServeProcess::start(&url, catalog.to_str().unwrap());
    let addr = server.wait_for_addr().await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut keys = IntegrationKeysServiceClient::new(channel.clone());
    let mut config = ClientConfigurationServiceClient::new(channel.clone());
    let mut health = HealthServiceClient::new(channel.clone());
    let mut audit = AuditServiceClient::new(channel);
    let mut seen = Seen::default();
    let mut snapshots = Digests::default();
    macro_rules! p {
        ($message:expr) => {
            with_sid($message, &partner_key)
        };
    }

    // Integration keys. Creation answers hand the key out: not recorded.
    let mut issued = Vec::new();
    for name in ["first", "second"] {
        let created = keys
            .create_integration_key(p!(pb::CreateIntegrationKeyRequest {
                integration: INTEGRATION.into(),
                display_name: name.into(),
                expire_time: None,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        issued.push(created.api_key);
    }
    let id = |key: &str| key[..20].to_owned();
    let verify = |api_key: &str, endpoint: &str| pb::VerifyIntegrationKeyRequest {
        api_key: api_key.into(),
        endpoint: endpoint.into(),
        ..Default::default()
    };
    let wrong_secret = {
        let guess = ApiKey::generate(KeyKind::Integration).unwrap();
        let body = format!("{}{}", &issued[0][..20], &guess.expose_secret()[20..64]);
        format!(
            "{body}{}",
            latchkey::domain::key_format::checksum(body.as_bytes())
        )
    };
    let unknown = ApiKey::generate(KeyKind::Integration)
        .unwrap()
        .expose_secret()
        .to_owned();
    for (api_key, endpoint) in [
        (issued[0].as_str(), OUTLINE),
        (issued[0].as_str(), "other.v1.Other/Call"),
        (wrong_secret.as_str(), OUTLINE),
        (unknown.as_str(), OUTLINE),
        (partner_key.as_str(), OUTLINE),
    ] {
        seen.call(
            "verify",
            keys.verify_integration_key(verify(api_key, endpoint)).await,
            true,
        );
    }
    // A key pasted into the endpoint field: too long, refused without an echo.
    let long_paste = format!("{}/{}", issued[1], "x".repeat(300));
    seen.call(
        "verify, key as endpoint",
        keys.verify_integration_key(verify(&issued[1], &long_paste))
            .await,
        false,
    );
    seen.call(
        "get",
        keys.get_integration_key(p!(pb::GetIntegrationKeyRequest {
            integration: INTEGRATION.into(),
            key_id: id(&issued[0]),
        }))
        .await,
        true,
    );
    seen.call(
        "get, full key as id",
        keys.get_integration_key(p!(pb::GetIntegrationKeyRequest {
            integration: INTEGRATION.into(),
            key_id: issued[0].clone(),
        }))
        .await,
        false,
    );
    seen.call(
        "list",
        keys.list_integration_keys(p!(pb::ListIntegrationKeysRequest {
            integration: INTEGRATION.into(),
            page_size: 1,
            ..Default::default()
        }))
        .await,
        true,
    );
    seen.call(
        "update",
        keys.update_integration_key(p!(pb::UpdateIntegrationKeyRequest {
            key: Some(pb::IntegrationKey {
                key_id: id(&issued[0]),
                integration: INTEGRATION.into(),
                display_name: "renamed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        }))
        .await,
        true,
    );
    let rolled = keys
        .roll_integration_key(p!(pb::RollIntegrationKeyRequest {
            integration: INTEGRATION.into(),
            key_id: id(&issued[0]),
            grace_period: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    issued.push(rolled.api_key);
    seen.call(
        "verify rolled",
        keys.verify_integration_key(verify(&issued[2], OUTLINE))
            .await,
        true,
    );
    snapshots.add_from(&url).await;
    seen.call(
        "delete",
        keys.delete_integration_key(p!(pb::DeleteIntegrationKeyRequest {
            integration: INTEGRATION.into(),
            key_id: id(&issued[1]),
        }))
        .await,
        true,
    );
    seen.call(
        "verify deleted",
        keys.verify_integration_key(verify(&issued[1], OUTLINE))
            .await,
        true,
    );
    seen.call(
        "revoked partner key",
        keys.list_integrations(with_sid(
            pb::ListIntegrationsRequest::default(),
            &revoked_partner,
        ))
        .await,
        false,
    );
    seen.call(
        "integration key as partner key",
        keys.list_integrations(with_sid(pb::ListIntegrationsRequest::default(), &issued[0]))
            .await,
        false,
    );
    seen.call(
        "integrations",
        keys.list_integrations(p!(pb::ListIntegrationsRequest::default()))
            .await,
        true,
    );

    // Client configuration.
    let user = |user: &str, api_key: &str, scope: pb::Scope| pb::UserApiKey {
        user: user.into(),
        api_key: api_key.into(),
        scope: scope.into(),
    };
    seen.call(
        "configure",
        config
            .configure(p!(pb::ConfigureRequest {
                client_id: CLIENT.into(),
                client_credentials: Some(pb::ClientCredentials {
                    user_api_keys: vec![
                        user("admin", ADMIN_KEY, pb::Scope::System),
                        user("viewer", VIEWER_KEY, pb::Scope::Client),
                    ],
                    lb_api_key_owner: "admin".into(),
                    lb_api_key: LB_API_KEY.into(),
                }),
                client_settings: [("LbHostOverride".to_owned(), "lb.acme.example".to_owned())]
                    .into(),
            }))
            .await,
        true,
    );
    seen.call(
        "configure, a key with a control character",
        config
            .configure(p!(pb::ConfigureRequest {
                client_id: "bad-client".into(),
                client_credentials: Some(pb::ClientCredentials {
                    user_api_keys: vec![user(
                        "admin",
                        &format!("{PASTED}\u{7}"),
                        pb::Scope::System,
                    )],
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .await,
        false,
    );
    let setting = |name: &str, value: &str| pb::Setting {
        name: name.into(),
        value: value.into(),
        secret: false,
    };
    seen.call(
        "settings as SYSTEM user",
        config
            .configure_settings(basic(
                pb::ConfigureSettingsRequest {
                    client_id: CLIENT.into(),
                    settings: vec![setting(TOKEN_SETTING, TOKEN_VALUE)],
                },
                "admin",
                ADMIN_KEY,
            ))
            .await,
        true,
    );
    seen.call(
        "credential as CLIENT user",
        config
            .configure_settings(basic(
                pb::ConfigureSettingsRequest {
                    client_id: CLIENT.into(),
                    settings: vec![setting(TOKEN_SETTING, PASTED)],
                },
                "viewer@acme",
                VIEWER_KEY,
            ))
            .await,
        false,
    );
    for (api_key, ok) in [(OPS_KEY, true), (OPS_KEY_2, true)] {
        seen.call(
            "set user",
            config
                .set_user_credentials(p!(pb::SetUserCredentialsRequest {
                    client_id: CLIENT.into(),
                    user: "ops".into(),
                    api_key: api_key.into(),
                    scope: pb::Scope::Client.into(),
                }))
                .await,
            ok,
        );
        snapshots.add_from(&url).await;
    }
    for (name, api_key) in [
        ("ops", OPS_KEY_2),
        ("ops", OPS_KEY),
        ("admin", PASTED),
        ("nobody", PASTED),
    ] {
        seen.call(
            "verify user",
            config
                .verify_user_credentials(pb::VerifyUserCredentialsRequest {
                    client_id: CLIENT.into(),
                    user: name.into(),
                    api_key: api_key.into(),
                })
                .await,
            true,
        );
    }
    seen.call(
        "wrong user key",
        config
            .get_client_configuration(basic(
                pb::GetClientConfigurationRequest {
                    client_id: CLIENT.into(),
                },
                "admin",
                PASTED,
            ))
            .await,
        false,
    );
    seen.call(
        "configuration as CLIENT user",
        config
            .get_client_configuration(basic(
                pb::GetClientConfigurationRequest {
                    client_id: CLIENT.into(),
                },
                "viewer",
                VIEWER_KEY,
            ))
            .await,
        true,
    );
    seen.call(
        "client health",
        health
            .check_client_health(p!(pb::CheckClientHealthRequest {
                client_id: CLIENT.into(),
            }))
            .await,
        true,
    );
    seen.call(
        "service health",
        health
            .check_service_health(p!(pb::CheckServiceHealthRequest {}))
            .await,
        true,
    );
    seen.call(
        "delete user",
        config
            .delete_user_credentials(p!(pb::DeleteUserCredentialsRequest {
                client_id: CLIENT.into(),
                user: "ops".into(),
            }))
            .await,
        true,
    );
    // A key sent as the Basic user name with no password (`curl -u KEY:`):
    // refused, and named in the call log and the audit trail by its public
    // id at most.
    for (what, name) in [
        ("partner key", partner_key.as_str()),
        ("user key", VIEWER_KEY),
    ] {
        seen.call(
            &format!("{what} as the Basic user name"),
            config
                .get_client_configuration(basic(
                    pb::GetClientConfigurationRequest {
                        client_id: CLIENT.into(),
                    },
                    name,
                    "",
                ))
                .await,
            false,
        );
    }
    seen.call(
        "audit",
        audit
            .list_audit_events(p!(pb::ListAuditEventsRequest {
                page_size: 1000,
                ..Default::default()
            }))
            .await,
        true,
    );

    snapshots.add_from(&url).await;
    let (status, log) = server.terminate().await;
    assert!(status.success(), "{log}");
    assert!(log.lines().count() > 50, "trace logging was on");

    // The master key rotates too; the command prints no key.
    let new_master_key = dir.path().join("new-master.key");
    let (out, err) = cli(&[
        "rotate-master-key",
        "--new-master-key-file",
        new_master_key.to_str().unwrap(),
    ]);
    outputs.extend([out, err]);
    let new_master = std::fs::read_to_string(&new_master_key)
        .unwrap()
        .trim()
        .to_owned();

    let db = latchkey::store::connect(&latchkey::store::DbOptions::new(url.clone()))
        .await
        .unwrap();
    // Stored digests now; earlier snapshots hold those the session replaced
    // or deleted, and the values sealed under the master key it rotated.
    let mut stored_digests = snapshots;
    stored_digests.add(&db).await;
    let sealed_now = stored_digests.sealed_now;
    let stored = test_db.raw_contents(&db).await;
    db.close().await.unwrap();
    assert_eq!(
        sealed_now, 3,
        "LbApiKeyOwner, LbApiKey and the webhook token are sealed"
    );
    // 3 integration keys (one deleted), 2 partner keys, 3 users with 4 keys
    // (one replaced, one deleted).
    assert!(
        stored_digests.hashes.len() >= 9,
        "{} hashes",
        stored_digests.hashes.len()
    );

    // Every secret, whole and (for keys) the secret part alone.
    let mut secrets: Vec<String> = vec![
        ADMIN_KEY,
        VIEWER_KEY,
        OPS_KEY,
        OPS_KEY_2,
        LB_API_KEY,
        TOKEN_VALUE,
        PASTED,
        crate::helpers::TEST_MASTER_KEY,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    secrets.push(new_master);
    for key in issued
        .iter()
        .chain([&partner_key, &revoked_partner, &wrong_secret, &unknown])
    {
        secrets.push(key.clone());
        secrets.push(key[21..].to_owned());
    }
    let digests: Vec<String> = stored_digests
        .hashes
        .iter()
        .map(|h| h.rsplit('$').next().unwrap().to_owned())
        .chain(stored_digests.sealed)
        .collect();
    assert!(digests.iter().all(|d| d.len() >= 16));

    let places = [
        ("the server log", log),
        ("command output", outputs.join("\n")),
        ("error messages", seen.errors.join("\n")),
        ("answers", seen.answers.join("\n")),
    ];
    for (place, text) in &places {
        for secret in secrets.iter().chain(&digests) {
            assert!(
                !text.contains(secret.as_str()),
                "a secret or digest is in {place}"
            );
        }
    }
    assert!(
        stored.contains(&issued[0][..20]),
        "key ids are stored (sanity)"
    );
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "a secret is stored in the clear"
        );
    }
    eprintln!(
        "scanned {} secrets and {} stored digests across {} log lines, {} errors, {} answers and {} bytes of database",
        secrets.len(),
        digests.len(),
        places[0].1.lines().count(),
        seen.errors.len(),
        seen.answers.len(),
        stored.len()
    );
}
