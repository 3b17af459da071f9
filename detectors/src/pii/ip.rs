//! IPv4 and IPv6 addresses (`net.ip`). Owns the format check only, which is
//! the standard library's: `Ipv4Addr` parses strict dotted-quad (four
//! decimal octets 0–255, no leading zeros, so `01.2.3.4`, which some C
//! parsers read as octal, is rejected), `Ipv6Addr` the RFC 4291 text forms
//! including `::` compression and an embedded dotted quad. Zone indexes
//! (`fe80::1%eth0`), CIDR suffixes and ports are not part of an address.
//!
//! Every address is accepted, private and loopback ones too: which of them
//! identify a person is a deployment question (a citizen's home address
//! behind NAT is still personal information under PIPL art. 4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest IPv4 text form (`255.255.255.255`).
pub const MAX_IPV4_LEN: usize = 15;
/// Longest IPv6 text form (`ffff:…:ffff:255.255.255.255`, INET6_ADDRSTRLEN - 1).
pub const MAX_IPV6_LEN: usize = 45;

/// Parses `s` as exactly one IPv4 or IPv6 address.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// Whether `s` is exactly one IPv4 or IPv6 address.
pub fn is_valid_ip(s: &str) -> bool {
    parse_ip(s).is_some()
}

pub(crate) fn is_ipv4(b: &[u8]) -> bool {
    b.len() <= MAX_IPV4_LEN && std::str::from_utf8(b).is_ok_and(|s| s.parse::<Ipv4Addr>().is_ok())
}

pub(crate) fn is_ipv6(b: &[u8]) -> bool {
    b.len() <= MAX_IPV6_LEN && std::str::from_utf8(b).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::gen::{self, Rng};

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            ("1.2.3.4", true),
            ("255.255.255.255", true),
            ("0.0.0.0", true),
            ("192.168.1.100", true),
            ("01.2.3.4", false), // leading zero: octal in inet_aton
            ("1.2.3.04", false),
            ("256.1.1.1", false),
            ("1.2.3", false),
            ("1.2.3.4.5", false),
            ("1.2.3.4 ", false),
            ("0x7f.0.0.1", false),
            ("::1", true),
            ("::", true),
            ("2001:db8::1", true),
            ("2001:0db8:0000:0000:0000:ff00:0042:8329", true),
            ("::ffff:192.168.1.1", true),
            ("fe80::1%eth0", false),
            ("2001:db8::1::2", false),
            ("2001:db8:0:0:0:0:0:0:1", false),
            ("12345::1", false),
            ("2001:db8::g", false),
            ("12:30:45", false),
            ("00:1a:2b:3c:4d:5e", false),
            ("", false),
        ];
        for &(s, ok) in cases {
            assert_eq!(is_valid_ip(s), ok, "{s}");
        }
    }

    #[test]
    fn generated_valid_and_near_misses() {
        let mut rng = Rng(0x0019_2168);
        for _ in 0..2_000 {
            let v = gen::ip(&mut rng);
            assert!(is_valid_ip(&v), "{v}");
            let (why, bad) = gen::ip_near_miss(&mut rng);
            assert!(!is_valid_ip(&bad), "{why}: {bad}");
        }
    }
}
