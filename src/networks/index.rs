//! The names and addresses on one network, for its DNS server. Built from
//! the projection once per change (a new event) and then read by every query,
//! so a query parses no JSON and looks only at this network's endpoints.

use std::net::Ipv4Addr;

use crate::events::projection::State;

/// One running container's endpoint on the network.
#[derive(Debug, Clone)]
struct Entry {
    /// Its name and aliases, lower-cased (names match without case).
    names: Vec<String>,
    /// The first 12 digits of its ID (match exactly, as dockerd).
    short_id: String,
    ip: Ipv4Addr,
    /// Its `--dns` servers, if it has any.
    dns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct EndpointIndex {
    /// The projection's sequence this index was built from.
    seq: u64,
    /// In container ID order, as the projection keeps them.
    entries: Vec<Entry>,
}

impl EndpointIndex {
    pub fn build(state: &State, network: &str) -> EndpointIndex {
        let mut entries = Vec::new();
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
            entries.push(Entry {
                names,
                short_id: c.id[..12.min(c.id.len())].to_string(),
                ip,
                dns: crate::containers::render::body(c)
                    .host_config
                    .and_then(|h| h.dns),
            });
        }
        EndpointIndex {
            seq: state.last_seq,
            entries,
        }
    }

    /// Whether the index still describes `state`.
    pub fn is_current(&self, state: &State) -> bool {
        self.seq == state.last_seq
    }

    /// The addresses of the containers `name` names: a container name or an
    /// alias (any case), or a 12-digit short ID.
    pub fn lookup(&self, name: &str) -> Vec<Ipv4Addr> {
        let lower = name.to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|e| e.names.contains(&lower) || (name.len() == 12 && e.short_id == name))
            .map(|e| e.ip)
            .collect()
    }

    /// The `--dns` servers of the container at `client`, if it set any.
    pub fn dns_of(&self, client: Ipv4Addr) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|e| e.ip == client)
            .and_then(|e| e.dns.as_deref())
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
            config: r#"{"HostConfig":{"Dns":["9.9.9.9"]}}"#.into(),
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
        s.last_seq = 7;
        s
    }

    #[test]
    fn names_aliases_and_short_ids_resolve_on_their_network_only() {
        let s = state();
        let ix = EndpointIndex::build(&s, "n1");
        let ip: Ipv4Addr = "172.20.0.2".parse().unwrap();
        assert_eq!(ix.lookup("web"), [ip]);
        assert_eq!(ix.lookup("API"), [ip]);
        assert_eq!(ix.lookup("abcdef012345"), [ip]);
        assert!(ix.lookup("abcdef01234").is_empty());
        assert!(ix.lookup("other").is_empty());
        assert_eq!(ix.dns_of(ip), Some(&["9.9.9.9".to_string()][..]));
        assert!(EndpointIndex::build(&s, "n2").lookup("web").is_empty());
        assert!(ix.is_current(&s));
        let mut later = s.clone();
        later.last_seq = 8;
        assert!(!ix.is_current(&later));
    }
}
