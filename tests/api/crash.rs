//! Crash safety: a `latchkey serve` process killed with SIGKILL in the middle
//! of a stream of creates loses no key it acknowledged, and leaves no row
//! half-written.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use latchkey::{
    domain::{KeyKind, key_format::is_key_id},
    grpc::proto::v1::{
        CreateIntegrationKeyRequest, Decision, ListAuditEventsRequest, VerifyIntegrationKeyRequest,
        audit_service_client::AuditServiceClient,
        integration_keys_service_client::IntegrationKeysServiceClient,
    },
};
use sea_orm::{Database, EntityTrait};
use tonic::transport::Channel;

use crate::{
    helpers::{eventually, with_sid},
    secrets::ServeProcess,
};

/// Creates to see acknowledged before the kill.
const ACKNOWLEDGED_BEFORE_KILL: usize = 40;
const WRITERS: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_creates_loses_no_acknowledged_key() {
    let (dir, test_db, server, addr, partner_key) = crate::operations::start(&[]).await;
    let catalog = dir.path().join("catalog.toml");
    let catalog = catalog.to_str().unwrap().to_owned();
    let client = IntegrationKeysServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    // Writers create keys until their calls fail; each key whose Create
    // returned OK is recorded with its secret.
    let acknowledged: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut writers = Vec::new();
    for n in 0..WRITERS {
        let (mut client, acknowledged, partner_key) =
            (client.clone(), acknowledged.clone(), partner_key.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let request = with_sid(
                    CreateIntegrationKeyRequest {
                        integration: "learner-activity".into(),
                        display_name: format!("writer {n} key {i}"),
                        ..Default::default()
                    },
                    &partner_key,
                );
                let Ok(response) = client.create_integration_key(request).await else {
                    return;
                };
                let response = response.into_inner();
                let key_id = response.key.expect("created key").key_id;
                acknowledged
                    .lock()
                    .unwrap()
                    .insert(key_id, response.api_key);
            }
        }));
    }
    eventually(
        Duration::from_secs(60),
        "creates to be acknowledged",
        || {
            let count = acknowledged.lock().unwrap().len();
            async move { (count >= ACKNOWLEDGED_BEFORE_KILL).then_some(()) }
        },
    )
    .await;
    server.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut restarted = ServeProcess::start(&test_db.url, &catalog);
    let addr = restarted.wait_for_addr().await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // Every acknowledged key verifies, and its creation is in the audit trail.
    let mut keys = IntegrationKeysServiceClient::new(channel.clone());
    let mut audit = AuditServiceClient::new(channel);
    for (key_id, api_key) in &acknowledged {
        let verdict = keys
            .verify_integration_key(VerifyIntegrationKeyRequest {
                api_key: api_key.clone(),
                endpoint: "course.v1.CourseService/GetOutline".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(verdict.decision(), Decision::Allowed, "{key_id}");
        let events = audit
            .list_audit_events(with_sid(
                ListAuditEventsRequest {
                    target: key_id.clone(),
                    ..Default::default()
                },
                &partner_key,
            ))
            .await
            .unwrap()
            .into_inner()
            .events;
        assert!(
            events.iter().any(|e| e.action == "integration_key.create"),
            "no audit event for {key_id}: {events:?}"
        );
    }

    // No row is half-written: every stored key is whole. Keys created but not
    // acknowledged (the answer was lost in the kill) may exist, whole too.
    let db = Database::connect(&test_db.url).await.unwrap();
    let rows = entity::integration_key::Entity::find()
        .all(&db)
        .await
        .unwrap();
    let integrations = entity::integration::Entity::find().all(&db).await.unwrap();
    let created_events: Vec<String> = entity::audit_event::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "integration_key.create" && e.outcome == entity::Outcome::Success)
        .map(|e| e.target)
        .collect();
    db.close().await.unwrap();
    assert!(rows.len() >= acknowledged.len());
    assert_eq!(
        created_events.len(),
        rows.len(),
        "an audit event without its key"
    );
    for row in &rows {
        assert!(is_key_id(KeyKind::Integration, &row.key_id), "{row:?}");
        assert!(row.key_hash.starts_with("$argon2id$"), "{}", row.key_id);
        assert!(row.display_name.starts_with("writer "), "{}", row.key_id);
        assert!(row.create_time > 0, "{}", row.key_id);
        assert!(
            integrations.iter().any(|i| i.id == row.integration_id),
            "{} points at no integration",
            row.key_id
        );
        // Stored with its audit event in one transaction: never one alone.
        assert!(
            created_events.contains(&row.key_id),
            "{} was stored without its audit event",
            row.key_id
        );
    }
    for key_id in acknowledged.keys() {
        assert!(rows.iter().any(|r| &r.key_id == key_id), "{key_id} lost");
    }
    eprintln!(
        "{} creates acknowledged before SIGKILL, {} rows after restart",
        acknowledged.len(),
        rows.len()
    );
    let (status, _) = restarted.terminate().await;
    assert!(status.success());
}
