//! A container's sandbox: its network namespace, interfaces, published
//! ports and /etc files, made before its process starts and let go at its exit.

use actix::prelude::*;
use tracing::{debug, warn};

use super::*;
use crate::drivers::network::Bridge;

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
        // `--add-host x:host-gateway`: the default bridge's gateway.
        let host_gateway = state
            .network("bridge")
            .ok()
            .map(|n| NetworkSpec::of(n).gateway)
            .filter(|g| !g.is_empty());
        // Legacy links on the default bridge: each linked container runs.
        let linked = match (state.containers.get(&id), state.network(BRIDGE)) {
            (Some(c), Ok(bridge)) => links::at_start(&state, c, &msg.body, &bridge.id),
            _ => Ok(Vec::new()),
        };
        let name = state
            .containers
            .get(&id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let body = msg.body;
        let userns = msg.userns;
        let (events, driver, dir) = (
            self.events.clone(),
            Arc::clone(&self.driver),
            self.containers_dir.join(&id),
        );
        let firewall = self.firewall.clone();
        let healer = self.healer.clone();
        let fut = async move {
            let (kind, joins, reserved) = planned?;
            let linked = linked?;
            let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let (published, socks) = reserved;
            let mut sandbox = Sandbox::default();
            // The bridge and address its published ports reach it through.
            let mut primary = None;
            let (own_ip, nameserver) = match kind {
                Kind::Host => {
                    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
                    write_etc(&dir, &body, &mut sandbox, hosts, host_resolv.clone())?;
                    return Ok((sandbox, socks, None, Vec::new()));
                }
                Kind::None => {
                    // Its own namespace with lo up (runc's loopback; the
                    // runtime would leave lo down).
                    let path = driver.names.netns_path(&id);
                    make_namespace(userns, path.clone(), Vec::new()).await?;
                    sandbox.netns = Some(path);
                    (Vec::new(), None)
                }
                Kind::Container {
                    netns,
                    donor,
                    hostname,
                } => {
                    // As dockerd: the donor's /etc files and hostname.
                    sandbox.netns = Some(netns);
                    let donor_dir = dir.with_file_name(&donor);
                    for name in ["hosts", "resolv.conf", "hostname"] {
                        let path = donor_dir.join(name);
                        if path.exists() {
                            sandbox.etc_files.push((format!("/etc/{name}"), path));
                        }
                    }
                    sandbox.hostname = Some(hostname);
                    return Ok((sandbox, socks, None, Vec::new()));
                }
                Kind::Bridge => {
                    let path = driver.names.netns_path(&id);
                    let mut plans: Vec<InterfacePlan> = Vec::new();
                    let mut nameserver = None;
                    // Someone may have removed a bridge under us.
                    let bridges: Vec<_> = joins.iter().map(|j| j.2.clone()).collect();
                    healer.before_use(&bridges).await?;
                    for (i, (actor, user_net, _)) in joins.into_iter().enumerate() {
                        let plan = actor
                            .send(Join {
                                container: id.clone(),
                                ifname: format!("eth{i}"),
                                host_ifname: veth_name()?,
                                primary: i == 0,
                            })
                            .await
                            .map_err(|e| Error::internal(format!("network actor: {e}")))??;
                        // Any user-defined network: the server at 127.0.0.11.
                        if user_net {
                            nameserver = Some(files::EMBEDDED_DNS.to_string());
                        }
                        plans.push(plan);
                    }
                    let own: Vec<String> = plans
                        .first()
                        .map(|p| {
                            std::iter::once(p.ip.to_string())
                                .chain(p.ip6.map(|(a, _)| a.to_string()))
                                .collect()
                        })
                        .unwrap_or_default();
                    primary = plans.first().map(|p| {
                        // v6 ports reach it at its v6 address if it has one.
                        let target = p
                            .ip6
                            .map(|(a, _)| std::net::IpAddr::V6(a))
                            .unwrap_or(std::net::IpAddr::V4(p.ip));
                        (p.bridge.clone(), p.ip.to_string(), target)
                    });
                    make_namespace(userns, path.clone(), plans).await?;
                    sandbox.netns = Some(path);
                    (own, nameserver)
                }
            };
            let link_lines: String = linked.iter().map(links::hosts_line).collect();
            sandbox.env = linked.iter().flat_map(|l| links::env(l, &name)).collect();
            let hosts = files::hosts(&body, &link_lines, &own_ip, host_gateway.as_deref());
            let resolv = files::resolv_conf(&host_resolv, &body, nameserver.as_deref());
            write_etc(&dir, &body, &mut sandbox, hosts, resolv)?;
            let dns = match (&nameserver, &sandbox.netns) {
                (Some(_), Some(netns)) => Some(bind_dns(netns.clone()).await?),
                _ => None,
            };
            let mut proxies = Vec::new();
            let mut socks = socks;
            if let (false, Some((bridge, ip, target))) = (published.is_empty(), primary) {
                append(
                    &events,
                    Event::ContainerPortsPublished {
                        id: id.clone(),
                        ports: published.clone(),
                    },
                )
                .await?;
                firewall
                    .publish(id.clone(), bridge, ip, published.clone())
                    .await?;
                (socks, proxies) = start_proxies(&published, socks, target)?;
            }
            Ok((sandbox, socks, dns, proxies))
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let (sandbox, socks, dns, proxies) = res?;
            if let Some(listeners) = dns {
                act.serve_dns(&msg.id, listeners)?;
            }
            if !proxies.is_empty() {
                act.proxies.insert(msg.id.clone(), proxies);
            }
            if !socks.is_empty() {
                act.reservations.insert(msg.id, socks);
            }
            Ok(sandbox)
        }))
    }
}

