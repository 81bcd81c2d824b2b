//! Hostile credentials: headers that are not UTF-8, not base64, not a key,
//! a key of the wrong kind or too big for HTTP/2, and refused calls with
//! hostile values that must still be audited.

use latchkey::grpc::proto::v1 as pb;
use prost::Message;
use tonic::{
    Code,
    metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataMap},
};

use super::{
    ADMIN_KEY, CLIENT_ID, HUGE,
    rpcs::{Needs, rpcs},
    wire::{Barrage, SetAside, ascii, basic_token, metadata, shorten},
};

/// Metadata with `value` as its one `sid` header.
fn sid(value: AsciiMetadataValue) -> MetadataMap {
    metadata(&[("sid", value)])
}

/// Metadata with `value` as its one `authorization` header.
fn authorization(value: AsciiMetadataValue) -> MetadataMap {
    metadata(&[("authorization", value)])
}

/// Credential headers that are not UTF-8, not base64, not a key, or a key
/// of the wrong kind, on every RPC.
pub(super) async fn hostile_credentials(b: &mut Barrage<'_>) {
    let partner = b.app.partner_key.clone();
    let mut tampered = partner.clone().into_bytes();
    tampered[30] = 0xff;
    let admin_no_colon = format!("admin{ADMIN_KEY}");
    let cases: Vec<(&str, MetadataMap)> = vec![
        (
            "sid: binary, not UTF-8",
            sid(ascii(b"lkp_\xff\xfe\xfd\x80\xc3\x28\xe2\x82")),
        ),
        (
            "sid: the partner key with one byte 0xff",
            sid(ascii(&tampered)),
        ),
        ("sid: empty", sid(ascii(b""))),
        ("sid: 8 KiB", sid(ascii("A".repeat(8 * 1024).as_bytes()))),
        (
            "sid: the integration key (wrong kind)",
            sid(ascii(b.fx.api_key.as_bytes())),
        ),
        (
            "two sid headers: bad then good",
            metadata(&[
                ("sid", ascii(b"garbage")),
                ("sid", ascii(partner.as_bytes())),
            ]),
        ),
        ("sid-bin: the partner key as a binary header", {
            let mut map = MetadataMap::new();
            map.insert_bin(
                "sid-bin",
                BinaryMetadataValue::from_bytes(partner.as_bytes()),
            );
            map
        }),
        (
            "authorization: Bearer + binary",
            authorization(ascii(b"Bearer \xff\xfe\x80\x81")),
        ),
        (
            "authorization: Bearer + the integration key (wrong kind)",
            authorization(ascii(format!("Bearer {}", b.fx.api_key).as_bytes())),
        ),
        (
            "authorization: Bearer alone",
            authorization(ascii(b"Bearer")),
        ),
        (
            "authorization: Basic + raw binary",
            authorization(ascii(b"Basic \xc3\x28\xff:\xfe")),
        ),
        (
            "authorization: Basic base64(invalid UTF-8)",
            authorization(basic_token(b"\xff\xfe\xc3\x28:\x80\x81")),
        ),
        (
            "authorization: Basic base64(user without a colon)",
            authorization(basic_token(admin_no_colon.as_bytes())),
        ),
        (
            "authorization: Basic base64(\":\")",
            authorization(basic_token(b":")),
        ),
        (
            "authorization: Basic base64(NUL user:key)",
            authorization(basic_token(b"ad\0min:\0")),
        ),
        (
            "authorization: Basic base64(1 KiB user@acme:key)",
            authorization(basic_token(
                format!("{}@acme:{ADMIN_KEY}", "u".repeat(1024)).as_bytes(),
            )),
        ),
        (
            "authorization: Basic base64(admin@<NUL client>:key)",
            authorization(basic_token(format!("admin@ac\0me:{ADMIN_KEY}").as_bytes())),
        ),
        (
            "authorization: Basic base64(admin:<integration key>)",
            authorization(basic_token(format!("admin:{}", b.fx.api_key).as_bytes())),
        ),
        (
            "authorization: Basic + not base64",
            authorization(ascii(b"Basic !!!not*base64===")),
        ),
        ("authorization: Basic alone", authorization(ascii(b"Basic"))),
        (
            "authorization: Digest",
            authorization(ascii(b"Digest username=\"admin\"")),
        ),
    ];
    for rpc in rpcs() {
        let body = rpc.baseline(&b.fx);
        for (case, credential) in &cases {
            // Nothing here is a valid credential: calls that need one are
            // refused as the contract says; the rest answer normally.
            let expect: &[Code] = match rpc.needs {
                Needs::Nothing => &[Code::Ok],
                _ if case.starts_with("two sid") => &[Code::Unauthenticated, Code::Ok],
                _ => &[Code::Unauthenticated],
            };
            b.send(rpc.name, *case, credential, body.clone(), expect)
                .await;
        }
        // A valid credential next to a garbage one still works: `sid` wins.
        let mut both = b.credential_for(&rpc);
        both.insert("authorization", ascii(b"Basic \xff\xfe"));
        b.send(
            rpc.name,
            "valid sid + binary authorization",
            &both,
            body.clone(),
            &[],
        )
        .await;
        // Header blocks over the server's HTTP/2 limit never reach tonic.
        for (case, size, accepted) in [
            (
                "sid: 20 KiB (over the 16 KiB header list limit)",
                20 * 1024,
                (
                    Code::Unknown,
                    "grpc-status header missing, mapped from HTTP status code 431",
                ),
            ),
            (
                "sid: 64 KiB (far over the header list limit)",
                64 * 1024,
                (Code::ResourceExhausted, "h2 protocol error"),
            ),
        ] {
            let credential = sid(ascii("A".repeat(size).as_bytes()));
            b.send_set_aside(
                SetAside::HeaderListTooLarge,
                rpc.name,
                case,
                &credential,
                body.clone(),
                &[accepted],
            )
            .await;
        }
    }
}

