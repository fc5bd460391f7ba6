//! The NetworkController: the registry of networks (create, remove, prune,
//! connect, disconnect), the built-in ones made at start, and a container's
//! sandbox: its network namespace, interfaces, published ports and the
//! /etc files its resolver reads. Addresses are handed out by each network's
//! own actor; every decision is an event, so a restarted daemon rebuilds the
//! bridges and rules from the log, idempotently.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use bollard_stubs::models::{EndpointSettings, NetworkCreateRequest};
use tracing::{info, warn};

use super::event_log::{append, append_all, EventLog};
use super::network::{random_hex64, Join, NetworkActor, Shutdown};
use crate::config::AddressPool;
use crate::drivers::network::firewall::{BridgeRules, PortRule};
use crate::drivers::network::netlink::{self, InterfacePlan, Namespace};
use crate::drivers::network::{host_lock, veth_name, NetDriver};
use crate::error::{Context as _, Error, Result};
use crate::events::projection::{ContainerRecord, ContainerStatus, Projection, State};
use crate::events::v1::PublishedPort;
use crate::events::Event;
use crate::networks::ipam::{self, Pool, Subnet};
use crate::networks::spec::{self, NetworkSpec, BRIDGE, HOST, NONE, OPT_BRIDGE_NAME};
use crate::networks::{files, ports, Sandbox};

pub struct NetworkController {
    events: Addr<EventLog>,
    projection: Projection,
    driver: Arc<NetDriver>,
    containers_dir: PathBuf,
    pools: Vec<Pool>,
    bip: Option<String>,
    networks: HashMap<String, Addr<NetworkActor>>,
    /// Sockets that hold each running container's published host ports, so
    /// nothing else takes them (and a port in use is found before a start).
    reservations: HashMap<String, Vec<OwnedFd>>,
    /// One firewall write at a time, each from the newest state; it guards
    /// the containers whose port rules are in the chains.
    firewall_lock: Arc<Mutex<BTreeSet<String>>>,
}

