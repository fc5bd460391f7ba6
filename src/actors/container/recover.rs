//! Start-up reconciliation of what a killed daemon left half done, before the
//! networks are set up again and before the API answers:
//!
//! - a start cut after its shim was launched but before `ContainerStarted`
//!   was recorded: the shim runs on with the container created (or already
//!   started). The start is finished and recorded, so the container is
//!   watched like any other; a shim that cannot finish it is ended.
//! - a start cut before its shim ran, or one whose shim was ended: its
//!   rootfs mount, user namespace and bundle are taken back.
//! - a `network connect` of a running container cut before it joined the
//!   network: undone.
//! - a container the log no longer knows (a removal cut after its record, a
//!   create cut before it): its shim and process are ended, and its layer,
//!   mount and directories removed.
//!
//! Running here, before the network controller starts, matters: that start
//! removes the namespaces and rewrites the rules of containers the log says
//! are not running, which must already count an adopted one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::reconnect::{open_shim, shim_ended};
use crate::actors::event_log::{append, EventLog};
use crate::drivers::exec::client;
use crate::drivers::exec::proto::{Request, EXIT_FILE, SHIM_SOCKET};
use crate::drivers::storage::LayerStore;
use crate::events::projection::{ContainerRecord, ContainerStatus, State};
use crate::events::Event;

/// How long a shim that is still creating its container is waited for.
const SHIM_ANSWER: Duration = Duration::from_secs(60);
/// How long a shim is given to end after its container's process is killed.
const SHIM_END: Duration = Duration::from_secs(10);

/// What reconciliation works on: the container parts of a daemon's roots.
pub struct Leftovers {
    pub events: actix::Addr<EventLog>,
    pub layers: Arc<LayerStore>,
    pub exec_root: PathBuf,
    /// `<data-root>/containers`
    pub containers_dir: PathBuf,
}

