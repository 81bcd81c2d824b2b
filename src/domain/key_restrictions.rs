//! Key restrictions (API.md "resource servers, key restrictions"): labels
//! about a key's owner, the networks its callers must come from and its rate
//! limit. Pure rules: what is valid, and how they are stored (JSON text
//! columns; two integers for the rate limit).

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use ipnet::IpNet;

pub const MAX_LABELS: usize = 16;
pub const MAX_LABEL_VALUE_LEN: usize = 255;
pub const MAX_NETWORKS: usize = 32;

/// Labels: at most 16, keys `[a-z][a-z0-9_.-]{0,62}`, values up to 255
/// characters without control characters. `Err` says what is wrong.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels"));
    }
    for (key, value) in labels {
        let mut chars = key.chars();
        let well_formed = key.len() <= 63
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
            });
        if !well_formed {
            // The key is not echoed: it may be anything a caller pasted.
            return Err("label keys must match [a-z][a-z0-9_.-]{0,62}".into());
        }
        if value.chars().count() > MAX_LABEL_VALUE_LEN || value.chars().any(char::is_control) {
            return Err(format!(
                "label '{key}': values are at most {MAX_LABEL_VALUE_LEN} characters, without control characters"
            ));
        }
    }
    Ok(())
}

/// Parses allowed networks (CIDRs or single addresses), at most 32.
pub fn parse_networks(networks: &[String]) -> Result<Vec<IpNet>, String> {
    if networks.len() > MAX_NETWORKS {
        return Err(format!("at most {MAX_NETWORKS} networks"));
    }
    networks
        .iter()
        .enumerate()
        .map(|(i, network)| {
            let network = network.trim();
            network
                .parse::<IpNet>()
                .or_else(|_| network.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("entry {i} is not a CIDR or an IP address"))
        })
        .collect()
}

/// Whether `caller` may use a key restricted to `networks` (none: anyone).
/// An unknown caller is outside every network.
pub fn caller_allowed(networks: &[IpNet], caller: Option<IpAddr>) -> bool {
    networks.is_empty()
        || caller.is_some_and(|caller| {
            let caller = caller.to_canonical();
            networks.iter().any(|net| net.contains(&caller))
        })
}

/// The stored form of labels (`None` when there are none).
pub fn labels_to_column(labels: &BTreeMap<String, String>) -> Option<String> {
    (!labels.is_empty()).then(|| serde_json::to_string(labels).unwrap_or_default())
}

/// Labels from their stored form (absent or unreadable: none).
pub fn labels_from_column(column: Option<&str>) -> BTreeMap<String, String> {
    column
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// The stored form of networks (`None` when there are none).
pub fn networks_to_column(networks: &[IpNet]) -> Option<String> {
    (!networks.is_empty()).then(|| {
        let texts: Vec<String> = networks.iter().map(ToString::to_string).collect();
        serde_json::to_string(&texts).unwrap_or_default()
    })
}

/// Networks from their stored form. A stored entry that no longer parses
/// is kept as a network that matches nobody: a restriction must never be
/// lost by being unreadable.
pub fn networks_from_column(column: Option<&str>) -> Vec<IpNet> {
    let Some(text) = column else {
        return Vec::new();
    };
    let texts: Vec<String> = serde_json::from_str(text).unwrap_or_else(|_| vec![String::new()]);
    texts
        .iter()
        .map(|t| {
            t.parse::<IpNet>()
                .unwrap_or_else(|_| IpNet::from(IpAddr::from([0, 0, 0, 0])))
        })
        .collect()
}

/// A key's rate limit: `limit` allowed verifies per `window`, as a token
/// bucket of `limit` tokens refilled evenly over `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
}

pub const MAX_RATE_LIMIT: u32 = 1_000_000;
pub const MIN_RATE_WINDOW: Duration = Duration::from_secs(1);
pub const MAX_RATE_WINDOW: Duration = Duration::from_secs(86_400);

/// Which part of a requested rate limit is wrong, and why.
#[derive(Debug, PartialEq, Eq)]
pub enum RateLimitProblem {
    Limit(String),
    Window(String),
}

