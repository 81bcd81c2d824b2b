//! Key restrictions: labels and allowed caller networks, set by Create and
//! Update, returned by Get/List (labels also by an ALLOWED verify), enforced
//! on the cached path, inherited by a rolled key.

use std::collections::HashMap;

use latchkey::grpc::proto::v1::{
    CreateIntegrationKeyRequest, Decision, GetIntegrationKeyRequest, IntegrationKey,
    RollIntegrationKeyRequest, UpdateIntegrationKeyRequest, VerifyIntegrationKeyRequest,
};

use crate::helpers::*;

const OUTLINE: &str = "course.v1.CourseService/GetOutline";

async fn create_restricted(app: &TestApp, networks: &[&str]) -> (String, String) {
    let created = app
        .keys_client()
        .await
        .create_integration_key(app.as_partner(CreateIntegrationKeyRequest {
            integration: "learner-activity".into(),
            labels: HashMap::from([
                ("team".to_owned(), "payments".to_owned()),
                ("ticket".to_owned(), "OPS-42".to_owned()),
            ]),
            allowed_networks: networks.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        }))
        .await
        .expect("create")
        .into_inner();
    let key = created.key.expect("key");
    assert_eq!(key.labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(key.allowed_networks.len(), networks.len());
    (key.key_id, created.api_key)
}

async fn verify_as(app: &TestApp, api_key: &str, caller_address: &str) -> Decision {
    app.keys_client()
        .await
        .verify_integration_key(VerifyIntegrationKeyRequest {
            api_key: api_key.into(),
            endpoint: OUTLINE.into(),
            caller_address: caller_address.into(),
        })
        .await
        .expect("verify")
        .into_inner()
        .decision()
}

async fn set_networks(app: &TestApp, key_id: &str, networks: &[&str]) {
    app.keys_client()
        .await
        .update_integration_key(app.as_partner(UpdateIntegrationKeyRequest {
            key: Some(IntegrationKey {
                integration: "learner-activity".into(),
                key_id: key_id.into(),
                allowed_networks: networks.iter().map(|n| (*n).to_owned()).collect(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["allowed_networks".into()],
            }),
        }))
        .await
        .expect("update");
}

#[tokio::test]
async fn allowed_networks_are_enforced_on_the_cached_path_and_updates_apply_at_once() {
    let app = spawn_app().await;
    // The test client's address is 127.0.0.1, the direct peer.
    let (key_id, api_key) = create_restricted(&app, &["127.0.0.1/32", "10.0.0.0/8"]).await;
    let allowed = app.verify(&api_key, OUTLINE).await;
    assert_eq!(allowed.decision(), Decision::Allowed);
    assert_eq!(
        allowed.labels.get("ticket").map(String::as_str),
        Some("OPS-42")
    );

    // Cached now; narrowing the networks takes effect on the next verify.
    set_networks(&app, &key_id, &["10.0.0.0/8"]).await;
    let refused = app.verify(&api_key, OUTLINE).await;
    assert_eq!(refused.decision(), Decision::CallerNotAllowed);
    assert!(refused.labels.is_empty(), "labels only with ALLOWED");
    assert_eq!(refused.key_id, key_id, "the key was proven");

    // Cleared: anyone again.
    set_networks(&app, &key_id, &[]).await;
    assert_eq!(
        app.verify(&api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );

    // Get and a rolled key carry the restrictions.
    set_networks(&app, &key_id, &["192.0.2.0/24"]).await;
    let got = app
        .keys_client()
        .await
        .get_integration_key(app.as_partner(GetIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: key_id.clone(),
        }))
        .await
        .expect("get")
        .into_inner()
        .key
        .expect("key");
    assert_eq!(got.allowed_networks, vec!["192.0.2.0/24".to_owned()]);
    assert_eq!(got.labels.len(), 2);
    let rolled = app
        .keys_client()
        .await
        .roll_integration_key(app.as_partner(RollIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id,
            grace_period: None,
        }))
        .await
        .expect("roll")
        .into_inner();
    assert_eq!(
        rolled.key.expect("key").allowed_networks,
        vec!["192.0.2.0/24".to_owned()]
    );
    assert_eq!(
        app.verify(&rolled.api_key, OUTLINE).await.decision(),
        Decision::CallerNotAllowed
    );
}

#[tokio::test]
async fn a_trusted_peer_names_the_caller_that_networks_judge() {
    let app = spawn_app_with(|s| {
        s.trusted_peers =
            latchkey::security::callers::TrustedPeers::parse("127.0.0.1").expect("CIDR");
    })
    .await;
    let (_, api_key) = create_restricted(&app, &["10.0.0.0/8"]).await;
    assert_eq!(
        verify_as(&app, &api_key, "10.9.8.7").await,
        Decision::Allowed
    );
    assert_eq!(
        verify_as(&app, &api_key, "192.0.2.1").await,
        Decision::CallerNotAllowed
    );
    assert_eq!(
        verify_as(&app, &api_key, "").await,
        Decision::CallerNotAllowed
    );
}

#[tokio::test]
async fn bad_labels_and_networks_are_named_field_violations() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let many: HashMap<String, String> = (0..17).map(|i| (format!("k{i}"), String::new())).collect();
    let cases = [
        (
            HashMap::from([("Bad Key".to_owned(), "x".to_owned())]),
            vec![],
            vec!["labels"],
        ),
        (many, vec![], vec!["labels"]),
        (
            HashMap::new(),
            vec!["not-a-network".to_owned()],
            vec!["allowed_networks"],
        ),
        (
            HashMap::new(),
            vec!["10.0.0.0/8".to_owned(); 33],
            vec!["allowed_networks"],
        ),
    ];
    for (labels, allowed_networks, fields) in cases {
        let result = client
            .create_integration_key(app.as_partner(CreateIntegrationKeyRequest {
                integration: "learner-activity".into(),
                labels,
                allowed_networks,
                ..Default::default()
            }))
            .await;
        assert_eq!(bad_request_fields(result), fields);
    }
    let (key_id, _) = app.create_key("learner-activity", None).await;
    let result = client
        .update_integration_key(app.as_partner(UpdateIntegrationKeyRequest {
            key: Some(IntegrationKey {
                integration: "learner-activity".into(),
                key_id,
                labels: HashMap::from([("x".to_owned(), "v\u{7}".to_owned())]),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["labels".into()],
            }),
        }))
        .await;
    assert_eq!(bad_request_fields(result), vec!["key.labels"]);
}
