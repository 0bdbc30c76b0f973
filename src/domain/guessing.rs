//! Who a guess counts against. Failed sign-ins are counted per account *from a network*, per
//! network across accounts, and per account across networks with a much higher ceiling, so
//! that rotating addresses does not reset a count, and someone guessing from their network
//! does not lock the account's owner out from theirs. A network is the address's /24 (IPv4)
//! or /64 (IPv6); all loopback is one network.

use std::net::IpAddr;

/// The network an address counts as.
pub fn network(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return "loopback".to_owned();
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The keys one sign-in attempt counts under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Wrong user codes from this network.
    pub code: String,
    /// Wrong passwords for this account from this network (the tight limit).
    pub account_here: String,
    /// Wrong passwords for this account from anywhere (a high ceiling).
    pub account: String,
    /// Wrong passwords for any account from this network.
    pub network: String,
}

/// The keys of an attempt at `username` from `ip` (the username compared canonically).
pub fn keys(username: &str, ip: IpAddr) -> Keys {
    let user = super::text::canonical_identity(username);
    let net = network(ip);
    Keys {
        code: format!("code:{net}"),
        account_here: format!("user:{user}@{net}"),
        account: format!("account:{user}"),
        network: format!("pass:{net}"),
    }
}

/// The key device authorizations from `ip` are counted under.
pub fn device_key(ip: IpAddr) -> String {
    format!("device:{}", network(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn addresses_count_by_network_and_loopback_is_one() {
        assert_eq!(network(ip("127.0.0.1")), network(ip("127.0.0.2")));
        assert_eq!(network(ip("::1")), "loopback");
        assert_eq!(network(ip("203.0.113.7")), "203.0.113.0/24");
        assert_eq!(network(ip("203.0.113.7")), network(ip("203.0.113.200")));
        assert_ne!(network(ip("203.0.113.7")), network(ip("203.0.114.7")));
        assert_eq!(network(ip("::ffff:203.0.113.9")), "203.0.113.0/24");
        assert_eq!(
            network(ip("2001:db8:1:2:3:4:5:6")),
            network(ip("2001:db8:1:2:ffff::1"))
        );
    }

    #[test]
    fn an_account_is_counted_apart_per_network_and_spelled_canonically() {
        let mine = keys("alice", ip("198.51.100.4"));
        let theirs = keys(" Alice", ip("203.0.113.7"));
        assert_ne!(
            mine.account_here, theirs.account_here,
            "their guesses don't lock me out"
        );
        assert_eq!(
            mine.account, theirs.account,
            "but share the account's ceiling"
        );
        assert_eq!(
            keys("ALICE", ip("127.0.0.1")),
            keys("alice", ip("127.0.0.9"))
        );
    }
}
