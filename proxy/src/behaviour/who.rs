//! Who a baseline is about: user × application × client network. The
//! network (a /24 or /64 by default) rather than the address, because a
//! client's port and last octet change between connections while its
//! place does not.

use std::net::IpAddr;
use std::sync::Arc;

/// One behaviour identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Who {
    /// `user|application|network`: the key profiles are stored under and
    /// what `danxia baseline show` takes.
    pub key: Arc<str>,
    pub user: Arc<str>,
    pub application: Arc<str>,
    /// `10.1.2.0/24`, or `local` for a session without an IP address.
    pub network: Arc<str>,
}

impl Who {
    pub fn new(user: &str, application: &str, address: Option<IpAddr>, v4: u8, v6: u8) -> Who {
        let network = network_of(address, v4, v6);
        // `|` separates the parts; a user or application naming itself
        // with one must not impersonate another key.
        let clean = |s: &str| s.replace('|', "¦");
        let key = format!("{}|{}|{}", clean(user), clean(application), network);
        Who {
            key: Arc::from(key),
            user: Arc::from(user),
            application: Arc::from(application),
            network: Arc::from(network),
        }
    }
}

/// `address` masked to its network, in CIDR form.
pub fn network_of(address: Option<IpAddr>, v4: u8, v6: u8) -> String {
    let addr = match address {
        Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4a) => IpAddr::V4(v4a),
            None => IpAddr::V6(a),
        },
        Some(a) => a,
        None => return "local".into(),
    };
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let p = v4.min(32);
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            format!("{}/{p}", std::net::Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let p = v6.min(128);
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            format!("{}/{p}", std::net::Ipv6Addr::from(bits & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_keys() {
        let a = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(network_of(a("10.1.2.3"), 24, 64), "10.1.2.0/24");
        assert_eq!(network_of(a("::ffff:10.1.2.3"), 24, 64), "10.1.2.0/24");
        assert_eq!(network_of(a("2001:db8::1"), 24, 64), "2001:db8::/64");
        assert_eq!(network_of(a("10.1.2.3"), 0, 64), "0.0.0.0/0");
        assert_eq!(network_of(None, 24, 64), "local");
        let w = Who::new("li", "psql", a("127.0.0.1"), 24, 64);
        assert_eq!(&*w.key, "li|psql|127.0.0.0/24");
        let evil = Who::new("li|psql", "x", None, 24, 64);
        assert_eq!(&*evil.key, "li¦psql|x|local");
    }
}
