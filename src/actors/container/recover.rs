//! Start-up reconciliation of what a killed daemon left half done, before the
//! networks are set up again and before the API answers:
//!
//! - a start cut after its shim was launched but before `ContainerStarted`
//!   was recorded: the shim runs on with the container created (or already
//!   started). The start is finished and recorded, so the container is
//!   watched like any other; a shim that cannot finish it is ended.
//! - a start cut before its shim ran, or one whose shim was ended: its
//!   rootfs mount, user namespace and bundle are taken back.
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
use crate::drivers::exec::proto::Request;
use crate::drivers::storage::LayerStore;
use crate::events::projection::{ContainerRecord, ContainerStatus, State};
use crate::events::Event;

/// How long a shim that is still creating its container is waited for.
const SHIM_ANSWER: Duration = Duration::from_secs(30);
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
            if c.status != ContainerStatus::Running
                && (self.bundle_dir(&c.id).exists() || holds_start_traces(c))
            {
                self.settle_cut_start(c).await;
            }
        }
        for id in self.unknown_ids(state) {
            self.remove_unknown(&id).await;
        }
    }

    /// A container the log says is not running has a bundle: a start of it
    /// was cut by the daemon's end.
    async fn settle_cut_start(&self, c: &ContainerRecord) {
        let id = c.id.as_str();
        let dir = self.bundle_dir(id);
        if let Some(shim) = open_shim(&dir) {
            if let Some(pid) = finish_start(&dir).await {
                let recorded = append(
                    &self.events,
                    Event::ContainerStarted {
                        id: id.to_string(),
                        pid,
                    },
                )
                .await;
                match recorded {
                    Ok(_) => {
                        info!(container = %id, pid, "repaired: a start cut by the daemon's end had its shim running; finished it and recorded it as started");
                        return;
                    }
                    Err(e) => warn!(container = %id, error = %e, "recording a cut start"),
                }
            }
            end_shim(shim, &dir).await;
            info!(container = %id, "repaired: ended the shim of a start cut by the daemon's end");
        }
        self.take_back(id, &dir);
        // The start may have recorded addresses and ports: they go back, as
        // after a start that failed (the container keeps its status).
        if holds_start_traces(c) {
            let undone = Event::ContainerExited {
                id: id.to_string(),
                exit_code: c.exit_code,
                oom_killed: false,
                error: "the start was cut short: the daemon ended during it".into(),
            };
            if let Err(e) = append(&self.events, undone).await {
                warn!(container = %id, error = %e, "recording an undone start");
            }
        }
        info!(container = %id, "repaired: removed the mount and bundle of a start cut by the daemon's end");
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
        self.layers.unmount_rw(id);
        crate::drivers::userns::release(&self.exec_root, id);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Ids with a directory in `<data-root>/containers` or a bundle, that the
    /// log does not know.
    fn unknown_ids(&self, state: &State) -> Vec<String> {
        let mut ids: Vec<String> = [self.containers_dir.clone(), self.exec_root.join("containers")]
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
async fn finish_start(dir: &Path) -> Option<u32> {
    // A shim still creating the container answers once it has.
    match tokio::time::timeout(SHIM_ANSWER, client::call(dir, &Request::Start)).await {
        Ok(Ok(reply)) if reply.pid > 0 => return Some(reply.pid),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => info!(dir = %dir.display(), error = %e, "finishing a cut start"),
        Err(_) => warn!(dir = %dir.display(), "a cut start's shim did not answer"),
    }
    // Started before the daemon's end: the runtime refuses a second start.
    let pid = init_pid(dir)?;
    alive(pid).then_some(pid)
}

/// Ends the shim on `dir`: its container's process first (the shim then
/// deletes the container from the runtime and exits), the shim itself if it
/// does not end in time.
async fn end_shim(shim: std::os::fd::OwnedFd, dir: &Path) {
    use std::os::fd::AsRawFd;
    if let Some(pid) = init_pid(dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let ended = match shim.try_clone() {
        Ok(watch) => tokio::time::timeout(SHIM_END, shim_ended(watch)).await.is_ok(),
        Err(_) => false,
    };
    if !ended {
        warn!(dir = %dir.display(), "a shim did not end with its container; killing it");
        // SAFETY: pidfd_send_signal on a pidfd we own, with no siginfo.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, shim.as_raw_fd(), libc::SIGKILL, 0, 0);
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

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}
