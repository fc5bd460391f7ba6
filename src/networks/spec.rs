//! What a network is (`NetworkSpec`, recorded as JSON in `NetworkCreated`),
//! how a create request becomes one, and how networks are found by name, ID
//! or ID prefix, as dockerd finds them.

use std::collections::BTreeMap;

use bollard_stubs::models::NetworkCreateRequest;
use serde::{Deserialize, Serialize};

use super::ipam::{self, Subnet};
use super::ipam6::{self, Subnet6};
use std::collections::HashMap;
use std::net::Ipv6Addr;

use bollard_stubs::models::{ContainerCreateBody, EndpointSettings};

use crate::error::{Error, ErrorKind, Result};
use crate::events::projection::{ContainerRecord, EndpointRecord, NetworkRecord, State};

pub const BRIDGE: &str = "bridge";
pub const HOST: &str = "host";
pub const NONE: &str = "none";

/// The option that names a bridge network's device.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// The bridge driver's other options, as dockerd reads them.
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";

/// Go's strconv.ParseBool.
fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(Error::internal(format!(
            "failed to parse {key} value: {v} (strconv.ParseBool: parsing \"{v}\": invalid syntax)"
        ))),
    }
}

/// dockerd's checks of the bridge driver's options, in its words.
fn check_options(options: &BTreeMap<String, String>) -> Result<()> {
    for key in [OPT_ICC, OPT_MASQUERADE] {
        if let Some(v) = options.get(key) {
            parse_bool(key, v)?;
        }
    }
    if let Some(v) = options.get(OPT_HOST_BINDING) {
        v.parse::<std::net::Ipv4Addr>().map_err(|_| {
            Error::internal(format!(
                "failed to parse {OPT_HOST_BINDING} value: {v} (nil ip)"
            ))
        })?;
    }
    if let Some(v) = options.get(OPT_MTU) {
        let mtu: i64 = v.parse().map_err(|_| {
            Error::internal(format!(
                "failed to parse {OPT_MTU} value: {v} (strconv.Atoi: parsing \"{v}\": invalid syntax)"
            ))
        })?;
        if mtu < 0 {
            return Err(Error::internal(format!("invalid MTU number: {mtu}")));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkSpec {
    /// "bridge", "host" or "null".
    pub driver: String,
    /// Empty for host and null networks.
    pub subnet: String,
    pub gateway: String,
    pub ip_range: String,
    /// The bridge device (bridge driver).
    pub bridge: String,
    pub internal: bool,
    pub attachable: bool,
    /// Whether IPAM Config was given by the user (inspect shows what was given).
    pub ipam_config_given: bool,
    /// Whether the user gave the v4 gateway (inspect shows it only then, when
    /// the subnet was given too).
    pub gateway_given: bool,
    /// Containers get IPv6 addresses too (`--ipv6`).
    pub enable_ipv6: bool,
    /// The v6 subnet and gateway (empty: none). A subnet without
    /// `enable_ipv6` is kept and shown, and unused, as dockerd.
    pub subnet6: String,
    pub gateway6: String,
    pub gateway6_given: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub ipam_options: BTreeMap<String, String>,
    /// One of the three built in networks (bridge, host, none): never removed.
    pub builtin: bool,
}

impl NetworkSpec {
    pub fn of(record: &NetworkRecord) -> NetworkSpec {
        serde_json::from_str(&record.config).unwrap_or_default()
    }

    pub fn is_bridge(&self) -> bool {
        self.driver == BRIDGE
    }

    /// The subnet, gateway and range of a bridge network.
    pub fn addressing(&self) -> Result<(Subnet, u32, Option<Subnet>)> {
        let subnet = Subnet::parse(&self.subnet)?;
        let gateway = ipam::parse_ip(&self.gateway)?;
        let range = if self.ip_range.is_empty() {
            None
        } else {
            Some(Subnet::parse(&self.ip_range)?)
        };
        Ok((subnet, gateway, range))
    }

    /// The v6 subnet and gateway, on a network with IPv6 enabled.
    pub fn ipv6(&self) -> Option<(Subnet6, Ipv6Addr)> {
        if !self.enable_ipv6 {
            return None;
        }
        let subnet = Subnet6::parse(&self.subnet6).ok()?;
        let gateway = ipam6::parse_ip6(&self.gateway6).ok()?;
        Some((subnet, gateway))
    }

    /// An endpoint's v6 address on this network, while it is up: its
    /// `--ip6`, or the one its v4 address implies (ipam6's module doc).
    pub fn endpoint_ipv6(&self, ep: &EndpointRecord) -> Option<Ipv6Addr> {
        let (subnet6, _) = self.ipv6()?;
        // The default bridge with a fixed-cidr-v6 of /80 or wider: dockerd
        // makes the address from the MAC (prefix + its 48 bits).
        if self.builtin && subnet6.prefix <= 80 {
            let mac = ipam::parse_mac(&ep.mac).ok()?;
            let low = mac.iter().fold(0u128, |acc, b| (acc << 8) | *b as u128);
            return Some(Ipv6Addr::from(subnet6.base | low));
        }
        let ip4 = ipam::parse_ip(&ep.ip).ok()?;
        let base4 = Subnet::parse(&self.subnet).ok()?.base;
        // (Parsed here: render reads the spec, so spec does not call render.)
        let config: EndpointSettings = serde_json::from_str(&ep.config).unwrap_or_default();
        let static6 = config
            .ipam_config
            .and_then(|i| i.ipv6_address)
            .and_then(|a| a.parse().ok());
        ipam6::endpoint_address(subnet6, base4, ip4, static6)
    }

    /// A static address asked for on this network (`--ip`): it must be a
    /// host address of the subnet. The gateway is refused only at join
    /// (`for_join`), as dockerd accepts it at create and fails the start.
    pub fn static_address(&self, a: &str) -> Result<u32> {
        self.static_address_checked(a, false)
    }

    /// `static_address`, the gateway refused too (the address a join takes).
    pub fn static_address_for_join(&self, a: &str) -> Result<u32> {
        self.static_address_checked(a, true)
    }

    fn static_address_checked(&self, a: &str, for_join: bool) -> Result<u32> {
        let ip = ipam::parse_ip(a)?;
        let (subnet, gateway, _) = self.addressing()?;
        if !subnet.is_host(ip) || (for_join && ip == gateway) {
            return Err(Error::invalid(format!(
                "no configured subnet or ip-range contain the IP address {a}"
            )));
        }
        Ok(ip)
    }

    /// Containers on the bridge reach each other (`enable_icc`, default true).
    pub fn icc(&self) -> bool {
        self.options
            .get(OPT_ICC)
            .map_or(true, |v| parse_bool(OPT_ICC, v).unwrap_or(true))
    }

    /// Traffic out is masqueraded (`enable_ip_masquerade`, default true).
    pub fn masquerade(&self) -> bool {
        self.options
            .get(OPT_MASQUERADE)
            .map_or(true, |v| parse_bool(OPT_MASQUERADE, v).unwrap_or(true))
    }

    /// Where ports published without an address listen (`host_binding_ipv4`).
    pub fn host_binding(&self) -> Option<String> {
        self.options
            .get(OPT_HOST_BINDING)
            .filter(|v| v.parse::<std::net::Ipv4Addr>().is_ok())
            .cloned()
    }

    /// The containers' interfaces' MTU (`driver.mtu`; 0: the kernel's).
    pub fn mtu(&self) -> u32 {
        self.options
            .get(OPT_MTU)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The bridge device the driver makes for this network.
    pub fn bridge_device(&self) -> Result<crate::drivers::network::Bridge> {
        let (subnet, gateway, _) = self.addressing()?;
        Ok(crate::drivers::network::Bridge {
            name: self.bridge.clone(),
            gateway: std::net::Ipv4Addr::from(gateway),
            prefix: subnet.prefix,
            internal: self.internal,
            icc: self.icc(),
            ipv6: self.ipv6().map(|(subnet, gw)| (gw, subnet.prefix)),
        })
    }
}

/// A checked create request: what the controller still has to decide is the
/// subnet, when none was given.
pub struct CreateRequest {
    pub name: String,
    pub spec: NetworkSpec,
    /// The subnet the user asked for, if any.
    pub subnet: Option<Subnet>,
    pub gateway: Option<u32>,
    pub ip_range: Option<Subnet>,
    /// The v6 subnet and gateway the user asked for, if any.
    pub subnet6: Option<Subnet6>,
    pub gateway6: Option<Ipv6Addr>,
}

/// dockerd's checks of POST /networks/create, in its words.
pub fn check_create(req: &NetworkCreateRequest) -> Result<CreateRequest> {
    // dockerd takes any name but a blank one (spaces, slashes and colons
    // too: the bridge is named after the ID, not the name).
    let name = req.name.clone();
    if name.trim().is_empty() {
        return Err(Error::internal(format!("invalid name: {name}")));
    }
    if [BRIDGE, HOST, NONE].contains(&name.as_str()) {
        return Err(Error::forbidden(format!(
            "operation is not permitted on predefined {name} network "
        )));
    }
    let driver = req
        .driver
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| BRIDGE.into());
    if driver != BRIDGE {
        return Err(Error::not_found(format!("plugin \"{driver}\" not found")));
    }
    let ipam_req = req.ipam.clone().unwrap_or_default();
    if let Some(d) = ipam_req
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "default")
    {
        return Err(Error::not_found(format!("plugin \"{d}\" not found")));
    }
    let configs = ipam_req.config.clone().unwrap_or_default();
    let (v6, v4): (Vec<_>, Vec<_>) = configs
        .iter()
        .partition(|c| c.subnet.as_deref().is_some_and(ipam6::is_v6));
    if v4.len() > 1 || v6.len() > 1 {
        return Err(Error::invalid(
            "berthd supports one IPv4 and one IPv6 subnet per network",
        ));
    }
    let (mut subnet, mut gateway, mut ip_range) = (None, None, None);
    if let Some(c) = v4.first() {
        let s = match c.subnet.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Subnet::parse(s)?,
            None => {
                if c.gateway.is_some() || c.ip_range.is_some() {
                    return Err(Error::invalid("a gateway or ip-range needs a subnet"));
                }
                return Err(Error::invalid("a subnet is required"));
            }
        };
        if let Some(g) = c.gateway.as_deref().filter(|g| !g.is_empty()) {
            let ip = ipam::parse_ip(g)?;
            if !s.is_host(ip) {
                return Err(Error::invalid(format!(
                    "failed to allocate gateway ({g}): Requested address is out of range"
                )));
            }
            gateway = Some(ip);
        }
        if let Some(r) = c.ip_range.as_deref().filter(|r| !r.is_empty()) {
            let r = Subnet::parse(r)?;
            if !(s.contains(r.base) && s.prefix <= r.prefix) {
                return Err(Error::invalid(format!(
                    "Invalid address {r}: It does not belong to any of this network's subnets"
                )));
            }
            ip_range = Some(r);
        }
        subnet = Some(s);
    }
    let (mut subnet6, mut gateway6) = (None, None);
    if let Some(c) = v6.first() {
        let s = Subnet6::parse(c.subnet.as_deref().unwrap_or_default())?;
        if let Some(g) = c.gateway.as_deref().filter(|g| !g.is_empty()) {
            let ip = ipam6::parse_ip6(g)?;
            if !s.contains(ip) || u128::from(ip) == s.base {
                return Err(Error::invalid(format!(
                    "failed to allocate gateway ({g}): Requested address is out of range"
                )));
            }
            gateway6 = Some(ip);
        }
        if c.ip_range.as_deref().is_some_and(|r| !r.is_empty()) {
            // An endpoint's v6 address follows its v4 one (ipam6): a range
            // of its own cannot be kept to.
            return Err(Error::invalid(
                "berthd does not take an ip-range for an IPv6 subnet",
            ));
        }
        subnet6 = Some(s);
    }
    let options: BTreeMap<String, String> = req
        .options
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    check_options(&options)?;
    if req.ingress.unwrap_or(false) {
        return Err(Error::forbidden(
            "Ingress network can only be global scope network",
        ));
    }
    if let Some(dev) = options.get(OPT_BRIDGE_NAME) {
        if dev.is_empty() || dev.len() > 15 || dev.contains(['/', ' ', ':']) {
            return Err(Error::invalid(format!(
                "invalid bridge name {dev:?}: at most 15 characters, no '/', ':' or spaces"
            )));
        }
    }
    Ok(CreateRequest {
        name,
        spec: NetworkSpec {
            driver,
            internal: req.internal.unwrap_or(false),
            attachable: req.attachable.unwrap_or(false),
            ipam_config_given: subnet.is_some(),
            gateway_given: gateway.is_some(),
            enable_ipv6: req.enable_ipv6.unwrap_or(false),
            gateway6_given: gateway6.is_some(),
            labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
            options,
            ipam_options: ipam_req.options.unwrap_or_default().into_iter().collect(),
            ..Default::default()
        },
        subnet,
        gateway,
        ip_range,
        subnet6,
        gateway6,
    })
}

/// The network a container's NetworkMode names: "default" is the bridge.
/// The IDs of the networks container `c` is attached to, in its sandbox's
/// order: `mode_net` (its network mode's) first, then by name, internal
/// networks last (as libnetwork sorts a sandbox's endpoints: an internal
/// one gives no gateway). The first is its primary network (default route,
/// published ports, DNS precedence): a container on an internal network
/// and a plain one (Compose's front and back) publishes its ports through
/// the plain one, as with dockerd.
pub fn join_order<'a>(state: &State, c: &'a ContainerRecord, mode_net: &str) -> Vec<&'a String> {
    let mut ids: Vec<&String> = c.networks.keys().collect();
    ids.sort_by_key(|n| {
        let record = state.networks.get(*n);
        (
            record.is_some_and(|r| NetworkSpec::of(r).internal),
            n.as_str() != mode_net,
            record.map(|r| r.name.clone()),
        )
    });
    ids
}