impl NetworkController {
    pub fn new(
        events: Addr<EventLog>,
        projection: Projection,
        driver: NetDriver,
        data_root: &std::path::Path,
        bip: Option<String>,
        pools: &[AddressPool],
    ) -> Result<Self> {
        let pools = if pools.is_empty() {
            ipam::default_pools()
        } else {
            pools
                .iter()
                .map(|p| {
                    Ok(Pool {
                        base: Subnet::parse(&p.base)?,
                        size: p.size,
                    })
                })
                .collect::<Result<Vec<_>>>()?
        };
        Ok(NetworkController {
            events,
            projection,
            driver: Arc::new(driver),
            containers_dir: data_root.join("containers"),
            pools,
            bip,
            networks: HashMap::new(),
            reservations: HashMap::new(),
            firewall_lock: Arc::new(Mutex::new(BTreeSet::new())),
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

/// The rules the state asks for.
fn firewall_rules(state: &State) -> (Vec<BridgeRules>, Vec<PortRule>, BTreeSet<String>) {
    let mut bridges = Vec::new();
    for n in state.networks.values() {
        let s = NetworkSpec::of(n);
        if s.is_bridge() {
            bridges.push(BridgeRules {
                bridge: s.bridge.clone(),
                subnet: s.subnet.clone(),
                internal: s.internal,
            });
        }
    }
    let mut rules = Vec::new();
    let mut ids = BTreeSet::new();
    // Ports are recorded from the sandbox's making (before the process runs)
    // to its release.
    for c in state.containers.values().filter(|c| !c.ports.is_empty()) {
        rules.extend(port_rules(state, c));
        ids.insert(c.id.clone());
    }
    (bridges, rules, ids)
}

/// The rules of one container's published ports.
fn port_rules(state: &State, c: &ContainerRecord) -> Vec<PortRule> {
    let Some((net, ip)) = primary_endpoint(state, c) else {
        return Vec::new();
    };
    c.ports
        .iter()
        .map(|p| PortRule {
            bridge: net.bridge.clone(),
            container_ip: ip.clone(),
            proto: p.proto.clone(),
            container_port: p.container_port,
            host_ip: p.host_ip.clone(),
            host_port: p.host_port,
        })
        .collect()
}

/// The network a container's ports and default route go through: its
/// NetworkMode's, else its first attachment that is up.
fn primary_endpoint(state: &State, c: &ContainerRecord) -> Option<(NetworkSpec, String)> {
    let body = crate::containers::render::body(c);
    let mode = body
        .host_config
        .and_then(|h| h.network_mode)
        .unwrap_or_default();
    let mode_id = spec::resolve(state, spec::mode_network(&mode))
        .ok()
        .map(|n| n.id.clone());
    let mut eps: Vec<(&String, &crate::events::projection::EndpointRecord)> = c
        .networks
        .iter()
        .filter(|(_, e)| !e.ip.is_empty())
        .collect();
    eps.sort_by_key(|(id, e)| (Some(*id) != mode_id.as_ref(), e.ifname.clone()));
    let (id, ep) = eps.first()?;
    Some((NetworkSpec::of(state.networks.get(*id)?), ep.ip.clone()))
}

impl NetworkController {
    /// Writes the firewall from the newest state, in a blocking task.
    fn sync_firewall(&self) -> impl std::future::Future<Output = Result<()>> + 'static {
        let (lock, projection, driver) = (
            Arc::clone(&self.firewall_lock),
            self.projection.clone(),
            Arc::clone(&self.driver),
        );
        async move {
            tokio::task::spawn_blocking(move || {
                let mut installed = lock.lock().unwrap_or_else(|p| p.into_inner());
                let (bridges, rules, ids) = firewall_rules(&projection.current());
                driver.firewall.apply(&bridges, &rules)?;
                *installed = ids;
                Ok(())
            })
            .await
            .map_err(|e| Error::internal(format!("writing the firewall: {e}")))?
        }
    }

    /// Adds the port rules of container `id` (recorded already) unless a
    /// full write has put them in meanwhile.
    fn publish_ports(&self, id: String) -> impl std::future::Future<Output = Result<()>> + 'static {
        let (lock, projection, driver) = (
            Arc::clone(&self.firewall_lock),
            self.projection.clone(),
            Arc::clone(&self.driver),
        );
        async move {
            tokio::task::spawn_blocking(move || {
                let mut installed = lock.lock().unwrap_or_else(|p| p.into_inner());
                if installed.contains(&id) {
                    return Ok(());
                }
                let state = projection.current();
                let Some(c) = state.containers.get(&id) else {
                    return Ok(());
                };
                driver.firewall.add_ports(&port_rules(&state, c))?;
                installed.insert(id);
                Ok(())
            })
            .await
            .map_err(|e| Error::internal(format!("writing the firewall: {e}")))?
        }
    }
}

/// The daemon started: the built-in networks, every bridge, the firewall,
/// the networks' actors, and the ports of running containers held again.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Init;

impl Handler<Init> for NetworkController {
    type Result = ResponseActFuture<Self, Result<()>>;

    fn handle(&mut self, _: Init, _: &mut Context<Self>) -> Self::Result {
        let (events, projection, driver) = (
            self.events.clone(),
            self.projection.clone(),
            Arc::clone(&self.driver),
        );
        let (pools, bip) = (self.pools.clone(), self.bip.clone());
        let fw_lock = Arc::clone(&self.firewall_lock);
        let fut = async move {
            ensure_builtin(&events, &projection, &driver, &pools, bip.as_deref()).await?;
            let state = projection.current();
            for n in state.networks.values() {
                let s = NetworkSpec::of(n);
                if s.is_bridge() {
                    driver
                        .ensure_bridge(&s)
                        .await
                        .map_err(|e| e.context(format_args!("network {}", n.name)))?;
                }
            }
            // Namespaces of containers that no longer run.
            if let Ok(dir) = std::fs::read_dir(&driver.names.netns_dir) {
                for e in dir.flatten() {
                    let short = e.file_name().to_string_lossy().into_owned();
                    let live = state
                        .containers
                        .values()
                        .any(|c| c.status == ContainerStatus::Running && c.id.starts_with(&short));
                    if !live {
                        netlink::remove_namespace(&e.path());
                    }
                }
            }
            let d = Arc::clone(&driver);
            let lock = Arc::clone(&fw_lock);
            tokio::task::spawn_blocking(move || {
                let mut installed = lock.lock().unwrap_or_else(|p| p.into_inner());
                let (bridges, rules, ids) = firewall_rules(&state);
                d.firewall.init(&bridges, &rules)?;
                *installed = ids;
                Ok::<_, Error>(())
            })
            .await
            .map_err(|e| Error::internal(format!("setting up the firewall: {e}")))??;
            Ok(())
        };
        Box::pin(fut.into_actor(self).map(|res: Result<()>, act, _| {
            res?;
            let state = act.projection.current();
            for id in state.networks.keys() {
                let _ = act.actor_for(id);
            }
            for c in state
                .containers
                .values()
                .filter(|c| c.status == ContainerStatus::Running)
            {
                match reserve_published(&c.ports) {
                    Ok(socks) if !socks.is_empty() => {
                        act.reservations.insert(c.id.clone(), socks);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(container = %c.id, error = %e, "holding its published ports again")
                    }
                }
            }
            info!(networks = state.networks.len(), "networks ready");
            Ok(())
        }))
    }
}

async fn ensure_builtin(
    events: &Addr<EventLog>,
    projection: &Projection,
    driver: &NetDriver,
    pools: &[Pool],
    bip: Option<&str>,
) -> Result<()> {
    let state = projection.current();
    let find = |name: &str| {
        state
            .networks
            .values()
            .find(|n| n.name == name && NetworkSpec::of(n).builtin)
    };
    let mut new = Vec::new();
    for (name, driver_name) in [(HOST, "host"), (NONE, "null")] {
        if find(name).is_none() {
            let spec = NetworkSpec {
                driver: driver_name.into(),
                builtin: true,
                ..Default::default()
            };
            new.push(Event::NetworkCreated {
                id: random_hex64()?,
                name: name.into(),
                config: to_json(&spec)?,
            });
        }
    }
    let existing = find(BRIDGE).map(|n| (n.id.clone(), NetworkSpec::of(n)));
    let wanted = match bip {
        Some(b) => {
            let (gw, subnet) = Subnet::parse_host(b)?;
            Some((subnet, u32::from(gw)))
        }
        None => None,
    };
    let keep = match (&existing, wanted) {
        (Some((_, s)), Some((subnet, gw))) => {
            s.subnet == subnet.to_string()
                && s.gateway == ipam::ip_string(gw)
                && s.bridge == driver.names.default_bridge()
        }
        (Some((_, s)), None) => s.bridge == driver.names.default_bridge(),
        (None, _) => false,
    };
    if !keep {
        let _lock = take_host_lock().await?;
        if let Some((_, old)) = &existing {
            driver.remove_bridge(&old.bridge).await?;
        }
        let (subnet, gateway) = match wanted {
            Some(w) => w,
            None => {
                let mut taken = driver.host_routes().await?;
                taken.extend(our_subnets(&state, None));
                let s = ipam::pick_subnet(pools, &taken).ok_or_else(|| {
                    Error::unavailable(
                        "could not find a free subnet for the default bridge in the address pools",
                    )
                })?;
                (s, s.first_host())
            }
        };
        let spec = NetworkSpec {
            driver: BRIDGE.into(),
            subnet: subnet.to_string(),
            gateway: ipam::ip_string(gateway),
            bridge: driver.names.default_bridge(),
            builtin: true,
            ..Default::default()
        };
        driver.ensure_bridge(&spec).await?;
        let id = match existing {
            Some((id, _)) => id,
            None => random_hex64()?,
        };
        info!(subnet = %spec.subnet, bridge = %spec.bridge, "default bridge");
        new.push(Event::NetworkCreated {
            id,
            name: BRIDGE.into(),
            config: to_json(&spec)?,
        });
    }
    if !new.is_empty() {
        append_all(events, new).await?;
    }
    Ok(())
}

/// The host-wide network lock, waited for off the actors' thread (another
/// berthd may hold it while it makes a bridge).
async fn take_host_lock() -> Result<std::fs::File> {
    tokio::task::spawn_blocking(host_lock)
        .await
        .map_err(|e| Error::internal(format!("taking the network lock: {e}")))?
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::internal(format!("encoding: {e}")))
}

/// The subnets of our networks (but `except`).
fn our_subnets(state: &State, except: Option<&str>) -> Vec<Subnet> {
    state
        .networks
        .values()
        .filter(|n| Some(n.id.as_str()) != except)
        .filter_map(|n| Subnet::parse(&NetworkSpec::of(n).subnet).ok())
        .collect()
}

/// POST /networks/create: answers (ID, warning).
#[derive(Message)]
#[rtype(result = "Result<String>")]
pub struct CreateNetwork(pub NetworkCreateRequest);

impl Handler<CreateNetwork> for NetworkController {
    type Result = AtomicResponse<Self, Result<String>>;

