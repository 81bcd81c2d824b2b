//! The audit trail: every change, who made it, and ListAuditEvents.

use latchkey::grpc::proto::v1::{
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
            // The test's partner key, made as `partner-keys create` makes one.
            ("partner_key.create", partner_id, AuditOutcome::Success),
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

/// The refusal events ListAuditEvents lists for `target`.
async fn refusals_of(
    app: &crate::helpers::TestApp,
    target: &str,
) -> Vec<latchkey::grpc::proto::v1::AuditEvent> {
    AuditServiceClient::new(app.channel().await)
        .list_audit_events(app.as_partner(ListAuditEventsRequest {
            target: target.into(),
            page_size: 1000,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .filter(|e| e.action == "access.refused")
        .collect()
}

/// A user of acme asking for globex's configuration: PERMISSION_DENIED.
fn cross_client_read() -> tonic::Request<latchkey::grpc::proto::v1::GetClientConfigurationRequest> {
    crate::helpers::basic(
        latchkey::grpc::proto::v1::GetClientConfigurationRequest {
            client_id: "globex".into(),
        },
        "admin@acme",
        crate::client_config::ADMIN_KEY,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_calls_are_audited_and_a_flood_of_them_stays_bounded() {
    use latchkey::grpc::proto::v1::client_configuration_service_client::ClientConfigurationServiceClient;
    let app = spawn_app().await;
    crate::client_config::configure(&app, "acme").await;
    crate::client_config::configure(&app, "globex").await;
    let mut config = ClientConfigurationServiceClient::new(app.channel().await);
    // A user of acme reads globex: PERMISSION_DENIED, and on the record.
    let denied = config
        .get_client_configuration(cross_client_read())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let events = refusals_of(&app, "globex").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.actor, "admin@acme");
    assert_eq!(event.outcome(), AuditOutcome::Failure);
    assert_eq!(event.peer, "127.0.0.1");
    assert!(!format!("{event:?}").contains(crate::client_config::ADMIN_KEY));

    // A management call without a credential: the target is the RPC.
    let mut keys = app.keys_client().await;
    let anonymous = keys
        .delete_integration_key(DeleteIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: "lki_0000000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let rpc = "latchkey.v1.IntegrationKeysService/DeleteIntegrationKey";
    let events = refusals_of(&app, rpc).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].actor, "anonymous");

    // 200 refused calls at once by one actor: a handful of rows, not 200.
    let channel = app.channel().await;
    let answers = crate::helpers::all_at_once((0..200).map(|_| {
        let mut config = ClientConfigurationServiceClient::new(channel.clone());
        async move { config.get_client_configuration(cross_client_read()).await }
    }))
    .await;
    for answer in answers {
        assert_eq!(answer.unwrap_err().code(), Code::PermissionDenied);
    }
    let events = refusals_of(&app, "globex").await;
    eprintln!(
        "201 refused calls by one actor: {} audit events",
        events.len()
    );
    assert!(events.len() <= 5, "{} events", events.len());
}
