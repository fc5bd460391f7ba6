//! The daemon's start: the built-in networks, every bridge, the firewall, the
//! networks' actors, and the held ports of running containers.

use actix::prelude::*;
use tracing::{info, warn};

use super::*;

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
        let (pools, wanted) = (self.pools.clone(), self.default_bridge.clone());
        let firewall = self.firewall.clone();
        let fut = async move {
            ensure_builtin(&events, &projection, &driver, &pools, &wanted).await?;
            let state = projection.current();
            for n in state.networks.values() {
                let s = NetworkSpec::of(n);
                if s.is_bridge() {
                    driver
                        .ensure_bridge(&s.bridge_device()?)
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
            firewall.init(state).await?;
            Ok(())
        };
        Box::pin(fut.into_actor(self).map(|res: Result<()>, act, ctx| {
            res?;
            act.watch_firewall(ctx);
            let state = act.projection.current();
            for id in state.networks.keys() {
                let _ = act.actor_for(id);
            }
            for c in state
                .containers
                .values()
                .filter(|c| c.status == ContainerStatus::Running)
            {
                act.serve_dns_again(&state, c);
                let target = crate::networks::firewall_plan::proxy_target(&state, c);
                let held = ports::reserve_published(&c.ports).and_then(|socks| match target {
                    Some(t) => sandbox::start_proxies(&c.ports, socks, t),
                    None => Ok((socks, Vec::new())),
                });
                match held {
                    Ok((socks, proxies)) => {
                        if !socks.is_empty() {
                            act.reservations.insert(c.id.clone(), socks);
                        }
                        if !proxies.is_empty() {
                            act.proxies.insert(c.id.clone(), proxies);
                        }
                    }
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

pub(super) async fn ensure_builtin(
    events: &Addr<EventLog>,
    projection: &Projection,
    driver: &NetDriver,
    pools: &[Pool],
    default_bridge: &DefaultBridge,
) -> Result<()> {
    let bip = default_bridge.bip.as_deref();
    // The v6 side as the configuration says it now (dockerd applies it to
    // the default bridge at every start).
    let v6 = |s: &mut NetworkSpec| {
        s.enable_ipv6 = default_bridge.ipv6;
        if let Some(c) = default_bridge
            .fixed_cidr_v6
            .as_ref()
            .filter(|_| default_bridge.ipv6)
        {
            if let Ok(sub) = ipam6::Subnet6::parse(c) {
                s.subnet6 = sub.to_string();
                s.gateway6 = sub.first_host().to_string();
            }
        }
    };
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
    let keep_v4 = match (&existing, wanted) {
        (Some((_, s)), Some((subnet, gw))) => {
            s.subnet == subnet.to_string()
                && s.gateway == ipam::ip_string(gw)
                && s.bridge == driver.names.default_bridge()
        }
        (Some((_, s)), None) => s.bridge == driver.names.default_bridge(),
        (None, _) => false,
    };
    let keep_v6 = existing.as_ref().is_some_and(|(_, s)| {
        let mut now = s.clone();
        v6(&mut now);
        now == *s
    });
    // Only the v6 side changed: the v4 subnet stays.
    let wanted = match (&existing, keep_v4) {
        (Some((_, s)), true) => Some((Subnet::parse(&s.subnet)?, ipam::parse_ip(&s.gateway)?)),
        _ => wanted,
    };
    if !(keep_v4 && keep_v6) {
        let _lock = take_host_lock().await?;
        // Only the v6 side changed: the bridge stays (containers that ran on
        // through the restart keep their link), ensure_bridge adds the v6 gateway.
        if let Some((_, old)) = existing.as_ref().filter(|_| !keep_v4) {
            driver.remove_bridge(&old.bridge).await?;
        }
        let (subnet, gateway) = match wanted {
            Some(w) => w,
            None => {
                let mut taken = host_subnets(&driver).await?;
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
        let mut spec = spec;
        v6(&mut spec);
        driver.ensure_bridge(&spec.bridge_device()?).await?;
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

/// The default bridge as the daemon's configuration asks for it.
#[derive(Debug, Clone, Default)]
pub struct DefaultBridge {
    /// `bip`: its address and prefix.
    pub bip: Option<String>,
    /// `ipv6` and `fixed-cidr-v6`.
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<String>,
}

/// The host-wide network lock, waited for off the actors' thread (another
/// berthd may hold it while it makes a bridge).
pub(super) async fn take_host_lock() -> Result<std::fs::File> {
    tokio::task::spawn_blocking(host_lock)
        .await
        .map_err(|e| Error::internal(format!("taking the network lock: {e}")))?
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::internal(format!("encoding: {e}")))
}

/// The subnets of our networks (but `except`).
pub(super) fn our_subnets(state: &State, except: Option<&str>) -> Vec<Subnet> {
    state
        .networks
        .values()
        .filter(|n| Some(n.id.as_str()) != except)
        .filter_map(|n| Subnet::parse(&NetworkSpec::of(n).subnet).ok())
        .collect()
}

/// The v6 subnets of our networks (those with IPv6 off too: dockerd keeps
/// them reserved).
pub(super) fn our_subnets6(state: &State) -> Vec<ipam6::Subnet6> {
    state
        .networks
        .values()
        .filter_map(|n| ipam6::Subnet6::parse(&NetworkSpec::of(n).subnet6).ok())
        .collect()
}

/// The host's routes as subnets a new network must not overlap.
pub(super) async fn host_subnets(driver: &NetDriver) -> Result<Vec<ipam::Subnet>> {
    Ok(driver
        .host_routes()
        .await?
        .into_iter()
        .map(|(base, prefix)| ipam::Subnet { base, prefix })
        .collect())
}

impl NetworkController {
    /// A container that ran on through the daemon's restart finds its DNS
    /// server again (the old daemon's sockets closed with it).
    fn serve_dns_again(&mut self, state: &State, c: &ContainerRecord) {
        let on_user_network = c.networks.keys().any(|n| {
            state
                .networks
                .get(n)
                .is_some_and(|r| resolver::serves_names(&NetworkSpec::of(r)))
        });
        let netns = self.driver.names.netns_path(&c.id);
        if !on_user_network || !netns.exists() {
            return;
        }
        let served = listen::bind_in(&netns, files::EMBEDDED_DNS_ADDR, 53)
            .and_then(|l| self.serve_dns(&c.id, l));
        if let Err(e) = served {
            warn!(container = %c.id, error = %e, "serving its DNS again");
        }
    }
}