    fn handle(&mut self, msg: CreateNetwork, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let (events, driver, pools) = (
            self.events.clone(),
            Arc::clone(&self.driver),
            self.pools.clone(),
        );
        let checked = spec::check_create(&msg.0).and_then(|req| {
            if state.networks.values().any(|n| n.name == req.name) {
                return Err(Error::conflict(format!(
                    "network with name {} already exists",
                    req.name
                )));
            }
            if let Some(s) = req.subnet {
                if our_subnets(&state, None).iter().any(|o| o.overlaps(&s)) {
                    return Err(Error::forbidden(
                        "Pool overlaps with other one on this address space",
                    ));
                }
            }
            Ok(req)
        });
        let sync = self.sync_firewall();
        AtomicResponse::new(Box::pin(
            async move {
                let req = checked?;
                let id = random_hex64()?;
                let mut s = req.spec;
                s.bridge = s
                    .options
                    .get(OPT_BRIDGE_NAME)
                    .cloned()
                    .unwrap_or_else(|| driver.names.bridge_for(&id));
                if state.networks.values().any(|n| NetworkSpec::of(n).bridge == s.bridge) {
                    return Err(Error::conflict(format!("bridge name {} is in use by another network", s.bridge)));
                }
                let lock = take_host_lock().await?;
                let subnet = match req.subnet {
                    Some(x) => x,
                    None => {
                        let mut taken = driver.host_routes().await?;
                        taken.extend(our_subnets(&state, None));
                        ipam::pick_subnet(&pools, &taken).ok_or_else(|| {
                            Error::forbidden("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
                        })?
                    }
                };
                s.subnet = subnet.to_string();
                s.gateway = ipam::ip_string(req.gateway.unwrap_or_else(|| subnet.first_host()));
                if let Some(r) = req.ip_range {
                    s.ip_range = r.to_string();
                }
                driver.ensure_bridge(&s).await?;
                drop(lock);
                let recorded = append(
                    &events,
                    Event::NetworkCreated {
                        id: id.clone(),
                        name: req.name.clone(),
                        config: to_json(&s)?,
                    },
                )
                .await;
                if let Err(e) = recorded {
                    let _ = driver.remove_bridge(&s.bridge).await;
                    return Err(e);
                }
                sync.await?;
                info!(network = %id, name = %req.name, subnet = %s.subnet, "network created");
                Ok(id)
            }
            .into_actor(self)
            .map(|res, act, _| {
                if let Ok(id) = &res {
                    let _ = act.actor_for(id);
                }
                res
            }),
        ))
    }
}

/// DELETE /networks/{id}.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct RemoveNetwork(pub String);

impl Handler<RemoveNetwork> for NetworkController {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, msg: RemoveNetwork, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let found = spec::resolve(&state, &msg.0).cloned();
        let actor = found
            .as_ref()
            .ok()
            .and_then(|n| self.networks.remove(&n.id));
        let (events, driver) = (self.events.clone(), Arc::clone(&self.driver));
        let sync = self.sync_firewall();
        AtomicResponse::new(Box::pin(
            async move {
                let n = found?;
                remove_network(&state, &n, &events, &driver).await?;
                if let Some(a) = actor {
                    let _ = a.send(Shutdown).await;
                }
                sync.await
            }
            .into_actor(self),
        ))
    }
}

async fn remove_network(
    state: &State,
    n: &crate::events::projection::NetworkRecord,
    events: &Addr<EventLog>,
    driver: &NetDriver,
) -> Result<()> {
    let s = NetworkSpec::of(n);
    if s.builtin {
        return Err(Error::forbidden(format!(
            "{} is a pre-defined network and cannot be removed",
            n.name
        )));
    }
    if state
        .containers
        .values()
        .any(|c| c.networks.get(&n.id).is_some_and(|e| !e.ip.is_empty()))
    {
        return Err(Error::forbidden(format!(
            "error while removing network: network {} id {} has active endpoints",
            n.name, n.id
        )));
    }
    // Stopped containers attached to it are detached from it.
    let mut list: Vec<Event> = state
        .containers
        .values()
        .filter(|c| c.networks.contains_key(&n.id))
        .map(|c| Event::ContainerNetworkDisconnected {
            container: c.id.clone(),
            network: n.id.clone(),
        })
        .collect();
    list.push(Event::NetworkRemoved { id: n.id.clone() });
    append_all(events, list).await?;
    if let Err(e) = driver.remove_bridge(&s.bridge).await {
        warn!(network = %n.id, error = %e, "removing the bridge");
    }
    info!(network = %n.id, name = %n.name, "network removed");
    Ok(())
}

/// POST /networks/prune: the user networks no container uses; answers
/// their names.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>>")]
pub struct PruneNetworks {
    pub labels: Vec<String>,
    pub until_ns: Option<u64>,
}

impl Handler<PruneNetworks> for NetworkController {
    type Result = AtomicResponse<Self, Result<Vec<String>>>;

