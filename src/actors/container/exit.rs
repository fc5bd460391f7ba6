//! The stop path: stop, kill and wait; the shim's exit recorded; the restart
//! policy and `--rm` applied; the container removed.

use actix::prelude::*;
use tracing::{info, warn};

use super::*;
use crate::actors::event_log::append;
use crate::actors::event_log::note_container;
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;

impl ContainerActor {
    /// Waits for the shim to end (`ended`), then records the exit it wrote
    /// down, and lets the restart policy decide what comes next.
    pub(super) fn watch_exit(
        &mut self,
        ended: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
        dir: PathBuf,
        ctx: &mut Context<Self>,
    ) {
        super::health::watch_health(&self.rt, &self.id, dir.clone());
        let rt = self.rt.clone();
        let id = self.id.clone();
        let fut = async move {
            ended.await;
            let status: ExitStatus = std::fs::read(dir.join(EXIT_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(ExitStatus {
                    exit_code: 255,
                    oom_killed: false,
                    error: "the container's shim ended without an exit status".into(),
                });
            release_network(&rt, &id).await;
            bundle::release(&rt.layers, &rt.exec_root, &rt.containers_dir.join(&id), &id);
            let _ = std::fs::remove_dir_all(&dir);
            if let Err(e) = append(
                &rt.events,
                Event::ContainerExited {
                    id: id.clone(),
                    exit_code: status.exit_code,
                    oom_killed: status.oom_killed,
                    error: status.error,
                },
            )
            .await
            {
                warn!(container = %id, error = %e, "recording the exit");
            }
            info!(container = %id, code = status.exit_code, "exited");
        };
        ctx.spawn(fut.into_actor(self).map(|_, act, ctx| {
            act.exits.send_modify(|n| *n += 1);
            act.notify(false);
            if !act.auto_remove(ctx) {
                act.apply_restart_policy(ctx);
            }
        }));
    }

    /// After an exit: schedules the restart the container's policy asks for.
    pub(super) fn apply_restart_policy(&mut self, ctx: &mut Context<Self>) {
        let state = self.rt.projection.current();
        let Some(c) = state.containers.get(&self.id) else {
            return;
        };
        if self.canceled {
            return;
        }
        let (policy, exit) = (restart::policy_of(c), restart::Exit::of(c));
        let Some(delay) = self.backoff.decide(policy.as_ref(), exit) else {
            return;
        };
        self.restart_pending = true;
        let (rt, id) = (self.rt.clone(), self.id.clone());
        let scheduled =
            async move { append(&rt.events, Event::ContainerRestartScheduled { id }).await };
        ctx.spawn(scheduled.into_actor(self).map(move |res, act, ctx| {
            if let Err(e) = res {
                warn!(container = %act.id, error = %e, "recording the restart");
                act.restart_pending = false;
                return;
            }
            if !act.restart_pending {
                return; // a stop came first
            }
            info!(container = %act.id, delay_ms = delay.as_millis() as u64, "restarting after");
            let timer = ctx.run_later(delay, |act, ctx| {
                act.restart_timer = None;
                let start = act.start(false, ctx).map(|res, act, _| {
                    if let Err(e) = res {
                        warn!(container = %act.id, error = %e, "restart by policy");
                    }
                });
                ctx.spawn(start);
            });
            act.restart_timer = Some(timer);
        }));
    }

    /// A user's stop or kill: this run is not restarted, and a restart that
    /// waits is called off. Returns whether one was waiting.
    pub(super) fn stop_requested(&mut self, ctx: &mut Context<Self>) -> bool {
        self.canceled = true;
        if let Some(h) = self.restart_timer.take() {
            ctx.cancel_future(h);
        }
        let (rt, id) = (self.rt.clone(), self.id.clone());
        ctx.spawn(
            async move {
                if let Err(e) = append(&rt.events, Event::ContainerStopRequested { id }).await {
                    warn!(error = %e, "recording the stop request");
                }
            }
            .into_actor(self),
        );
        std::mem::take(&mut self.restart_pending)
    }

    /// With AutoRemove (--rm), removes the container and answers `removed`
    /// waiters; returns whether it does.
    pub(super) fn auto_remove(&mut self, ctx: &mut Context<Self>) -> bool {
        let state = self.rt.projection.current();
        let auto_remove = state
            .containers
            .get(&self.id)
            .map(crate::containers::render::body)
            .and_then(|b| b.host_config.and_then(|h| h.auto_remove))
            .unwrap_or(false);
        if !auto_remove {
            return false;
        }
        let (rt, id) = (self.rt.clone(), self.id.clone());
        ctx.spawn(
            async move {
                if let Err(e) = remove_container(&rt, &id, true).await {
                    warn!(container = %id, error = %e, "auto-remove");
                }
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                act.notify(true);
                ctx.stop();
            }),
        );
        true
    }
}

/// Records the removal, then removes the layer and the container's directory.
/// With `volumes` (`rm -v`, `--rm`), its anonymous volumes go too.
pub async fn remove_container(rt: &Runtime, id: &str, volumes: bool) -> Result<()> {
    let anonymous: Vec<String> = if volumes {
        let state = rt.projection.current();
        state
            .containers
            .get(id)
            .and_then(|c| c.mounts.clone())
            .unwrap_or_default()
            .into_iter()
            // dockerd keeps a volume the mount named, whatever its name.
            .filter(|m| m.kind == "volume" && m.anonymous)
            .map(|m| m.name)
            .collect()
    } else {
        Vec::new()
    };
    // The record goes first: a crash after it leaves only files, which the
    // start-up sweep removes; never a record without its layer.
    append(&rt.events, Event::ContainerRemoved { id: id.to_string() }).await?;
    if !anonymous.is_empty() {
        let _ = rt
            .volumes
            .send(crate::actors::volume_service::RemoveUnused(anonymous))
            .await;
    }
    rt.execs.forget_container(id);
    bundle::release(&rt.layers, &rt.exec_root, &rt.containers_dir.join(id), id);
    if let Err(e) = rt.layers.remove_rw(id) {
        warn!(container = %id, error = %e, "removing the container layer");
    }
    let _ = std::fs::remove_dir_all(rt.containers_dir.join(id));
    let _ = std::fs::remove_dir_all(rt.exec_root.join("containers").join(id));
    info!(container = %id, "removed");
    Ok(())
}

/// Wait for a condition (POST /containers/{id}/wait).
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<WaitOutcome>")]
pub struct Wait(pub WaitCondition);

impl Handler<Wait> for ContainerActor {
    type Result = MessageResult<Wait>;

