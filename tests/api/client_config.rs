//! ClientConfigurationService and HealthService: every RPC, the
//! authorization matrix, atomicity, sealing and master key rotation.

use std::{collections::HashMap, sync::Arc};

use base64::{Engine, engine::general_purpose::STANDARD};
use latchkey::{
    grpc::proto::v1::{
        CheckClientHealthRequest, CheckServiceHealthRequest, ClientConfiguration,
        ClientCredentials, ConfigureRequest, ConfigureSettingsRequest,
        DeleteUserCredentialsRequest, DiagnosticStatus, GetClientConfigurationRequest,
        HealthStatus, Scope, SetUserCredentialsRequest, Setting, UserApiKey,
        VerifyUserCredentialsRequest,
        client_configuration_service_client::ClientConfigurationServiceClient,
        health_service_client::HealthServiceClient,
    },
    security::sealing::MasterKey,
};
use tonic::{Code, Request, Status, metadata::MetadataMap, transport::Channel};

use crate::helpers::{
    TestApp, assert_status, bad_request_fields, basic, spawn_app, spawn_app_with, with_sid,
};

pub(crate) const ADMIN_KEY: &str = "admin-key-0123456789abcdef";
pub(crate) const VIEWER_KEY: &str = "viewer-key-0123456789abcdef";
const LB_SECRET: &str = "lb-secret-value-9f8e7d6c";
const LB_OWNER: &str = "lb-owner-name-4b3a";
const GLOBEX_ONLY_KEY: &str = "gadmin-key-0123456789abcdef";

pub(crate) async fn config_client(app: &TestApp) -> ClientConfigurationServiceClient<Channel> {
    ClientConfigurationServiceClient::new(app.channel().await)
}

fn configure_request(client_id: &str) -> ConfigureRequest {
    ConfigureRequest {
        client_id: client_id.into(),
        client_credentials: Some(ClientCredentials {
            user_api_keys: vec![
                UserApiKey {
                    user: "admin".into(),
                    api_key: ADMIN_KEY.into(),
                    scope: Scope::System.into(),
                },
                UserApiKey {
                    user: "viewer".into(),
                    api_key: VIEWER_KEY.into(),
                    scope: Scope::Client.into(),
                },
            ],
            lb_api_key_owner: LB_OWNER.into(),
            lb_api_key: LB_SECRET.into(),
        }),
        client_settings: HashMap::from([
            (
                "LbHostOverride".to_owned(),
                "acme-lb.example.org".to_owned(),
            ),
            ("Color".to_owned(), "blue".to_owned()),
        ]),
    }
}

pub(crate) async fn configure(app: &TestApp, client_id: &str) -> ClientConfiguration {
    config_client(app)
        .await
        .configure(app.as_partner(configure_request(client_id)))
        .await
        .expect("configure")
        .into_inner()
        .configuration
        .expect("configuration")
}

fn settings_of(config: &ClientConfiguration) -> Vec<(String, String, bool)> {
    config
        .settings
        .iter()
        .map(|s| (s.name.clone(), s.value.clone(), s.secret))
        .collect()
}

fn setting(name: &str, value: &str) -> Setting {
    Setting {
        name: name.into(),
        value: value.into(),
        secret: false,
    }
}