pub fn mode_network(mode: &str) -> &str {
    match mode {
        "" | "default" => BRIDGE,
        m => m,
    }
}

/// dockerd's checks of an endpoint's settings on a network.
pub fn check_endpoint_config(s: &NetworkSpec, config: &EndpointSettings) -> Result<()> {
    let user_net = s.is_bridge() && !s.builtin;
    if config.aliases.as_ref().is_some_and(|a| !a.is_empty()) && !user_net {
        return Err(Error::invalid(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    if let Some(ip) = config
        .ipam_config
        .as_ref()
        .and_then(|i| i.ipv4_address.clone())
        .filter(|a| !a.is_empty())
    {
        if !user_net || !s.ipam_config_given {
            return Err(Error::invalid(
                "user specified IP address is supported only when connecting to networks with user configured subnets",
            ));
        }
        s.static_address(&ip)?;
    }
    if let Some(ip) = config
        .ipam_config
        .as_ref()
        .and_then(|i| i.ipv6_address.clone())
        .filter(|a| !a.is_empty())
    {
        if !user_net {
            return Err(Error::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        let addr = ipam6::parse_ip6(&ip)?;
        let inside = Subnet6::parse(&s.subnet6).is_ok_and(|n| n.contains(addr));
        if !inside {
            return Err(Error::invalid(format!(
                "Invalid address {ip}: It does not belong to any of this network's subnets"
            )));
        }
    }
    Ok(())
}

/// The attachments a create asks for: (network ID, EndpointSettings), the
/// NetworkMode's network first; checked as dockerd checks them.
pub fn create_attachments(
    state: &State,
    body: &ContainerCreateBody,
) -> Result<Vec<(String, EndpointSettings)>> {
    let mode = body
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    let configs: HashMap<String, EndpointSettings> = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.clone())
        .unwrap_or_default();
    if mode.starts_with("container:") {
        // The donor is looked for at start, as dockerd does.
        if !configs.is_empty() {
            return Err(Error::invalid(
                "conflicting options: container type network can't be used with other networks",
            ));
        }
        return Ok(Vec::new());
    }
    let mode_net = match state.network(mode_network(&mode)) {
        Ok(n) => n,
        // dockerd creates it, and its start fails ("network x not found"):
        // a 404 here would make the CLI pull the image first.
        Err(e) if e.kind() == ErrorKind::NotFound && configs.keys().all(|k| *k == mode) => {
            return Ok(Vec::new())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::not_found(format!("network {mode} not found")))
        }
        Err(e) => return Err(e),
    };
    let mut out = vec![(mode_net.id.clone(), EndpointSettings::default())];
    let mut names: Vec<&String> = configs.keys().collect();
    names.sort();
    for name in names {
        // The CLI names the mode's network as the mode says ("default").
        let n = state.network(mode_network(name))?;
        let s = NetworkSpec::of(n);
        let cfg = configs[name].clone();
        check_endpoint_config(&s, &cfg)?;
        if n.id == mode_net.id {
            out[0].1 = cfg;
        } else {
            if !s.is_bridge() || [HOST, NONE].contains(&mode.as_str()) {
                return Err(Error::invalid(
                    "container sharing network namespace with another container or host cannot be connected to any other network",
                ));
            }
            out.push((n.id.clone(), cfg));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::{Ipam, IpamConfig};

    fn req(subnet: &str, gateway: &str, range: &str) -> NetworkCreateRequest {
        let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        NetworkCreateRequest {
            name: "net1".into(),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: opt(subnet),
                    gateway: opt(gateway),
                    ip_range: opt(range),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn checks_what_dockerd_checks() {
        let ok = check_create(&req("10.9.0.0/24", "10.9.0.254", "10.9.0.128/25")).unwrap();
        assert_eq!(ok.spec.driver, "bridge");
        assert_eq!(ok.subnet.unwrap().to_string(), "10.9.0.0/24");
        let e = check_create(&req("10.9.0.0/24", "10.8.0.1", ""))
            .err()
            .unwrap();
        assert!(e.message().contains("out of range"), "{e}");
        assert!(check_create(&req("10.9.0.0/24", "", "10.10.0.0/25")).is_err());
        assert!(check_create(&req("10.9.0.1/24", "", "")).is_err());
        let mut bad = req("", "", "");
        bad.name = "bridge".into();
        assert_eq!(
            check_create(&bad).err().unwrap().kind(),
            crate::error::ErrorKind::Forbidden
        );
        bad.name = "-x".into();
        assert!(check_create(&bad).is_err());
        let mut d = NetworkCreateRequest {
            name: "o".into(),
            driver: Some("overlay".into()),
            ..Default::default()
        };
        assert_eq!(
            check_create(&d).err().unwrap().kind(),
            crate::error::ErrorKind::NotFound
        );
        d.driver = None;
        assert!(check_create(&d).unwrap().subnet.is_none());
    }

    #[test]
    fn internal_networks_join_last_and_the_mode_network_first() {
        let mut state = State::default();
        let mut c = ContainerRecord::default();
        for (id, name, internal) in [
            ("n1", "back", true),
            ("n2", "front", false),
            ("n3", "zed", false),
        ] {
            let spec = NetworkSpec {
                driver: BRIDGE.into(),
                internal,
                ..Default::default()
            };
            state.networks.insert(
                id.into(),
                NetworkRecord {
                    id: id.into(),
                    name: name.into(),
                    config: serde_json::to_string(&spec).unwrap(),
                    ..Default::default()
                },
            );
            c.networks.insert(id.into(), EndpointRecord::default());
        }
        let order = |mode: &str| -> Vec<String> {
            join_order(&state, &c, mode).into_iter().cloned().collect()
        };
        // Compose creates on its first network, then connects the rest.
        assert_eq!(order("n2"), ["n2", "n3", "n1"]);
        assert_eq!(order("n3"), ["n3", "n2", "n1"]);
        // An internal mode network is primary only when nothing else is.
        assert_eq!(order("n1"), ["n2", "n3", "n1"]);
    }

    #[test]
    fn ipv6_configs_are_checked_and_endpoints_addressed() {
        let mut r = req("2001:db8:1::/64", "", "");
        r.enable_ipv6 = Some(true);
        let ok = check_create(&r).unwrap();
        assert!(ok.subnet.is_none() && ok.spec.enable_ipv6);
        assert_eq!(ok.subnet6.unwrap().to_string(), "2001:db8:1::/64");
        let bad = check_create(&req("2001:db8:1::/64", "2001:db8:2::1", ""))
            .err()
            .unwrap();
        assert!(bad.message().contains("out of range"), "{bad}");
        assert!(check_create(&req("2001:db8:1::/64", "", "2001:db8:1::/80")).is_err());
        let mut spec = NetworkSpec {
            driver: BRIDGE.into(),
            subnet: "172.30.0.0/16".into(),
            gateway: "172.30.0.1".into(),
            enable_ipv6: true,
            subnet6: "2001:db8:1::/64".into(),
            gateway6: "2001:db8:1::1".into(),
            ..Default::default()
        };
        let ep = EndpointRecord {
            ip: "172.30.0.3".into(),
            ..Default::default()
        };
        assert_eq!(
            spec.endpoint_ipv6(&ep).map(|a| a.to_string()).as_deref(),
            Some("2001:db8:1::3")
        );
        let fixed = EndpointRecord {
            config: r#"{"IPAMConfig":{"IPv6Address":"2001:db8:1::99"}}"#.into(),
            ..ep.clone()
        };
        assert_eq!(
            spec.endpoint_ipv6(&fixed).map(|a| a.to_string()).as_deref(),
            Some("2001:db8:1::99")
        );
        spec.enable_ipv6 = false;
        assert_eq!(
            spec.endpoint_ipv6(&ep),
            None,
            "a v6 subnet without --ipv6 is unused"
        );
    }
}
