//! The names and addresses on one network, for the DNS servers of its
//! containers. Built from the projection once per change (a new event) and
//! then read by every query, so a query parses no JSON and looks only at this
//! network's endpoints.

use std::net::IpAddr;

use crate::events::projection::State;

/// One running container's endpoint on the network.
#[derive(Debug, Clone)]
struct Entry {
    /// Its name as given (what a PTR answers).
    name: String,
    /// Its name and aliases, lower-cased (names match without case).
    names: Vec<String>,
    /// The first 12 digits of its ID (match exactly, as dockerd).
    short_id: String,
    ip: IpAddr,
}

#[derive(Debug, Clone, Default)]
pub struct EndpointIndex {
    /// In container ID order, as the projection keeps them.
    entries: Vec<Entry>,
}

impl EndpointIndex {
    pub fn build(state: &State, network: &str) -> EndpointIndex {
        let mut entries = Vec::new();
        let spec = state
            .networks
            .get(network)
            .map(super::spec::NetworkSpec::of)
            .unwrap_or_default();
        for c in state.containers.values() {
            let Some(ep) = c.networks.get(network).filter(|e| !e.ip.is_empty()) else {
                continue;
            };
            let Ok(ip) = ep.ip.parse() else { continue };
            let aliases = super::render::endpoint_config(ep)
                .aliases
                .unwrap_or_default();
            let mut names = vec![c.name.to_ascii_lowercase()];
            names.extend(aliases.iter().map(|a| a.to_ascii_lowercase()));
            let entry = Entry {
                name: c.name.clone(),
                names,
                short_id: c.id[..12.min(c.id.len())].to_string(),
                ip,
            };
            // On an IPv6 network the same names answer AAAA too.
            if let Some(ip6) = spec.endpoint_ipv6(ep) {
                entries.push(Entry {
                    ip: IpAddr::V6(ip6),
                    ..entry.clone()
                });
            }
            entries.push(entry);
        }
        EndpointIndex { entries }
    }

    /// The addresses of the containers `name` names: a container name or an
    /// alias (any case), or a 12-digit short ID.
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        let lower = name.to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|e| e.names.contains(&lower) || (name.len() == 12 && e.short_id == name))
            .map(|e| e.ip)
            .collect()
    }

    /// The name of the container at `ip`.
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.ip == ip)
            .map(|e| e.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::projection::{ContainerRecord, EndpointRecord};

    fn state() -> State {
        let mut s = State::default();
        let mut c = ContainerRecord {
            id: "abcdef0123456789".repeat(4),
            name: "Web".into(),
            ..Default::default()
        };
        c.networks.insert(
            "n1".into(),
            EndpointRecord {
                ip: "172.20.0.2".into(),
                config: r#"{"Aliases":["api"]}"#.into(),
                ..Default::default()
            },
        );
        s.containers.insert(c.id.clone(), c);
        s
    }

    #[test]
    fn names_aliases_and_short_ids_resolve_on_their_network_only() {
        let s = state();
        let ix = EndpointIndex::build(&s, "n1");
        let ip: IpAddr = "172.20.0.2".parse().unwrap();
        assert_eq!(ix.lookup("web"), [ip]);
        assert_eq!(ix.lookup("API"), [ip]);
        assert_eq!(ix.lookup("abcdef012345"), [ip]);
        assert!(ix.lookup("abcdef01234").is_empty());
        assert!(ix.lookup("other").is_empty());
        assert_eq!(ix.name_of(ip), Some("Web"));
        assert!(EndpointIndex::build(&s, "n2").lookup("web").is_empty());
    }
}