#[tokio::test]
async fn configure_stores_everything_and_get_shows_it_redacted() {
    let app = spawn_app().await;
    let config = configure(&app, "acme").await;
    assert_eq!(config.client_id, "acme");
    let users: Vec<_> = config
        .users
        .iter()
        .map(|u| (u.user.as_str(), u.scope()))
        .collect();
    assert_eq!(users, [("admin", Scope::System), ("viewer", Scope::Client)]);
    assert_eq!(
        settings_of(&config),
        [
            ("ClientCredentials.LbApiKey".into(), String::new(), true),
            (
                "ClientCredentials.LbApiKeyOwner".into(),
                String::new(),
                true
            ),
            ("ClientSettings.Color".into(), "blue".into(), false),
            (
                "ClientSettings.LbHostOverride".into(),
                "acme-lb.example.org".into(),
                false
            ),
        ]
    );
    assert!(config.create_time.is_some() && config.update_time.is_some());

    let got = config_client(&app)
        .await
        .get_client_configuration(app.as_partner(GetClientConfigurationRequest {
            client_id: "acme".into(),
        }))
        .await
        .expect("get")
        .into_inner()
        .configuration
        .unwrap();
    assert_eq!(got, config);
    let shown = format!("{got:?}");
    for secret in [ADMIN_KEY, VIEWER_KEY, LB_SECRET, LB_OWNER] {
        assert!(!shown.contains(secret));
    }

    assert_status(
        config_client(&app)
            .await
            .configure(app.as_partner(configure_request("acme")))
            .await,
        Code::AlreadyExists,
        "Client 'acme' is already configured",
    );
    assert_status(
        config_client(&app)
            .await
            .get_client_configuration(app.as_partner(GetClientConfigurationRequest {
                client_id: "nope".into(),
            }))
            .await,
        Code::NotFound,
        "Client 'nope' not found",
    );
}

#[tokio::test]
async fn configure_names_every_bad_field() {
    let app = spawn_app().await;
    let mut client = config_client(&app).await;
    let mut bad = configure_request("bad id!");
    let creds = bad.client_credentials.as_mut().unwrap();
    creds.user_api_keys[1].user = "admin".into();
    creds.user_api_keys[0].scope = Scope::Unspecified.into();
    bad.client_settings
        .insert("LbHostOverride".into(), "not a host!".into());
    let fields = bad_request_fields(client.configure(app.as_partner(bad)).await);
    assert_eq!(
        fields,
        [
            "client_id",
            "client_credentials.user_api_keys[0].scope",
            "client_credentials.user_api_keys[1].user",
            "client_settings",
        ]
    );
    // Nothing was created.
    let fields = bad_request_fields(
        client
            .configure(app.as_partner(ConfigureRequest {
                client_id: "acme".into(),
                client_credentials: None,
                client_settings: HashMap::from([("Bad.Name".into(), "x".into())]),
            }))
            .await,
    );
    assert_eq!(fields, ["client_settings"]);
    assert_status(
        client
            .get_client_configuration(app.as_partner(GetClientConfigurationRequest {
                client_id: "acme".into(),
            }))
            .await,
        Code::NotFound,
        "Client 'acme' not found",
    );
}

