//! What the firewall should hold, kept by the NetworkController as things
//! change instead of derived from the whole projection at every write: the
//! rules of each bridge network, and each running container's published-port
//! rules, worked out once when its ports are published. A write then parses
//! no JSON; only the daemon's start reads them all from the projection.

use std::collections::{BTreeMap, BTreeSet};

use super::spec::{self, NetworkSpec};
use crate::drivers::network::firewall::{BridgeRules, PortRule};
use crate::events::projection::{ContainerRecord, EndpointRecord, State};
use crate::events::v1::PublishedPort;

#[derive(Debug, Default)]
pub struct FirewallPlan {
    /// By network ID.
    bridges: BTreeMap<String, BridgeRules>,
    /// By container ID: the rules of its published ports.
    ports: BTreeMap<String, Vec<PortRule>>,
    /// Containers whose port rules are in the chains now.
    installed: BTreeSet<String>,
}

impl FirewallPlan {
    /// At the daemon's start: every bridge network, and the ports recorded
    /// for containers (from their sandbox's making to their exit).
    pub fn from_state(state: &State) -> FirewallPlan {
        let mut plan = FirewallPlan::default();
        for n in state.networks.values() {
            plan.network_added(&n.id, &NetworkSpec::of(n));
        }
        // Only running containers' ports: a start cut by the daemon's end may
        // have recorded ports for a container that never ran.
        for c in state.containers.values().filter(|c| {
            !c.ports.is_empty() && c.status == crate::events::projection::ContainerStatus::Running
        }) {
            if let Some((bridge, ip)) = primary_endpoint(state, c) {
                plan.ports_published(&c.id, &bridge, &ip, &c.ports);
            }
        }
        plan
    }

    pub fn network_added(&mut self, id: &str, s: &NetworkSpec) {
        if s.is_bridge() {
            self.bridges.insert(
                id.to_string(),
                BridgeRules {
                    bridge: s.bridge.clone(),
                    subnet: s.subnet.clone(),
                    internal: s.internal,
                    icc: s.icc(),
                    masquerade: s.masquerade(),
                    ipv6: s.ipv6().is_some(),
                },
            );
        }
    }

    pub fn network_removed(&mut self, id: &str) {
        self.bridges.remove(id);
    }

    /// Container `id`'s ports reach it at `ip` through `bridge`.
    pub fn ports_published(&mut self, id: &str, bridge: &str, ip: &str, ports: &[PublishedPort]) {
        // v6 ports are the daemon's proxy's, not rules.
        let rules: Vec<PortRule> = ports
            .iter()
            .filter(|p| !super::ports::is_v6(p))
            .map(|p| PortRule {
                bridge: bridge.to_string(),
                container_ip: ip.to_string(),
                proto: p.proto.clone(),
                container_port: p.container_port,
                host_ip: p.host_ip.clone(),
                host_port: p.host_port,
            })
            .collect();
        if rules.is_empty() {
            self.ports.remove(id);
        } else {
            self.ports.insert(id.to_string(), rules);
        }
    }

    /// Container `id`'s process ended: its rules go at the next write.
    pub fn container_left(&mut self, id: &str) {
        self.ports.remove(id);
    }

    /// Everything, for a whole write; the installed set becomes what it holds.
    pub fn all(&mut self) -> (Vec<BridgeRules>, Vec<PortRule>) {
        self.installed = self.ports.keys().cloned().collect();
        (
            self.bridges.values().cloned().collect(),
            self.ports.values().flatten().cloned().collect(),
        )
    }

    /// What the chains hold now, by the plan (for a check; nothing marked).
    pub fn installed_rules(&self) -> (Vec<BridgeRules>, Vec<PortRule>) {
        (
            self.bridges.values().cloned().collect(),
            self.ports
                .iter()
                .filter(|(id, _)| self.installed.contains(*id))
                .flat_map(|(_, rules)| rules.iter().cloned())
                .collect(),
        )
    }

    /// Container `id`'s rules, for an append, unless a whole write put them
    /// in already (then none); they count as installed from here.
    pub fn to_add(&mut self, id: &str) -> Vec<PortRule> {
        if self.installed.contains(id) {
            return Vec::new();
        }
        match self.ports.get(id) {
            Some(rules) => {
                self.installed.insert(id.to_string());
                rules.clone()
            }
            None => Vec::new(),
        }
    }
}

/// The bridge and address a container's ports and default route go through:
/// its NetworkMode's network, else its first attachment that is up.
fn primary_endpoint(state: &State, c: &ContainerRecord) -> Option<(String, String)> {
    let (spec, ep) = primary(state, c)?;
    Some((spec.bridge, ep.ip.clone()))
}

/// Where a container's published v6 ports' proxies connect: its primary
/// endpoint's v6 address, else its v4 one.
pub fn proxy_target(state: &State, c: &ContainerRecord) -> Option<std::net::IpAddr> {
    let (spec, ep) = primary(state, c)?;
    match spec.endpoint_ipv6(ep) {
        Some(v6) => Some(std::net::IpAddr::V6(v6)),
        None => ep.ip.parse().ok(),
    }
}

fn primary<'a>(state: &State, c: &'a ContainerRecord) -> Option<(NetworkSpec, &'a EndpointRecord)> {
    let body = crate::containers::render::body(c);
    let mode = body
        .host_config
        .and_then(|h| h.network_mode)
        .unwrap_or_default();
    let mode_id = state
        .network(spec::mode_network(&mode))
        .ok()
        .map(|n| n.id.clone());
    let mut eps: Vec<_> = c
        .networks
        .iter()
        .filter(|(_, e)| !e.ip.is_empty())
        .collect();
    eps.sort_by_key(|(id, e)| (Some(*id) != mode_id.as_ref(), e.ifname.clone()));
    let (id, ep) = eps.first()?;
    Some((NetworkSpec::of(state.networks.get(*id)?), ep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host_port: u16) -> PublishedPort {
        PublishedPort {
            proto: "tcp".into(),
            container_port: 80,
            host_ip: "0.0.0.0".into(),
            host_port,
        }
    }

    #[test]
    fn a_leaving_container_takes_its_rules_and_an_append_is_not_repeated() {
        let mut plan = FirewallPlan::default();
        plan.ports_published("a", "br-1", "172.20.0.2", &[port(8080)]);
        assert_eq!(plan.to_add("a").len(), 1);
        assert!(plan.to_add("a").is_empty(), "appended once");
        plan.ports_published("b", "br-1", "172.20.0.3", &[port(8081), port(8082)]);
        assert_eq!(plan.installed_rules().1.len(), 1, "b's are not in yet");
        let (_, rules) = plan.all();
        assert_eq!(plan.installed_rules().1.len(), 3);
        assert_eq!(rules.len(), 3);
        assert!(plan.to_add("b").is_empty(), "the whole write put b's in");
        plan.container_left("a");
        let (_, rules) = plan.all();
        assert_eq!(
            rules.iter().map(|r| r.host_port).collect::<Vec<_>>(),
            [8081, 8082]
        );
    }
}
