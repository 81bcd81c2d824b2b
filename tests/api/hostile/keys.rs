//! Keys with a valid checksum but an id nobody issued, and keys of the
//! wrong kind, in the Verify calls and as ids in the management calls.

use latchkey::{
    domain::{
        ApiKey, KeyKind,
        key_format::{KEY_ID_RANDOM_LEN, KEY_LEN, SECRET_LEN},
    },
    grpc::proto::v1 as pb,
};
use prost::Message;
use prost_types::FieldMask;
use tonic::{Code, metadata::MetadataMap};

use super::{CLIENT_ID, OUTLINE, values::well_formed_key, wire::Barrage};

/// Keys with a valid checksum but an id nobody issued, and keys of the
/// wrong kind.
pub(super) async fn unknown_and_wrong_kind_keys(b: &mut Barrage<'_>) {
    let partner = b.partner.clone();
    let fixture_key = b.fx.api_key.clone();
    let fixture_id = b.fx.key_id.clone();
    let partner_key = b.app.partner_key.clone();
    let unknown = well_formed_key(
        "lki",
        &"Z".repeat(KEY_ID_RANDOM_LEN),
        &"s".repeat(SECRET_LEN),
    );
    let random = ApiKey::generate(KeyKind::Integration)
        .expect("random")
        .expose_secret()
        .to_owned();
    let wrong_secret = well_formed_key("lki", &b.fx.key_id[4..], &"W".repeat(SECRET_LEN));
    for key in [&unknown, &random, &wrong_secret] {
        assert!(ApiKey::parse(KeyKind::Integration, key.clone()).is_ok());
    }
    let verify = |api_key: &str| {
        pb::VerifyIntegrationKeyRequest {
            api_key: api_key.into(),
            endpoint: OUTLINE.into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    const VERIFY: &str = "IntegrationKeysService/VerifyIntegrationKey";
    for (label, key, decisions) in [
        (
            "a well-formed key nobody issued",
            unknown.as_str(),
            &[pb::Decision::Invalid, pb::Decision::RateLimited][..],
        ),
        (
            "a freshly generated key nobody issued",
            random.as_str(),
            &[pb::Decision::Invalid, pb::Decision::RateLimited][..],
        ),
        (
            "the fixture's key id with a forged secret",
            wrong_secret.as_str(),
            &[pb::Decision::Invalid, pb::Decision::RateLimited][..],
        ),
        (
            "the partner key (wrong kind)",
            partner_key.as_str(),
            &[pb::Decision::Malformed][..],
        ),
        (
            "an integration key with one checksum character changed",
            &format!(
                "{}{}",
                &fixture_key[..KEY_LEN - 1],
                if fixture_key.ends_with('0') { '1' } else { '0' }
            ),
            &[pb::Decision::Malformed][..],
        ),
        (
            "the key with its prefix swapped to lkp",
            &format!("lkp{}", &fixture_key[3..]),
            &[pb::Decision::Malformed][..],
        ),
        (
            "the key id alone",
            fixture_id.as_str(),
            &[pb::Decision::Malformed][..],
        ),
    ] {
        let answer = b
            .send(VERIFY, label, &MetadataMap::new(), verify(key), &[Code::Ok])
            .await;
        if let Some(body) = answer {
            let response = pb::VerifyIntegrationKeyResponse::decode(body.as_slice())
                .expect("a VerifyIntegrationKeyResponse");
            let decision = response.decision();
            b.require(
                decisions.contains(&decision)
                    && response.key_id.is_empty()
                    && response.integration.is_empty(),
                VERIFY,
                label,
                format!("expected a decision in {decisions:?} naming no key, got {response:?}"),
            );
        }
    }
    // The partner key checked as a client user's key.
    let answer = b
        .send(
            "ClientConfigurationService/VerifyUserCredentials",
            "the partner key as a user's api_key",
            &MetadataMap::new(),
            pb::VerifyUserCredentialsRequest {
                client_id: CLIENT_ID.into(),
                user: "admin".into(),
                api_key: b.app.partner_key.clone(),
            }
            .encode_to_vec(),
            &[Code::Ok],
        )
        .await;
    if let Some(body) = answer {
        let response = pb::VerifyUserCredentialsResponse::decode(body.as_slice()).expect("decode");
        b.require(
            !response.valid,
            "ClientConfigurationService/VerifyUserCredentials",
            "the partner key as a user's api_key",
            format!("expected valid = false, got {response:?}"),
        );
    }

    // The ids of those keys in the management calls.
    let unknown_id = unknown[..20].to_owned();
    let partner_id = partner_key[..20].to_owned();
    for (label, integration, key_id, expect) in [
        (
            "an id nobody issued",
            "learner-activity",
            unknown_id.as_str(),
            Code::NotFound,
        ),
        (
            "the fixture key under another integration",
            "sandbox",
            fixture_id.as_str(),
            Code::NotFound,
        ),
        (
            "the partner key's id",
            "learner-activity",
            partner_id.as_str(),
            Code::InvalidArgument,
        ),
        (
            "a whole key instead of its id",
            "learner-activity",
            fixture_key.as_str(),
            Code::InvalidArgument,
        ),
        (
            "an unknown integration",
            "no-such-integration",
            fixture_id.as_str(),
            Code::NotFound,
        ),
    ] {
        let (i, k) = (integration.to_owned(), key_id.to_owned());
        let get = pb::GetIntegrationKeyRequest {
            integration: i.clone(),
            key_id: k.clone(),
        };
        let delete = pb::DeleteIntegrationKeyRequest {
            integration: i.clone(),
            key_id: k.clone(),
        };
        let update = pb::UpdateIntegrationKeyRequest {
            key: Some(pb::IntegrationKey {
                integration: i.clone(),
                key_id: k.clone(),
                disabled: true,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["disabled".into()],
            }),
        };
        let roll = pb::RollIntegrationKeyRequest {
            integration: i,
            key_id: k,
            grace_period: None,
        };
        for (rpc, body) in [
            (
                "IntegrationKeysService/GetIntegrationKey",
                get.encode_to_vec(),
            ),
            (
                "IntegrationKeysService/UpdateIntegrationKey",
                update.encode_to_vec(),
            ),
            (
                "IntegrationKeysService/RollIntegrationKey",
                roll.encode_to_vec(),
            ),
            (
                "IntegrationKeysService/DeleteIntegrationKey",
                delete.encode_to_vec(),
            ),
        ] {
            b.send(rpc, label, &partner, body, &[expect]).await;
        }
    }
    // The fixture key is still there and usable.
    let answer = b
        .send(
            VERIFY,
            "the fixture key after the barrage of ids",
            &MetadataMap::new(),
            verify(&fixture_key),
            &[Code::Ok],
        )
        .await;
    if let Some(body) = answer {
        let decision = pb::VerifyIntegrationKeyResponse::decode(body.as_slice())
            .expect("decode")
            .decision();
        b.require(
            decision == pb::Decision::Allowed,
            VERIFY,
            "the fixture key after the barrage of ids",
            format!("expected ALLOWED, got {decision:?}"),
        );
    }
}