impl Leftovers {
    fn bundle_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }

    /// Settles every container whose files say something other than the log.
    pub async fn settle(&self, state: &State) {
        for c in state.containers.values() {
            if c.status == ContainerStatus::Running {
                self.settle_cut_connects(state, c).await;
                continue;
            }
            if self.bundle_dir(&c.id).exists() || holds_start_traces(c) {
                self.settle_cut_start(c).await;
            } else {
                // A start cut before it wrote its bundle may have mounted the
                // rootfs or made the user namespace already.
                crate::drivers::exec::bundle::release(
                    &self.layers,
                    &self.exec_root,
                    &self.containers_dir.join(&c.id),
                    &c.id,
                );
            }
        }
        for id in self.unknown_ids(state) {
            self.remove_unknown(&id).await;
        }
    }

    /// A container the log says is not running has a bundle (or the
    /// addresses a start records): a start of it was cut by the daemon's end.
    async fn settle_cut_start(&self, c: &ContainerRecord) {
        let id = c.id.as_str();
        let dir = self.bundle_dir(id);
        if let Some(shim) = open_shim(&dir) {
            if let Some(pid) = finish_start(&dir, &shim).await {
                if self
                    .record(
                        id,
                        Event::ContainerStarted {
                            id: id.to_string(),
                            pid,
                        },
                    )
                    .await
                {
                    info!(container = %id, pid, "repaired: a start cut by the daemon's end had its shim running; finished it and recorded it as started");
                    return;
                }
            }
            end_shim(shim, &dir).await;
            info!(container = %id, "repaired: ended the shim of a start cut by the daemon's end");
        } else if let Some(exit) = read_exit(&dir) {
            // It started and ended while no daemon watched: its own exit,
            // which the restart policy then reads, not a made-up one.
            let pid = init_pid(&dir).unwrap_or(0);
            if self
                .record(
                    id,
                    Event::ContainerStarted {
                        id: id.to_string(),
                        pid,
                    },
                )
                .await
                && self
                    .record(
                        id,
                        Event::ContainerExited {
                            id: id.to_string(),
                            exit_code: exit.exit_code,
                            oom_killed: exit.oom_killed,
                            error: exit.error,
                        },
                    )
                    .await
            {
                self.take_back(id, &dir);
                info!(container = %id, code = exit.exit_code, "repaired: a start cut by the daemon's end ran and exited meanwhile; recorded both");
                return;
            }
        }
        self.take_back(id, &dir);
        // The start may have recorded addresses and ports: they go back, as
        // after a start that failed (the container keeps its status). Not for
        // a restart the policy had scheduled: the next daemon makes it, and
        // the policy's count goes on.
        if holds_start_traces(c) && !c.restarting {
            let undone = Event::ContainerExited {
                id: id.to_string(),
                exit_code: c.exit_code,
                oom_killed: false,
                error: "the start was cut short: the daemon ended during it".into(),
            };
            self.record(id, undone).await;
        }
        info!(container = %id, "repaired: removed the mount and bundle of a start cut by the daemon's end");
    }

    /// A running container attached to a bridge network without the address
    /// that network gives it: a `network connect` was cut after its record
    /// and before the network was joined (which records the address before
    /// it makes the interface). It is undone.
    async fn settle_cut_connects(&self, state: &State, c: &ContainerRecord) {
        for (network, ep) in &c.networks {
            let bridge = state
                .networks
                .get(network)
                .is_some_and(|n| crate::networks::spec::NetworkSpec::of(n).is_bridge());
            if !bridge || !ep.ip.is_empty() {
                continue;
            }
            let undone = Event::ContainerNetworkDisconnected {
                container: c.id.clone(),
                network: network.clone(),
            };
            if self.record(&c.id, undone).await {
                info!(container = %c.id, network = %network, "repaired: undid a network connect cut by the daemon's end");
            }
        }
    }

    /// Appends `event`; says whether it was recorded.
    async fn record(&self, id: &str, event: Event) -> bool {
        match append(&self.events, event).await {
            Ok(_) => true,
            Err(e) => {
                warn!(container = %id, error = %e, "recording a repair");
                false
            }
        }
    }

    /// A container the log does not know: everything of it goes.
    async fn remove_unknown(&self, id: &str) {
        let dir = self.bundle_dir(id);
        if let Some(shim) = open_shim(&dir) {
            end_shim(shim, &dir).await;
        }
        self.take_back(id, &dir);
        if let Err(e) = self.layers.remove_rw(id) {
            warn!(container = %id, error = %e, "removing the layer of a container the log does not know");
        }
        let _ = std::fs::remove_dir_all(self.containers_dir.join(id));
        info!(container = %id, "repaired: removed the files, mount and processes of a container the log does not know");
    }

    /// What a start makes before its shim: the rootfs mount, the user
    /// namespace and the bundle. (The network namespace and the rules go
    /// with the network controller's start.)
    fn take_back(&self, id: &str, dir: &Path) {
        crate::drivers::exec::bundle::release(
            &self.layers,
            &self.exec_root,
            &self.containers_dir.join(id),
            id,
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Ids with a directory in `<data-root>/containers` or a bundle, that the
    /// log does not know.
    fn unknown_ids(&self, state: &State) -> Vec<String> {
        let mut ids: Vec<String> = [
            self.containers_dir.clone(),
            self.exec_root.join("containers"),
        ]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|id| !state.containers.contains_key(id))
        .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// The record of a start's network (addresses, published ports), which an
/// exit clears: a container not running holds them only when its start was cut.
fn holds_start_traces(c: &ContainerRecord) -> bool {
    !c.ports.is_empty() || c.networks.values().any(|e| !e.ip.is_empty())
}

/// Finishes the start of the container the shim on `dir` serves; answers
/// its process's pid if it runs (started now, or before the daemon's end).
async fn finish_start(dir: &Path, shim: &std::os::fd::OwnedFd) -> Option<u32> {
    // A shim killed with its daemon may not have bound its socket yet: it
    // does, then creates the container, then answers.
    let deadline = tokio::time::Instant::now() + SHIM_ANSWER;
    while !dir.join(SHIM_SOCKET).exists() && tokio::time::Instant::now() < deadline {
        if pidfd_ended(shim) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match tokio::time::timeout_at(deadline, client::call(dir, &Request::Start)).await {
        Ok(Ok(reply)) if reply.pid > 0 => return Some(reply.pid),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => info!(dir = %dir.display(), error = %e, "finishing a cut start"),
        Err(_) => warn!(dir = %dir.display(), "a cut start's shim did not answer"),
    }
    // Started before the daemon's end: the runtime refuses a second start.
    shims_init(dir)
}

/// Ends the shim on `dir`: its container's process first (the shim then
/// deletes the container from the runtime and exits), the shim itself if it
/// does not end in time.
async fn end_shim(shim: std::os::fd::OwnedFd, dir: &Path) {
    use std::os::fd::AsRawFd;
    if let Some(pid) = shims_init(dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let ended = match shim.try_clone() {
        Ok(watch) => tokio::time::timeout(SHIM_END, shim_ended(watch))
            .await
            .is_ok(),
        Err(_) => false,
    };
    if !ended {
        warn!(dir = %dir.display(), "a shim did not end with its container; killing it");
        // SAFETY: pidfd_send_signal on a pidfd we own, with no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                shim.as_raw_fd(),
                libc::SIGKILL,
                0,
                0,
            );
        }
        let _ = tokio::time::timeout(SHIM_END, shim_ended(shim)).await;
    }
}

/// The container's process, as the runtime wrote it at create.
fn init_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("init.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// The container's process if it still is the shim's child (the shim is its
/// subreaper): a pid from a file may have been reused since.
fn shims_init(dir: &Path) -> Option<u32> {
    let pid = init_pid(dir)?;
    let shim: u32 = std::fs::read_to_string(dir.join(super::SHIM_PID))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let parent = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse::<u32>().ok())?;
    (parent == shim).then_some(pid)
}

/// What the shim left in `exit.json` when the container's process ended.
fn read_exit(dir: &Path) -> Option<crate::drivers::exec::proto::ExitStatus> {
    serde_json::from_slice(&std::fs::read(dir.join(EXIT_FILE)).ok()?).ok()
}

/// Whether the process behind a pidfd has ended (the pidfd reads ready).
fn pidfd_ended(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
}
