//! UpdateIntegrationKey and RollIntegrationKey.

use std::time::Duration;

use latchkey::grpc::proto::v1::{
    Decision, GetIntegrationKeyRequest, IntegrationKey, IntegrationKeyState,
    RollIntegrationKeyRequest, UpdateIntegrationKeyRequest,
};
use prost_types::FieldMask;
use tonic::Code;

use crate::helpers::{assert_status, bad_request_fields, eventually, in_seconds, spawn_app};

const OUTLINE: &str = "course.v1.CourseService/GetOutline";

fn update(key_id: &str, key: IntegrationKey, paths: &[&str]) -> UpdateIntegrationKeyRequest {
    UpdateIntegrationKeyRequest {
        key: Some(IntegrationKey {
            integration: "learner-activity".into(),
            key_id: key_id.into(),
            ..key
        }),
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    }
}

fn roll(key_id: &str, grace_seconds: Option<i64>) -> RollIntegrationKeyRequest {
    RollIntegrationKeyRequest {
        integration: "learner-activity".into(),
        key_id: key_id.into(),
        grace_period: grace_seconds.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
    }
}

#[tokio::test]
async fn update_changes_only_the_masked_fields() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let (key_id, _) = app.create_key("learner-activity", None).await;
    let expire = in_seconds(7200);
    let new_values = IntegrationKey {
        display_name: "renamed".into(),
        expire_time: Some(expire),
        disabled: true,
        ..Default::default()
    };

    let renamed = client
        .update_integration_key(app.as_partner(update(
            &key_id,
            new_values.clone(),
            &["display_name"],
        )))
        .await
        .expect("update")
        .into_inner()
        .key
        .unwrap();
    assert_eq!(renamed.display_name, "renamed");
    assert_eq!(renamed.expire_time, None, "not in the mask");
    assert!(!renamed.disabled, "not in the mask");

    let all = client
        .update_integration_key(app.as_partner(update(
            &key_id,
            new_values,
            &["expire_time", "disabled"],
        )))
        .await
        .expect("update")
        .into_inner()
        .key
        .unwrap();
    assert_eq!(all.expire_time, Some(expire));
    assert!(all.disabled);
    assert_eq!(all.state(), IntegrationKeyState::Disabled);

    // expire_time in the mask but unset: never expires again.
    let cleared = client
        .update_integration_key(app.as_partner(update(
            &key_id,
            IntegrationKey::default(),
            &["expire_time", "disabled"],
        )))
        .await
        .expect("update")
        .into_inner()
        .key
        .unwrap();
    assert_eq!(cleared.expire_time, None);
    assert_eq!(cleared.state(), IntegrationKeyState::Active);
    assert_eq!(cleared.display_name, "renamed");
}

#[tokio::test]
async fn update_rejects_bad_masks_and_values() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let (key_id, _) = app.create_key("learner-activity", None).await;
    let cases = [
        (
            update(&key_id, IntegrationKey::default(), &[]),
            vec!["update_mask"],
        ),
        (
            update(&key_id, IntegrationKey::default(), &["secret"]),
            vec!["update_mask"],
        ),
        (
            update(
                &key_id,
                IntegrationKey {
                    display_name: "x".repeat(101),
                    ..Default::default()
                },
                &["display_name"],
            ),
            vec!["key.display_name"],
        ),
        (
            update(
                &key_id,
                IntegrationKey {
                    expire_time: Some(in_seconds(-10)),
                    ..Default::default()
                },
                &["expire_time"],
            ),
            vec!["key.expire_time"],
        ),
        (
            update("", IntegrationKey::default(), &["disabled"]),
            vec!["key.key_id"],
        ),
    ];
    for (request, fields) in cases {
        assert_eq!(
            bad_request_fields(client.update_integration_key(app.as_partner(request)).await),
            fields
        );
    }
    let missing = "lki_0000000000000000";
    assert_status(
        client
            .update_integration_key(app.as_partner(update(
                missing,
                IntegrationKey::default(),
                &["disabled"],
            )))
            .await,
        Code::NotFound,
        &format!("Key '{missing}' not found"),
    );
}

