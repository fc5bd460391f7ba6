//! Networks themselves: create, remove, prune.

use actix::prelude::*;
use tracing::{info, warn};

use super::*;

/// POST /networks/create: answers (ID, warning).
#[derive(Message)]
#[rtype(result = "Result<String>")]
pub struct CreateNetwork(pub NetworkCreateRequest);

impl Handler<CreateNetwork> for NetworkController {
    type Result = AtomicResponse<Self, Result<String>>;

    fn handle(&mut self, msg: CreateNetwork, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let (events, driver, pools, pools6) = (
            self.events.clone(),
            Arc::clone(&self.driver),
            self.pools.clone(),
            self.pools6.clone(),
        );
        let checked = spec::check_create(&msg.0).and_then(|req| {
            if state.networks.values().any(|n| n.name == req.name) {
                return Err(Error::conflict(format!(
                    "network with name {} already exists",
                    req.name
                )));
            }
            let overlap = || Error::forbidden("Pool overlaps with other one on this address space");
            if let Some(s) = req.subnet {
                if our_subnets(&state, None).iter().any(|o| o.overlaps(&s)) {
                    return Err(overlap());
                }
            }
            let taken6 = our_subnets6(&state);
            if let Some(s) = req.subnet6 {
                if taken6.iter().any(|o| o.overlaps(&s)) {
                    return Err(overlap());
                }
            }
            let mut req = req;
            if req.spec.enable_ipv6 && req.subnet6.is_none() {
                req.subnet6 = Some(ipam6::pick_subnet(&pools6, &taken6).ok_or_else(|| {
                    Error::not_found("could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network")
                })?);
            }
            Ok(req)
        });
        let firewall = self.firewall.clone();
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
                        let mut taken = host_subnets(&driver).await?;
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
                if let Some(s6) = req.subnet6 {
                    s.subnet6 = s6.to_string();
                    s.gateway6 = req.gateway6.unwrap_or_else(|| s6.first_host()).to_string();
                }
                driver.ensure_bridge(&s.bridge_device()?).await?;
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
                {
                    let (id, s) = (id.clone(), s.clone());
                    firewall.write(move |plan| plan.network_added(&id, &s)).await?;
                }
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
        let found = state.network(&msg.0).cloned();
        let actor = found
            .as_ref()
            .ok()
            .and_then(|n| self.networks.remove(&n.id));
        let (events, driver) = (self.events.clone(), Arc::clone(&self.driver));
        let firewall = self.firewall.clone();
        let healer = self.healer.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let n = found?;
                let no_heal = healer.hold().await;
                remove_network(&state, &n, &events, &driver).await?;
                drop(no_heal);
                if let Some(a) = actor {
                    let _ = a.send(Shutdown).await;
                }
                firewall
                    .write(move |plan| plan.network_removed(&n.id))
                    .await
            }
            .into_actor(self),
        ))
    }
}

pub(super) async fn remove_network(
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
        let firewall = self.firewall.clone();
        let healer = self.healer.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let mut removed = Vec::new();
                let mut ids = Vec::new();
                let no_heal = healer.hold().await;
                for n in candidates {
                    remove_network(&state, &n, &events, &driver).await?;
                    removed.push(n.name.clone());
                    ids.push(n.id.clone());
                }
                drop(no_heal);
                for a in actors {
                    let _ = a.send(Shutdown).await;
                }
                firewall
                    .write(move |plan| ids.iter().for_each(|id| plan.network_removed(id)))
                    .await?;
                Ok(removed)
            }
            .into_actor(self),
        ))
    }
}
