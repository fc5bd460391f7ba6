//! IPv4 address management: subnets, the pools networks take them from, and
//! the addresses endpoints get inside them. Pure functions; the NetworkActor
//! owns the decisions and the projection remembers them.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use crate::error::{Error, Result};

/// An IPv4 network: `base` with the host bits cleared, and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    pub base: u32,
    pub prefix: u8,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

impl Subnet {
    /// "172.18.0.0/16". Host bits set ("172.18.0.1/16") are refused, as dockerd
    /// refuses them for a network's subnet; see `parse_host` for --bip.
    pub fn parse(s: &str) -> Result<Subnet> {
        let (ip, prefix) = Self::parse_parts(s)?;
        let base = ip & mask(prefix);
        if base != ip {
            return Err(Error::invalid(format!(
                "invalid subnet {s}: it should be {}",
                Subnet { base, prefix }
            )));
        }
        Ok(Subnet { base, prefix })
    }

    /// "172.18.0.1/16" as an address and its subnet (--bip).
    pub fn parse_host(s: &str) -> Result<(Ipv4Addr, Subnet)> {
        let (ip, prefix) = Self::parse_parts(s)?;
        Ok((
            Ipv4Addr::from(ip),
            Subnet {
                base: ip & mask(prefix),
                prefix,
            },
        ))
    }

    fn parse_parts(s: &str) -> Result<(u32, u8)> {
        let bad = || Error::invalid(format!("invalid CIDR address: {s}"));
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok((u32::from(ip), prefix))
    }

    pub fn mask(&self) -> u32 {
        mask(self.prefix)
    }
    pub fn contains(&self, ip: u32) -> bool {
        ip & self.mask() == self.base
    }
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        self.base & m == other.base & m
    }
    pub fn broadcast(&self) -> u32 {
        self.base | !self.mask()
    }
    /// The first address a host can have (the usual gateway).
    pub fn first_host(&self) -> u32 {
        if self.prefix >= 31 {
            self.base
        } else {
            self.base + 1
        }
    }
    /// Whether `ip` is a host address (not the network or broadcast address).
    pub fn is_host(&self, ip: u32) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.base && ip != self.broadcast()))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

pub fn parse_ip(s: &str) -> Result<u32> {
    s.trim()
        .parse::<Ipv4Addr>()
        .map(u32::from)
        .map_err(|_| Error::invalid(format!("invalid IP address: {s}")))
}

pub fn ip_string(ip: u32) -> String {
    Ipv4Addr::from(ip).to_string()
}

/// A pool networks take subnets of `size` bits from (daemon.json
/// `default-address-pools`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub base: Subnet,
    pub size: u8,
}

/// dockerd's pools when daemon.json names none: 172.17-31.0.0/16, then
/// 192.168.0.0/16 in /20s.
pub fn default_pools() -> Vec<Pool> {
    let mut pools: Vec<Pool> = (17..=31)
        .map(|b| Pool {
            base: Subnet {
                base: u32::from(Ipv4Addr::new(172, b, 0, 0)),
                prefix: 16,
            },
            size: 16,
        })
        .collect();
    pools.push(Pool {
        base: Subnet {
            base: u32::from(Ipv4Addr::new(192, 168, 0, 0)),
            prefix: 16,
        },
        size: 20,
    });
    pools
}

/// The first subnet of the pools that overlaps none of `taken` (the host's
/// routes and the other networks' subnets).
pub fn pick_subnet(pools: &[Pool], taken: &[Subnet]) -> Option<Subnet> {
    for pool in pools {
        if pool.size < pool.base.prefix || pool.size > 30 {
            continue;
        }
        let step = 1u64 << (32 - pool.size as u32);
        let count = 1u64 << (pool.size - pool.base.prefix) as u32;
        for i in 0..count {
            let candidate = Subnet {
                base: (pool.base.base as u64 + i * step) as u32,
                prefix: pool.size,
            };
            if !taken.iter().any(|t| t.overlaps(&candidate)) {
                return Some(candidate);
            }
        }
    }
    None
}

/// The lowest free host address of `subnet` (inside `range` when given) that
/// is not the gateway nor in `used`.
pub fn next_address(
    subnet: Subnet,
    range: Option<Subnet>,
    gateway: u32,
    used: &BTreeSet<u32>,
) -> Option<u32> {
    let scope = range.unwrap_or(subnet);
    let (first, last) = (scope.base, scope.broadcast());
    (first..=last).find(|ip| *ip != gateway && subnet.is_host(*ip) && !used.contains(ip))
}

