//! Hostile request bodies: hostile strings in every string field, messages
//! over the size limit, and bodies that are not protobuf at all.

use latchkey::grpc::proto::v1::{
    self as pb, client_configuration_service_client::ClientConfigurationServiceClient,
    integration_keys_service_client::IntegrationKeysServiceClient,
};
use tonic::{Code, Status};

use super::{
    CLIENT_ID, HUGE, SERVER_MAX_MESSAGE, TOO_BIG,
    rpcs::rpcs,
    values::{huge_hostile_strings, pseudo_random_bytes, small_hostile_strings},
    wire::Barrage,
};

/// Every string field of every RPC: each hostile string alone in each field
/// (the rest valid, so the value travels as deep as it can), and each small
/// one in all fields at once. Client-scoped RPCs get it all three times: as
/// the partner, as a SYSTEM user and as a CLIENT user of the client (Basic),
/// since users are authenticated before the request is validated, and a
/// CLIENT user is refused (and audited) with the raw request in hand.
pub(super) async fn strings_in_every_field(b: &mut Barrage<'_>) {
    let small = small_hostile_strings();
    let huge = huge_hostile_strings();
    for rpc in rpcs() {
        let mut callers = vec![("", b.credential_for(&rpc))];
        if rpc.is_client_scoped() {
            callers.push((" as user", b.admin.clone()));
            callers.push((" as CLIENT user", b.viewer.clone()));
        }
        let fields = rpc.string_fields(&b.fx);
        for (who, credential) in &callers {
            for (label, value) in small.iter().chain(&huge) {
                for field in &fields {
                    let body = (rpc.build)(&b.fx, &|f, base| {
                        if f == field {
                            value.clone()
                        } else {
                            base.to_owned()
                        }
                    });
                    let case = format!("{field} = {label}{who}");
                    b.send(rpc.name, case, credential, body, &[]).await;
                }
            }
            if fields.len() > 1 {
                for (label, value) in &small {
                    let body = (rpc.build)(&b.fx, &|_, _| value.clone());
                    let case = format!("every string field = {label}{who}");
                    b.send(rpc.name, case, credential, body, &[]).await;
                }
            }
        }
    }
}

/// Messages over the server's limit are RESOURCE_EXHAUSTED; a message of
/// exactly the limit is read (and then judged on its content).
pub(super) async fn oversized_messages(b: &mut Barrage<'_>) {
    for rpc in rpcs() {
        let credential = b.credential_for(&rpc);
        let baseline = rpc.baseline(&b.fx);
        let fields = rpc.string_fields(&b.fx);
        // The first string field made big enough to pass the limit.
        if let Some(field) = fields.first() {
            let body = (rpc.build)(&b.fx, &|f, base| {
                if f == field {
                    "x".repeat(SERVER_MAX_MESSAGE + 1)
                } else {
                    base.to_owned()
                }
            });
            assert!(body.len() > SERVER_MAX_MESSAGE);
            let case = format!("{field} = limit + 1 bytes");
            b.send(rpc.name, case, &credential, body, TOO_BIG).await;
        }
        // The baseline plus an unknown field: one byte over, and exactly at
        // the limit.
        for (label, size, expect) in [
            ("limit + 1", SERVER_MAX_MESSAGE + 1, TOO_BIG),
            ("limit + 1 MiB", SERVER_MAX_MESSAGE + HUGE, TOO_BIG),
            ("exactly the limit", SERVER_MAX_MESSAGE, &[][..]),
        ] {
            let body = with_unknown_field(&baseline, size);
            assert_eq!(body.len(), size);
            let case = format!("unknown field, message of {label}");
            b.send(rpc.name, case, &credential, body, expect).await;
        }
    }
    // The same through generated clients, which encode it themselves once
    // their own encoding limit is raised.
    let mut keys = IntegrationKeysServiceClient::new(b.app.channel().await)
        .max_encoding_message_size(usize::MAX);
    let status = keys
        .create_integration_key(b.app.as_partner(pb::CreateIntegrationKeyRequest {
            integration: "learner-activity".into(),
            display_name: "d".repeat(SERVER_MAX_MESSAGE + 1024),
            expire_time: None,
            ..Default::default()
        }))
        .await
        .expect_err("an oversized message");
    too_big(
        b,
        "IntegrationKeysService/CreateIntegrationKey",
        "generated client, display_name of limit + 1 KiB",
        status,
    );
    let mut config = ClientConfigurationServiceClient::new(b.app.channel().await)
        .max_encoding_message_size(usize::MAX);
    let status = config
        .verify_user_credentials(pb::VerifyUserCredentialsRequest {
            client_id: CLIENT_ID.into(),
            user: "admin".into(),
            api_key: "k".repeat(SERVER_MAX_MESSAGE + 1024),
        })
        .await
        .expect_err("an oversized message");
    too_big(
        b,
        "ClientConfigurationService/VerifyUserCredentials",
        "generated client, api_key of limit + 1 KiB",
        status,
    );
}