impl RateLimit {
    /// Checks a requested limit: 1 to 1,000,000 verifies per 1 s to 1 day,
    /// in whole milliseconds.
    pub fn new(limit: u32, window: Duration) -> Result<Self, RateLimitProblem> {
        if !(1..=MAX_RATE_LIMIT).contains(&limit) {
            return Err(RateLimitProblem::Limit(format!(
                "must be 1 to {MAX_RATE_LIMIT}"
            )));
        }
        if !(MIN_RATE_WINDOW..=MAX_RATE_WINDOW).contains(&window)
            || !window.subsec_nanos().is_multiple_of(1_000_000)
        {
            return Err(RateLimitProblem::Window(
                "must be 1 second to 1 day, in whole milliseconds".into(),
            ));
        }
        Ok(Self { limit, window })
    }

    /// Tokens the bucket gains per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.limit) / self.window.as_secs_f64().max(1e-3)
    }

    /// The stored form: (`rate_limit`, `rate_window_ms`).
    pub fn to_columns(self) -> (i64, i64) {
        (
            i64::from(self.limit),
            i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX),
        )
    }

    /// The rate limit from its stored form; `None` when there is none. A
    /// stored value out of range is clamped (a limit below 1 refuses every
    /// verify), never dropped: a restriction must not be lost by being
    /// unreadable.
    pub fn from_columns(limit: Option<i64>, window_ms: Option<i64>) -> Option<Self> {
        if limit.is_none() && window_ms.is_none() {
            return None;
        }
        let limit = u32::try_from(limit.unwrap_or(0).clamp(0, i64::from(u32::MAX))).unwrap_or(0);
        let window_ms = u64::try_from(window_ms.unwrap_or(1000))
            .unwrap_or(1000)
            .max(1);
        Some(Self {
            limit,
            window: Duration::from_millis(window_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_networks_are_checked_and_round_trip() {
        let mut labels = BTreeMap::from([("team".to_owned(), "payments".to_owned())]);
        assert!(check_labels(&labels).is_ok());
        assert_eq!(
            labels_from_column(labels_to_column(&labels).as_deref()),
            labels
        );
        labels.insert("Bad Key".into(), "x".into());
        assert!(check_labels(&labels).is_err());
        let many: BTreeMap<_, _> = (0..17).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check_labels(&many).is_err());

        let networks = parse_networks(&["10.0.0.0/8".into(), "2001:db8::1".into()]).unwrap();
        assert_eq!(
            networks_from_column(networks_to_column(&networks).as_deref()),
            networks
        );
        assert!(parse_networks(&["nope".into()]).is_err());
        assert!(caller_allowed(&networks, Some("10.1.2.3".parse().unwrap())));
        assert!(caller_allowed(
            &networks,
            Some("::ffff:10.1.2.3".parse().unwrap())
        ));
        assert!(!caller_allowed(
            &networks,
            Some("192.0.2.1".parse().unwrap())
        ));
        assert!(!caller_allowed(&networks, None));
        assert!(caller_allowed(&[], None));
        // Unreadable stored networks still restrict.
        assert!(!caller_allowed(
            &networks_from_column(Some("garbage")),
            Some("10.0.0.1".parse().unwrap())
        ));
    }

    #[test]
    fn rate_limits_are_checked_and_round_trip() {
        let limit = RateLimit::new(100, Duration::from_secs(60)).unwrap();
        let (count, window) = limit.to_columns();
        assert_eq!(
            RateLimit::from_columns(Some(count), Some(window)),
            Some(limit)
        );
        assert_eq!(RateLimit::from_columns(None, None), None);
        assert!((limit.per_second() - 100.0 / 60.0).abs() < 1e-9);
        assert!(matches!(
            RateLimit::new(0, Duration::from_secs(1)),
            Err(RateLimitProblem::Limit(_))
        ));
        assert!(matches!(
            RateLimit::new(1, Duration::from_millis(999)),
            Err(RateLimitProblem::Window(_))
        ));
        assert!(matches!(
            RateLimit::new(1, Duration::new(1, 500)),
            Err(RateLimitProblem::Window(_))
        ));
        // Unreadable stored values still restrict.
        let broken = RateLimit::from_columns(Some(-5), None).unwrap();
        assert_eq!(broken.limit, 0);
    }
}
