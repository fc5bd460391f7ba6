//! The NetworkController: the registry of networks (create, remove, prune,
//! connect, disconnect), the built-in ones made at start, and a container's
//! sandbox: its network namespace, interfaces, published ports and the
//! /etc files its resolver reads. Addresses are handed out by each network's
//! own actor; every decision is an event, so a restarted daemon rebuilds the
//! bridges and rules from the log, idempotently.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use bollard_stubs::models::{EndpointSettings, NetworkCreateRequest};

use super::event_log::{append, append_all, EventLog};
use super::network::{random_hex64, Join, NetworkActor, Shutdown};
use crate::config::AddressPool;
use crate::drivers::network::listen::{self, Listeners};
use crate::drivers::network::netlink::{self, InterfacePlan, Namespace};
use crate::drivers::network::proxy;
use crate::drivers::network::{host_lock, veth_name, NetDriver};
use crate::error::{Context as _, Error, Result};
use crate::events::projection::{ContainerRecord, ContainerStatus, Projection, State};
use crate::events::v1::PublishedPort;
use crate::events::Event;
use crate::networks::ipam::{self, Pool, Subnet};
use crate::networks::ipam6::{self, Pool6};
use crate::networks::resolver::{self, SandboxNames};
use crate::networks::spec::{self, NetworkSpec, BRIDGE, HOST, NONE, OPT_BRIDGE_NAME};
use crate::networks::{dns, files, links, ports, Sandbox};

mod connect;
mod firewall;
mod heal;
mod init;
mod registry;
mod sandbox;

pub use connect::{Connect, Disconnect};
use init::{host_subnets, our_subnets, our_subnets6, take_host_lock, to_json};
pub use init::{DefaultBridge, Init};
pub use registry::{CreateNetwork, PruneNetworks, RemoveNetwork};
pub use sandbox::{PrepareSandbox, ReleaseSandbox};

pub struct NetworkController {
    events: Addr<EventLog>,
    projection: Projection,
    driver: Arc<NetDriver>,
    containers_dir: PathBuf,
    pools: Vec<Pool>,
    /// daemon.json's v6 pools (dockerd has none by default).
    pools6: Vec<Pool6>,
    default_bridge: DefaultBridge,
    networks: HashMap<String, Addr<NetworkActor>>,
    /// Sockets that hold each running container's published host ports, so
    /// nothing else takes them (and a port in use is found before a start).
    reservations: HashMap<String, Vec<OwnedFd>>,
    /// The proxies of each running container's published v6 ports.
    proxies: HashMap<String, Vec<proxy::Proxy>>,
    /// Each running container's DNS server (127.0.0.11) on a user network.
    resolvers: HashMap<String, tokio::task::AbortHandle>,
    /// The firewall's plan and its writes, one at a time.
    firewall: firewall::FirewallWriter,
    /// Rebuilds what someone else removed under the running daemon.
    healer: heal::Healer,
}

impl NetworkController {
    pub fn new(
        events: Addr<EventLog>,
        projection: Projection,
        driver: NetDriver,
        data_root: &std::path::Path,
        default_bridge: DefaultBridge,
        pools: &[AddressPool],
    ) -> Result<Self> {
        let (given6, given4): (Vec<_>, Vec<_>) = pools.iter().partition(|p| ipam6::is_v6(&p.base));
        let pools6 = given6
            .iter()
            .map(|p| {
                Ok(Pool6 {
                    base: ipam6::Subnet6::parse(&p.base)?,
                    size: p.size,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pools = if given4.is_empty() {
            ipam::default_pools()
        } else {
            given4
                .iter()
                .map(|p| {
                    Ok(Pool {
                        base: Subnet::parse(&p.base)?,
                        size: p.size,
                    })
                })
                .collect::<Result<Vec<_>>>()?
        };
        let driver = Arc::new(driver);
        let firewall = firewall::FirewallWriter::new(Arc::clone(&driver));
        Ok(NetworkController {
            healer: heal::Healer::new(Arc::clone(&driver), firewall.clone(), projection.clone()),
            events,
            projection,
            firewall,
            driver,
            containers_dir: data_root.join("containers"),
            pools,
            pools6,
            default_bridge,
            networks: HashMap::new(),
            reservations: HashMap::new(),
            proxies: HashMap::new(),
            resolvers: HashMap::new(),
        })
    }

    fn actor_for(&mut self, id: &str) -> Result<Addr<NetworkActor>> {
        if let Some(a) = self.networks.get(id).filter(|a| a.connected()) {
            return Ok(a.clone());
        }
        let state = self.projection.current();
        let n = state
            .networks
            .get(id)
            .ok_or_else(|| Error::not_found(format!("network {id} not found")))?;
        let a = NetworkActor::new(
            id.to_string(),
            NetworkSpec::of(n),
            self.events.clone(),
            self.projection.clone(),
        )
        .start();
        self.networks.insert(id.to_string(), a.clone());
        Ok(a)
    }
}

impl Actor for NetworkController {
    type Context = Context<Self>;
}
