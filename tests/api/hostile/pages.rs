//! Absurd page sizes and forged page tokens on every List call.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use latchkey::{domain::key_format::KEY_ID_RANDOM_LEN, grpc::proto::v1 as pb};
use prost::Message;
use tonic::Code;

use super::{HUGE, values::random_bytes, wire::Barrage};

/// Page sizes of i32::MAX and below zero, and page tokens that are random,
/// tampered, from another list, or huge, on every List call.
pub(super) async fn pages_and_tokens(b: &mut Barrage<'_>) {
    let partner = b.partner.clone();
    let list_keys = |integration: &str, page_size: i32, page_token: &str| {
        pb::ListIntegrationKeysRequest {
            integration: integration.into(),
            page_size,
            page_token: page_token.into(),
        }
        .encode_to_vec()
    };
    let list_integrations = |page_size: i32, page_token: &str| {
        pb::ListIntegrationsRequest {
            page_size,
            page_token: page_token.into(),
        }
        .encode_to_vec()
    };
    let list_audit = |page_size: i32, page_token: &str| {
        pb::ListAuditEventsRequest {
            page_size,
            page_token: page_token.into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    const KEYS: &str = "IntegrationKeysService/ListIntegrationKeys";
    const INTEGRATIONS: &str = "IntegrationKeysService/ListIntegrations";
    const AUDIT: &str = "AuditService/ListAuditEvents";

    for (label, size) in [
        ("i32::MAX", i32::MAX),
        ("1001", 1001),
        ("1", 1),
        ("-1", -1),
        ("i32::MIN", i32::MIN),
    ] {
        let expect: &[Code] = if size < 0 {
            &[Code::InvalidArgument]
        } else {
            &[Code::Ok]
        };
        let case = format!("page_size = {label}");
        for (rpc, body) in [
            (KEYS, list_keys("learner-activity", size, "")),
            (INTEGRATIONS, list_integrations(size, "")),
            (AUDIT, list_audit(size, "")),
        ] {
            b.send(rpc, case.clone(), &partner, body, expect).await;
        }
    }

    // Real tokens, one from each list.
    let token_of = |response: Option<Vec<u8>>, what: &str| -> String {
        let body = response.unwrap_or_else(|| panic!("{what}: a first page"));
        // Every List response has next_page_token as field 2.
        #[derive(Clone, PartialEq, Message)]
        struct Page {
            #[prost(string, tag = "2")]
            next_page_token: String,
        }
        let token = Page::decode(body.as_slice())
            .expect("a page")
            .next_page_token;
        assert!(!token.is_empty(), "{what}: a next page");
        token
    };
    let mut real_tokens = Vec::new();
    for (rpc, body, what) in [
        (
            KEYS,
            list_keys("learner-activity", 1, ""),
            "ListIntegrationKeys",
        ),
        (INTEGRATIONS, list_integrations(1, ""), "ListIntegrations"),
        (AUDIT, list_audit(1, ""), "ListAuditEvents"),
    ] {
        let case = "page_size = 1 (real)";
        let response = b.send(rpc, case, &partner, body, &[Code::Ok]).await;
        real_tokens.push(token_of(response, what));
    }
    let [keys_token, integrations_token, audit_token]: [String; 3] =
        real_tokens.try_into().expect("a token from each list");
    let decoded_keys_token =
        String::from_utf8(URL_SAFE_NO_PAD.decode(&keys_token).expect("base64")).expect("utf-8");

    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let mut parts: Vec<&str> = decoded_keys_token.split('\n').collect();
    assert_eq!(parts.len(), 4, "kind, integration, create time, key id");
    parts[2] = "99999999999999999999999";
    let tampered_time = parts.join("\n");
    let key_id_like = format!("lki_{}", "A".repeat(KEY_ID_RANDOM_LEN));
    let mut tokens: Vec<(String, String)> = vec![
        (
            "random base64url".into(),
            URL_SAFE_NO_PAD.encode(random_bytes(48)),
        ),
        (
            "random base64 with padding".into(),
            STANDARD.encode(random_bytes(47)),
        ),
        ("not base64".into(), "!!!*%%%\0\u{202e}🔑".into()),
        ("only separators".into(), b64("\n\n\n")),
        (
            "invalid UTF-8 inside".into(),
            URL_SAFE_NO_PAD.encode(b"k\n\xff\xfe\n1\nlki_x"),
        ),
        (
            "the keys token with a tampered time".into(),
            b64(&tampered_time),
        ),
        (
            "keys token, another integration".into(),
            b64(&format!("k\nsandbox\n1\n{key_id_like}")),
        ),
        (
            "keys token, i64::MIN time".into(),
            b64(&format!("k\nlearner-activity\n{}\n{key_id_like}", i64::MIN)),
        ),
        (
            "keys token, i64::MAX time".into(),
            b64(&format!("k\nlearner-activity\n{}\n{key_id_like}", i64::MAX)),
        ),
        (
            "keys token, NUL key id".into(),
            b64("k\nlearner-activity\n1\nlki_\0AAAAAAAAAAAAAAA"),
        ),
        (
            "keys token, an extra part".into(),
            b64(&format!("{decoded_keys_token}\nextra")),
        ),
        (
            "integrations token, NUL name".into(),
            b64("i\nlearner\0activity"),
        ),
        (
            "integrations token, emoji name".into(),
            b64("i\n🔑\u{202e}"),
        ),
        ("integrations token, empty name".into(), b64("i\n")),
        (
            "integrations token, 1 MiB name".into(),
            b64(&format!("i\n{}", "z".repeat(HUGE))),
        ),
        ("audit token, NaN".into(), b64("a\nNaN\n1")),
        (
            "audit token, extremes".into(),
            b64(&format!("a\n{}\n{}", i64::MAX, i64::MIN)),
        ),
        (
            "audit token, overflow".into(),
            b64("a\n99999999999999999999\n1"),
        ),
        ("audit token, float".into(), b64("a\n1e3\n-0.5")),
        ("1 MiB of base64 characters".into(), "A".repeat(HUGE)),
        (
            "1 MiB random base64url".into(),
            URL_SAFE_NO_PAD.encode(random_bytes(HUGE * 3 / 4)),
        ),
    ];
    tokens.push(("a real ListIntegrationKeys token".into(), keys_token));
    tokens.push(("a real ListIntegrations token".into(), integrations_token));
    tokens.push(("a real ListAuditEvents token".into(), audit_token));
    for (label, token) in &tokens {
        let case = format!("page_token = {label}");
        for (rpc, body) in [
            (KEYS, list_keys("learner-activity", 0, token)),
            (KEYS, list_keys("sandbox", 0, token)),
            (INTEGRATIONS, list_integrations(0, token)),
            (AUDIT, list_audit(0, token)),
        ] {
            b.send(
                rpc,
                case.clone(),
                &partner,
                body,
                &[Code::Ok, Code::InvalidArgument],
            )
            .await;
        }
    }
}
