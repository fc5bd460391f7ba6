//! How networks read in the API (list, inspect) and how a container's
//! networks read in its inspect and in `docker ps`, in dockerd's shapes.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerCreateBody, EndpointSettings, PortSummary, PortSummaryTypeEnum,
};
use serde_json::{json, Value};

use super::ipam::Subnet;
use super::ports;
use super::spec::{NetworkSpec, BRIDGE};
use crate::events::projection::{
    ContainerRecord, ContainerStatus, EndpointRecord, NetworkRecord, State,
};

fn rfc3339(ns: u64) -> String {
    crate::clock::rfc3339(ns)
}

/// One network as GET /networks and /networks/{id} show it; `containers`
/// lists its running endpoints (inspect), or is left empty (list).
pub fn network(state: &State, n: &NetworkRecord, with_containers: bool) -> Value {
    let spec = NetworkSpec::of(n);
    let mut config = Vec::new();
    if !spec.subnet.is_empty() {
        let mut c = json!({ "Subnet": spec.subnet });
        // A subnet the user gave shows the gateway only if given too.
        if !spec.ipam_config_given || spec.gateway_given {
            c["Gateway"] = json!(spec.gateway);
        }
        if !spec.ip_range.is_empty() {
            c["IPRange"] = json!(spec.ip_range);
        }
        config.push(c);
    }
    if !spec.subnet6.is_empty() {
        let mut c = json!({ "Subnet": spec.subnet6 });
        if spec.gateway6_given {
            c["Gateway"] = json!(spec.gateway6);
        }
        config.push(c);
    }
    let prefix6 = spec.ipv6().map(|(s, _)| s.prefix).unwrap_or(0);
    let prefix = Subnet::parse(&spec.subnet).map(|s| s.prefix).unwrap_or(0);
    let mut containers = serde_json::Map::new();
    if with_containers {
        for c in state.containers.values() {
            if let Some(ep) = c.networks.get(&n.id).filter(|ep| !ep.ip.is_empty()) {
                containers.insert(
                    c.id.clone(),
                    json!({
                        "Name": c.name,
                        "EndpointID": ep.endpoint_id,
                        "MacAddress": ep.mac,
                        "IPv4Address": format!("{}/{}", ep.ip, prefix),
                        "IPv6Address": spec
                            .endpoint_ipv6(ep)
                            .map(|a| format!("{a}/{prefix6}"))
                            .unwrap_or_default(),
                    }),
                );
            }
        }
    }
    let mut options = spec.options.clone();
    if spec.is_bridge() && spec.builtin {
        for (k, v) in [
            ("com.docker.network.bridge.default_bridge", "true"),
            ("com.docker.network.bridge.enable_icc", "true"),
            ("com.docker.network.bridge.enable_ip_masquerade", "true"),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
            ("com.docker.network.bridge.name", spec.bridge.as_str()),
            ("com.docker.network.driver.mtu", "1500"),
        ] {
            options.insert(k.into(), v.into());
        }
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": rfc3339(n.created_ns),
        "Scope": "local",
        "Driver": spec.driver,
        "EnableIPv6": spec.enable_ipv6,
        "IPAM": {
            "Driver": "default",
            "Options": if spec.ipam_options.is_empty() { Value::Null } else { json!(spec.ipam_options) },
            "Config": config,
        },
        "Internal": spec.internal,
        "Attachable": spec.attachable,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": spec.labels,
    })
}

const FILTERS: &[&str] = &["name", "id", "driver", "label", "type", "scope", "dangling"];

