//! Who the end caller is: the direct peer, unless a trusted peer (a resource
//! server or a proxy in `--trusted-peers`) names the address it was called
//! from in `caller_address`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::Error;

/// The networks whose `caller_address` is believed (API.md: default none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedPeers(Vec<IpNet>);

impl TrustedPeers {
    /// Parses a comma-separated list of CIDRs or single addresses
    /// (`10.0.0.0/8, 127.0.0.1, fd00::/8`).
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("'{s}' is not a CIDR or an IP address"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The end caller of an HTTP request from `peer`: the direct peer, unless
/// it is trusted and says in `X-Forwarded-For` whom it relays. The header is
/// read from the right (the nearest hop first), past every trusted proxy, to
/// the first address that is not trusted: the left part is whatever the
/// caller wrote and proves nothing. Entries that are not addresses end the
/// walk at the last trusted hop.
pub fn forwarded_caller(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted: &TrustedPeers,
) -> IpAddr {
    let mut caller = peer.to_canonical();
    let Some(list) = forwarded_for else {
        return caller;
    };
    for hop in list.rsplit(',') {
        if !trusted.contains(caller) {
            break;
        }
        match parse_caller_address(hop.trim()) {
            Ok(address) => caller = address.to_canonical(),
            Err(_) => break,
        }
    }
    caller
}

/// Longest `caller_address` accepted (an IPv6 address with a zone fits).
const MAX_CALLER_ADDRESS_LEN: usize = 64;

/// The end caller of a call from `peer` that named `caller_address` (empty:
/// none). A trusted peer's `caller_address` must be an IP address
/// (INVALID_ARGUMENT otherwise); anyone else's is ignored, so it cannot be
/// used to escape a budget.
pub fn end_caller(
    peer: Option<IpAddr>,
    caller_address: &str,
    trusted: &TrustedPeers,
) -> Result<Option<IpAddr>, Error> {
    let peer = peer.map(|p| p.to_canonical());
    if caller_address.is_empty() || !peer.is_some_and(|p| trusted.contains(p)) {
        return Ok(peer);
    }
    parse_caller_address(caller_address).map(Some)
}

/// `caller_address` as an IP address, or the INVALID_ARGUMENT naming it.
/// A port after the address (`192.0.2.1:443`, `[2001:db8::1]:443`, the
/// remote address as many HTTP servers give it) is ignored.
pub fn parse_caller_address(caller_address: &str) -> Result<IpAddr, Error> {
    if caller_address.len() > MAX_CALLER_ADDRESS_LEN {
        return Err(Error::bad_field(
            "caller_address",
            format!("must be an IP address (at most {MAX_CALLER_ADDRESS_LEN} characters)"),
        ));
    }
    let address = caller_address.trim();
    address
        .parse::<IpAddr>()
        .or_else(|_| address.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
        .map_err(|_| Error::bad_field("caller_address", "must be an IPv4 or IPv6 address"))
}

/// The address a caller's failure budget is kept under: IPv4 as is, IPv6 by
/// its /64 (one host usually holds a whole /64, so per-address budgets
/// would be free to multiply).
pub fn budget_key(caller: IpAddr) -> IpAddr {
    match caller.to_canonical() {
        IpAddr::V6(v6) => {
            let mask = u128::MAX << 64;
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_hops() {
        let trusted = TrustedPeers::parse("10.0.0.0/8").unwrap();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: IpAddr = "203.0.113.7".parse().unwrap();
        let end: IpAddr = "198.51.100.9".parse().unwrap();
        // Nearest hop first: past the trusted 10.0.0.5 to the end caller;
        // what the end caller wrote before it (1.2.3.4) is not believed.
        let header = Some("1.2.3.4, 198.51.100.9, 10.0.0.5");
        assert_eq!(forwarded_caller(proxy, header, &trusted), end);
        // An untrusted peer's header is ignored.
        assert_eq!(forwarded_caller(stranger, header, &trusted), stranger);
        assert_eq!(forwarded_caller(proxy, None, &trusted), proxy);
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(forwarded_caller(proxy, Some("not-an-ip"), &trusted), proxy);
    }

    #[test]
    fn only_trusted_peers_name_the_end_caller() {
        let trusted = TrustedPeers::parse("10.0.0.0/8, 127.0.0.1, fd00::/8").unwrap();
        let relay: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            end_caller(Some(relay), "198.51.100.9", &trusted).unwrap(),
            Some("198.51.100.9".parse().unwrap())
        );
        assert_eq!(
            end_caller(Some(stranger), "198.51.100.9", &trusted).unwrap(),
            Some(stranger)
        );
        assert_eq!(end_caller(Some(relay), "", &trusted).unwrap(), Some(relay));
        assert!(end_caller(Some(relay), "not an ip", &trusted).is_err());
        // With a port, as an HTTP server's remote address: the address.
        for (with_port, address) in [
            ("198.51.100.9:443", "198.51.100.9"),
            ("[2001:db8::1]:8443", "2001:db8::1"),
        ] {
            assert_eq!(
                end_caller(Some(relay), with_port, &trusted).unwrap(),
                Some(address.parse().unwrap())
            );
        }
        assert!(end_caller(Some(relay), "198.51.100.9:port", &trusted).is_err());
        // An untrusted peer's garbage is ignored, not judged.
        assert!(end_caller(Some(stranger), "not an ip", &trusted).is_ok());
        // IPv4-mapped IPv6 peers (a dual-stack listener) are their IPv4.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(trusted.contains(mapped));
        assert!(TrustedPeers::parse("10.0.0.0/33").is_err());
        assert!(TrustedPeers::parse("").unwrap().is_empty());
    }

    #[test]
    fn ipv6_budgets_are_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(budget_key(a), budget_key(b));
        assert_ne!(budget_key(a), budget_key(c));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(budget_key(v4), v4);
    }
}