/// The MAC dockerd gives an endpoint: 02:42 and the four bytes of its IPv4.
/// A MAC address as the API gives it ("02:42:ac:11:00:99", either case, or
/// dashes), in dockerd's words when it is not one.
pub fn parse_mac(s: &str) -> crate::error::Result<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    let ok = parts.len() == 6
        && parts
            .iter()
            .zip(mac.iter_mut())
            .all(|(p, b)| p.len() == 2 && u8::from_str_radix(p, 16).map(|v| *b = v).is_ok());
    if !ok {
        return Err(crate::error::Error::internal(format!(
            "address {s}: invalid MAC address"
        )));
    }
    Ok(mac)
}

/// How the API writes a MAC address.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn mac_for(ip: u32) -> String {
    let b = ip.to_be_bytes();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_as_dockerd_reads_them() {
        assert_eq!(
            parse_mac("02:42:AC:11:00:97").map(|m| format_mac(&m)).ok(),
            Some("02:42:ac:11:00:97".to_string())
        );
        assert!(parse_mac("02-42-ac-11-00-97").is_ok());
        let e = parse_mac("zz").unwrap_err();
        assert_eq!(e.to_string(), "address zz: invalid MAC address");
        assert!(parse_mac("02:42:ac:11:00").is_err());
    }

    fn s(x: &str) -> Subnet {
        Subnet::parse(x).unwrap()
    }

    #[test]
    fn parses_and_checks_subnets() {
        assert_eq!(s("172.18.0.0/16").to_string(), "172.18.0.0/16");
        let e = Subnet::parse("172.18.0.1/16").unwrap_err();
        assert!(e.message().contains("172.18.0.0/16"), "{e}");
        assert!(Subnet::parse("300.1.0.0/16").is_err());
        assert!(Subnet::parse("10.0.0.0/33").is_err());
        assert!(Subnet::parse("10.0.0.0").is_err());
        let (ip, net) = Subnet::parse_host("10.9.0.1/24").unwrap();
        assert_eq!(
            (ip.to_string(), net.to_string()),
            ("10.9.0.1".into(), "10.9.0.0/24".into())
        );
    }

    #[test]
    fn overlap_is_symmetric_and_prefix_aware() {
        assert!(s("10.0.0.0/8").overlaps(&s("10.1.0.0/16")));
        assert!(s("10.1.0.0/16").overlaps(&s("10.0.0.0/8")));
        assert!(!s("10.1.0.0/16").overlaps(&s("10.2.0.0/16")));
        assert!(s("0.0.0.0/0").overlaps(&s("192.168.1.0/24")));
    }

    #[test]
    fn picks_the_first_pool_subnet_no_route_overlaps() {
        let pools = default_pools();
        assert_eq!(
            pick_subnet(&pools, &[]).unwrap().to_string(),
            "172.17.0.0/16"
        );
        let taken = [s("172.17.0.0/16"), s("172.18.5.0/24")];
        assert_eq!(
            pick_subnet(&pools, &taken).unwrap().to_string(),
            "172.19.0.0/16"
        );
        let all: Vec<Subnet> = (17..=31).map(|b| s(&format!("172.{b}.0.0/16"))).collect();
        assert_eq!(
            pick_subnet(&pools, &all).unwrap().to_string(),
            "192.168.0.0/20"
        );
        let mut more = all.clone();
        more.push(s("192.168.0.0/20"));
        assert_eq!(
            pick_subnet(&pools, &more).unwrap().to_string(),
            "192.168.16.0/20"
        );
        assert_eq!(pick_subnet(&pools, &[s("0.0.0.0/0")]), None);
    }

    #[test]
    fn addresses_skip_gateway_used_network_and_broadcast() {
        let net = s("10.5.0.0/29"); // .1-.6 are hosts
        let gw = parse_ip("10.5.0.1").unwrap();
        let mut used = BTreeSet::new();
        let a = next_address(net, None, gw, &used).unwrap();
        assert_eq!(ip_string(a), "10.5.0.2");
        used.insert(a);
        used.insert(parse_ip("10.5.0.3").unwrap());
        assert_eq!(
            ip_string(next_address(net, None, gw, &used).unwrap()),
            "10.5.0.4"
        );
        for x in 4..=6 {
            used.insert(parse_ip(&format!("10.5.0.{x}")).unwrap());
        }
        assert_eq!(
            next_address(net, None, gw, &used),
            None,
            "broadcast is never given"
        );
        let range = s("10.5.0.4/30");
        let used = BTreeSet::new();
        assert_eq!(
            ip_string(next_address(net, Some(range), gw, &used).unwrap()),
            "10.5.0.4"
        );
    }

    #[test]
    fn mac_follows_the_address_as_dockerd() {
        assert_eq!(
            mac_for(parse_ip("172.17.0.2").unwrap()),
            "02:42:ac:11:00:02"
        );
    }
}
