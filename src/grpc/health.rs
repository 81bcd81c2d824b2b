//! `latchkey.v1.HealthService`: configuration health of a client and of the
//! service (not the probe protocol, which is grpc.health.v1).

use tonic::Request;

use super::{client_configuration::validate_client_id, credentials};
use crate::{
    app::{auth, clients, health},
    domain::clients::{Check, Diagnostic},
    error::Error,
    grpc::{
        proto::v1::{self as pb, health_service_server::HealthService},
        time::to_timestamp,
    },
};

service!(ConfigurationHealth);

impl ConfigurationHealth {
    async fn client_health(
        &self,
        request: Request<pb::CheckClientHealthRequest>,
    ) -> Result<pb::CheckClientHealthResponse, Error> {
        let credentials = credentials(&request);
        let req = request.into_inner();
        auth::for_client(&self.app, &credentials, &req.client_id).await?;
        validate_client_id(&req.client_id)?;
        let health = clients::client_health(&self.app, &req.client_id).await?;
        let status = match &health.diagnostics {
            None => pb::HealthStatus::NotConfigured,
            Some(diagnostics) => overall(diagnostics),
        };
        Ok(pb::CheckClientHealthResponse {
            client_id: health.client_id,
            status: status.into(),
            diagnostics: health
                .diagnostics
                .unwrap_or_default()
                .into_iter()
                .map(diagnostic_to_proto)
                .collect(),
            lb_host: health.lb_host.unwrap_or_default(),
        })
    }

    async fn service_health(
        &self,
        request: Request<pb::CheckServiceHealthRequest>,
    ) -> Result<pb::CheckServiceHealthResponse, Error> {
        auth::partner(&self.app, &credentials(&request)).await?;
        let diagnostics =
            health::service_diagnostics(&self.app, |time| to_timestamp(time).to_string()).await;
        Ok(pb::CheckServiceHealthResponse {
            status: overall(&diagnostics).into(),
            diagnostics: diagnostics.into_iter().map(diagnostic_to_proto).collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }
}

fn overall(diagnostics: &[Diagnostic]) -> pb::HealthStatus {
    match diagnostics.iter().map(|d| d.status).max() {
        Some(Check::Fail) => pb::HealthStatus::Unhealthy,
        Some(Check::Warn) => pb::HealthStatus::Degraded,
        _ => pb::HealthStatus::Healthy,
    }
}

fn diagnostic_to_proto(d: Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        name: d.name.to_owned(),
        status: match d.status {
            Check::Pass => pb::DiagnosticStatus::Pass,
            Check::Warn => pb::DiagnosticStatus::Warn,
            Check::Fail => pb::DiagnosticStatus::Fail,
        }
        .into(),
        detail: d.detail,
    }
}

rpcs! {
    ConfigurationHealth: HealthService {
        check_client_health(pb::CheckClientHealthRequest) -> pb::CheckClientHealthResponse = client_health;
        check_service_health(pb::CheckServiceHealthRequest) -> pb::CheckServiceHealthResponse = service_health;
    }
}
