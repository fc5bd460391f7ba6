//! IPv6 address management: a network's v6 subnet and gateway, the pools
//! (daemon.json `default-address-pools` with a v6 base) subnets are taken
//! from, and an endpoint's v6 address.
//!
//! An endpoint's v6 address is not recorded: it is its static `--ip6`, or
//! the v6 subnet's host at the same offset as its v4 address in the v4
//! subnet. dockerd hands both out in order from the first host, so the two
//! agree whenever the v4 addresses were handed out in order too; and a pure
//! function of what is recorded needs no event of its own (EndpointUp is
//! frozen) and reads the same in inspect, /etc/hosts and DNS.

use std::fmt;
use std::net::Ipv6Addr;

use crate::error::{Error, Result};

/// An IPv6 network: `base` with the host bits cleared, and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet6 {
    pub base: u128,
    pub prefix: u8,
}

fn mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix as u32)
    }
}

impl Subnet6 {
    /// "2001:db8:1::/64"; host bits set are refused, as for v4 subnets.
    pub fn parse(s: &str) -> Result<Subnet6> {
        let bad = || Error::invalid(format!("invalid CIDR address: {s}"));
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 128 {
            return Err(bad());
        }
        let ip = u128::from(ip);
        let base = ip & mask(prefix);
        if base != ip {
            return Err(Error::invalid(format!(
                "invalid subnet {s}: it should be {}",
                Subnet6 { base, prefix }
            )));
        }
        Ok(Subnet6 { base, prefix })
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask(self.prefix) == self.base
    }

    pub fn overlaps(&self, other: &Subnet6) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        self.base & m == other.base & m
    }

    /// The gateway dockerd takes when none is given: the first host (::1).
    pub fn first_host(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.base + 1)
    }

    /// The host `offset` addresses in, if the subnet holds it.
    pub fn host_at(&self, offset: u128) -> Option<Ipv6Addr> {
        let size = if self.prefix == 0 {
            u128::MAX
        } else {
            !mask(self.prefix)
        };
        (offset > 0 && offset <= size).then(|| Ipv6Addr::from(self.base + offset))
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.base), self.prefix)
    }
}

pub fn parse_ip6(s: &str) -> Result<Ipv6Addr> {
    s.trim()
        .parse::<Ipv6Addr>()
        .map_err(|_| Error::invalid(format!("invalid IP address: {s}")))
}

/// Whether a CIDR string is an IPv6 one (a config entry's family).
pub fn is_v6(cidr: &str) -> bool {
    cidr.contains(':')
}

/// A pool v6 networks take subnets of `size` bits from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool6 {
    pub base: Subnet6,
    pub size: u8,
}

/// The first subnet of the pools that overlaps none of `taken`.
pub fn pick_subnet(pools: &[Pool6], taken: &[Subnet6]) -> Option<Subnet6> {
    for pool in pools {
        if pool.size < pool.base.prefix || pool.size > 126 {
            continue;
        }
        let step = 1u128 << (128 - pool.size as u32);
        // A pool may hold more subnets than are worth trying: the first
        // 65536 are plenty for one host's networks.
        let count = 1u128
            .checked_shl((pool.size - pool.base.prefix) as u32)
            .unwrap_or(u128::MAX)
            .min(1 << 16);
        for i in 0..count {
            let candidate = Subnet6 {
                base: pool.base.base + i * step,
                prefix: pool.size,
            };
            if !taken.iter().any(|t| t.overlaps(&candidate)) {
                return Some(candidate);
            }
        }
    }
    None
}

/// An endpoint's v6 address: `static6` when given, else the host of
/// `subnet6` at the offset `ip4` has in `subnet4_base` (see the module doc).
pub fn endpoint_address(
    subnet6: Subnet6,
    subnet4_base: u32,
    ip4: u32,
    static6: Option<Ipv6Addr>,
) -> Option<Ipv6Addr> {
    static6.or_else(|| subnet6.host_at(ip4.checked_sub(subnet4_base)? as u128))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v6_subnets() {
        let s = Subnet6::parse("2001:db8:1::/64").unwrap();
        assert_eq!(s.to_string(), "2001:db8:1::/64");
        assert_eq!(s.first_host().to_string(), "2001:db8:1::1");
        assert!(Subnet6::parse("2001:db8:1::1/64").is_err());
        assert!(Subnet6::parse("2001:db8:1::/129").is_err());
        assert!(Subnet6::parse("10.0.0.0/8").is_err());
        assert!(s.contains("2001:db8:1::99".parse().unwrap()));
        assert!(!s.contains("2001:db8:2::99".parse().unwrap()));
        let inner = Subnet6::parse("2001:db8:1:0:1::/80").unwrap();
        assert!(s.overlaps(&inner) && inner.overlaps(&s));
        assert!(!s.overlaps(&Subnet6::parse("2001:db8:2::/64").unwrap()));
    }

    #[test]
    fn endpoint_addresses_follow_the_v4_offset() {
        let s = Subnet6::parse("2001:db8:1::/64").unwrap();
        let base4 = u32::from(std::net::Ipv4Addr::new(172, 18, 0, 0));
        let a = endpoint_address(s, base4, base4 + 2, None).unwrap();
        assert_eq!(a.to_string(), "2001:db8:1::2");
        let a = endpoint_address(s, base4, base4 + 256, None).unwrap();
        assert_eq!(a.to_string(), "2001:db8:1::100");
        let st: Ipv6Addr = "2001:db8:1::99".parse().unwrap();
        assert_eq!(endpoint_address(s, base4, base4 + 2, Some(st)), Some(st));
        let small = Subnet6::parse("2001:db8:1::/126").unwrap();
        assert_eq!(endpoint_address(small, base4, base4 + 9, None), None);
    }

    #[test]
    fn picks_from_v6_pools() {
        let pools = [Pool6 {
            base: Subnet6::parse("fd00:b::/48").unwrap(),
            size: 64,
        }];
        let first = pick_subnet(&pools, &[]).unwrap();
        assert_eq!(first.to_string(), "fd00:b::/64");
        assert_eq!(
            pick_subnet(&pools, &[first]).unwrap().to_string(),
            "fd00:b:0:1::/64"
        );
        assert_eq!(pick_subnet(&[], &[]), None);
    }
}
