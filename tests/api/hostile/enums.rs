//! Enum values no proto defines, timestamps and durations out of range,
//! hostile field masks, and requests with many repeated entries.

use latchkey::grpc::proto::v1 as pb;
use prost_types::{Duration as PbDuration, FieldMask};
use tonic::Code;

use super::{
    CLIENT_ID, HUGE,
    values::{hostile_timestamps, timestamp},
    wire::Barrage,
};

fn duration(seconds: i64, nanos: i32) -> PbDuration {
    PbDuration { seconds, nanos }
}

/// An update of the fixture key: the fields of `key` (its id and
/// integration filled in) under the mask `paths`.
fn update_fixture_key(
    b: &Barrage<'_>,
    key: pb::IntegrationKey,
    paths: Vec<String>,
) -> pb::UpdateIntegrationKeyRequest {
    pb::UpdateIntegrationKeyRequest {
        key: Some(pb::IntegrationKey {
            key_id: b.fx.key_id.clone(),
            integration: "learner-activity".into(),
            ..key
        }),
        update_mask: Some(FieldMask { paths }),
    }
}

/// Enum values no proto defines, and timestamps and durations out of range.
pub(super) async fn enums_times_and_masks(b: &mut Barrage<'_>) {
    for scope in [99, -1, i32::MIN, i32::MAX, 0] {
        let case = format!("scope = {scope}");
        let configure = pb::ConfigureRequest {
            client_id: format!("enum-{}", scope.unsigned_abs()),
            client_credentials: Some(pb::ClientCredentials {
                user_api_keys: vec![pb::UserApiKey {
                    user: "root".into(),
                    api_key: "root-key-0123456789abcdef".into(),
                    scope,
                }],
                ..Default::default()
            }),
            client_settings: Default::default(),
        };
        b.send_as_partner(
            "ClientConfigurationService/Configure",
            case.clone(),
            &configure,
            &[Code::InvalidArgument],
        )
        .await;
        let set = pb::SetUserCredentialsRequest {
            client_id: CLIENT_ID.into(),
            user: "enum-user".into(),
            api_key: "enum-user-key-0123456789".into(),
            scope,
        };
        b.send_as_partner(
            "ClientConfigurationService/SetUserCredentials",
            case.clone(),
            &set,
            &[Code::InvalidArgument],
        )
        .await;
    }
    // Output-only enum and bool fields of IntegrationKey, sent in an update.
    for state in [99, -1, i32::MIN] {
        let update = update_fixture_key(
            b,
            pb::IntegrationKey {
                display_name: "still here".into(),
                state,
                create_time: Some(timestamp(i64::MIN, -5)),
                last_use_time: Some(timestamp(i64::MAX, i32::MAX)),
                ..Default::default()
            },
            vec!["display_name".into()],
        );
        b.send_as_partner(
            "IntegrationKeysService/UpdateIntegrationKey",
            format!("key.state = {state}, output-only times out of range"),
            &update,
            &[Code::Ok],
        )
        .await;
    }

    for (label, ts) in hostile_timestamps() {
        let case = format!("expire_time = {label}");
        let create = pb::CreateIntegrationKeyRequest {
            integration: "learner-activity".into(),
            display_name: "times".into(),
            expire_time: Some(ts),
            ..Default::default()
        };
        b.send_as_partner(
            "IntegrationKeysService/CreateIntegrationKey",
            case.clone(),
            &create,
            &[],
        )
        .await;
        let update = update_fixture_key(
            b,
            pb::IntegrationKey {
                expire_time: Some(ts),
                ..Default::default()
            },
            vec!["expire_time".into()],
        );
        b.send_as_partner(
            "IntegrationKeysService/UpdateIntegrationKey",
            case.clone(),
            &update,
            &[],
        )
        .await;
        for (field, audit) in [
            (
                "start_time",
                pb::ListAuditEventsRequest {
                    start_time: Some(ts),
                    ..Default::default()
                },
            ),
            (
                "end_time",
                pb::ListAuditEventsRequest {
                    end_time: Some(ts),
                    ..Default::default()
                },
            ),
            (
                "start_time = end_time",
                pb::ListAuditEventsRequest {
                    start_time: Some(ts),
                    end_time: Some(ts),
                    ..Default::default()
                },
            ),
        ] {
            b.send_as_partner(
                "AuditService/ListAuditEvents",
                format!("{field} = {label}"),
                &audit,
                &[],
            )
            .await;
        }
    }
    // Put the fixture key back to "never expires" for the later cases.
    let reset = update_fixture_key(
        b,
        pb::IntegrationKey::default(),
        vec!["expire_time".into(), "disabled".into()],
    );
    b.send_as_partner(
        "IntegrationKeysService/UpdateIntegrationKey",
        "reset the fixture key",
        &reset,
        &[Code::Ok],
    )
    .await;

    for (label, grace) in [
        ("i64::MAX seconds", duration(i64::MAX, 999_999_999)),
        ("i64::MIN seconds", duration(i64::MIN, 0)),
        ("-1 second", duration(-1, 0)),
        ("negative nanos", duration(0, -1)),
        ("nanos overflow", duration(0, i32::MAX)),
        ("10000 years", duration(315_576_000_000, 0)),
    ] {
        // An id nobody holds: a grace period that is accepted must not roll
        // the fixture key.
        let roll = pb::RollIntegrationKeyRequest {
            integration: "learner-activity".into(),
            key_id: "lki_0000000000000000".into(),
            grace_period: Some(grace),
        };
        b.send_as_partner(
            "IntegrationKeysService/RollIntegrationKey",
            format!("grace_period = {label}"),
            &roll,
            &[Code::InvalidArgument, Code::NotFound],
        )
        .await;
    }

    for (label, paths) in [
        ("no paths", vec![]),
        ("empty path", vec![String::new()]),
        ("NUL path", vec!["display_name\0".to_owned()]),
        ("wildcard", vec!["*".to_owned()]),
        ("nested path", vec!["key.display_name".to_owned()]),
        (
            "output-only field",
            vec!["state".to_owned(), "key_id".to_owned()],
        ),
        ("1 MiB path", vec!["p".repeat(HUGE)]),
        (
            "10000 repeated paths",
            vec!["display_name".to_owned(); 10_000],
        ),
        (
            "10000 unknown paths",
            (0..10_000).map(|i| format!("p{i}")).collect(),
        ),
    ] {
        let update = update_fixture_key(
            b,
            pb::IntegrationKey {
                display_name: "masked".into(),
                ..Default::default()
            },
            paths,
        );
        b.send_as_partner(
            "IntegrationKeysService/UpdateIntegrationKey",
            format!("update_mask = {label}"),
            &update,
            &[],
        )
        .await;
    }

    // Many repeated entries.
    let many_settings = pb::ConfigureSettingsRequest {
        client_id: CLIENT_ID.into(),
        settings: (0..10_000)
            .map(|i| pb::Setting {
                name: format!("ClientSettings.S{i}"),
                value: "v".into(),
                secret: true,
            })
            .collect(),
    };
    b.send_as_partner(
        "ClientConfigurationService/ConfigureSettings",
        "10000 settings",
        &many_settings,
        &[],
    )
    .await;
    let many_users = pb::ConfigureRequest {
        client_id: "many-users".into(),
        client_credentials: Some(pb::ClientCredentials {
            user_api_keys: (0..2_000)
                .map(|i| pb::UserApiKey {
                    user: format!("u{}", i % 1_000),
                    api_key: "k".into(),
                    scope: pb::Scope::Client.into(),
                })
                .collect(),
            ..Default::default()
        }),
        client_settings: Default::default(),
    };
    b.send_as_partner(
        "ClientConfigurationService/Configure",
        "2000 users, each listed twice",
        &many_users,
        &[Code::InvalidArgument],
    )
    .await;
}
