//! The NetworkActor: one per network. It hands out the network's addresses
//! (one join at a time, so two containers never get the same one). The DNS
//! server a container finds at 127.0.0.11 is its sandbox's (one per
//! container: it answers for every network the container is on).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use actix::prelude::*;

use super::event_log::{append, EventLog};
use crate::drivers::network::netlink::InterfacePlan;
use crate::error::{Error, Result};
use crate::events::projection::{Projection, State};
use crate::events::Event;
use crate::networks::ipam::{self, Subnet};
use crate::networks::render;
use crate::networks::spec::NetworkSpec;

pub struct NetworkActor {
    id: String,
    spec: NetworkSpec,
    events: Addr<EventLog>,
    projection: Projection,
}

impl NetworkActor {
    pub fn new(
        id: String,
        spec: NetworkSpec,
        events: Addr<EventLog>,
        projection: Projection,
    ) -> Self {
        NetworkActor {
            id,
            spec,
            events,
            projection,
        }
    }
}

impl Actor for NetworkActor {
    type Context = Context<Self>;
}

/// Addresses taken on `network` by running containers.
fn used_addresses(state: &State, network: &str) -> BTreeSet<u32> {
    state
        .containers
        .values()
        .filter_map(|c| c.networks.get(network))
        .filter_map(|e| ipam::parse_ip(&e.ip).ok())
        .collect()
}

/// Give container `container` an address on this network, as interface
/// `ifname` (the address is recorded before the interface is made: a start
/// that fails records the exit, which gives it back).
#[derive(Message)]
#[rtype(result = "Result<InterfacePlan>")]
pub struct Join {
    pub container: String,
    pub ifname: String,
    pub host_ifname: String,
    /// The default route goes through this network.
    pub primary: bool,
}

impl Handler<Join> for NetworkActor {
    type Result = AtomicResponse<Self, Result<InterfacePlan>>;

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let planned = self.plan(&state, &msg);
        let (events, network) = (self.events.clone(), self.id.clone());
        AtomicResponse::new(Box::pin(
            async move {
                let (plan, endpoint_id) = planned?;
                append(
                    &events,
                    Event::EndpointUp {
                        container: msg.container,
                        network,
                        endpoint_id,
                        ip: plan.ip.to_string(),
                        mac: ipam::format_mac(&plan.mac),
                        ifname: plan.ifname.clone(),
                    },
                )
                .await?;
                Ok(plan)
            }
            .into_actor(self),
        ))
    }
}

impl NetworkActor {
    fn plan(&self, state: &State, msg: &Join) -> Result<(InterfacePlan, String)> {
        let (subnet, gateway, range): (Subnet, u32, Option<Subnet>) = self.spec.addressing()?;
        let mut used = used_addresses(state, &self.id);
        // A v4 address whose v6 twin is taken (the v6 gateway, another
        // container's --ip6) is skipped, so the join never fails on it.
        if let Some((subnet6, gateway6)) = self.spec.ipv6() {
            let taken6 = state
                .containers
                .values()
                .filter(|c| c.id != msg.container)
                .filter_map(|c| c.networks.get(&self.id))
                .filter(|e| !e.ip.is_empty())
                .filter_map(|e| self.spec.endpoint_ipv6(e))
                .chain(std::iter::once(gateway6));
            for a in taken6 {
                let offset = u128::from(a).wrapping_sub(subnet6.base);
                if let Ok(offset) = u32::try_from(offset) {
                    used.insert(subnet.base.wrapping_add(offset));
                }
            }
        }
        let endpoint = state
            .containers
            .get(&msg.container)
            .and_then(|c| c.networks.get(&self.id))
            .map(render::endpoint_config);
        // Its own MAC on this network (an older client's container-wide
        // MacAddress is its primary network's: containers::config moves it).
        let mac = endpoint
            .as_ref()
            .and_then(|e| e.mac_address.clone())
            .filter(|m| !m.is_empty())
            .map(|m| ipam::parse_mac(&m))
            .transpose()?;
        let requested = endpoint
            .and_then(|e| e.ipam_config)
            .and_then(|i| i.ipv4_address)
            .filter(|a| !a.is_empty());
        let ip = match requested {
            Some(a) => {
                let ip = self.spec.static_address_for_join(&a)?;
                if used.contains(&ip) {
                    return Err(Error::forbidden(format!("Address already in use: {a}")));
                }
                ip
            }
            None => ipam::next_address(subnet, range, gateway, &used).ok_or_else(|| {
                Error::unavailable(format!(
                    "no available IPv4 addresses on this network's address pools: {} ({})",
                    state
                        .networks
                        .get(&self.id)
                        .map(|n| n.name.as_str())
                        .unwrap_or(""),
                    self.id
                ))
            })?,
        };
        let plan = InterfacePlan {
            ifname: msg.ifname.clone(),
            host_ifname: msg.host_ifname.clone(),
            bridge: self.spec.bridge.clone(),
            ip: Ipv4Addr::from(ip),
            prefix: subnet.prefix,
            mac: mac.unwrap_or_else(|| {
                let b = ip.to_be_bytes();
                [0x02, 0x42, b[0], b[1], b[2], b[3]]
            }),
            default_gateway: (msg.primary && !self.spec.internal).then(|| Ipv4Addr::from(gateway)),
            ip6: None,
            default_gateway6: None,
            mtu: self.spec.mtu(),
        };
        let plan = self.plan_ipv6(state, &msg.container, plan, msg.primary)?;
        Ok((plan, random_hex64()?))
    }
}

impl NetworkActor {
    /// The v6 side of a join on an IPv6 network: the address the v4 one
    /// implies, or its `--ip6` (refused when another running container has it).
    fn plan_ipv6(
        &self,
        state: &State,
        container: &str,
        mut plan: InterfacePlan,
        primary: bool,
    ) -> Result<InterfacePlan> {
        let Some((subnet6, gateway6)) = self.spec.ipv6() else {
            return Ok(plan);
        };
        let mut ep = state
            .containers
            .get(container)
            .and_then(|c| c.networks.get(&self.id))
            .cloned()
            .unwrap_or_default();
        ep.ip = plan.ip.to_string();
        ep.mac = ipam::format_mac(&plan.mac);
        let ip6 = self.spec.endpoint_ipv6(&ep).ok_or_else(|| {
            Error::unavailable(format!(
                "no available IPv6 addresses on this network's address pools: {subnet6}"
            ))
        })?;
        let taken = state
            .containers
            .values()
            .filter(|c| c.id != container)
            .filter_map(|c| c.networks.get(&self.id))
            .filter(|e| !e.ip.is_empty())
            .any(|e| self.spec.endpoint_ipv6(e) == Some(ip6));
        if taken || ip6 == gateway6 {
            return Err(Error::forbidden(format!("Address already in use: {ip6}")));
        }
        plan.ip6 = Some((ip6, subnet6.prefix));
        plan.default_gateway6 = (primary && !self.spec.internal).then_some(gateway6);
        Ok(plan)
    }
}

/// 64 random hex digits (endpoint and network IDs).
pub fn random_hex64() -> Result<String> {
    crate::random::hex64()
}

/// Stop serving (the network is being removed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for NetworkActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
