//! `latchkey.v1.HealthService` (configuration health, not the probe
//! protocol): not implemented yet; every RPC answers UNIMPLEMENTED.

use tonic::{Request, Response, Status};

use crate::proto::v1::{self as pb, health_service_server::HealthService};

pub struct ConfigurationHealth;

#[tonic::async_trait]
impl HealthService for ConfigurationHealth {
    async fn check_client_health(
        &self,
        _: Request<pb::CheckClientHealthRequest>,
    ) -> Result<Response<pb::CheckClientHealthResponse>, Status> {
        Err(Status::unimplemented(
            "CheckClientHealth is not implemented yet",
        ))
    }

    async fn check_service_health(
        &self,
        _: Request<pb::CheckServiceHealthRequest>,
    ) -> Result<Response<pb::CheckServiceHealthResponse>, Status> {
        Err(Status::unimplemented(
            "CheckServiceHealth is not implemented yet",
        ))
    }
}