/// A refusal is audited even when the request's values are hostile: the
/// event's target is raw input then (`<user>@<client>`), and must not make
/// the event unstorable.
pub(super) async fn refusals_are_audited(b: &mut Barrage<'_>) {
    const SET: &str = "ClientConfigurationService/SetUserCredentials";
    const AUDIT: &str = "AuditService/ListAuditEvents";
    let viewer = b.viewer.clone();
    for (label, user) in [
        ("NUL", "nul\0user".to_owned()),
        ("1 MiB", "u".repeat(HUGE)),
        ("1 MiB of emoji", "🔑".repeat(HUGE / 4)),
    ] {
        let case = format!("a CLIENT user's refused call, user = {label}");
        let set = pb::SetUserCredentialsRequest {
            client_id: CLIENT_ID.into(),
            user,
            api_key: "x".into(),
            scope: pb::Scope::System.into(),
        };
        b.send(
            SET,
            case.clone(),
            &viewer,
            set.encode_to_vec(),
            &[Code::PermissionDenied],
        )
        .await;
        let newest = pb::ListAuditEventsRequest {
            page_size: 1,
            ..Default::default()
        };
        let answer = b
            .send_as_partner(
                AUDIT,
                format!("the newest event after: {case}"),
                &newest,
                &[Code::Ok],
            )
            .await;
        let event = answer.and_then(|body| {
            pb::ListAuditEventsResponse::decode(body.as_slice())
                .expect("a ListAuditEventsResponse")
                .events
                .into_iter()
                .next()
        });
        let audited = event.as_ref().is_some_and(|e| {
            e.action == "client.user.set"
                && e.actor == "viewer@acme"
                && e.outcome() == pb::AuditOutcome::Failure
                && (e.target.ends_with("@acme") || e.target.chars().count() == 255)
        });
        b.require(
            audited,
            SET,
            &case,
            shorten(&format!(
                "the refusal is not the newest audit event: {event:?}"
            )),
        );
    }
}