/// Hands the sockets of `published`'s v6 ports to proxies towards
/// `target`; answers the other sockets (held, their traffic DNATed) and the
/// proxies' tasks.
pub(super) fn start_proxies(
    published: &[PublishedPort],
    socks: Vec<OwnedFd>,
    target: std::net::IpAddr,
) -> Result<(Vec<OwnedFd>, Vec<proxy::Proxy>)> {
    let mut held = Vec::new();
    let mut proxies = Vec::new();
    for (p, fd) in published.iter().zip(socks) {
        if ports::is_v6(p) {
            let to = std::net::SocketAddr::new(target, p.container_port);
            proxies.push(proxy::spawn(fd, &p.proto, to)?);
        } else {
            held.push(fd);
        }
    }
    Ok((held, proxies))
}

/// The sockets of a container's DNS server, bound in its namespace.
pub(super) async fn bind_dns(netns: PathBuf) -> Result<Listeners> {
    tokio::task::spawn_blocking(move || listen::bind_in(&netns, files::EMBEDDED_DNS_ADDR, 53))
        .await
        .map_err(|e| Error::internal(format!("network setup: {e}")))?
        .map_err(|e| e.context("starting the container's DNS server"))
}

impl NetworkController {
    /// Serves a container's DNS server on `listeners` until its sandbox goes.
    pub(super) fn serve_dns(&mut self, id: &str, listeners: Listeners) -> Result<()> {
        let udp = tokio::net::UdpSocket::from_std(listeners.udp)
            .context("serving the container's DNS (udp)")?;
        let tcp = tokio::net::TcpListener::from_std(listeners.tcp)
            .context("serving the container's DNS (tcp)")?;
        let names = Arc::new(SandboxNames::new(id.to_string(), self.projection.clone()));
        let task = tokio::spawn(dns::serve(udp, tcp, names));
        if let Some(old) = self.resolvers.insert(id.to_string(), task.abort_handle()) {
            old.abort();
        }
        Ok(())
    }

    /// Stops the proxies of a container's v6 ports (dropped, they end and
    /// their sockets close).
    pub(super) fn stop_proxies(&mut self, id: &str) {
        self.proxies.remove(id);
    }

    /// Stops a container's DNS server (its sockets close with it).
    pub(super) fn stop_dns(&mut self, id: &str) {
        if let Some(task) = self.resolvers.remove(id) {
            task.abort();
        }
    }
}

