//! The credentials every kind of caller presents, made once, and the fresh
//! target a cell's call uses up or changes.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use latchkey::grpc::proto::v1::{
    ClientCredentials, ConfigureRequest, ListIntegrationsRequest, Scope, SetUserCredentialsRequest,
    Setting, UserApiKey, VerifyUserCredentialsRequest,
    client_configuration_service_client::ClientConfigurationServiceClient,
    integration_keys_service_client::IntegrationKeysServiceClient,
};
use tonic::{
    Request,
    metadata::{AsciiMetadataValue, MetadataMap},
    transport::Channel,
};

use super::{
    CLIENT, CLIENT_KEY, CLIENT_USER, Caller, INTEGRATION, OTHER_CLIENT, OTHER_KEY, OTHER_USER, Rpc,
    SYSTEM_KEY, SYSTEM_USER,
};
use crate::helpers::{TestApp, create_partner_key, spawn_app, with_sid};

/// What one cell's call acts on when it would use it up or change it for
/// later cells, made with the partner key before the call.
#[derive(Default)]
pub(super) struct Target {
    /// A fresh integration key (Delete, Roll): its id and full key.
    pub(super) key: Option<(String, String)>,
    /// A fresh CLIENT user of `CLIENT` (Set/DeleteUserCredentials): its name
    /// and key.
    pub(super) user: Option<(String, String)>,
}

impl Target {
    pub(super) fn key_id(&self) -> String {
        self.key
            .as_ref()
            .expect("the row has a fresh key")
            .0
            .clone()
    }

    pub(super) fn user(&self) -> String {
        self.user
            .as_ref()
            .expect("the row has a fresh user")
            .0
            .clone()
    }
}

/// The credentials the callers present, made once.
pub(super) struct Fixture {
    pub(super) app: TestApp,
    pub(super) channel: Channel,
    pub(super) revoked_partner_key: String,
    pub(super) integration_key: String,
    /// A key that Get and Update use (neither uses it up).
    pub(super) shared_key_id: String,
}

impl Fixture {
    pub(super) async fn new() -> Self {
        let app = spawn_app().await;
        let channel = app.channel().await;
        let mut config = ClientConfigurationServiceClient::new(channel.clone());
        config
            .configure(app.as_partner(configure_request(
                CLIENT,
                &[
                    (SYSTEM_USER, SYSTEM_KEY, Scope::System),
                    (CLIENT_USER, CLIENT_KEY, Scope::Client),
                ],
            )))
            .await
            .expect("configure the client");
        config
            .configure(app.as_partner(configure_request(
                OTHER_CLIENT,
                &[(OTHER_USER, OTHER_KEY, Scope::System)],
            )))
            .await
            .expect("configure the other client");
        // Prove every user's key once, so the wrong-key caller (which
        // spends the user's failure budget) cannot throttle the right key.
        for (client_id, user, api_key) in [
            (CLIENT, SYSTEM_USER, SYSTEM_KEY),
            (CLIENT, CLIENT_USER, CLIENT_KEY),
            (OTHER_CLIENT, OTHER_USER, OTHER_KEY),
        ] {
            let answer = config
                .verify_user_credentials(VerifyUserCredentialsRequest {
                    client_id: client_id.into(),
                    user: user.into(),
                    api_key: api_key.into(),
                })
                .await
                .expect("verify user")
                .into_inner();
            assert!(answer.valid, "{user}@{client_id} is set up");
        }

        // A partner key that worked (and is cached) before it was revoked.
        let revoked_partner_key = create_partner_key(&app.db, "revoked admin").await;
        IntegrationKeysServiceClient::new(channel.clone())
            .list_integrations(with_sid(
                ListIntegrationsRequest::default(),
                &revoked_partner_key,
            ))
            .await
            .expect("the second partner key works before revocation");
        assert!(
            latchkey::store::partner_keys::revoke(
                &app.db,
                &revoked_partner_key[..20],
                latchkey::domain::time::now_micros(),
            )
            .await
            .expect("revoke")
        );

        let (_, integration_key) = app.create_key(INTEGRATION, None).await;
        let (shared_key_id, _) = app.create_key(INTEGRATION, None).await;
        Self {
            app,
            channel,
            revoked_partner_key,
            integration_key,
            shared_key_id,
        }
    }