/// GET /networks: the networks `filters` select, by name, as dockerd lists them.
pub fn list(
    state: &State,
    filters: &HashMap<String, Vec<String>>,
) -> crate::error::Result<Vec<Value>> {
    use crate::error::Error;
    if let Some(k) = filters.keys().find(|k| !FILTERS.contains(&k.as_str())) {
        return Err(Error::invalid(format!("Invalid filter '{k}'")));
    }
    for t in filters.get("type").into_iter().flatten() {
        if t != "custom" && t != "builtin" {
            return Err(Error::invalid(format!("invalid filter: 'type'='{t}'")));
        }
    }
    let f = |k: &str| filters.get(k).filter(|v| !v.is_empty());
    let mut out: Vec<Value> = state
        .networks
        .values()
        .filter(|n| {
            let s = NetworkSpec::of(n);
            f("name").is_none_or(|v| v.iter().any(|x| n.name.contains(x.as_str())))
                && f("id").is_none_or(|v| v.iter().any(|x| n.id.starts_with(x.as_str())))
                && f("driver").is_none_or(|v| v.iter().any(|x| *x == s.driver))
                && f("scope").is_none_or(|v| v.iter().any(|x| x == "local"))
                && f("type").is_none_or(|v| v.iter().any(|t| (t == "builtin") == s.builtin))
                && f("label").is_none_or(|ls| {
                    crate::images::query::labels_match(&s.labels.clone().into_iter().collect(), ls)
                })
                && f("dangling").is_none_or(|v| {
                    let used = state
                        .containers
                        .values()
                        .any(|c| c.networks.contains_key(&n.id));
                    v.iter()
                        .any(|d| (d == "true" || d == "1") == (!used && !s.builtin))
                })
        })
        .map(|n| network(state, n, false))
        .collect();
    out.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    Ok(out)
}

/// The user's EndpointSettings for an attachment (aliases, IPAMConfig).
pub fn endpoint_config(ep: &EndpointRecord) -> EndpointSettings {
    serde_json::from_str(&ep.config).unwrap_or_default()
}

/// One attachment as inspect's NetworkSettings.Networks shows it.
pub fn endpoint_settings(
    state: &State,
    c: &ContainerRecord,
    network_id: &str,
    ep: &EndpointRecord,
) -> EndpointSettings {
    let user = endpoint_config(ep);
    let spec = state
        .networks
        .get(network_id)
        .map(NetworkSpec::of)
        .unwrap_or_default();
    let up = !ep.ip.is_empty();
    let mut aliases = user.aliases.clone();
    if up && spec.is_bridge() && !spec.builtin {
        let short = c.id.chars().take(12).collect::<String>();
        let list = aliases.get_or_insert_with(Vec::new);
        if !list.contains(&short) {
            list.push(short);
        }
    }
    let prefix = Subnet::parse(&spec.subnet)
        .map(|s| s.prefix as i64)
        .unwrap_or(0);
    let v6 = spec
        .ipv6()
        .filter(|_| up)
        .and_then(|(subnet, gw)| Some((spec.endpoint_ipv6(ep)?, gw, subnet.prefix)));
    EndpointSettings {
        ipam_config: user.ipam_config.clone(),
        links: user.links.clone(),
        aliases,
        mac_address: Some(ep.mac.clone()),
        driver_opts: user.driver_opts.clone(),
        gw_priority: Some(0),
        network_id: Some(network_id.to_string()),
        endpoint_id: Some(ep.endpoint_id.clone()),
        gateway: Some(if up {
            spec.gateway.clone()
        } else {
            String::new()
        }),
        ip_address: Some(ep.ip.clone()),
        ip_prefix_len: Some(if up { prefix } else { 0 }),
        ipv6_gateway: Some(v6.map(|(_, gw, _)| gw.to_string()).unwrap_or_default()),
        global_ipv6_address: Some(v6.map(|(a, _, _)| a.to_string()).unwrap_or_default()),
        global_ipv6_prefix_len: Some(v6.map(|(_, _, p)| p as i64).unwrap_or(0)),
        dns_names: None,
    }
}