    fn handle(&mut self, msg: PruneNetworks, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let candidates: Vec<_> = state
            .networks
            .values()
            .filter(|n| {
                let s = NetworkSpec::of(n);
                !s.builtin
                    && !state
                        .containers
                        .values()
                        .any(|c| c.networks.contains_key(&n.id))
                    && crate::images::query::labels_match(
                        &s.labels.clone().into_iter().collect(),
                        &msg.labels,
                    )
                    && msg.until_ns.is_none_or(|u| n.created_ns < u)
            })
            .cloned()
            .collect();
        let actors: Vec<_> = candidates
            .iter()
            .filter_map(|n| self.networks.remove(&n.id))
            .collect();
        let (events, driver) = (self.events.clone(), Arc::clone(&self.driver));
        let sync = self.sync_firewall();
        AtomicResponse::new(Box::pin(
            async move {
                let mut removed = Vec::new();
                for n in candidates {
                    remove_network(&state, &n, &events, &driver).await?;
                    removed.push(n.name.clone());
                }
                for a in actors {
                    let _ = a.send(Shutdown).await;
                }
                sync.await?;
                Ok(removed)
            }
            .into_actor(self),
        ))
    }
}

/// Holds each published port's host side (a bound socket per port).
fn reserve_published(published: &[PublishedPort]) -> Result<Vec<OwnedFd>> {
    published
        .iter()
        .map(|p| bind_port(&p.proto, &p.host_ip, p.host_port).map(|(fd, _)| fd))
        .collect()
}

/// Binds `host_ip:port` (0: a port the kernel picks) for `proto`.
fn bind_port(proto: &str, host_ip: &str, port: u16) -> Result<(OwnedFd, u16)> {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let ip: std::net::Ipv4Addr = if host_ip.is_empty() {
        std::net::Ipv4Addr::UNSPECIFIED
    } else {
        host_ip
            .parse()
            .map_err(|_| Error::invalid(format!("invalid host IP {host_ip}")))?
    };
    let kind = if proto == "udp" {
        SockType::Datagram
    } else {
        SockType::Stream
    };
    let fd = socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None)
        .context("making a socket")?;
    let shown = if host_ip.is_empty() {
        "0.0.0.0"
    } else {
        host_ip
    };
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(std::net::SocketAddrV4::new(ip, port)),
    )
    .map_err(|e| {
        let why = if e == nix::errno::Errno::EADDRINUSE {
            "port is already allocated".to_string()
        } else {
            e.desc().to_string()
        };
        Error::invalid(format!("Bind for {shown}:{port} failed: {why}"))
    })?;
    let bound: SockaddrIn =
        getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).context("reading the bound port")?;
    Ok((fd, bound.port()))
}

