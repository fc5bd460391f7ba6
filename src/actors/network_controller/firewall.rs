//! The firewall's writes, each in a blocking task and one at a time: the plan
//! changed and then written whole, or one container's ports appended. The
//! plan is only touched inside those tasks, so the actors' thread never waits
//! on a write in progress. And its repair: chains someone else flushed or
//! deleted are found and written whole again, with the published ports of
//! running containers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::warn;

use crate::drivers::network::NetDriver;
use crate::error::{Error, Result};
use crate::events::projection::State;
use crate::events::v1::PublishedPort;
use crate::networks::firewall_plan::FirewallPlan;

#[derive(Clone)]
pub(super) struct FirewallWriter {
    plan: Arc<Mutex<FirewallPlan>>,
    driver: Arc<NetDriver>,
    /// Writes so far: a check that read the chains while one was made
    /// knows to read them again.
    writes: Arc<AtomicU64>,
}

/// How many times a check reads the chains again when our own writes keep
/// changing them under it.
const CHECK_TRIES: usize = 3;

impl FirewallWriter {
    pub(super) fn new(driver: Arc<NetDriver>) -> FirewallWriter {
        FirewallWriter {
            plan: Arc::default(),
            driver,
            writes: Arc::default(),
        }
    }

    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut FirewallPlan, &NetDriver) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (plan, driver) = (Arc::clone(&self.plan), Arc::clone(&self.driver));
        let writes = Arc::clone(&self.writes);
        tokio::task::spawn_blocking(move || {
            let mut plan = plan.lock().unwrap_or_else(|p| p.into_inner());
            let done = f(&mut plan, &driver);
            writes.fetch_add(1, Ordering::SeqCst);
            done
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

    /// Checks our chains against the plan, and writes them whole again (with
    /// the jumps to them) if someone else flushed, changed or deleted them;
    /// answers what was wrong. The chains are read (two `iptables -S`)
    /// without holding the plan, so writes go on meanwhile; a check that a
    /// write overlapped reads again.
    pub(super) async fn repair(&self) -> Result<Option<String>> {
        for _ in 0..CHECK_TRIES {
            let (plan, writes) = (Arc::clone(&self.plan), Arc::clone(&self.writes));
            let (expected, seen) = tokio::task::spawn_blocking(move || {
                let plan = plan.lock().unwrap_or_else(|p| p.into_inner());
                (plan.installed_rules(), writes.load(Ordering::SeqCst))
            })
            .await
            .map_err(|e| Error::internal(format!("checking the firewall: {e}")))?;
            let driver = Arc::clone(&self.driver);
            let damage = tokio::task::spawn_blocking(move || {
                driver.firewall.damage(&expected.0, &expected.1)
            })
            .await
            .map_err(|e| Error::internal(format!("checking the firewall: {e}")))??;
            let Some(why) = damage else {
                return Ok(None);
            };
            let writes = Arc::clone(&self.writes);
            let rewritten = self
                .blocking("rebuilding the firewall", move |plan, driver| {
                    if writes.load(Ordering::SeqCst) != seen {
                        // Read while we wrote: no proof of damage.
                        return Ok(false);
                    }
                    let (bridges, rules) = plan.all();
                    driver.firewall.init(&bridges, &rules).map(|()| true)
                })
                .await
                .map_err(|e| e.context(format_args!("rebuilding the firewall ({why})")))?;
            if rewritten {
                return Ok(Some(why));
            }
        }
        Ok(None)
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
            tracing::debug!(container = %id, %ip, "publishing ports");
            plan.ports_published(&id, &bridge, &ip, &ports);
            let Err(e) = driver.firewall.add_ports(&plan.to_add(&id)) else {
                return Ok(());
            };
            // Our chains may be gone (someone flushed the firewall): all
            // written again, this container's ports with the others'.
            let (bridges, rules) = plan.all();
            driver
                .firewall
                .init(&bridges, &rules)
                .map_err(|again| again.context(format_args!("after {e}")))?;
            warn!(container = %id, error = %e, "rebuilt the firewall chains: appending the container's published ports failed");
            Ok(())
        })
        .await
    }
}