/// name -> EndpointSettings for every network the container is attached to.
pub fn networks_of(state: &State, c: &ContainerRecord) -> HashMap<String, EndpointSettings> {
    c.networks
        .iter()
        .filter_map(|(id, ep)| {
            let n = state.networks.get(id)?;
            Some((n.name.clone(), endpoint_settings(state, c, id, ep)))
        })
        .collect()
}

/// inspect's NetworkSettings, with dockerd 20.10's top-level fields (those of
/// the default bridge's endpoint).
pub fn network_settings(
    state: &State,
    c: &ContainerRecord,
    body: &ContainerCreateBody,
    sandbox_key: &str,
) -> Value {
    let running = c.status == ContainerStatus::Running;
    let networks = networks_of(state, c);
    let bridge = networks
        .get(BRIDGE)
        .filter(|e| running && e.ip_address.as_deref().is_some_and(|i| !i.is_empty()));
    let s = |v: Option<&Option<String>>| v.cloned().flatten().unwrap_or_default();
    json!({
        "Bridge": "",
        "SandboxID": if running && !sandbox_key.is_empty() { c.id.clone() } else { String::new() },
        "SandboxKey": if running { sandbox_key.to_string() } else { String::new() },
        "Ports": ports::port_map(body, &c.ports, ports_shown(state, c)),
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": s(bridge.map(|b| &b.endpoint_id)),
        "Gateway": s(bridge.map(|b| &b.gateway)),
        "GlobalIPv6Address": s(bridge.map(|b| &b.global_ipv6_address)),
        "GlobalIPv6PrefixLen": bridge.and_then(|b| b.global_ipv6_prefix_len).unwrap_or(0),
        "IPAddress": s(bridge.map(|b| &b.ip_address)),
        "IPPrefixLen": bridge.and_then(|b| b.ip_prefix_len).unwrap_or(0),
        "IPv6Gateway": s(bridge.map(|b| &b.ipv6_gateway)),
        "MacAddress": s(bridge.map(|b| &b.mac_address)),
        "Networks": networks,
    })
}

/// `docker ps`'s Ports: inspect's Ports flattened, as dockerd lists them
/// (a published port once per host binding, an exposed one without).
pub fn port_summaries(
    state: &State,
    body: &ContainerCreateBody,
    c: &ContainerRecord,
) -> Vec<PortSummary> {
    let typ = |p: &str| match p {
        "udp" => Some(PortSummaryTypeEnum::UDP),
        "sctp" => Some(PortSummaryTypeEnum::SCTP),
        _ => Some(PortSummaryTypeEnum::TCP),
    };
    let mut out = Vec::new();
    for (key, bindings) in ports::port_map(body, &c.ports, ports_shown(state, c)) {
        let Ok((port, proto)) = ports::parse_port_key(&key) else {
            continue;
        };
        match bindings {
            Some(bindings) => out.extend(bindings.into_iter().map(|b| PortSummary {
                ip: b.host_ip,
                private_port: port,
                public_port: b.host_port.and_then(|p| p.parse().ok()),
                typ: typ(&proto),
            })),
            None => out.push(PortSummary {
                ip: None,
                private_port: port,
                public_port: None,
                typ: typ(&proto),
            }),
        }
    }
    // The map has no order; a listing should (the CLI sorts anyway).
    out.sort_by(|a, b| {
        (a.private_port, a.typ, &a.ip, a.public_port).cmp(&(
            b.private_port,
            b.typ,
            &b.ip,
            b.public_port,
        ))
    });
    out
}

/// Whether a container's ports show (inspect's Ports, ps): only while it
/// runs with an endpoint on a bridge network that is not internal, as on
/// dockerd (none, host, container: and internal networks show none).
fn ports_shown(state: &State, c: &ContainerRecord) -> bool {
    c.status == ContainerStatus::Running
        && c.networks.keys().any(|id| {
            state.networks.get(id).is_some_and(|n| {
                let spec = NetworkSpec::of(n);
                spec.driver == BRIDGE && !spec.internal
            })
        })
}
