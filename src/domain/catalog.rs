//! The declarative integration catalog (TOML) and its reconciliation.
//!
//! Integrations and grants are configuration, not API calls: the operator
//! declares them in a file and `latchkey catalog apply` (or `serve
//! --catalog`) brings the database to match in one transaction. Keys are
//! never deleted: removing an integration that still holds keys, or making it
//! `builtin`, is refused.

use std::{collections::BTreeSet, fmt, path::Path};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

pub use entity::IntegrationKind;

/// An integration with its grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integration {
    pub id: i64,
    pub name: String,
    pub kind: IntegrationKind,
    pub description: String,
    /// Granted endpoints and prefix patterns, sorted.
    pub endpoints: Vec<String>,
}

/// Longest integration name.
pub const MAX_NAME_LEN: usize = 63;
/// Longest endpoint name or pattern.
pub const MAX_ENDPOINT_LEN: usize = 255;

/// Whether `name` is a valid integration name: `[a-z][a-z0-9-]{0,62}`.
pub fn is_valid_integration_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= MAX_NAME_LEN
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

/// Why an endpoint grant is invalid, or `None` when it is valid. A grant is a
/// full method name (`pkg.Service/Method`) or a prefix pattern ending in `*`.
pub fn endpoint_grant_problem(endpoint: &str) -> Option<&'static str> {
    let (body, is_prefix) = match endpoint.strip_suffix('*') {
        Some(prefix) => (prefix, true),
        None => (endpoint, false),
    };
    if endpoint.is_empty() {
        Some("must not be empty")
    } else if endpoint.len() > MAX_ENDPOINT_LEN {
        Some("must be at most 255 characters")
    } else if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/'))
    {
        Some("may contain only letters, digits, '.', '_', '/' and a final '*'")
    } else if !is_prefix && !is_full_method_name(body) {
        Some("must be a full method name like 'pkg.v1.Service/Method', or a prefix ending in '*'")
    } else {
        None
    }
}

fn is_full_method_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((service, method)) => {
            !service.is_empty() && !method.is_empty() && !method.contains('/')
        }
        None => false,
    }
}

/// A validated catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    /// By name.
    pub integrations: Vec<CatalogIntegration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogIntegration {
    pub name: String,
    pub kind: IntegrationKind,
    pub description: String,
    pub endpoints: BTreeSet<String>,
}

/// A catalog file that cannot be used, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{origin}:{line}:{column}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    integrations: Vec<RawIntegration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegration {
    name: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    endpoints: Vec<Spanned<String>>,
}

