//! Catalog parsing: any text. Never panics; what parses is valid, sorted,
//! free of duplicates, and has a stable digest.
#![no_main]

use latchkey::domain::catalog::{Catalog, endpoint_grant_problem, is_valid_integration_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(catalog) = Catalog::parse(source, "fuzz.toml") else {
        return;
    };
    for pair in catalog.integrations.windows(2) {
        assert!(pair[0].name < pair[1].name, "sorted and unique by name");
    }
    for integration in &catalog.integrations {
        assert!(is_valid_integration_name(&integration.name));
        for endpoint in &integration.endpoints {
            assert_eq!(endpoint_grant_problem(endpoint), None);
        }
    }
    assert_eq!(catalog.digest(), catalog.clone().digest());
});