/// Counts `status`, a generated client's answer to an oversized message,
/// and requires it to be `TOO_BIG` naming the limit.
fn too_big(b: &mut Barrage<'_>, rpc: &str, case: &str, status: Status) {
    b.count(status.code());
    b.require(
        TOO_BIG.contains(&status.code())
            && status.message().contains(&SERVER_MAX_MESSAGE.to_string()),
        rpc,
        case,
        format!("expected {TOO_BIG:?} naming the limit, got {status:?}"),
    );
}

/// `message` followed by an unknown length-delimited field (number 1000)
/// whose payload makes the whole exactly `total` bytes.
fn with_unknown_field(message: &[u8], total: usize) -> Vec<u8> {
    use prost::encoding::{encode_varint, encoded_len_varint};
    const TAG: u64 = (1000 << 3) | 2;
    let fixed = message.len() + encoded_len_varint(TAG);
    let payload = (0..=total - fixed)
        .rev()
        .find(|&p| fixed + encoded_len_varint(p as u64) + p == total)
        .expect("a payload length that makes the total");
    let mut body = message.to_vec();
    encode_varint(TAG, &mut body);
    encode_varint(payload as u64, &mut body);
    body.resize(total, b'u');
    body
}

/// Bodies that are not a valid protobuf encoding of the request. tonic's
/// codec answers INTERNAL for a request it cannot parse (gRPC's status code
/// table says so); these are reported separately, and must be that clean
/// codec answer, not a crash.
pub(super) async fn malformed_bodies(b: &mut Barrage<'_>) {
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        // Field 1, length-delimited, 4 bytes that are not UTF-8.
        (
            "invalid UTF-8 in string field 1",
            vec![0x0a, 4, 0xff, 0xfe, 0xc3, 0x28],
        ),
        ("truncated varint", vec![0x08, 0xff, 0xff]),
        ("length past the end", vec![0x0a, 0x7f, b'a']),
        ("field number 0", vec![0x02, 0x01, b'a']),
        ("wire type 7", vec![0x0f, 0x00]),
        ("an unmatched end-group", vec![0x0c]),
        (
            "10-byte varint overflow",
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
        ),
        ("pseudo-random bytes", pseudo_random_bytes(256)),
    ];
    for rpc in rpcs() {
        let credential = b.credential_for(&rpc);
        let has_fields = !rpc.string_fields(&b.fx).is_empty();
        for (label, body) in &bodies {
            if !has_fields && label.starts_with("invalid UTF-8") {
                // CheckServiceHealthRequest has no field 1: an unknown
                // field, skipped, so this one parses.
                b.send(rpc.name, *label, &credential, body.clone(), &[Code::Ok])
                    .await;
                continue;
            }
            // tonic answers INTERNAL; latchkey recodes it (wire_errors).
            b.send(
                rpc.name,
                *label,
                &credential,
                body.clone(),
                &[Code::InvalidArgument],
            )
            .await;
        }
    }
}