/// Chooses and holds the host ports of `requests`.
fn reserve_requests(requests: &[ports::PortRequest]) -> Result<(Vec<PublishedPort>, Vec<OwnedFd>)> {
    let mut published = Vec::new();
    let mut held = Vec::new();
    for r in requests {
        let (lo, hi) = r.host_ports;
        let mut last_err = None;
        let mut got = None;
        for port in lo..=hi {
            match bind_port(&r.proto, &r.host_ip, port) {
                Ok(x) => {
                    got = Some(x);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let (fd, port) = match got {
            Some(x) => x,
            None => {
                return Err(last_err.unwrap_or_else(|| Error::invalid("no host port to publish on")))
            }
        };
        published.push(PublishedPort {
            proto: r.proto.clone(),
            container_port: r.container_port,
            host_ip: if r.host_ip.is_empty() {
                "0.0.0.0".into()
            } else {
                r.host_ip.clone()
            },
            host_port: port,
        });
        held.push(fd);
    }
    Ok((published, held))
}

/// Everything a container's network needs before its process starts.
#[derive(Message)]
#[rtype(result = "Result<Sandbox>")]
pub struct PrepareSandbox {
    pub id: String,
    /// The container's create body (parsed once, by its actor).
    pub body: bollard_stubs::models::ContainerCreateBody,
    /// Its user namespace (userns-remap), in which its network namespace is
    /// made, so that its root owns it.
    pub userns: Option<std::path::PathBuf>,
}

impl Handler<PrepareSandbox> for NetworkController {
    type Result = ResponseActFuture<Self, Result<Sandbox>>;

    fn handle(&mut self, msg: PrepareSandbox, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let id = msg.id.clone();
        let planned = self.plan_sandbox(&state, &id, &msg.body);
        let body = msg.body;
        let userns = msg.userns;
        let (events, driver, dir) = (
            self.events.clone(),
            Arc::clone(&self.driver),
            self.containers_dir.join(&id),
        );
        let publish = self.publish_ports(msg.id.clone());
        let fut = async move {
            let (kind, joins, reserved) = planned?;
            let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let (published, socks) = reserved;
            let mut sandbox = Sandbox::default();
            let (own_ip, nameserver) = match kind {
                Kind::Host => {
                    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
                    write_etc(&dir, &body, &mut sandbox, hosts, host_resolv.clone())?;
                    return Ok((sandbox, socks));
                }
                Kind::None => (None, None),
                Kind::Container(path) => {
                    sandbox.netns = Some(path);
                    (None, None)
                }
                Kind::Bridge => {
                    let path = driver.names.netns_path(&id);
                    let mut plans: Vec<InterfacePlan> = Vec::new();
                    let mut nameserver = None;
                    for (i, (actor, user_net, gw)) in joins.into_iter().enumerate() {
                        let plan = actor
                            .send(Join {
                                container: id.clone(),
                                ifname: format!("eth{i}"),
                                host_ifname: veth_name()?,
                                primary: i == 0,
                            })
                            .await
                            .map_err(|e| Error::internal(format!("network actor: {e}")))??;
                        if i == 0 && user_net {
                            nameserver = Some(gw);
                        }
                        plans.push(plan);
                    }
                    let own = plans.first().map(|p| p.ip.to_string());
                    let made = {
                        let path = path.clone();
                        tokio::task::spawn_blocking(move || {
                            let ns = match userns {
                                Some(userns) => {
                                    crate::drivers::userns::make_netns_in(&userns, &path)?;
                                    Namespace::Made(path)
                                }
                                None => Namespace::New(path),
                            };
                            netlink::setup_interfaces(ns, plans)
                        })
                        .await
                        .map_err(|e| Error::internal(format!("network setup: {e}")))?
                    };
                    if let Err(e) = made {
                        netlink::remove_namespace(&path);
                        return Err(e.context("setting up the container's network"));
                    }
                    sandbox.netns = Some(path);
                    (own, nameserver)
                }
            };
            let hosts = files::hosts(&body, own_ip.as_deref());
            let resolv = files::resolv_conf(&host_resolv, &body, nameserver.as_deref());
            write_etc(&dir, &body, &mut sandbox, hosts, resolv)?;
            if !published.is_empty() {
                append(
                    &events,
                    Event::ContainerPortsPublished {
                        id: id.clone(),
                        ports: published,
                    },
                )
                .await?;
                publish.await?;
            }
            Ok((sandbox, socks))
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let (sandbox, socks) = res?;
            if !socks.is_empty() {
                act.reservations.insert(msg.id, socks);
            }
            Ok(sandbox)
        }))
    }
}

fn write_etc(
    dir: &std::path::Path,
    body: &bollard_stubs::models::ContainerCreateBody,
    sandbox: &mut Sandbox,
    hosts: String,
    resolv: String,
) -> Result<()> {
    let hostname = format!("{}\n", body.hostname.clone().unwrap_or_default());
    for (name, content) in [
        ("hosts", hosts),
        ("resolv.conf", resolv),
        ("hostname", hostname),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).context(format_args!("writing {}", path.display()))?;
        sandbox.etc_files.push((format!("/etc/{name}"), path));
    }
    Ok(())
}