    /// Puts `caller`'s credential into `metadata`.
    fn present(&self, caller: Caller, metadata: &mut MetadataMap) {
        let basic =
            |name: &str, key: &str| format!("Basic {}", STANDARD.encode(format!("{name}:{key}")));
        let (header, value) = match caller {
            Caller::NoCredential => return,
            Caller::GarbageSid => ("sid", "garbage".to_owned()),
            Caller::GarbageBasic => ("authorization", "Basic %%%garbage%%%".to_owned()),
            Caller::RevokedPartnerKey => ("sid", self.revoked_partner_key.clone()),
            Caller::PartnerKey => ("sid", self.app.partner_key.clone()),
            Caller::PartnerKeyBearer => {
                ("authorization", format!("Bearer {}", self.app.partner_key))
            }
            Caller::IntegrationKeyAsSid => ("sid", self.integration_key.clone()),
            Caller::SystemUser => ("authorization", basic(SYSTEM_USER, SYSTEM_KEY)),
            Caller::SystemUserAtClient => (
                "authorization",
                basic(&format!("{SYSTEM_USER}@{CLIENT}"), SYSTEM_KEY),
            ),
            Caller::ClientUser => ("authorization", basic(CLIENT_USER, CLIENT_KEY)),
            Caller::ClientUserAtClient => (
                "authorization",
                basic(&format!("{CLIENT_USER}@{CLIENT}"), CLIENT_KEY),
            ),
            Caller::UserWithWrongKey => (
                "authorization",
                basic(SYSTEM_USER, "not-the-admin-key-0123456789"),
            ),
            Caller::OtherClientUser => ("authorization", basic(OTHER_USER, OTHER_KEY)),
            Caller::OtherClientUserAtClient => (
                "authorization",
                basic(&format!("{OTHER_USER}@{OTHER_CLIENT}"), OTHER_KEY),
            ),
        };
        let value: AsciiMetadataValue = value.parse().expect("ASCII credential");
        metadata.insert(header, value);
    }

    /// `message` with `caller`'s credential.
    pub(super) fn req<T>(&self, caller: Caller, message: T) -> Request<T> {
        let mut request = Request::new(message);
        self.present(caller, request.metadata_mut());
        request
    }

    /// `rpc`'s fresh target, made with the partner key; `cell` makes its
    /// name unique.
    pub(super) async fn target(&self, rpc: Rpc, cell: usize) -> Target {
        match rpc {
            Rpc::DeleteIntegrationKey | Rpc::RollIntegrationKey => Target {
                key: Some(self.app.create_key(INTEGRATION, None).await),
                ..Target::default()
            },
            Rpc::SetUserCredentials | Rpc::DeleteUserCredentials => {
                let (user, api_key) = (
                    format!("user-{cell}"),
                    format!("user-{cell}-key-0123456789"),
                );
                ClientConfigurationServiceClient::new(self.channel.clone())
                    .set_user_credentials(self.app.as_partner(SetUserCredentialsRequest {
                        client_id: CLIENT.into(),
                        user: user.clone(),
                        api_key: api_key.clone(),
                        scope: Scope::Client.into(),
                    }))
                    .await
                    .expect("set up a user");
                Target {
                    user: Some((user, api_key)),
                    ..Target::default()
                }
            }
            _ => Target::default(),
        }
    }
}

pub(super) fn configure_request(
    client_id: &str,
    users: &[(&str, &str, Scope)],
) -> ConfigureRequest {
    ConfigureRequest {
        client_id: client_id.into(),
        client_credentials: Some(ClientCredentials {
            user_api_keys: users
                .iter()
                .map(|&(user, api_key, scope)| UserApiKey {
                    user: user.into(),
                    api_key: api_key.into(),
                    scope: scope.into(),
                })
                .collect(),
            lb_api_key_owner: "lb-owner-name-4b3a".into(),
            lb_api_key: "lb-secret-value-9f8e7d6c".into(),
        }),
        client_settings: HashMap::from([("Color".to_owned(), "blue".to_owned())]),
    }
}

pub(super) fn setting(name: &str, value: &str) -> Setting {
    Setting {
        name: name.into(),
        value: value.into(),
        secret: false,
    }
}
