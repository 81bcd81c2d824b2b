//! Every RPC of every latchkey.v1 service, each with a baseline request
//! whose string fields can be swapped, and the fixture those baselines
//! refer to.

use std::sync::atomic::{AtomicUsize, Ordering};

use latchkey::grpc::proto::v1::{
    self as pb, client_configuration_service_client::ClientConfigurationServiceClient,
};
use prost::Message;
use prost_types::FieldMask;

use super::{ADMIN_KEY, CLIENT_ID, OUTLINE, VIEWER_KEY};
use crate::helpers::TestApp;

/// Who an RPC accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Needs {
    /// A partner key (IntegrationKeysService, Audit, CheckServiceHealth).
    Partner,
    /// A partner key or a user of the client (ClientConfiguration, client
    /// health).
    PartnerOrUser,
    /// No credential (the two Verify calls).
    Nothing,
}

/// The values of the fixture's objects that baseline requests refer to.
pub(super) struct Fixture {
    pub(super) key_id: String,
    pub(super) api_key: String,
}

/// `fill(field, baseline)`: the value to put in a string field.
pub(super) type Fill<'a> = &'a dyn Fn(&str, &str) -> String;

pub(super) struct Rpc {
    /// `Service/Method` within `latchkey.v1`.
    pub(super) name: &'static str,
    pub(super) needs: Needs,
    /// The encoded request, every string field given by `fill`. With the
    /// identity fill, a valid request about the fixture's objects.
    pub(super) build: fn(&Fixture, Fill) -> Vec<u8>,
}

impl Rpc {
    pub(super) fn baseline(&self, fx: &Fixture) -> Vec<u8> {
        (self.build)(fx, &|_, base| base.to_owned())
    }

    /// The names of the request's string fields, in the order `build` fills
    /// them (found by building once with a recording fill).
    pub(super) fn string_fields(&self, fx: &Fixture) -> Vec<String> {
        let seen = std::cell::RefCell::new(Vec::new());
        (self.build)(fx, &|field, base| {
            seen.borrow_mut().push(field.to_owned());
            base.to_owned()
        });
        seen.into_inner()
    }

    pub(super) fn is_client_scoped(&self) -> bool {
        self.needs == Needs::PartnerOrUser
    }
}