enum Kind {
    Host,
    None,
    Container(PathBuf),
    Bridge,
}

type Planned = (
    Kind,
    Vec<(Addr<NetworkActor>, bool, String)>,
    (Vec<PublishedPort>, Vec<OwnedFd>),
);

impl NetworkController {
    /// The sync part of a sandbox: what kind it is, the networks to join (the
    /// mode's first), and the host ports held.
    fn plan_sandbox(
        &mut self,
        state: &State,
        id: &str,
        body: &bollard_stubs::models::ContainerCreateBody,
    ) -> Result<Planned> {
        let c = state
            .containers
            .get(id)
            .ok_or_else(|| Error::not_found(format!("No such container: {id}")))?;
        let mode = body
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone())
            .unwrap_or_default();
        let none = (Vec::new(), Vec::new());
        if mode == HOST {
            return Ok((Kind::Host, Vec::new(), none));
        }
        if mode == NONE {
            return Ok((Kind::None, Vec::new(), none));
        }
        if let Some(other) = mode.strip_prefix("container:") {
            let o = crate::containers::render::resolve(state, other)?;
            if o.status != ContainerStatus::Running {
                return Err(Error::conflict(format!(
                    "cannot join network of a non running container: {other}"
                )));
            }
            let path = self.driver.names.netns_path(&o.id);
            if !path.exists() {
                return Err(Error::conflict(format!(
                    "cannot join network of container {other}: it has no network namespace of berthd's"
                )));
            }
            return Ok((Kind::Container(path), Vec::new(), none));
        }
        let mode_net = spec::resolve(state, spec::mode_network(&mode))?.id.clone();
        let mut ids: Vec<&String> = c.networks.keys().collect();
        ids.sort_by_key(|n| {
            (
                **n != mode_net,
                state.networks.get(*n).map(|r| r.name.clone()),
            )
        });
        let mut joins = Vec::new();
        for nid in ids {
            let n = state
                .networks
                .get(nid)
                .ok_or_else(|| Error::not_found(format!("network {nid} not found")))?;
            let s = NetworkSpec::of(n);
            if !s.is_bridge() {
                continue;
            }
            joins.push((self.actor_for(nid)?, !s.builtin, s.gateway.clone()));
        }
        if joins.is_empty() {
            return Err(Error::not_found(format!("network {mode} not found")));
        }
        let reserved = reserve_requests(&ports::requests(body)?)?;
        Ok((Kind::Bridge, joins, reserved))
    }
}

