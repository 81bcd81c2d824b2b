//! Setting-name parsing: any string. Never panics; a parsed name round-trips
//! and never names user API keys; an error message stays short.
#![no_main]

use latchkey::domain::clients::{Bucket, SettingName, setting_value_problem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line is the name, the rest a value to check against it.
    let (name, value) = text.split_once('\n').unwrap_or((&text, ""));
    match SettingName::parse(name) {
        Ok(parsed) => {
            assert_eq!(parsed.as_str(), name);
            assert_eq!(SettingName::parse(parsed.as_str()), Ok(parsed.clone()));
            assert!(!(parsed.is_secret() && name.to_ascii_lowercase().contains(".userapikeys")));
            let problem = setting_value_problem(&parsed, value);
            assert!(problem.is_none_or(|p| p.len() < 512));
        }
        Err(message) => assert!(
            message.len() < 512,
            "error quotes too much: {}",
            message.len()
        ),
    }
    for bucket in [Bucket::Credentials, Bucket::Settings] {
        if let Ok(parsed) = SettingName::in_bucket(bucket, name) {
            assert_eq!(parsed.bucket, bucket);
        }
    }
});
