//! Credential headers: any bytes in `sid` and `authorization`. Never panics;
//! a Basic credential splits at the first ':' of valid UTF-8.
#![no_main]

use http::{HeaderMap, HeaderValue};
use latchkey::app::auth::{presented_basic, presented_partner_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (first, rest) = data.split_at(data.len().min(data.first().map_or(0, |&b| b as usize)));
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(first) {
        headers.insert("sid", value);
    }
    if let Ok(value) = HeaderValue::from_bytes(rest) {
        headers.insert("authorization", value);
    }
    let _ = presented_partner_key(&headers);
    if let Some((name, api_key)) = presented_basic(&headers) {
        assert!(!name.contains(':'));
        let _ = (name.len(), api_key.len());
    }
});
