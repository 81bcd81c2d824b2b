//! The audit trail: every change, who made it, and ListAuditEvents.

use latchkey::proto::v1::{
    AuditOutcome, DeleteIntegrationKeyRequest, ListAuditEventsRequest, RollIntegrationKeyRequest,
    audit_service_client::AuditServiceClient,
};
use tonic::Code;

use crate::helpers::spawn_app;

#[tokio::test]
async fn changes_are_audited_newest_first_without_secrets() {
    let app = spawn_app().await;
    let partner_id = &app.partner_key[..20];
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    let mut keys = app.keys_client().await;
    let rolled = keys
        .roll_integration_key(app.as_partner(RollIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: key_id.clone(),
            grace_period: None,
        }))
        .await
        .unwrap()
        .into_inner();
    let delete = DeleteIntegrationKeyRequest {
        integration: "learner-activity".into(),
        key_id: key_id.clone(),
    };
    keys.delete_integration_key(app.as_partner(delete.clone()))
        .await
        .unwrap();
    // Refused: the key is gone. Recorded as a failure.
    assert_eq!(
        keys.delete_integration_key(app.as_partner(delete))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    let mut audit = AuditServiceClient::new(app.channel().await);
    let all = audit
        .list_audit_events(app.as_partner(ListAuditEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let seen: Vec<_> = all
        .events
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str(), e.outcome()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "integration_key.delete",
                key_id.as_str(),
                AuditOutcome::Failure
            ),
            (
                "integration_key.delete",
                key_id.as_str(),
                AuditOutcome::Success
            ),
            (
                "integration_key.roll",
                key_id.as_str(),
                AuditOutcome::Success
            ),
            (
                "integration_key.create",
                key_id.as_str(),
                AuditOutcome::Success
            ),
            ("catalog.apply", "catalog revision 1", AuditOutcome::Success),
        ]
    );
    for event in &all.events[..4] {
        assert_eq!(event.actor, partner_id);
        assert_eq!(event.peer, "127.0.0.1");
        assert!(event.time.is_some() && !event.event_id.is_empty());
    }
    let shown = format!("{all:?}");
    for secret in [
        &app.partner_key[21..],
        &api_key[21..],
        &rolled.api_key[21..],
    ] {
        assert!(!shown.contains(secret), "an audit event holds a secret");
    }

    // By target, in pages.
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let page = audit
            .list_audit_events(app.as_partner(ListAuditEventsRequest {
                target: key_id.clone(),
                page_size: 3,
                page_token: token,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, all.events[..4]);

    // Partners only.
    let status = audit
        .list_audit_events(ListAuditEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let bad = audit
        .list_audit_events(app.as_partner(ListAuditEventsRequest {
            page_token: "junk".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}
