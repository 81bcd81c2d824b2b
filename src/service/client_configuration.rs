//! `latchkey.v1.ClientConfigurationService`: not implemented yet (its own
//! issue); every RPC answers UNIMPLEMENTED.

use tonic::{Request, Response, Status};

use crate::proto::v1::{
    self as pb, client_configuration_service_server::ClientConfigurationService,
};

pub struct ClientConfiguration;

fn unimplemented(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not implemented yet"))
}

#[tonic::async_trait]
impl ClientConfigurationService for ClientConfiguration {
    async fn configure(
        &self,
        _: Request<pb::ConfigureRequest>,
    ) -> Result<Response<pb::ConfigureResponse>, Status> {
        Err(unimplemented("Configure"))
    }

    async fn configure_settings(
        &self,
        _: Request<pb::ConfigureSettingsRequest>,
    ) -> Result<Response<pb::ConfigureSettingsResponse>, Status> {
        Err(unimplemented("ConfigureSettings"))
    }

    async fn set_user_credentials(
        &self,
        _: Request<pb::SetUserCredentialsRequest>,
    ) -> Result<Response<pb::SetUserCredentialsResponse>, Status> {
        Err(unimplemented("SetUserCredentials"))
    }

    async fn delete_user_credentials(
        &self,
        _: Request<pb::DeleteUserCredentialsRequest>,
    ) -> Result<Response<pb::DeleteUserCredentialsResponse>, Status> {
        Err(unimplemented("DeleteUserCredentials"))
    }

    async fn get_client_configuration(
        &self,
        _: Request<pb::GetClientConfigurationRequest>,
    ) -> Result<Response<pb::GetClientConfigurationResponse>, Status> {
        Err(unimplemented("GetClientConfiguration"))
    }

    async fn verify_user_credentials(
        &self,
        _: Request<pb::VerifyUserCredentialsRequest>,
    ) -> Result<Response<pb::VerifyUserCredentialsResponse>, Status> {
        Err(unimplemented("VerifyUserCredentials"))
    }
}