impl Catalog {
    /// Reads and validates the catalog file at `path`.
    pub fn load(path: &Path) -> Result<Self, anyhow::Error> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read catalog {}: {e}", path.display()))?;
        Ok(Self::parse(&source, &path.display().to_string())?)
    }

    /// Parses and validates catalog text; `origin` names it in errors.
    pub fn parse(source: &str, origin: &str) -> Result<Self, CatalogError> {
        let at = |offset: usize, message: String| {
            let (line, column) = line_column(source, offset);
            CatalogError::Invalid {
                origin: origin.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: RawCatalog = toml::from_str(source).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().trim().to_owned())
        })?;

        let mut seen = BTreeSet::new();
        let mut integrations = Vec::with_capacity(raw.integrations.len());
        for (i, item) in raw.integrations.into_iter().enumerate() {
            let field = |f: &str| format!("integrations[{i}].{f}");
            let name = item.name.get_ref();
            if !is_valid_integration_name(name) {
                return Err(at(
                    item.name.span().start,
                    format!(
                        "{}: '{name}' must match [a-z][a-z0-9-]{{0,62}}",
                        field("name")
                    ),
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(at(
                    item.name.span().start,
                    format!("{}: '{name}' is declared twice", field("name")),
                ));
            }
            let kind = IntegrationKind::parse(item.kind.get_ref()).ok_or_else(|| {
                at(
                    item.kind.span().start,
                    format!("{}: must be \"custom\" or \"builtin\"", field("kind")),
                )
            })?;
            let mut endpoints = BTreeSet::new();
            for (j, endpoint) in item.endpoints.iter().enumerate() {
                let value = endpoint.get_ref();
                if let Some(problem) = endpoint_grant_problem(value) {
                    return Err(at(
                        endpoint.span().start,
                        format!("{}: {problem}", field(&format!("endpoints[{j}]"))),
                    ));
                }
                if !endpoints.insert(value.clone()) {
                    return Err(at(
                        endpoint.span().start,
                        format!(
                            "{}: '{value}' is listed twice",
                            field(&format!("endpoints[{j}]"))
                        ),
                    ));
                }
            }
            integrations.push(CatalogIntegration {
                name: item.name.into_inner(),
                kind,
                description: item.description,
                endpoints,
            });
        }
        integrations.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Catalog { integrations })
    }

    /// SHA-256 (hex) of the catalog's canonical form: the same for any file
    /// that declares the same integrations, whatever its order or comments.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for integration in &self.integrations {
            hasher.update(integration.name.as_bytes());
            hasher.update(b"\0");
            hasher.update(integration.kind.as_str().as_bytes());
            hasher.update(b"\0");
            hasher.update(integration.description.as_bytes());
            hasher.update(b"\0");
            for endpoint in &integration.endpoints {
                hasher.update(endpoint.as_bytes());
                hasher.update(b"\0");
            }
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }
}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// One change the catalog makes to the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    AddIntegration {
        name: String,
        kind: IntegrationKind,
        description: String,
    },
    UpdateIntegration {
        name: String,
        kind: IntegrationKind,
        description: String,
    },
    RemoveIntegration {
        name: String,
    },
    AddGrant {
        integration: String,
        endpoint: String,
    },
    RemoveGrant {
        integration: String,
        endpoint: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddIntegration { name, kind, .. } => {
                write!(f, "+ integration {name} ({})", kind.as_str())
            }
            Change::UpdateIntegration { name, kind, .. } => {
                write!(f, "~ integration {name} ({}, description)", kind.as_str())
            }
            Change::RemoveIntegration { name } => write!(f, "- integration {name}"),
            Change::AddGrant {
                integration,
                endpoint,
            } => write!(f, "+ grant {integration} {endpoint}"),
            Change::RemoveGrant {
                integration,
                endpoint,
            } => write!(f, "- grant {integration} {endpoint}"),
        }
    }
}

/// An integration as it is in the database, with how many keys it holds.
pub struct CurrentIntegration {
    pub integration: Integration,
    pub key_count: u64,
}