/// The container's network namespace at `path` (in its user namespace,
/// when it has one of its own), lo up and `plans`' interfaces in it; on
/// error, nothing is left.
async fn make_namespace(
    userns: Option<std::path::PathBuf>,
    path: std::path::PathBuf,
    plans: Vec<InterfacePlan>,
) -> Result<()> {
    let at = path.clone();
    let made = tokio::task::spawn_blocking(move || {
        let ns = match userns {
            Some(userns) => {
                crate::drivers::userns::make_netns_in(&userns, &at)?;
                Namespace::Made(at)
            }
            None => Namespace::New(at),
        };
        netlink::setup_interfaces(ns, plans)
    })
    .await
    .map_err(|e| Error::internal(format!("network setup: {e}")))?;
    if let Err(e) = made {
        netlink::remove_namespace(&path);
        return Err(e.context("setting up the container's network"));
    }
    Ok(())
}

pub(super) fn write_etc(
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

pub(super) enum Kind {
    Host,
    None,
    /// Another container's namespace: its path, that container's ID and
    /// hostname.
    Container {
        netns: PathBuf,
        donor: String,
        hostname: String,
    },
    Bridge,
}

/// The sandbox's kind; each network to join (its actor, whether it serves
/// names, its bridge); the published ports and their held sockets.
pub(super) type Planned = (
    Kind,
    Vec<(Addr<NetworkActor>, bool, Bridge)>,
    (Vec<PublishedPort>, Vec<OwnedFd>),
);

impl NetworkController {
    /// The sync part of a sandbox: what kind it is, the networks to join (the
    /// mode's first), and the host ports held.
    pub(super) fn plan_sandbox(
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
            let o = state.container(other)?;
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
            let hostname = crate::containers::render::body(o)
                .hostname
                .unwrap_or_default();
            let kind = Kind::Container {
                netns: path,
                donor: o.id.clone(),
                hostname,
            };
            return Ok((kind, Vec::new(), none));
        }
        let mode_net = state.network(spec::mode_network(&mode))?.id.clone();
        let ids = spec::join_order(state, c, &mode_net);
        let mut joins = Vec::new();
        let mut host_binding = None;
        let mut primary_internal = false;
        for nid in ids {
            let n = state
                .networks
                .get(nid)
                .ok_or_else(|| Error::not_found(format!("network {nid} not found")))?;
            let s = NetworkSpec::of(n);
            if !s.is_bridge() {
                continue;
            }
            if joins.is_empty() {
                // Ports published without an address listen where the
                // primary network's host_binding_ipv4 says.
                host_binding = s.host_binding();
                primary_internal = s.internal;
            }
            joins.push((
                self.actor_for(nid)?,
                resolver::serves_names(&s),
                s.bridge_device()?,
            ));
        }
        if joins.is_empty() {
            return Err(Error::not_found(format!("network {mode} not found")));
        }
        let mut requests = ports::requests(body)?;
        // As dockerd: nothing is published from an internal network.
        if primary_internal {
            requests.clear();
        }
        if let Some(ip) = host_binding {
            for r in requests.iter_mut().filter(|r| r.host_ip.is_empty()) {
                r.host_ip = ip.clone();
            }
        }
        let reserved = ports::reserve_requests(&requests)?;
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
        // The ports' record is cleared once, by the exit the container's
        // actor appends next; the rules go from the plan now.
        let had_ports = self.reservations.remove(&msg.id).is_some();
        self.stop_proxies(&msg.id);
        self.stop_dns(&msg.id);
        debug!(container = %msg.id, had_ports, "releasing the sandbox");
        let path = self.driver.names.netns_path(&msg.id);
        let firewall = self.firewall.clone();
        let id = msg.id;
        Box::pin(
            async move {
                if had_ports {
                    // In the background: the exit need not wait for it.
                    let leaving = id.clone();
                    actix::spawn(async move {
                        if let Err(e) = firewall.write(move |plan| plan.container_left(&leaving)).await {
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