/// The container's process ended (or never started): its ports are let go
/// and its namespace unmounted (its interfaces go with it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseSandbox {
    pub id: String,
}

impl Handler<ReleaseSandbox> for NetworkController {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: ReleaseSandbox, _: &mut Context<Self>) -> Self::Result {
        self.reservations.remove(&msg.id);
        let state = self.projection.current();
        let had_ports = state
            .containers
            .get(&msg.id)
            .is_some_and(|c| !c.ports.is_empty());
        let path = self.driver.names.netns_path(&msg.id);
        let events = self.events.clone();
        let sync = self.sync_firewall();
        let id = msg.id;
        Box::pin(
            async move {
                if had_ports {
                    if let Err(e) = append(
                        &events,
                        Event::ContainerPortsPublished {
                            id: id.clone(),
                            ports: Vec::new(),
                        },
                    )
                    .await
                    {
                        warn!(container = %id, error = %e, "recording the ports' release");
                    }
                    // In the background: the exit need not wait for it, and
                    // the next write (any) starts from the newest state.
                    actix::spawn(async move {
                        if let Err(e) = sync.await {
                            warn!(container = %id, error = %e, "removing the published ports' rules");
                        }
                    });
                }
                netlink::remove_namespace(&path);
            }
            .into_actor(self),
        )
    }
}

/// POST /networks/{id}/connect.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Connect {
    pub network: String,
    pub container: String,
    pub config: EndpointSettings,
}