/// The changes that make `current` match `desired`, in an order that can be
/// applied as is. Refuses anything that would delete or orphan keys.
pub fn diff(
    current: &[CurrentIntegration],
    desired: &Catalog,
) -> Result<Vec<Change>, CatalogError> {
    let mut changes = Vec::new();
    for want in &desired.integrations {
        let have = current.iter().find(|c| c.integration.name == want.name);
        let have_endpoints: BTreeSet<&String> = match have {
            None => {
                changes.push(Change::AddIntegration {
                    name: want.name.clone(),
                    kind: want.kind,
                    description: want.description.clone(),
                });
                BTreeSet::new()
            }
            Some(have) => {
                let i = &have.integration;
                if i.kind != want.kind
                    && want.kind == IntegrationKind::Builtin
                    && have.key_count > 0
                {
                    return Err(CatalogError::Conflict(format!(
                        "integration '{}' holds {} key(s) and cannot become builtin; delete its keys first",
                        i.name, have.key_count
                    )));
                }
                if i.kind != want.kind || i.description != want.description {
                    changes.push(Change::UpdateIntegration {
                        name: want.name.clone(),
                        kind: want.kind,
                        description: want.description.clone(),
                    });
                }
                i.endpoints.iter().collect()
            }
        };
        for endpoint in have_endpoints
            .iter()
            .filter(|e| !want.endpoints.contains(**e))
        {
            changes.push(Change::RemoveGrant {
                integration: want.name.clone(),
                endpoint: (*endpoint).clone(),
            });
        }
        for endpoint in want
            .endpoints
            .iter()
            .filter(|e| !have_endpoints.contains(e))
        {
            changes.push(Change::AddGrant {
                integration: want.name.clone(),
                endpoint: endpoint.clone(),
            });
        }
    }
    for have in current {
        let i = &have.integration;
        if desired.integrations.iter().any(|w| w.name == i.name) {
            continue;
        }
        if have.key_count > 0 {
            return Err(CatalogError::Conflict(format!(
                "integration '{}' is not in the catalog but holds {} key(s); delete its keys first",
                i.name, have.key_count
            )));
        }
        changes.push(Change::RemoveIntegration {
            name: i.name.clone(),
        });
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[integrations]]
name = "learner-activity"
kind = "custom"
description = "Learner activity API calling the course API"
endpoints = ["course.v1.CourseService/GetOutline", "permissions.v1.*"]

[[integrations]]
name = "reports"
kind = "builtin"
"#;

    #[test]
    fn parses_the_documented_format() {
        let catalog = Catalog::parse(GOOD, "c.toml").unwrap();
        assert_eq!(catalog.integrations.len(), 2);
        let first = &catalog.integrations[0];
        assert_eq!(first.name, "learner-activity");
        assert_eq!(first.kind, IntegrationKind::Custom);
        assert!(first.endpoints.contains("permissions.v1.*"));
        assert!(catalog.integrations[1].endpoints.is_empty());
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let bad = GOOD.replace("\"reports\"", "\"Reports\"");
        let err = Catalog::parse(&bad, "c.toml").unwrap_err().to_string();
        assert!(err.starts_with("c.toml:9:"), "{err}");
        assert!(err.contains("integrations[1].name"), "{err}");

        let bad = GOOD.replace("\"permissions.v1.*\"", "\"no slash\"");
        let err = Catalog::parse(&bad, "c.toml").unwrap_err().to_string();
        assert!(err.starts_with("c.toml:6:"), "{err}");
        assert!(err.contains("integrations[0].endpoints[1]"), "{err}");

        let bad = GOOD.replace("kind = \"builtin\"", "kind = \"other\"");
        let err = Catalog::parse(&bad, "c.toml").unwrap_err().to_string();
        assert!(
            err.contains("c.toml:10:") && err.contains("integrations[1].kind"),
            "{err}"
        );

        let bad = GOOD.replace("description = ", "descriptoin = ");
        let err = Catalog::parse(&bad, "c.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("c.toml:5:") && err.contains("descriptoin"),
            "{err}"
        );
    }

    #[test]
    fn grant_rules() {
        assert_eq!(
            endpoint_grant_problem("course.v1.CourseService/GetOutline"),
            None
        );
        assert_eq!(endpoint_grant_problem("course.v1.CourseService/*"), None);
        assert_eq!(endpoint_grant_problem("permissions.v1.*"), None);
        assert!(endpoint_grant_problem("").is_some());
        assert!(endpoint_grant_problem("course.v1.CourseService").is_some());
        assert!(endpoint_grant_problem("a/b/c").is_some());
        assert!(endpoint_grant_problem("a*b/c").is_some());
    }

    #[test]
    fn digest_ignores_order_and_formatting() {
        let a = Catalog::parse(GOOD, "a").unwrap();
        let reordered = GOOD.replace(
            "[\"course.v1.CourseService/GetOutline\", \"permissions.v1.*\"]",
            "[ \"permissions.v1.*\",\n \"course.v1.CourseService/GetOutline\" ]",
        );
        let b = Catalog::parse(&reordered, "b").unwrap();
        assert_eq!(a.digest(), b.digest());
        let changed = Catalog::parse(&GOOD.replace("Learner", "learner"), "c").unwrap();
        assert_ne!(a.digest(), changed.digest());
    }
}
