//! The host changed under a running daemon: someone removed one of our
//! bridges, its address, or our firewall chains (`ip link del`, a firewall
//! reload). What we own is rebuilt: every bridge network's device, then the
//! chains written whole with the published ports of running containers. Two
//! ways in: a start or connect checks the bridges it is about to use (two
//! netlink requests each) and heals everything before going on if one was
//! damaged; and nf_tables' notifications of deletions that touch our chains
//! send `Heal` at once, so running containers' ports answer again without
//! waiting for a start. Containers whose veths went with a deleted bridge
//! stay cut off until they restart.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{debug, info, warn};

use super::*;
use crate::drivers::network::Bridge;

/// A burst of deletions (a flush, a reload) is waited out before the check.
const SETTLE: Duration = Duration::from_millis(150);
/// At most one check the watch asks for in this long.
const MIN_GAP: Duration = Duration::from_secs(1);

/// What heals, cloned into the futures that need it. One heal at a time:
/// a second one waits, then finds nothing left to do; and no network is
/// removed meanwhile (its bridge would be rebuilt after its removal).
#[derive(Clone)]
pub(super) struct Healer {
    driver: Arc<NetDriver>,
    firewall: firewall::FirewallWriter,
    projection: Projection,
    one: Arc<tokio::sync::Mutex<()>>,
}

impl Healer {
    pub(super) fn new(
        driver: Arc<NetDriver>,
        firewall: firewall::FirewallWriter,
        projection: Projection,
    ) -> Healer {
        Healer {
            driver,
            firewall,
            projection,
            one: Arc::default(),
        }
    }

    /// Before a container uses `bridges`: if one of them is damaged,
    /// everything is healed first.
    pub(super) async fn before_use(&self, bridges: &[Bridge]) -> Result<()> {
        for b in bridges {
            if let Some(why) = self.driver.bridge_damage(b).await? {
                debug!(bridge = %b.name, why, "a bridge in use is damaged");
                return self.heal().await;
            }
        }
        Ok(())
    }

    /// Held while a network is removed: no heal runs meanwhile.
    pub(super) async fn hold(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.one).lock_owned().await
    }

    /// Every bridge network's device checked and rebuilt where damaged, then
    /// the firewall; the log says what was rebuilt. A bridge that cannot be
    /// rebuilt does not stop the others: the first error is answered. It
    /// runs as a task of its own, not in the controller's context: an
    /// atomic handler (a network's removal) waiting for `hold` stops that
    /// context, and would wait forever on a heal it stopped.
    pub(super) async fn heal(&self) -> Result<()> {
        let me = self.clone();
        actix::spawn(async move { me.heal_now().await })
            .await
            .map_err(|e| Error::internal(format!("healing the network: {e}")))?
    }

    async fn heal_now(&self) -> Result<()> {
        let _one = self.one.lock().await;
        let state = self.projection.current();
        let mut failed = None;
        for n in state.networks.values() {
            let s = NetworkSpec::of(n);
            if !s.is_bridge() {
                continue;
            }
            if let Err(e) = self.heal_bridge(&n.name, &s).await {
                warn!(network = %n.name, error = %e, "rebuilding the network's bridge");
                failed.get_or_insert(e);
            }
        }
        match self.firewall.repair().await {
            Ok(Some(why)) => warn!(
                "rebuilt the firewall chains ({why}), with the published ports of running containers"
            ),
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "checking the firewall");
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn heal_bridge(&self, network: &str, s: &NetworkSpec) -> Result<()> {
        let b = s.bridge_device()?;
        let Some(why) = self.driver.bridge_damage(&b).await? else {
            return Ok(());
        };
        // As when it was made: no other berthd picks a subnet meanwhile.
        let _lock = take_host_lock().await?;
        self.driver
            .ensure_bridge(&b)
            .await
            .map_err(|e| e.context(format_args!("rebuilding bridge {}", b.name)))?;
        warn!(network, bridge = %b.name, "rebuilt bridge {} ({why}), with {}/{}", b.name, b.gateway, b.prefix);
        Ok(())
    }
}

/// Checks our bridges and chains, and rebuilds what someone removed.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Heal;

impl Handler<Heal> for NetworkController {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Heal, _: &mut Context<Self>) -> Self::Result {
        let healer = self.healer.clone();
        Box::pin(
            async move {
                // heal() logged what failed.
                let _ = healer.heal().await;
            }
            .into_actor(self),
        )
    }
}

impl NetworkController {
    /// Listens for deletions in nf_tables that touch our chains and sends
    /// `Heal` for them (a burst as one, one at most every MIN_GAP).
    pub(super) fn watch_firewall(&self, ctx: &mut Context<Self>) {
        let mut watch = match self.driver.watch_firewall() {
            Ok(w) => w,
            Err(e) => {
                info!(error = %e, "not watching the firewall: chains removed under the daemon are found when a start needs them");
                return;
            }
        };
        let me = ctx.address();
        actix::spawn(async move {
            let mut last: Option<Instant> = None;
            loop {
                if let Err(e) = watch.touched().await {
                    warn!(error = %e, "no longer watching the firewall");
                    return;
                }
                let wait = last.map_or(SETTLE, |t| SETTLE.max(MIN_GAP.saturating_sub(t.elapsed())));
                tokio::time::sleep(wait).await;
                if let Err(e) = watch.drain().await {
                    warn!(error = %e, "no longer watching the firewall");
                    return;
                }
                last = Some(Instant::now());
                if me.send(Heal).await.is_err() {
                    return;
                }
            }
        });
    }
}
