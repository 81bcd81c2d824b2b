//! Key parsing: any string, as either kind of key. Never panics; whatever
//! parses has the documented shape and a checksum that matches.
#![no_main]

use latchkey::domain::{
    ApiKey, KeyKind,
    key_format::{CHECKSUM_LEN, KEY_ID_LEN, KEY_LEN, checksum, is_key_id},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    for kind in [KeyKind::Integration, KeyKind::Partner] {
        let id_ok = is_key_id(kind, &text);
        assert!(!id_ok || text.len() == KEY_ID_LEN);
        if let Ok(key) = ApiKey::parse(kind, text.clone()) {
            let full = key.expose_secret();
            assert_eq!(full, text);
            assert_eq!(full.len(), KEY_LEN);
            assert!(is_key_id(kind, key.key_id()));
            let (body, sum) = full.split_at(KEY_LEN - CHECKSUM_LEN);
            assert_eq!(checksum(body.as_bytes()), sum);
            // Debug shows the id only.
            let shown = format!("{key:?}");
            assert!(!shown.contains(&full[KEY_ID_LEN + 1..]));
        }
    }
    // A key of one kind is never a key of the other.
    let as_integration = ApiKey::parse(KeyKind::Integration, text.clone()).is_ok();
    let as_partner = ApiKey::parse(KeyKind::Partner, text).is_ok();
    assert!(!(as_integration && as_partner));
});
