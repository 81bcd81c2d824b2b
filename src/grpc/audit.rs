//! `latchkey.v1.AuditService`: the audit trail, newest first.

use tonic::Request;

use entity::Outcome;

use super::{credentials, page_token, validate::Violations};
use crate::{
    app::{
        audit::{self, EventFilter},
        auth,
    },
    error::Error,
    grpc::{
        proto::v1::{self as pb, audit_service_server::AuditService},
        time::{from_timestamp, to_timestamp},
    },
};

service!(Audit);

impl Audit {
    async fn list(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<pb::ListAuditEventsResponse, Error> {
        auth::partner(&self.app, &credentials(&request)).await?;
        let req = request.into_inner();
        let (page_size, filter) = validate_list(&req)?;
        let (rows, more) = audit::list(&self.app, filter, page_size).await?;
        let next_page_token = page_token::next(&rows, more, |last| {
            page_token::encode(&["a", &last.time.to_string(), &last.id.to_string()])
        });
        Ok(pb::ListAuditEventsResponse {
            events: rows
                .into_iter()
                .map(|row| pb::AuditEvent {
                    event_id: row.event_id,
                    time: Some(to_timestamp(row.time)),
                    actor: row.actor,
                    action: row.action,
                    target: row.target,
                    outcome: match row.outcome {
                        Outcome::Success => pb::AuditOutcome::Success,
                        Outcome::Failure => pb::AuditOutcome::Failure,
                    }
                    .into(),
                    peer: row.peer,
                })
                .collect(),
            next_page_token,
        })
    }
}

/// ListAuditEvents: the row count and the filter. Pure, so that `fuzz/`
/// drives exactly what the handler runs.
pub fn validate_list(req: &pb::ListAuditEventsRequest) -> Result<(u64, EventFilter<'_>), Error> {
    let mut v = Violations::default();
    let (page_size, before) = v.page(req.page_size, &req.page_token, |token| {
        page_token::decode::<3>(token)
            .filter(|[kind, _, _]| kind == "a")
            .and_then(|[_, time, id]| Some((time.parse().ok()?, id.parse().ok()?)))
    });
    let mut time = |field: &str, ts: Option<&prost_types::Timestamp>| {
        ts.and_then(|t| {
            let parsed = from_timestamp(t);
            if parsed.is_none() {
                v.add(field, "must be a valid timestamp");
            }
            parsed
        })
    };
    let start_time = time("start_time", req.start_time.as_ref());
    let end_time = time("end_time", req.end_time.as_ref());
    if let (Some(start), Some(end)) = (start_time, end_time)
        && end <= start
    {
        v.add("end_time", "must be after start_time");
    }
    if req.target.chars().count() > 255 {
        v.add("target", "must be at most 255 characters");
    } else if req.target.contains('\0') {
        // Stored targets hold no NUL, and PostgreSQL refuses one in text.
        v.add("target", "must not contain NUL characters");
    }
    v.finish()?;

    Ok((
        page_size,
        EventFilter {
            target: Some(req.target.as_str()).filter(|t| !t.is_empty()),
            start_time,
            end_time,
            before,
        },
    ))
}

rpcs! {
    Audit: AuditService {
        list_audit_events(pb::ListAuditEventsRequest) -> pb::ListAuditEventsResponse = list;
    }
}
