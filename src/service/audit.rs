//! `latchkey.v1.AuditService`: not implemented yet; answers UNIMPLEMENTED.

use tonic::{Request, Response, Status};

use crate::proto::v1::{self as pb, audit_service_server::AuditService};

pub struct Audit;

#[tonic::async_trait]
impl AuditService for Audit {
    async fn list_audit_events(
        &self,
        _: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        Err(Status::unimplemented(
            "ListAuditEvents is not implemented yet",
        ))
    }
}
