//! The firewall's writes, each in a blocking task and one at a time: the plan
//! changed and then written whole, or one container's ports appended. The
//! plan is only touched inside those tasks, so the actors' thread never waits
//! on a write in progress.

use std::sync::{Arc, Mutex};

use crate::drivers::network::NetDriver;
use crate::error::{Error, Result};
use crate::events::projection::State;
use crate::events::v1::PublishedPort;
use crate::networks::firewall_plan::FirewallPlan;

#[derive(Clone)]
pub(super) struct FirewallWriter {
    plan: Arc<Mutex<FirewallPlan>>,
    driver: Arc<NetDriver>,
}

impl FirewallWriter {
    pub(super) fn new(driver: Arc<NetDriver>) -> FirewallWriter {
        FirewallWriter {
            plan: Arc::default(),
            driver,
        }
    }

    pub(super) async fn blocking(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut FirewallPlan, &NetDriver) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let (plan, driver) = (Arc::clone(&self.plan), Arc::clone(&self.driver));
        tokio::task::spawn_blocking(move || {
            let mut plan = plan.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut plan, &driver)
        })
        .await
        .map_err(|e| Error::internal(format!("{what}: {e}")))?
    }

    /// At the daemon's start: the plan from the projection, the chains and
    /// the jumps into them written whole.
    pub(super) async fn init(&self, state: Arc<State>) -> Result<()> {
        self.blocking("setting up the firewall", move |plan, driver| {
            *plan = FirewallPlan::from_state(&state);
            let (bridges, rules) = plan.all();
            driver.firewall.init(&bridges, &rules)
        })
        .await
    }

    /// Changes the plan, then writes it whole.
    pub(super) async fn write(
        &self,
        change: impl FnOnce(&mut FirewallPlan) + Send + 'static,
    ) -> Result<()> {
        self.blocking("writing the firewall", move |plan, driver| {
            change(plan);
            let (bridges, rules) = plan.all();
            driver.firewall.apply(&bridges, &rules)
        })
        .await
    }

    /// Container `id`'s ports reach it at `ip` through `bridge`: their rules
    /// are appended, unless a whole write has put them in meanwhile.
    pub(super) async fn publish(
        &self,
        id: String,
        bridge: String,
        ip: String,
        ports: Vec<PublishedPort>,
    ) -> Result<()> {
        self.blocking("writing the firewall", move |plan, driver| {
            plan.ports_published(&id, &bridge, &ip, &ports);
            driver.firewall.add_ports(&plan.to_add(&id))
        })
        .await
    }
}
