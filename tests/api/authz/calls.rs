//! One valid call of each RPC, as a given caller.

use latchkey::grpc::proto::v1::{
    CheckClientHealthRequest, CheckServiceHealthRequest, ConfigureSettingsRequest,
    CreateIntegrationKeyRequest, DeleteIntegrationKeyRequest, DeleteUserCredentialsRequest,
    GetClientConfigurationRequest, GetIntegrationKeyRequest, GetIntegrationRequest, IntegrationKey,
    ListAuditEventsRequest, ListIntegrationKeysRequest, ListIntegrationsRequest,
    RollIntegrationKeyRequest, Scope, SetUserCredentialsRequest, UpdateIntegrationKeyRequest,
    VerifyIntegrationKeyRequest, VerifyUserCredentialsRequest, WatchKeyChangesRequest,
    audit_service_client::AuditServiceClient,
    client_configuration_service_client::ClientConfigurationServiceClient,
    health_service_client::HealthServiceClient,
    integration_keys_service_client::IntegrationKeysServiceClient,
};
use tonic::Status;

use super::{
    CLIENT, CLIENT_KEY, CLIENT_USER, Caller, ENDPOINT, INTEGRATION, Rpc,
    fixture::{Fixture, Target, configure_request, setting},
};

impl Fixture {
    /// Calls `rpc` as `caller` with a valid request about `target`; `cell`
    /// makes fresh names unique.
    pub(super) async fn call(
        &self,
        rpc: Rpc,
        caller: Caller,
        cell: usize,
        target: &Target,
    ) -> Result<(), Status> {
        let mut keys = IntegrationKeysServiceClient::new(self.channel.clone());
        let mut config = ClientConfigurationServiceClient::new(self.channel.clone());
        let mut health = HealthServiceClient::new(self.channel.clone());
        let mut audit = AuditServiceClient::new(self.channel.clone());
        // `client.method(message)` as `caller`, keeping only the outcome.
        macro_rules! send {
            ($client:ident.$method:ident($message:expr)) => {
                $client.$method(self.req(caller, $message)).await.map(drop)
            };
        }
        match rpc {
            Rpc::CreateIntegrationKey => {
                send!(keys.create_integration_key(CreateIntegrationKeyRequest {
                    integration: INTEGRATION.into(),
                    display_name: format!("authz {cell}"),
                    expire_time: None,
                    ..Default::default()
                }))
            }
            Rpc::GetIntegrationKey => send!(keys.get_integration_key(GetIntegrationKeyRequest {
                integration: INTEGRATION.into(),
                key_id: self.shared_key_id.clone(),
            })),
            Rpc::ListIntegrationKeys => {
                send!(keys.list_integration_keys(ListIntegrationKeysRequest {
                    integration: INTEGRATION.into(),
                    ..Default::default()
                }))
            }
            Rpc::DeleteIntegrationKey => {
                send!(keys.delete_integration_key(DeleteIntegrationKeyRequest {
                    integration: INTEGRATION.into(),
                    key_id: target.key_id(),
                }))
            }
            Rpc::VerifyIntegrationKey => {
                send!(keys.verify_integration_key(VerifyIntegrationKeyRequest {
                    api_key: self.integration_key.clone(),
                    endpoint: ENDPOINT.into(),
                    ..Default::default()
                }))
            }
            Rpc::UpdateIntegrationKey => {
                send!(keys.update_integration_key(UpdateIntegrationKeyRequest {
                    key: Some(IntegrationKey {
                        integration: INTEGRATION.into(),
                        key_id: self.shared_key_id.clone(),
                        display_name: format!("authz {cell}"),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["display_name".into()],
                    }),
                }))
            }
            Rpc::RollIntegrationKey => {
                send!(keys.roll_integration_key(RollIntegrationKeyRequest {
                    integration: INTEGRATION.into(),
                    key_id: target.key_id(),
                    grace_period: Some(prost_types::Duration {
                        seconds: 60,
                        nanos: 0,
                    }),
                }))
            }
            Rpc::ListIntegrations => {
                send!(keys.list_integrations(ListIntegrationsRequest::default()))
            }
            Rpc::GetIntegration => send!(keys.get_integration(GetIntegrationRequest {
                name: INTEGRATION.into(),
            })),
            // The stream opened (its first message, RESET, is not read).
            Rpc::WatchKeyChanges => {
                send!(keys.watch_key_changes(WatchKeyChangesRequest::default()))
            }
            Rpc::Configure => send!(config.configure(configure_request(
                &format!("fresh-{cell}"),
                &[("owner", "owner-key-0123456789abcdef", Scope::System)],
            ))),
            Rpc::ConfigureOwnClient => send!(config.configure(configure_request(
                CLIENT,
                &[("owner", "owner-key-0123456789abcdef", Scope::System)],
            ))),
            Rpc::ConfigureSettings => send!(config.configure_settings(ConfigureSettingsRequest {
                client_id: CLIENT.into(),
                settings: vec![setting("ClientSettings.Color", &format!("color-{cell}"))],
            })),
            Rpc::ConfigureSettingsCredentials => {
                send!(config.configure_settings(ConfigureSettingsRequest {
                    client_id: CLIENT.into(),
                    settings: vec![setting(
                        "ClientCredentials.LbApiKey",
                        &format!("lb-secret-{cell}-0123456789"),
                    )],
                }))
            }
            Rpc::SetUserCredentials => {
                send!(config.set_user_credentials(SetUserCredentialsRequest {
                    client_id: CLIENT.into(),
                    user: target.user(),
                    api_key: "replaced-user-key-0123456789".into(),
                    scope: Scope::System.into(),
                }))
            }
            Rpc::DeleteUserCredentials => {
                send!(
                    config.delete_user_credentials(DeleteUserCredentialsRequest {
                        client_id: CLIENT.into(),
                        user: target.user(),
                    })
                )
            }
            Rpc::GetClientConfiguration => {
                send!(
                    config.get_client_configuration(GetClientConfigurationRequest {
                        client_id: CLIENT.into(),
                    })
                )
            }
            Rpc::VerifyUserCredentials => {
                let answer = config
                    .verify_user_credentials(self.req(
                        caller,
                        VerifyUserCredentialsRequest {
                            client_id: CLIENT.into(),
                            user: CLIENT_USER.into(),
                            api_key: CLIENT_KEY.into(),
                        },
                    ))
                    .await?
                    .into_inner();
                // Whatever the caller presents, the answer is about the
                // credentials in the request.
                if answer.valid {
                    Ok(())
                } else {
                    Err(Status::internal(format!(
                        "answered OK but not valid: {answer:?}"
                    )))
                }
            }
            Rpc::CheckClientHealth => send!(health.check_client_health(CheckClientHealthRequest {
                client_id: CLIENT.into(),
            })),
            Rpc::CheckServiceHealth => {
                send!(health.check_service_health(CheckServiceHealthRequest {}))
            }
            Rpc::ListAuditEvents => {
                send!(audit.list_audit_events(ListAuditEventsRequest::default()))
            }
        }
    }
}