pub(super) fn rpcs() -> Vec<Rpc> {
    vec![
        Rpc {
            name: "IntegrationKeysService/CreateIntegrationKey",
            needs: Needs::Partner,
            build: |_, f| {
                pb::CreateIntegrationKeyRequest {
                    integration: f("integration", "learner-activity"),
                    display_name: f("display_name", "hostile test"),
                    expire_time: None,
                    ..Default::default()
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/GetIntegrationKey",
            needs: Needs::Partner,
            build: |fx, f| {
                pb::GetIntegrationKeyRequest {
                    integration: f("integration", "learner-activity"),
                    key_id: f("key_id", &fx.key_id),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/ListIntegrationKeys",
            needs: Needs::Partner,
            build: |_, f| {
                pb::ListIntegrationKeysRequest {
                    integration: f("integration", "learner-activity"),
                    page_size: 0,
                    page_token: f("page_token", ""),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/DeleteIntegrationKey",
            needs: Needs::Partner,
            // An id nobody holds: a hostile value in the other field must
            // not delete the fixture's key by accident.
            build: |_, f| {
                pb::DeleteIntegrationKeyRequest {
                    integration: f("integration", "learner-activity"),
                    key_id: f("key_id", "lki_0000000000000000"),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/VerifyIntegrationKey",
            needs: Needs::Nothing,
            build: |fx, f| {
                pb::VerifyIntegrationKeyRequest {
                    api_key: f("api_key", &fx.api_key),
                    endpoint: f("endpoint", OUTLINE),
                    ..Default::default()
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/UpdateIntegrationKey",
            needs: Needs::Partner,
            build: |fx, f| {
                pb::UpdateIntegrationKeyRequest {
                    key: Some(pb::IntegrationKey {
                        key_id: f("key.key_id", &fx.key_id),
                        integration: f("key.integration", "learner-activity"),
                        display_name: f("key.display_name", "renamed"),
                        ..Default::default()
                    }),
                    update_mask: Some(FieldMask {
                        paths: vec![f("update_mask.paths[0]", "display_name")],
                    }),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/RollIntegrationKey",
            needs: Needs::Partner,
            build: |fx, f| {
                pb::RollIntegrationKeyRequest {
                    integration: f("integration", "learner-activity"),
                    key_id: f("key_id", &fx.key_id),
                    grace_period: None,
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/ListIntegrations",
            needs: Needs::Partner,
            build: |_, f| {
                pb::ListIntegrationsRequest {
                    page_size: 0,
                    page_token: f("page_token", ""),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "IntegrationKeysService/GetIntegration",
            needs: Needs::Partner,
            build: |_, f| {
                pb::GetIntegrationRequest {
                    name: f("name", "learner-activity"),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/Configure",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                // A new client id each time, so that a request whose hostile
                // values are acceptable creates a client (storing them)
                // rather than stopping at ALREADY_EXISTS.
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let fresh = format!("hostile-{}", NEXT.fetch_add(1, Ordering::Relaxed));
                pb::ConfigureRequest {
                    client_id: f("client_id", &fresh),
                    client_credentials: Some(pb::ClientCredentials {
                        user_api_keys: vec![pb::UserApiKey {
                            user: f("client_credentials.user_api_keys[0].user", "root"),
                            api_key: f(
                                "client_credentials.user_api_keys[0].api_key",
                                "root-key-0123456789abcdef",
                            ),
                            scope: pb::Scope::System.into(),
                        }],
                        lb_api_key_owner: f("client_credentials.lb_api_key_owner", "owner"),
                        lb_api_key: f("client_credentials.lb_api_key", "lb-secret"),
                    }),
                    client_settings: [(
                        f("client_settings.<key>", "Color"),
                        f("client_settings.<value>", "blue"),
                    )]
                    .into(),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/ConfigureSettings",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::ConfigureSettingsRequest {
                    client_id: f("client_id", CLIENT_ID),
                    settings: vec![pb::Setting {
                        name: f("settings[0].name", "ClientSettings.Color"),
                        value: f("settings[0].value", "red"),
                        secret: false,
                    }],
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/SetUserCredentials",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::SetUserCredentialsRequest {
                    client_id: f("client_id", CLIENT_ID),
                    user: f("user", "hostile-user"),
                    api_key: f("api_key", "hostile-user-key-0123456789"),
                    scope: pb::Scope::Client.into(),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/DeleteUserCredentials",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::DeleteUserCredentialsRequest {
                    client_id: f("client_id", CLIENT_ID),
                    user: f("user", "hostile-user"),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/GetClientConfiguration",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::GetClientConfigurationRequest {
                    client_id: f("client_id", CLIENT_ID),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "ClientConfigurationService/VerifyUserCredentials",
            needs: Needs::Nothing,
            build: |_, f| {
                pb::VerifyUserCredentialsRequest {
                    client_id: f("client_id", CLIENT_ID),
                    user: f("user", "admin"),
                    api_key: f("api_key", ADMIN_KEY),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "HealthService/CheckClientHealth",
            needs: Needs::PartnerOrUser,
            build: |_, f| {
                pb::CheckClientHealthRequest {
                    client_id: f("client_id", CLIENT_ID),
                }
                .encode_to_vec()
            },
        },
        Rpc {
            name: "HealthService/CheckServiceHealth",
            needs: Needs::Partner,
            build: |_, _| pb::CheckServiceHealthRequest {}.encode_to_vec(),
        },
        Rpc {
            name: "AuditService/ListAuditEvents",
            needs: Needs::Partner,
            build: |_, f| {
                pb::ListAuditEventsRequest {
                    target: f("target", ""),
                    start_time: None,
                    end_time: None,
                    page_size: 0,
                    page_token: f("page_token", ""),
                }
                .encode_to_vec()
            },
        },
    ]
}

// ---------------------------------------------------------------------------
// Set-up: a key, a configured client, a few events.

pub(super) async fn fixture(app: &TestApp) -> Fixture {
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    // A second key, so a one-key page of learner-activity has a next page.
    app.create_key("learner-activity", None).await;
    app.create_key("sandbox", None).await;
    ClientConfigurationServiceClient::new(app.channel().await)
        .configure(app.as_partner(pb::ConfigureRequest {
            client_id: CLIENT_ID.into(),
            client_credentials: Some(pb::ClientCredentials {
                user_api_keys: vec![
                    pb::UserApiKey {
                        user: "admin".into(),
                        api_key: ADMIN_KEY.into(),
                        scope: pb::Scope::System.into(),
                    },
                    pb::UserApiKey {
                        user: "viewer".into(),
                        api_key: VIEWER_KEY.into(),
                        scope: pb::Scope::Client.into(),
                    },
                ],
                lb_api_key_owner: "owner".into(),
                lb_api_key: "lb-secret-value".into(),
            }),
            client_settings: Default::default(),
        }))
        .await
        .expect("configure the fixture client");
    Fixture { key_id, api_key }
}
