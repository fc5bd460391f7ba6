//! Connecting and disconnecting a container (running or not) to a network.

use actix::prelude::*;
use tracing::warn;

use super::*;

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
            let running = if c.status == ContainerStatus::Running {
                let spec = state
                    .networks
                    .get(&n)
                    .map(NetworkSpec::of)
                    .ok_or_else(|| Error::not_found(format!("network {n} not found")))?;
                let bridge = spec.bridge_device()?;
                Some((self.actor_for(&n)?, bridge))
            } else {
                None
            };
            // The first user-defined network of a running container brings
            // its DNS server, and resolv.conf points at it.
            let start_dns = running.is_some()
                && !self.resolvers.contains_key(&c.id)
                && state
                    .networks
                    .get(&n)
                    .is_some_and(|r| resolver::serves_names(&NetworkSpec::of(r)));
            Ok((c, n, s, running, start_dns))
        });
        let dir = self.containers_dir.clone();
        let (events, driver) = (self.events.clone(), Arc::clone(&self.driver));
        let healer = self.healer.clone();
        let fut = async move {
            let (c, network, config, running, start_dns) = checked?;
            if let Some((_, bridge)) = &running {
                // Someone may have removed the bridge under us.
                healer.before_use(std::slice::from_ref(bridge)).await?;
            }
            let actor = running.map(|(a, _)| a);
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
                return Ok((c.id, None));
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
                let ips: Vec<String> = std::iter::once(plan.ip.to_string())
                    .chain(plan.ip6.map(|(a, _)| a.to_string()))
                    .collect();
                let netns = path.clone();
                tokio::task::spawn_blocking(move || {
                    netlink::setup_interfaces(Namespace::Existing(path), vec![plan])
                })
                .await
                .map_err(|e| Error::internal(format!("network setup: {e}")))??;
                let dns = match start_dns {
                    true => Some(sandbox::bind_dns(netns).await?),
                    false => None,
                };
                update_etc(
                    &dir.join(&c.id),
                    &c,
                    |hosts, body| {
                        let own: String = ips.iter().map(|ip| files::own_entry(body, ip)).collect();
                        format!("{hosts}{own}")
                    },
                    start_dns,
                )?;
                Ok(dns)
            }
            .await;
            match joined {
                Ok(dns) => Ok((c.id, dns)),
                Err(e) => {
                    let _ = append(
                        &events,
                        Event::ContainerNetworkDisconnected {
                            container: c.id.clone(),
                            network,
                        },
                    )
                    .await;
                    Err(e)
                }
            }
        };
        Box::pin(fut.into_actor(self).map(|res, act, _| {
            let (id, dns) = res?;
            if let Some(listeners) = dns {
                act.serve_dns(&id, listeners)?;
            }
            Ok(())
        }))
    }
}

/// Rewrites a running container's /etc/hosts (through `hosts`) and, with
/// `embedded_dns`, its resolv.conf to point at 127.0.0.11, in place: they
/// are bind-mounted, so the same files are written, not replaced.
fn update_etc(
    dir: &std::path::Path,
    c: &ContainerRecord,
    hosts: impl FnOnce(&str, &bollard_stubs::models::ContainerCreateBody) -> String,
    embedded_dns: bool,
) -> Result<()> {
    let body = crate::containers::render::body(c);
    let path = dir.join("hosts");
    if let Ok(old) = std::fs::read_to_string(&path) {
        std::fs::write(&path, hosts(&old, &body))
            .context(format_args!("writing {}", path.display()))?;
    }
    if embedded_dns {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let path = dir.join("resolv.conf");
        std::fs::write(
            &path,
            files::resolv_conf(&host, &body, Some(files::EMBEDDED_DNS)),
        )
        .context(format_args!("writing {}", path.display()))?;
    }
    Ok(())
}

pub(super) fn check_connect(
    state: &State,
    msg: &Connect,
) -> Result<(ContainerRecord, String, EndpointSettings)> {
    let n = state.network(&msg.network)?;
    let c = state.container(&msg.container)?.clone();
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
            let n = state.network(&msg.network)?;
            let c = state.container(&msg.container)?;
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
            Ok((c.clone(), n.id.clone(), ep.ifname.clone()))
        })();
        let dir = self.containers_dir.clone();
        let (events, driver, force) = (self.events.clone(), Arc::clone(&self.driver), msg.force);
        let fut = async move {
            let (c, nid, ifname) = found?;
            let cid = c.id.clone();
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
                update_etc(
                    &dir.join(&cid),
                    &c,
                    |hosts, body| files::without_own_entries(hosts, body),
                    false,
                )?;
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
