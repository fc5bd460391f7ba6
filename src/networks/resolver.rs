//! The names one container's DNS server (127.0.0.11) knows: the names on each
//! user-defined network it is attached to (in the order its sandbox joined
//! them, so the network it was started on wins), `name.network` for a name on
//! one network, the names of their addresses, and where other names go. One
//! per sandbox, not per network, as dockerd's resolver: a container on two
//! networks has one 127.0.0.11 and reaches names on both.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::dns::Names;
use super::index::EndpointIndex;
use super::spec::NetworkSpec;
use crate::events::projection::{Projection, State};

pub struct SandboxNames {
    container: String,
    projection: Projection,
    /// Built once per change of the projection.
    view: Mutex<(u64, Arc<View>)>,
}

/// What the container's server answers from, at one sequence of the log.
#[derive(Default)]
struct View {
    /// Each user-defined network the container is on: its name and names.
    networks: Vec<(String, EndpointIndex)>,
    /// Its `--dns` servers.
    dns: Vec<String>,
    /// Its links on those networks: alias (lower case) and linked name.
    links: Vec<(String, String)>,
}

impl SandboxNames {
    pub fn new(container: String, projection: Projection) -> Self {
        SandboxNames {
            container,
            projection,
            view: Mutex::new((u64::MAX, Arc::default())),
        }
    }

    fn view(&self) -> Arc<View> {
        let state = self.projection.current();
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        if view.0 != state.last_seq {
            *view = (state.last_seq, Arc::new(build(&state, &self.container)));
        }
        Arc::clone(&view.1)
    }
}

fn build(state: &State, container: &str) -> View {
    let Some(c) = state.containers.get(container) else {
        return View::default();
    };
    let body = crate::containers::render::body(c);
    let mode = body
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    let mode_net = state
        .network(super::spec::mode_network(&mode))
        .map(|n| n.id.clone())
        .unwrap_or_default();
    let served: Vec<_> = super::spec::join_order(state, c, &mode_net)
        .into_iter()
        .filter_map(|id| state.networks.get(id))
        .filter(|n| serves_names(&NetworkSpec::of(n)))
        .collect();
    let links = served
        .iter()
        .filter_map(|n| c.networks.get(&n.id))
        .flat_map(|e| super::render::endpoint_config(e).links.unwrap_or_default())
        .map(|l| {
            let (name, alias) = super::links::parse(&l);
            (alias.to_ascii_lowercase(), name)
        })
        .collect();
    let networks = served
        .into_iter()
        .map(|n| {
            (
                n.name.to_ascii_lowercase(),
                EndpointIndex::build(state, &n.id),
            )
        })
        .collect();
    View {
        links,
        networks,
        dns: body.host_config.and_then(|h| h.dns).unwrap_or_default(),
    }
}

/// Containers on user-defined bridge networks find each other by name; on
/// the default bridge they do not, as with dockerd.
pub fn serves_names(spec: &NetworkSpec) -> bool {
    spec.is_bridge() && !spec.builtin
}

impl Names for SandboxNames {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let view = self.view();
        // A link's alias is a name for this container only.
        let name = view
            .links
            .iter()
            .find(|(alias, _)| *alias == name)
            .map(|(_, linked)| linked.as_str())
            .unwrap_or(name);
        for (net, index) in &view.networks {
            // `web.mynet`: web on mynet only.
            if let Some(short) = name
                .strip_suffix(net.as_str())
                .and_then(|s| s.strip_suffix('.'))
            {
                let ips = index.lookup(short);
                if !ips.is_empty() {
                    return Some(ips);
                }
            }
            let ips = index.lookup(name);
            if !ips.is_empty() {
                return Some(ips);
            }
        }
        None
    }

    fn reverse(&self, ip: IpAddr) -> Option<String> {
        let view = self.view();
        view.networks
            .iter()
            .find_map(|(net, index)| index.name_of(ip).map(|n| format!("{n}.{net}")))
    }

    /// Read when a name is forwarded (not at every start), so a change of
    /// the host's resolvers reaches running containers too.
    fn upstreams(&self) -> Vec<String> {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        super::files::upstreams(&host, Some(&self.view().dns))
    }
}
