//! Two `latchkey serve` replicas on one PostgreSQL or MySQL/MariaDB: a
//! change made through one reaches the other's cache (through LISTEN/NOTIFY,
//! or the change log), long before the cache's own TTL.

use std::time::Duration;

use latchkey::grpc::proto::v1::{
    CreateIntegrationKeyRequest, Decision, DeleteIntegrationKeyRequest, IntegrationKey,
    UpdateIntegrationKeyRequest, VerifyIntegrationKeyRequest,
    integration_keys_service_client::IntegrationKeysServiceClient,
};
use prost_types::FieldMask;
use tonic::transport::Channel;

use crate::{
    cli::latchkey, helpers::eventually, helpers::with_sid, secrets::ServeProcess, test_db::TestDb,
};

const OUTLINE: &str = "course.v1.CourseService/GetOutline";

/// The decision for `api_key` on the usual endpoint, through `client`.
pub(crate) async fn decision(
    client: &IntegrationKeysServiceClient<Channel>,
    api_key: &str,
) -> Decision {
    decision_for(client, api_key, OUTLINE).await
}

/// The decision for `api_key` on `endpoint`, through `client`.
pub(crate) async fn decision_for(
    client: &IntegrationKeysServiceClient<Channel>,
    api_key: &str,
    endpoint: &str,
) -> Decision {
    client
        .clone()
        .verify_integration_key(VerifyIntegrationKeyRequest {
            api_key: api_key.into(),
            endpoint: endpoint.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .decision()
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_and_disables_reach_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(dir.path()).await;
    if test_db.url.starts_with("sqlite") {
        // One SQLite database is one process. This test runs in .ci/run's
        // PostgreSQL (LISTEN/NOTIFY) and MariaDB (change log) passes.
        eprintln!("not applicable: needs PostgreSQL or MySQL/MariaDB");
        return;
    }
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, crate::helpers::TEST_CATALOG).unwrap();
    let created = latchkey(&test_db.url, &["partner-keys", "create", "--name", "ops"]);
    let partner_key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    // A one-hour cache TTL: only a notification can explain a quick change.
    let args = ["--verify-cache-ttl", "3600"];
    let mut a = ServeProcess::start_with(&test_db.url, catalog.to_str().unwrap(), &args);
    let mut b = ServeProcess::start_with(&test_db.url, catalog.to_str().unwrap(), &args);
    let (addr_a, addr_b) = (a.wait_for_addr().await, b.wait_for_addr().await);
    let mut on_a = IntegrationKeysServiceClient::connect(format!("http://{addr_a}"))
        .await
        .unwrap();
    let on_b = IntegrationKeysServiceClient::connect(format!("http://{addr_b}"))
        .await
        .unwrap();

    let create = || {
        let mut on_a = on_a.clone();
        let partner_key = partner_key.clone();
        async move {
            let created = on_a
                .create_integration_key(with_sid(
                    CreateIntegrationKeyRequest {
                        integration: "learner-activity".into(),
                        ..Default::default()
                    },
                    &partner_key,
                ))
                .await
                .unwrap()
                .into_inner();
            (created.key.unwrap().key_id, created.api_key)
        }
    };
    let (deleted_id, deleted_key) = create().await;
    let (disabled_id, disabled_key) = create().await;
    // Warm both keys on replica B.
    assert_eq!(decision(&on_b, &deleted_key).await, Decision::Allowed);
    assert_eq!(decision(&on_b, &disabled_key).await, Decision::Allowed);

    on_a.delete_integration_key(with_sid(
        DeleteIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: deleted_id,
        },
        &partner_key,
    ))
    .await
    .unwrap();
    on_a.update_integration_key(with_sid(
        UpdateIntegrationKeyRequest {
            key: Some(IntegrationKey {
                integration: "learner-activity".into(),
                key_id: disabled_id,
                disabled: true,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["disabled".into()],
            }),
        },
        &partner_key,
    ))
    .await
    .unwrap();

    eventually(
        Duration::from_secs(10),
        "replica B to see the delete",
        || async { (decision(&on_b, &deleted_key).await == Decision::Invalid).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "replica B to see the disable",
        || async { (decision(&on_b, &disabled_key).await == Decision::Disabled).then_some(()) },
    )
    .await;
    for replica in [a, b] {
        let (status, _) = replica.terminate().await;
        assert!(status.success());
    }
}