#[tokio::test]
async fn roll_issues_a_new_key_and_ends_the_old_one_after_the_grace_period() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let (old_id, old_key) = app.create_key("learner-activity", None).await;
    assert_eq!(
        app.verify(&old_key, OUTLINE).await.decision(),
        Decision::Allowed
    );

    let rolled = client
        .roll_integration_key(app.as_partner(roll(&old_id, Some(1))))
        .await
        .expect("roll")
        .into_inner();
    let new = rolled.key.expect("new key");
    let previous = rolled.previous_key.expect("previous key");
    assert_ne!(new.key_id, old_id);
    assert!(rolled.api_key.starts_with(&format!("{}_", new.key_id)));
    assert_eq!(new.display_name, "test key", "inherits the display name");
    assert_eq!(new.expire_time, None, "inherits the (absent) expiry");
    assert_eq!(previous.key_id, old_id);
    assert!(previous.expire_time.is_some());

    // Within the grace period both keys work; after it only the new one.
    assert_eq!(
        app.verify(&rolled.api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    eventually(
        Duration::from_secs(10),
        "the grace period to end",
        || async {
            (app.verify(&old_key, OUTLINE).await.decision() == Decision::Expired).then_some(())
        },
    )
    .await;
    assert_eq!(
        app.verify(&rolled.api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
}

#[tokio::test]
async fn a_long_grace_period_never_extends_the_old_key() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let expire = in_seconds(600);
    let (old_id, old_key) = app.create_key("learner-activity", Some(expire)).await;
    let rolled = client
        .roll_integration_key(app.as_partner(roll(&old_id, Some(86_400))))
        .await
        .expect("roll")
        .into_inner();
    assert_eq!(rolled.previous_key.unwrap().expire_time, Some(expire));
    assert_eq!(rolled.key.unwrap().expire_time, Some(expire), "inherited");
    // The longest grace protobuf allows, on a key with no expiry, ends at
    // the last instant a Timestamp can carry, and the key still reads back.
    let (endless_id, _) = app.create_key("learner-activity", None).await;
    let rolled = client
        .roll_integration_key(app.as_partner(roll(&endless_id, Some(315_576_000_000))))
        .await
        .expect("roll")
        .into_inner();
    let latest = prost_types::Timestamp {
        seconds: 253_402_300_799,
        nanos: 999_999_000,
    };
    assert_eq!(rolled.previous_key.unwrap().expire_time, Some(latest));
    let previous = client
        .get_integration_key(app.as_partner(GetIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: endless_id.clone(),
        }))
        .await
        .expect("get")
        .into_inner()
        .key
        .expect("key");
    assert_eq!(previous.expire_time, Some(latest));
    // A zero grace period ends the old key at once.
    let (other_id, other_key) = app.create_key("learner-activity", None).await;
    let immediate = client
        .roll_integration_key(app.as_partner(roll(&other_id, None)))
        .await
        .expect("roll")
        .into_inner();
    assert_eq!(
        app.verify(&other_key, OUTLINE).await.decision(),
        Decision::Expired
    );
    assert_eq!(
        app.verify(&immediate.api_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
    // The first old key still works until its own expiry.
    assert_eq!(
        app.verify(&old_key, OUTLINE).await.decision(),
        Decision::Allowed
    );
}

#[tokio::test]
async fn roll_errors() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let missing = "lki_0000000000000000";
    assert_status(
        client
            .roll_integration_key(app.as_partner(roll(missing, None)))
            .await,
        Code::NotFound,
        &format!("Key '{missing}' not found"),
    );
    let (key_id, _) = app.create_key("learner-activity", None).await;
    assert_eq!(
        bad_request_fields(
            client
                .roll_integration_key(app.as_partner(roll(&key_id, Some(-5))))
                .await
        ),
        ["grace_period"]
    );
    // Past protobuf's own bound for a Duration (about 10,000 years).
    assert_eq!(
        bad_request_fields(
            client
                .roll_integration_key(app.as_partner(roll(&key_id, Some(315_576_000_001))))
                .await
        ),
        ["grace_period"]
    );
    // Rolled with no grace, the old key is expired: rolling it again would
    // issue a key born expired.
    client
        .roll_integration_key(app.as_partner(roll(&key_id, Some(0))))
        .await
        .expect("roll");
    assert_status(
        client
            .roll_integration_key(app.as_partner(roll(&key_id, None)))
            .await,
        Code::FailedPrecondition,
        &format!("Key '{key_id}' has expired and cannot be rolled"),
    );
}

#[tokio::test]
async fn rolling_a_disabled_key_is_refused_and_mints_nothing() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let (key_id, api_key) = app.create_key("learner-activity", None).await;
    client
        .update_integration_key(app.as_partner(update(
            &key_id,
            IntegrationKey {
                disabled: true,
                ..Default::default()
            },
            &["disabled"],
        )))
        .await
        .expect("disable");
    let lister = client.clone();
    let count = || {
        let mut client = lister.clone();
        let request = app.as_partner(latchkey::grpc::proto::v1::ListIntegrationKeysRequest {
            integration: "learner-activity".into(),
            page_size: 1000,
            ..Default::default()
        });
        async move {
            client
                .list_integration_keys(request)
                .await
                .unwrap()
                .into_inner()
                .keys
                .len()
        }
    };
    let keys_before = count().await;
    assert_status(
        client
            .roll_integration_key(app.as_partner(roll(&key_id, Some(60))))
            .await,
        Code::FailedPrecondition,
        &format!("Key '{key_id}' is disabled"),
    );
    assert_eq!(count().await, keys_before, "no successor was stored");
    assert_eq!(
        app.verify(&api_key, "course.v1.CourseService/GetOutline")
            .await
            .decision(),
        Decision::Disabled
    );
}
