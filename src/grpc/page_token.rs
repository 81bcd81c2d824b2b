//! Opaque page tokens: the keyset position after the last item of a page,
//! plus what the token is for, so a token from another list is refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

const SEPARATOR: char = '\n';

/// A token carrying `parts` (which must not contain newlines).
pub fn encode(parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join(&SEPARATOR.to_string()))
}

/// The `N` parts of `token`; `None` if it is not a token this server made.
pub fn decode<const N: usize>(token: &str) -> Option<[String; N]> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let parts: Vec<String> = text.split(SEPARATOR).map(str::to_owned).collect();
    parts.try_into().ok()
}

/// The ListIntegrationKeys token of the page after the key at
/// (`create_time`, `key_id`) of `integration`.
pub fn integration_keys(integration: &str, create_time: i64, key_id: &str) -> String {
    encode(&["k", integration, &create_time.to_string(), key_id])
}

/// The description of a bad `page_token` field.
pub const INVALID: &str = "is not a next_page_token returned by this list";

/// The token of the page after `rows`, empty when there is none (`more`
/// is false).
pub fn next<T>(rows: &[T], more: bool, token_for: impl Fn(&T) -> String) -> String {
    if !more {
        return String::new();
    }
    rows.last().map(token_for).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let token = encode(&["k", "learner-activity", "12", "lki_x"]);
        assert_eq!(
            decode::<4>(&token),
            Some([
                "k".into(),
                "learner-activity".into(),
                "12".into(),
                "lki_x".into()
            ])
        );
        assert_eq!(decode::<3>(&token), None);
        assert_eq!(decode::<2>("%%%"), None);
    }
}
