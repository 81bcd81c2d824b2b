//! The rules of client configuration: ids, users, scopes, scope-prefixed
//! setting names, LearningBuilder host names, and the client diagnostics.

use std::fmt;

use entity::{client_setting::Model as SettingRow, client_user::Model as UserRow};

/// Longest client id.
pub const MAX_CLIENT_ID_LEN: usize = 64;
/// Longest user name.
pub const MAX_USER_LEN: usize = 128;
/// Longest user API key accepted (bytes).
pub const MAX_API_KEY_LEN: usize = 1024;
/// User API keys shorter than this are reported by the health check.
pub const MIN_RECOMMENDED_API_KEY_LEN: usize = 16;
/// Longest setting value (bytes).
pub const MAX_SETTING_VALUE_LEN: usize = 4096;

pub const CREDENTIALS_BUCKET: &str = "ClientCredentials";
pub const SETTINGS_BUCKET: &str = "ClientSettings";
pub const LB_API_KEY_OWNER: &str = "ClientCredentials.LbApiKeyOwner";
pub const LB_API_KEY: &str = "ClientCredentials.LbApiKey";
pub const LB_HOST_OVERRIDE: &str = "ClientSettings.LbHostOverride";

pub use entity::Scope;

/// `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`: usable in a host name template, and
/// never containing `@` or `.` (see `split_basic_user`).
pub fn is_valid_client_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && id.len() <= MAX_CLIENT_ID_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn client_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("must not be empty")
    } else if !is_valid_client_id(id) {
        Some("must be 1 to 64 letters, digits, '-' or '_', starting with a letter or digit")
    } else {
        None
    }
}

pub fn user_problem(user: &str) -> Option<&'static str> {
    if user.is_empty() {
        Some("must not be empty")
    } else if user.chars().count() > MAX_USER_LEN {
        Some("must be at most 128 characters")
    } else if user.contains(':') || user.chars().any(char::is_control) {
        Some("must not contain ':' or control characters")
    } else if user.trim() != user {
        // `admin` and `admin ` would be different users that look the same
        // in every log and listing: refused rather than kept apart.
        Some("must not begin or end with whitespace")
    } else {
        None
    }
}

pub fn api_key_problem(api_key: &str) -> Option<&'static str> {
    if api_key.is_empty() {
        Some("must not be empty")
    } else if api_key.len() > MAX_API_KEY_LEN {
        Some("must be at most 1024 bytes")
    } else if api_key.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    }
}

/// The name a Basic credential gives: `user@client_id` names the client
/// explicitly; anything else is a user of the client the request is about.
pub fn split_basic_user(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once('@') {
        Some((user, client)) if !user.is_empty() && is_valid_client_id(client) => {
            (user, Some(client))
        }
        _ => (name, None),
    }
}

/// The two settings buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// Secrets the service needs back: sealed at rest, never returned.
    Credentials,
    /// Plain settings.
    Settings,
}

/// A valid scope-prefixed setting name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingName {
    pub bucket: Bucket,
    full: String,
}

impl SettingName {
    /// Parses `ClientCredentials.<Name>` or `ClientSettings.<Name>`, refusing
    /// anything that would touch user API keys. The errors do not repeat the
    /// name: a caller who swapped a name and its value would otherwise get
    /// the secret back in an error, which proxies log (the field's path,
    /// e.g. `settings[2].name`, says which one it was).
    pub fn parse(full: &str) -> Result<Self, String> {
        let Some((bucket, name)) = full.split_once('.') else {
            return Err(
                "must be scope-prefixed: ClientCredentials.<Name> or ClientSettings.<Name>".into(),
            );
        };
        let bucket = match bucket {
            CREDENTIALS_BUCKET => Bucket::Credentials,
            SETTINGS_BUCKET => Bucket::Settings,
            _ => {
                return Err("has an unknown bucket; use ClientCredentials.<Name> or \
                     ClientSettings.<Name>"
                    .into());
            }
        };
        if bucket == Bucket::Credentials && name.to_ascii_lowercase().starts_with("userapikeys") {
            return Err("names user API keys, which change only through SetUserCredentials".into());
        }
        let mut chars = name.bytes();
        let valid = matches!(chars.next(), Some(b) if b.is_ascii_alphabetic())
            && name.len() <= 64
            && chars.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(
                "the name after the bucket must be 1 to 64 letters, digits or '_', \
                 starting with a letter"
                    .into(),
            );
        }
        Ok(Self {
            bucket,
            full: full.to_owned(),
        })
    }

    /// `<bucket>.<name>` from a bucket and an unprefixed name.
    pub fn in_bucket(bucket: Bucket, name: &str) -> Result<Self, String> {
        let prefix = match bucket {
            Bucket::Credentials => CREDENTIALS_BUCKET,
            Bucket::Settings => SETTINGS_BUCKET,
        };
        Self::parse(&format!("{prefix}.{name}"))
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    pub fn is_secret(&self) -> bool {
        self.bucket == Bucket::Credentials
    }
}

impl fmt::Display for SettingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// Why `value` cannot be stored under `name`, if it cannot.
pub fn setting_value_problem(name: &SettingName, value: &str) -> Option<String> {
    if value.len() > MAX_SETTING_VALUE_LEN {
        return Some(format!("'{name}': the value must be at most 4096 bytes"));
    }
    // Values are stored as text, which cannot hold NUL on PostgreSQL.
    if value.contains('\0') {
        return Some(format!(
            "'{name}': the value must not contain NUL characters"
        ));
    }
    if name.as_str() == LB_HOST_OVERRIDE && !value.is_empty() && !is_valid_hostname(value) {
        return Some(format!("'{name}' must be a valid host name"));
    }
    None
}