#[tokio::test]
async fn configure_settings_sets_clears_and_is_all_or_nothing() {
    let app = spawn_app().await;
    configure(&app, "acme").await;
    let mut client = config_client(&app).await;
    let request = |settings: Vec<Setting>| ConfigureSettingsRequest {
        client_id: "acme".into(),
        settings,
    };

    let config = client
        .configure_settings(app.as_partner(request(vec![
            setting("ClientSettings.Color", "red"),
            setting("ClientCredentials.NursysUsername", "nursys-user-77"),
            setting("ClientSettings.LbHostOverride", ""),
        ])))
        .await
        .expect("configure settings")
        .into_inner()
        .configuration
        .unwrap();
    assert_eq!(
        settings_of(&config),
        [
            ("ClientCredentials.LbApiKey".into(), String::new(), true),
            (
                "ClientCredentials.LbApiKeyOwner".into(),
                String::new(),
                true
            ),
            (
                "ClientCredentials.NursysUsername".into(),
                String::new(),
                true
            ),
            ("ClientSettings.Color".into(), "red".into(), false),
        ]
    );

    // One bad setting: nothing is applied, and the error names which one
    // by its place, not by repeating it.
    let status = client
        .configure_settings(app.as_partner(request(vec![
            setting("ClientSettings.Color", "green"),
            setting("Bogus.Thing", "x"),
        ])))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("settings[1].name") && !status.message().contains("Bogus.Thing"),
        "{}",
        status.message()
    );
    assert_eq!(
        bad_request_fields(Err::<(), Status>(status)),
        ["settings[1].name"]
    );
    for (name, value, needle) in [
        ("ClientCredentials.UserApiKeys", "x", "SetUserCredentials"),
        (
            "ClientSettings.LbHostOverride",
            "bad host!",
            "valid host name",
        ),
        ("LbHostOverride", "x", "scope-prefixed"),
    ] {
        let status = client
            .configure_settings(app.as_partner(request(vec![
                setting("ClientSettings.Color", "green"),
                setting(name, value),
            ])))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(needle), "{}", status.message());
    }
    let unchanged = client
        .get_client_configuration(app.as_partner(GetClientConfigurationRequest {
            client_id: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .configuration
        .unwrap();
    assert_eq!(
        settings_of(&unchanged),
        settings_of(&config),
        "all or nothing"
    );

    assert_status(
        client
            .configure_settings(app.as_partner(ConfigureSettingsRequest {
                client_id: "nope".into(),
                settings: vec![setting("ClientSettings.Color", "x")],
            }))
            .await,
        Code::NotFound,
        "Client 'nope' not found",
    );
    assert_eq!(
        bad_request_fields(
            client
                .configure_settings(app.as_partner(request(vec![])))
                .await
        ),
        ["settings"]
    );
}

#[tokio::test]
async fn user_credentials_can_be_set_verified_changed_and_deleted() {
    let app = spawn_app().await;
    configure(&app, "acme").await;
    let mut client = config_client(&app).await;
    let verify = |user: &str, key: &str| VerifyUserCredentialsRequest {
        client_id: "acme".into(),
        user: user.into(),
        api_key: key.into(),
    };

    let valid = client
        .verify_user_credentials(verify("admin", ADMIN_KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(valid.valid);
    assert_eq!(valid.scope(), Scope::System);
    for (user, key) in [("admin", VIEWER_KEY), ("ghost", ADMIN_KEY)] {
        let answer = client
            .verify_user_credentials(verify(user, key))
            .await
            .unwrap()
            .into_inner();
        assert!(!answer.valid && !answer.rate_limited);
        assert_eq!(answer.scope(), Scope::Unspecified);
    }
    let other_client = client
        .verify_user_credentials(VerifyUserCredentialsRequest {
            client_id: "globex".into(),
            user: "admin".into(),
            api_key: ADMIN_KEY.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !other_client.valid,
        "unknown client: not valid, not an error"
    );

    let set = client
        .set_user_credentials(app.as_partner(SetUserCredentialsRequest {
            client_id: "acme".into(),
            user: "viewer".into(),
            api_key: "a-brand-new-viewer-key".into(),
            scope: Scope::System.into(),
        }))
        .await
        .expect("set")
        .into_inner()
        .user_credential
        .unwrap();
    assert_eq!((set.user.as_str(), set.scope()), ("viewer", Scope::System));
    assert!(
        !client
            .verify_user_credentials(verify("viewer", VIEWER_KEY))
            .await
            .unwrap()
            .into_inner()
            .valid
    );
    let changed = client
        .verify_user_credentials(verify("viewer", "a-brand-new-viewer-key"))
        .await
        .unwrap()
        .into_inner();
    assert!(changed.valid);
    assert_eq!(changed.scope(), Scope::System);

    let delete = || DeleteUserCredentialsRequest {
        client_id: "acme".into(),
        user: "viewer".into(),
    };
    client
        .delete_user_credentials(app.as_partner(delete()))
        .await
        .expect("delete");
    assert!(
        !client
            .verify_user_credentials(verify("viewer", "a-brand-new-viewer-key"))
            .await
            .unwrap()
            .into_inner()
            .valid
    );
    assert_status(
        client
            .delete_user_credentials(app.as_partner(delete()))
            .await,
        Code::NotFound,
        "User 'viewer' not found",
    );
    assert_eq!(
        bad_request_fields(
            client
                .set_user_credentials(app.as_partner(SetUserCredentialsRequest {
                    client_id: "acme".into(),
                    user: "a:b".into(),
                    api_key: String::new(),
                    scope: 0,
                }))
                .await
        ),
        ["user", "api_key", "scope"]
    );
}

#[tokio::test]
async fn verify_user_credentials_is_throttled() {
    let app = spawn_app_with(|s| {
        s.verifier.throttle = latchkey::security::throttle::ThrottleSettings {
            per_key: latchkey::security::throttle::Budget {
                burst: 2,
                per_second: 0.001,
            },
            per_peer: latchkey::security::throttle::Budget {
                burst: 1000,
                per_second: 0.001,
            },
        };
    })
    .await;
    configure(&app, "acme").await;
    let mut client = config_client(&app).await;
    let verify = |key: &str| VerifyUserCredentialsRequest {
        client_id: "acme".into(),
        user: "admin".into(),
        api_key: key.into(),
    };
    for _ in 0..2 {
        let answer = client
            .verify_user_credentials(verify("wrong"))
            .await
            .unwrap()
            .into_inner();
        assert!(!answer.valid && !answer.rate_limited);
    }
    let runs = app.state.hasher.runs();
    let limited = client
        .verify_user_credentials(verify(ADMIN_KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(!limited.valid && limited.rate_limited);
    assert_eq!(
        app.state.hasher.runs(),
        runs,
        "no argon2 while rate limited"
    );
}

/// Who calls, in the authorization matrix.
#[derive(Clone, Copy, Debug)]
enum Who {
    Partner,
    SystemUser,
    ClientUser,
    OtherClientUser,
    /// A user of the other client, by bare name (no `@client`).
    OtherClientBareName,
    Nobody,
}

fn credential(app: &TestApp, who: Who, metadata: &mut MetadataMap) {
    let basic = |name: &str, key: &str| {
        let token = STANDARD.encode(format!("{name}:{key}"));
        format!("Basic {token}").parse().unwrap()
    };
    match who {
        Who::Partner => {
            metadata.insert("sid", app.partner_key.parse().unwrap());
        }
        // `user@client` names the user's own client, so a call about any
        // other client is recognisably theirs and PERMISSION_DENIED.
        Who::SystemUser => {
            metadata.insert("authorization", basic("admin@acme", ADMIN_KEY));
        }
        Who::ClientUser => {
            metadata.insert("authorization", basic("viewer@acme", VIEWER_KEY));
        }
        Who::OtherClientUser => {
            metadata.insert("authorization", basic("admin@globex", ADMIN_KEY));
        }
        Who::OtherClientBareName => {
            metadata.insert("authorization", basic("gadmin", GLOBEX_ONLY_KEY));
        }
        Who::Nobody => {}
    }
}

fn authed<T>(app: &TestApp, who: Who, message: T) -> Request<T> {
    let mut request = Request::new(message);
    credential(app, who, request.metadata_mut());
    request
}

/// The outcome class of a call: allowed (whatever happened after
/// authorization), or the auth error.
fn class(result: Result<(), Status>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(s) if s.code() == Code::Unauthenticated => "unauthenticated",
        Err(s) if s.code() == Code::PermissionDenied => "denied",
        Err(_) => "ok",
    }
}

#[tokio::test]
async fn authorization_matrix() {
    let app = spawn_app().await;
    configure(&app, "acme").await;
    configure(&app, "globex").await;
    config_client(&app)
        .await
        .set_user_credentials(app.as_partner(SetUserCredentialsRequest {
            client_id: "globex".into(),
            user: "gadmin".into(),
            api_key: GLOBEX_ONLY_KEY.into(),
            scope: Scope::System.into(),
        }))
        .await
        .unwrap();
    let channel = app.channel().await;

    use Who::*;
    // (rpc, [partner, SYSTEM of acme, CLIENT of acme, user of globex,
    //        user of globex by bare name, none])
    let table: [(&str, [&str; 6]); 10] = [
        (
            "Configure(new client)",
            [
                "ok",
                "denied",
                "denied",
                "denied",
                "denied",
                "unauthenticated",
            ],
        ),
        (
            "Configure(own client)",
            [
                "ok",
                "denied",
                "denied",
                "denied",
                "denied",
                "unauthenticated",
            ],
        ),
        (
            "ConfigureSettings(ClientSettings)",
            ["ok", "ok", "ok", "denied", "denied", "unauthenticated"],
        ),
        (
            "ConfigureSettings(ClientCredentials)",
            ["ok", "ok", "denied", "denied", "denied", "unauthenticated"],
        ),
        (
            "SetUserCredentials",
            ["ok", "ok", "denied", "denied", "denied", "unauthenticated"],
        ),
        (
            "DeleteUserCredentials",
            ["ok", "ok", "denied", "denied", "denied", "unauthenticated"],
        ),
        (
            "GetClientConfiguration",
            ["ok", "ok", "ok", "denied", "denied", "unauthenticated"],
        ),
        (
            "VerifyUserCredentials",
            ["ok", "ok", "ok", "ok", "ok", "ok"],
        ),
        (
            "CheckClientHealth",
            ["ok", "ok", "ok", "denied", "denied", "unauthenticated"],
        ),
        (
            "CheckServiceHealth",
            [
                "ok",
                "denied",
                "denied",
                "denied",
                "denied",
                "unauthenticated",
            ],
        ),
    ];
    for (rpc, expected) in table {
        for (who, want) in [
            Partner,
            SystemUser,
            ClientUser,
            OtherClientUser,
            OtherClientBareName,
            Nobody,
        ]
        .into_iter()
        .zip(expected)
        {
            let mut config = ClientConfigurationServiceClient::new(channel.clone());
            let mut health = HealthServiceClient::new(channel.clone());
            let outcome = match rpc {
                "Configure(new client)" => config
                    .configure(authed(
                        &app,
                        who,
                        configure_request(&format!("new-{who:?}")),
                    ))
                    .await
                    .map(drop),
                "Configure(own client)" => config
                    .configure(authed(&app, who, configure_request("acme")))
                    .await
                    .map(drop),
                "ConfigureSettings(ClientSettings)" => config
                    .configure_settings(authed(
                        &app,
                        who,
                        ConfigureSettingsRequest {
                            client_id: "acme".into(),
                            settings: vec![setting("ClientSettings.Color", "teal")],
                        },
                    ))
                    .await
                    .map(drop),
                "ConfigureSettings(ClientCredentials)" => config
                    .configure_settings(authed(
                        &app,
                        who,
                        ConfigureSettingsRequest {
                            client_id: "acme".into(),
                            settings: vec![setting("ClientCredentials.Other", "x")],
                        },
                    ))
                    .await
                    .map(drop),
                "SetUserCredentials" => config
                    .set_user_credentials(authed(
                        &app,
                        who,
                        SetUserCredentialsRequest {
                            client_id: "acme".into(),
                            user: format!("extra-{who:?}"),
                            api_key: "extra-key-0123456789".into(),
                            scope: Scope::Client.into(),
                        },
                    ))
                    .await
                    .map(drop),
                "DeleteUserCredentials" => config
                    .delete_user_credentials(authed(
                        &app,
                        who,
                        DeleteUserCredentialsRequest {
                            client_id: "acme".into(),
                            user: "nobody-by-that-name".into(),
                        },
                    ))
                    .await
                    .map(drop),
                "GetClientConfiguration" => config
                    .get_client_configuration(authed(
                        &app,
                        who,
                        GetClientConfigurationRequest {
                            client_id: "acme".into(),
                        },
                    ))
                    .await
                    .map(drop),
                "VerifyUserCredentials" => config
                    .verify_user_credentials(authed(
                        &app,
                        who,
                        VerifyUserCredentialsRequest {
                            client_id: "acme".into(),
                            user: "admin".into(),
                            api_key: ADMIN_KEY.into(),
                        },
                    ))
                    .await
                    .map(drop),
                "CheckClientHealth" => health
                    .check_client_health(authed(
                        &app,
                        who,
                        CheckClientHealthRequest {
                            client_id: "acme".into(),
                        },
                    ))
                    .await
                    .map(drop),
                "CheckServiceHealth" => health
                    .check_service_health(authed(&app, who, CheckServiceHealthRequest {}))
                    .await
                    .map(drop),
                other => unreachable!("{other}"),
            };
            assert_eq!(class(outcome), want, "{rpc} as {who:?}");
        }
    }
}

#[tokio::test]
async fn client_health_reports_each_diagnostic() {
    let app = spawn_app().await;
    let mut health = HealthServiceClient::new(app.channel().await);
    let check = |client_id: &str| {
        app.as_partner(CheckClientHealthRequest {
            client_id: client_id.into(),
        })
    };

    let unknown = health
        .check_client_health(check("nobody"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown.status(), HealthStatus::NotConfigured);

    configure(&app, "acme").await;
    let healthy = health
        .check_client_health(check("acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(healthy.status(), HealthStatus::Healthy, "{healthy:?}");
    assert_eq!(healthy.lb_host, "acme-lb.example.org");
    let names: Vec<_> = healthy
        .diagnostics
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "system_user_exists",
            "lb_api_key_owner_set",
            "lb_api_key_set",
            "lb_host_valid",
            "credentials_decrypt",
            "user_api_key_length",
        ]
    );

    // Without the override, the template gives the host; a short key warns;
    // a missing LbApiKey and no SYSTEM user fail.
    let mut config = config_client(&app).await;
    config
        .configure_settings(app.as_partner(ConfigureSettingsRequest {
            client_id: "acme".into(),
            settings: vec![
                setting("ClientSettings.LbHostOverride", ""),
                setting("ClientCredentials.LbApiKey", ""),
            ],
        }))
        .await
        .unwrap();
    config
        .set_user_credentials(app.as_partner(SetUserCredentialsRequest {
            client_id: "acme".into(),
            user: "admin".into(),
            api_key: "short".into(),
            scope: Scope::Client.into(),
        }))
        .await
        .unwrap();
    let sick = health
        .check_client_health(check("acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sick.status(), HealthStatus::Unhealthy);
    assert_eq!(sick.lb_host, "acme.lb.example.com");
    let status_of = |name: &str| {
        sick.diagnostics
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.status())
            .unwrap()
    };
    assert_eq!(status_of("system_user_exists"), DiagnosticStatus::Fail);
    assert_eq!(status_of("lb_api_key_set"), DiagnosticStatus::Fail);
    assert_eq!(status_of("lb_api_key_owner_set"), DiagnosticStatus::Pass);
    assert_eq!(status_of("lb_host_valid"), DiagnosticStatus::Pass);
    assert_eq!(status_of("user_api_key_length"), DiagnosticStatus::Warn);
    assert!(
        !format!("{sick:?}").contains("short\""),
        "details never show a key"
    );

    // Only the warning left: degraded.
    config
        .set_user_credentials(app.as_partner(SetUserCredentialsRequest {
            client_id: "acme".into(),
            user: "root".into(),
            api_key: "root-key-0123456789abcdef".into(),
            scope: Scope::System.into(),
        }))
        .await
        .unwrap();
    config
        .configure_settings(app.as_partner(ConfigureSettingsRequest {
            client_id: "acme".into(),
            settings: vec![setting("ClientCredentials.LbApiKey", "again")],
        }))
        .await
        .unwrap();
    let degraded = health
        .check_client_health(check("acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(degraded.status(), HealthStatus::Degraded, "{degraded:?}");
}

#[tokio::test]
async fn service_health_reports_database_migrations_and_catalog() {
    let app = spawn_app().await;
    let mut health = HealthServiceClient::new(app.channel().await);
    let report = health
        .check_service_health(app.as_partner(CheckServiceHealthRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.status(), HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.version, env!("CARGO_PKG_VERSION"));
    let names: Vec<_> = report.diagnostics.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["database", "migrations", "catalog", "replica_notifications"]
    );
    assert!(report.diagnostics[0].detail.contains("ms"));
    assert!(report.diagnostics[2].detail.starts_with("revision 1"));
}

fn credentials_decrypt(
    report: &latchkey::grpc::proto::v1::CheckClientHealthResponse,
) -> DiagnosticStatus {
    report
        .diagnostics
        .iter()
        .find(|d| d.name == "credentials_decrypt")
        .unwrap()
        .status()
}

async fn client_health(app: &TestApp) -> latchkey::grpc::proto::v1::CheckClientHealthResponse {
    HealthServiceClient::new(app.channel().await)
        .check_client_health(app.as_partner(CheckClientHealthRequest {
            client_id: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn master_key_rotation_keeps_values_readable_and_retires_the_old_key() {
    let old = Arc::new(MasterKey::generate().unwrap());
    let app = spawn_app_with({
        let old = old.clone();
        move |s| s.master_key = Some(old)
    })
    .await;
    configure(&app, "acme").await;
    assert_eq!(
        credentials_decrypt(&client_health(&app).await),
        DiagnosticStatus::Pass
    );

    // A wrong master key: the diagnostic fails (names, never values).
    let app = app
        .restart_with(|s| s.master_key = Some(Arc::new(MasterKey::generate().unwrap())))
        .await;
    let report = client_health(&app).await;
    assert_eq!(credentials_decrypt(&report), DiagnosticStatus::Fail);
    assert_eq!(report.status(), HealthStatus::Unhealthy);
    assert!(format!("{report:?}").contains("ClientCredentials.LbApiKey"));

    // Rotate with the CLI, as an operator would.
    let new_file = app.dir.path().join("new.master-key");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["rotate-master-key", "--new-master-key-file"])
        .arg(&new_file)
        .env("LATCHKEY_DATABASE_URL", &app.database_url)
        .env("LATCHKEY_MASTER_KEY", old.to_base64().as_str())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("re-encrypted 2 credential(s)"), "{stderr}");
    assert!(!stderr.contains(old.to_base64().as_str()));
    let new = Arc::new(latchkey::security::sealing::read_key_file(&new_file).unwrap());
    assert_ne!(new.version(), old.version());

    let app = app
        .restart_with({
            let new = new.clone();
            move |s| s.master_key = Some(new)
        })
        .await;
    assert_eq!(
        credentials_decrypt(&client_health(&app).await),
        DiagnosticStatus::Pass
    );
    let versions: Vec<_> = latchkey::store::clients::all_secret_settings(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|(row, _)| row.key_version)
        .collect();
    assert_eq!(versions, vec![Some(new.version().to_owned()); 2]);

    let app = app.restart_with(move |s| s.master_key = Some(old)).await;
    assert_eq!(
        credentials_decrypt(&client_health(&app).await),
        DiagnosticStatus::Fail,
        "the old key is no longer needed, nor enough"
    );
}

#[tokio::test]
async fn the_database_holds_no_user_key_and_no_credential_in_the_clear() {
    let app = spawn_app().await;
    configure(&app, "acme").await;
    let mut config = config_client(&app).await;
    config
        .configure_settings(basic(
            ConfigureSettingsRequest {
                client_id: "acme".into(),
                settings: vec![setting(
                    "ClientCredentials.NursysPassword",
                    "nursys-pass-31337",
                )],
            },
            "admin",
            ADMIN_KEY,
        ))
        .await
        .expect("a SYSTEM user sets a credential");
    config
        .set_user_credentials(with_sid(
            SetUserCredentialsRequest {
                client_id: "acme".into(),
                user: "later".into(),
                api_key: "later-user-key-424242".into(),
                scope: Scope::Client.into(),
            },
            &app.partner_key,
        ))
        .await
        .unwrap();
    let stored = app.raw_database_contents().await;
    assert!(
        stored.contains("ClientCredentials.NursysPassword"),
        "names are stored (sanity)"
    );
    assert!(
        stored.contains("$argon2id$"),
        "user keys are hashed (sanity)"
    );
    for secret in [
        ADMIN_KEY,
        VIEWER_KEY,
        LB_SECRET,
        LB_OWNER,
        "nursys-pass-31337",
        "later-user-key-424242",
    ] {
        assert!(!stored.contains(secret), "found a secret in the clear");
    }
}