    fn handle(&mut self, msg: Wait, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let running = self.running().is_some() || self.starting || self.restart_pending;
        self.waiters.push((msg.0, tx));
        if msg.0 == WaitCondition::NotRunning && !running {
            self.notify(false);
        }
        MessageResult(rx)
    }
}

/// Send a signal to the container's init (POST /containers/{id}/kill).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Kill(pub i32);

impl Handler<Kill> for ContainerActor {
    type Result = Result<()>;

    fn handle(&mut self, msg: Kill, ctx: &mut Context<Self>) -> Self::Result {
        let sig = nix::sys::signal::Signal::try_from(msg.0)
            .map_err(|_| Error::invalid(format!("Invalid signal: {}", msg.0)))?;
        if self.running().is_none() && self.restart_pending {
            // Restarting: nothing to signal; telling the policy is enough.
            self.stop_requested(ctx);
            return Ok(());
        }
        let (pid, paused) = self
            .running()
            .filter(|(pid, _)| *pid != 0)
            .ok_or_else(|| not_running(&self.id))?;
        self.stop_requested(ctx);
        note_container(
            &self.rt.events,
            &self.id,
            "kill".into(),
            vec![("signal".into(), msg.0.to_string())],
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
            .map_err(|e| Error::internal(format!("signalling {}: {e}", self.id)))?;
        if paused {
            // A frozen process takes its signal once thawed, as dockerd does it.
            self.thaw(ctx);
        }
        Ok(())
    }
}

/// Stop: the stop signal, then SIGKILL after `timeout` seconds (POST /stop).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Stop {
    pub signal: i32,
    pub timeout: Duration,
}

impl Handler<Stop> for ContainerActor {
    type Result = ResponseActFuture<Self, Result<()>>;

    fn handle(&mut self, msg: Stop, ctx: &mut Context<Self>) -> Self::Result {
        if self.running().is_none() && self.starting {
            // A start is under way (the policy's, after its delay): the stop
            // waits for it, then stops what it started. Answering "already
            // stopped" now would let the policy bring it back after we said so.
            self.stop_requested(ctx);
            let mut start_ended = self.start_ends.subscribe();
            let addr = ctx.address();
            let fut = async move {
                let _ = start_ended.changed().await;
                match addr.send(msg).await {
                    Ok(Err(e)) if e.kind() == ErrorKind::NotModified => Ok(()),
                    Ok(r) => r,
                    Err(e) => Err(Error::unavailable(format!("container actor: {e}"))),
                }
            };
            return Box::pin(fut.into_actor(self));
        }
        let Some((pid, paused)) = self.running() else {
            let result = if self.restart_pending && self.stop_requested(ctx) {
                Ok(()) // it was restarting: now it stays stopped
            } else {
                Err(Error::new(
                    ErrorKind::NotModified,
                    "container already stopped",
                ))
            };
            return Box::pin(actix::fut::ready(result));
        };
        self.stop_requested(ctx);
        let mut exits = self.exits.subscribe();
        let (rt, id) = (self.rt.clone(), self.id.clone());
        let fut = async move {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            if let Ok(sig) = nix::sys::signal::Signal::try_from(msg.signal) {
                note_container(
                    &rt.events,
                    &id,
                    "kill".into(),
                    vec![("signal".into(), msg.signal.to_string())],
                );
                let _ = nix::sys::signal::kill(pid, sig);
            }
            if paused {
                thaw(&rt, &id).await;
            }
            if tokio::time::timeout(msg.timeout, exits.changed())
                .await
                .is_err()
            {
                note_container(
                    &rt.events,
                    &id,
                    "kill".into(),
                    vec![("signal".into(), "9".into())],
                );
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = tokio::time::timeout(Duration::from_secs(10), exits.changed()).await;
            }
            note_container(&rt.events, &id, "stop".into(), Vec::new());
            Ok(())
        };
        Box::pin(fut.into_actor(self))
    }
}

/// The exit counter, for streams that end when the container does.
#[derive(Message)]
#[rtype(result = "watch::Receiver<u64>")]
pub struct Subscribe;

impl Handler<Subscribe> for ContainerActor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, _: Subscribe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.exits.subscribe())
    }
}

/// The container is being removed: answer `removed` waiters and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Removed;

impl Handler<Removed> for ContainerActor {
    type Result = ();

    fn handle(&mut self, _: Removed, ctx: &mut Context<Self>) {
        self.notify(true);
        ctx.stop();
    }
}