/// An RFC 1123 host name: dot-separated labels of 1 to 63 letters, digits
/// and inner hyphens, at most 253 characters in all.
pub fn is_valid_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The LearningBuilder host a client's calls go to: its `LbHostOverride`,
/// else the server's per-client template with `{client_id}` filled in.
pub fn effective_lb_host(
    client_id: &str,
    settings: &[SettingRow],
    template: Option<&str>,
) -> Option<String> {
    settings
        .iter()
        .find(|s| s.name == LB_HOST_OVERRIDE && !s.value.is_empty())
        .map(|s| s.value.clone())
        .or_else(|| template.map(|t| t.replace("{client_id}", client_id)))
}

/// A setting to write: its validated name and new value (empty: clear).
pub struct SettingChange {
    pub name: SettingName,
    pub value: String,
}

/// One diagnostic's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    Pass,
    Warn,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub name: &'static str,
    pub status: Check,
    pub detail: String,
}

/// The master keyring as the diagnostics see it: the sealing key's version,
/// every version, and whether a sealed setting opens under it.
pub type Keyring<'a> = (&'a str, &'a str, &'a dyn Fn(&SettingRow) -> bool);

/// The diagnostics of a configured client. Details name settings and users,
/// never a value.
pub fn client_diagnostics(
    client_id: &str,
    users: &[UserRow],
    settings: &[SettingRow],
    keyring: Keyring<'_>,
    template: Option<&str>,
) -> (Vec<Diagnostic>, Option<String>) {
    let (sealing_version, all_versions, opens) = keyring;
    let mut out = Vec::new();
    let mut push = |name, ok: bool, pass: String, fail: String| {
        out.push(Diagnostic {
            name,
            status: if ok { Check::Pass } else { Check::Fail },
            detail: if ok { pass } else { fail },
        });
    };
    let system_users = users.iter().filter(|u| u.scope == Scope::System).count();
    push(
        "system_user_exists",
        system_users > 0,
        format!("{system_users} SYSTEM user(s)"),
        "no user has SYSTEM scope".into(),
    );
    for (check, name) in [
        ("lb_api_key_owner_set", LB_API_KEY_OWNER),
        ("lb_api_key_set", LB_API_KEY),
    ] {
        let set = settings
            .iter()
            .any(|s| s.name == name && !s.value.is_empty());
        push(
            check,
            set,
            format!("{name} is set"),
            format!("{name} is not set"),
        );
    }
    let host = effective_lb_host(client_id, settings, template);
    match &host {
        Some(host) => push(
            "lb_host_valid",
            is_valid_hostname(host),
            format!("LearningBuilder host {host}"),
            format!("LearningBuilder host '{host}' is not a valid host name"),
        ),
        None => push(
            "lb_host_valid",
            false,
            String::new(),
            "no LbHostOverride and no --client-lb-domain template".into(),
        ),
    }
    let undecryptable: Vec<&str> = settings
        .iter()
        .filter(|s| s.secret && !opens(s))
        .map(|s| s.name.as_str())
        .collect();
    push(
        "credentials_decrypt",
        undecryptable.is_empty(),
        format!(
            "every credential decrypts under the master keyring (sealing key {sealing_version})"
        ),
        format!(
            "cannot decrypt under the master keyring ({all_versions}): {}",
            undecryptable.join(", ")
        ),
    );
    let short: Vec<&str> = users
        .iter()
        .filter(|u| u.short_key)
        .map(|u| u.user.as_str())
        .collect();
    out.push(Diagnostic {
        name: "user_api_key_length",
        status: if short.is_empty() {
            Check::Pass
        } else {
            Check::Warn
        },
        detail: if short.is_empty() {
            "every user API key has at least 16 characters".into()
        } else {
            format!("API keys shorter than 16 characters: {}", short.join(", "))
        },
    });
    (out, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_names() {
        let name = SettingName::parse("ClientCredentials.NursysUsername").unwrap();
        assert!(name.is_secret());
        assert!(
            !SettingName::parse("ClientSettings.LbHostOverride")
                .unwrap()
                .is_secret()
        );
        for bad in [
            "LbHostOverride",
            "Other.Name",
            "ClientSettings.",
            "ClientSettings.9lives",
            "ClientCredentials.UserApiKeys",
            "ClientCredentials.UserApiKeys[0].api_key",
        ] {
            assert!(SettingName::parse(bad).is_err(), "{bad}");
        }
        let err = SettingName::parse("ClientCredentials.UserApiKeys").unwrap_err();
        assert!(err.contains("SetUserCredentials"));
    }

    #[test]
    fn a_bad_setting_name_is_not_repeated_in_its_error() {
        // A value pasted where its name belongs must not come back.
        for pasted in [
            "hunter2-lb-api-key",
            "Other.hunter2",
            "ClientSettings.hunter2!",
        ] {
            let err = SettingName::parse(pasted).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = SettingName::parse("Other.Name").unwrap_err();
        assert!(err.starts_with("has an unknown bucket"), "{err}");
    }

    #[test]
    fn hostnames_and_basic_names() {
        assert!(is_valid_hostname("acme.lb.example.com"));
        assert!(is_valid_hostname("localhost"));
        assert!(!is_valid_hostname("-bad.example.com"));
        assert!(!is_valid_hostname("has space.example.com"));
        assert!(!is_valid_hostname("a..b"));
        assert!(!is_valid_hostname(&"a".repeat(64)));
        assert_eq!(split_basic_user("joe@acme"), ("joe", Some("acme")));
        assert_eq!(
            split_basic_user("joe@example.com"),
            ("joe@example.com", None)
        );
        assert_eq!(split_basic_user("joe"), ("joe", None));
        assert_eq!(split_basic_user("@acme"), ("@acme", None));
    }
}