impl Handler<Connect> for NetworkController {
    type Result = ResponseActFuture<Self, Result<()>>;

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let checked = check_connect(&state, &msg).and_then(|(c, n, s)| {
            let actor = if c.status == ContainerStatus::Running {
                Some(self.actor_for(&n)?)
            } else {
                None
            };
            Ok((c, n, s, actor))
        });
        let (events, driver) = (self.events.clone(), Arc::clone(&self.driver));
        let fut = async move {
            let (c, network, config, actor) = checked?;
            append(
                &events,
                Event::ContainerNetworkConnected {
                    container: c.id.clone(),
                    network: network.clone(),
                    config: to_json(&config)?,
                },
            )
            .await?;
            let Some(actor) = actor else {
                return Ok(());
            };
            let used: Vec<String> = c.networks.values().map(|e| e.ifname.clone()).collect();
            let ifname = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !used.contains(n))
                .unwrap_or_default();
            let joined = async {
                let plan = actor
                    .send(Join {
                        container: c.id.clone(),
                        ifname,
                        host_ifname: veth_name()?,
                        primary: false,
                    })
                    .await
                    .map_err(|e| Error::internal(format!("network actor: {e}")))??;
                let path = driver.names.netns_path(&c.id);
                tokio::task::spawn_blocking(move || {
                    netlink::setup_interfaces(Namespace::Existing(path), vec![plan])
                })
                .await
                .map_err(|e| Error::internal(format!("network setup: {e}")))?
            }
            .await;
            if let Err(e) = joined {
                let _ = append(
                    &events,
                    Event::ContainerNetworkDisconnected {
                        container: c.id.clone(),
                        network,
                    },
                )
                .await;
                return Err(e);
            }
            Ok(())
        };
        Box::pin(fut.into_actor(self))
    }
}

fn check_connect(
    state: &State,
    msg: &Connect,
) -> Result<(ContainerRecord, String, EndpointSettings)> {
    let n = spec::resolve(state, &msg.network)?;
    let c = crate::containers::render::resolve(state, &msg.container)?.clone();
    let s = NetworkSpec::of(n);
    let body = crate::containers::render::body(&c);
    let mode = body
        .host_config
        .and_then(|h| h.network_mode)
        .unwrap_or_default();
    if !s.is_bridge() || mode == HOST || mode == NONE || mode.starts_with("container:") {
        return Err(Error::invalid(
            "container sharing network namespace with another container or host cannot be connected to any other network",
        ));
    }
    if c.networks.contains_key(&n.id) {
        return Err(Error::forbidden(format!(
            "endpoint with name {} already exists in network {}",
            c.name, n.name
        )));
    }
    spec::check_endpoint_config(&s, &msg.config)?;
    Ok((c, n.id.clone(), msg.config.clone()))
}

/// POST /networks/{id}/disconnect.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Disconnect {
    pub network: String,
    pub container: String,
    pub force: bool,
}

impl Handler<Disconnect> for NetworkController {
    type Result = ResponseActFuture<Self, Result<()>>;

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let found = (|| {
            let n = spec::resolve(&state, &msg.network)?;
            let c = crate::containers::render::resolve(&state, &msg.container)?;
            let ep = c.networks.get(&n.id).ok_or_else(|| {
                Error::forbidden(format!(
                    "container {} is not connected to network {}",
                    c.id, n.name
                ))
            })?;
            if NetworkSpec::of(n).builtin && n.name != BRIDGE {
                return Err(Error::invalid(
                    "container cannot be disconnected from host network or connected to host network",
                ));
            }
            Ok((c.id.clone(), n.id.clone(), ep.ifname.clone()))
        })();
        let (events, driver, force) = (self.events.clone(), Arc::clone(&self.driver), msg.force);
        let fut = async move {
            let (cid, nid, ifname) = found?;
            if !ifname.is_empty() {
                let path = driver.names.netns_path(&cid);
                let removed =
                    tokio::task::spawn_blocking(move || netlink::remove_interface(&path, &ifname))
                        .await
                        .map_err(|e| Error::internal(format!("network teardown: {e}")))?;
                if let Err(e) = removed {
                    if !force {
                        return Err(e);
                    }
                    warn!(container = %cid, error = %e, "disconnect (forced)");
                }
            }
            append(
                &events,
                Event::ContainerNetworkDisconnected {
                    container: cid,
                    network: nid,
                },
            )
            .await?;
            Ok(())
        };
        Box::pin(fut.into_actor(self))
    }
}
