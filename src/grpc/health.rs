//! `latchkey.v1.HealthService`: configuration health of a client and of the
//! service (not the probe protocol, which is grpc.health.v1).

use std::{sync::Arc, time::Instant};

use migration::{Migrator, MigratorTrait};
use tonic::{Request, Response, Status};

use super::peer_of;
use crate::{
    app::AppState,
    app::auth,
    domain::clients::{Check, Diagnostic, client_diagnostics},
    error::Error,
    grpc::proto::v1::{self as pb, health_service_server::HealthService},
    grpc::time::to_timestamp,
    store,
};

pub struct ConfigurationHealth {
    state: Arc<AppState>,
}

impl ConfigurationHealth {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    async fn client_health(
        &self,
        request: Request<pb::CheckClientHealthRequest>,
    ) -> Result<pb::CheckClientHealthResponse, Error> {
        let peer = peer_of(&request);
        let (metadata, _, req) = request.into_parts();
        auth::authenticate_for_client(&self.state, &metadata, peer, &req.client_id).await?;
        super::client_configuration::validate_client_id(&req.client_id)?;

        let template = self.state.client_lb_domain.as_deref();
        let db = &self.state.db;
        let Some(client) = store::clients::find(db, &req.client_id).await? else {
            return Ok(pb::CheckClientHealthResponse {
                status: pb::HealthStatus::NotConfigured.into(),
                lb_host: template
                    .map(|t| t.replace("{client_id}", &req.client_id))
                    .unwrap_or_default(),
                client_id: req.client_id,
                diagnostics: Vec::new(),
            });
        };
        let users = store::clients::users(db, client.id).await?;
        let settings = store::clients::settings(db, client.id).await?;
        let (diagnostics, lb_host) = client_diagnostics(
            &client.client_id,
            &users,
            &settings,
            &self.state.master_key,
            template,
        );
        Ok(pb::CheckClientHealthResponse {
            client_id: client.client_id,
            status: overall(&diagnostics).into(),
            diagnostics: diagnostics.into_iter().map(diagnostic_to_proto).collect(),
            lb_host: lb_host.unwrap_or_default(),
        })
    }

    async fn service_health(
        &self,
        request: Request<pb::CheckServiceHealthRequest>,
    ) -> Result<pb::CheckServiceHealthResponse, Error> {
        auth::authenticate_partner_only(&self.state, &request).await?;
        let db = &self.state.db;
        let mut diagnostics = Vec::new();

        let started = Instant::now();
        let reachable = db.ping().await;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        let is_reachable = reachable.is_ok();
        diagnostics.push(match reachable {
            Ok(()) => Diagnostic {
                name: "database",
                status: Check::Pass,
                detail: format!("reachable in {millis:.1} ms"),
            },
            Err(e) => Diagnostic {
                name: "database",
                status: Check::Fail,
                detail: format!("unreachable after {millis:.1} ms: {e}"),
            },
        });
        if is_reachable {
            diagnostics.push(match Migrator::get_pending_migrations(db).await {
                Ok(pending) if pending.is_empty() => Diagnostic {
                    name: "migrations",
                    status: Check::Pass,
                    detail: format!("{} migrations applied", Migrator::migrations().len()),
                },
                Ok(pending) => Diagnostic {
                    name: "migrations",
                    status: Check::Fail,
                    detail: format!("{} migration(s) pending", pending.len()),
                },
                Err(e) => Diagnostic {
                    name: "migrations",
                    status: Check::Fail,
                    detail: format!("cannot read migration state: {e}"),
                },
            });
            diagnostics.push(match store::catalog::latest_revision(db).await {
                Ok(Some(revision)) => Diagnostic {
                    name: "catalog",
                    status: Check::Pass,
                    detail: format!(
                        "revision {} applied at {}",
                        revision.id,
                        to_timestamp(revision.applied_time)
                    ),
                },
                Ok(None) => Diagnostic {
                    name: "catalog",
                    status: Check::Warn,
                    detail: "no catalog applied: there are no integrations".into(),
                },
                Err(e) => Diagnostic {
                    name: "catalog",
                    status: Check::Fail,
                    detail: format!("cannot read the catalog revision: {e}"),
                },
            });
        }
        diagnostics.push(self.replica_notifications());
        Ok(pb::CheckServiceHealthResponse {
            status: overall(&diagnostics).into(),
            diagnostics: diagnostics.into_iter().map(diagnostic_to_proto).collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }
}

impl ConfigurationHealth {
    /// How soon a change made on another replica reaches this one's cache.
    fn replica_notifications(&self) -> Diagnostic {
        let verifier = &self.state.verifier;
        let name = "replica_notifications";
        if self.state.db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Diagnostic {
                name,
                status: Check::Pass,
                detail: format!(
                    "not on this backend: changes made by other replicas are seen within the \
                     verify cache TTL ({} s)",
                    verifier.state_ttl().as_secs()
                ),
            };
        }
        if verifier.notifications_flowing() {
            Diagnostic {
                name,
                status: Check::Pass,
                detail: "listening, with heartbeats".into(),
            }
        } else {
            Diagnostic {
                name,
                status: Check::Fail,
                detail: "the listener is down or silent: cached key states are re-read on \
                         every verify until it is back"
                    .into(),
            }
        }
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

#[tonic::async_trait]
impl HealthService for ConfigurationHealth {
    async fn check_client_health(
        &self,
        request: Request<pb::CheckClientHealthRequest>,
    ) -> Result<Response<pb::CheckClientHealthResponse>, Status> {
        Ok(Response::new(self.client_health(request).await?))
    }

    async fn check_service_health(
        &self,
        request: Request<pb::CheckServiceHealthRequest>,
    ) -> Result<Response<pb::CheckServiceHealthResponse>, Status> {
        Ok(Response::new(self.service_health(request).await?))
    }
}
