//! Key restrictions (API.md "resource servers, key restrictions"): labels
//! about a key's owner and the networks its callers must come from. Pure
//! rules: what is valid, and how they are stored (JSON text columns).

use std::{collections::BTreeMap, net::IpAddr};

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
}
