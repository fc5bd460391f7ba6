//! The ContainerActor: one per container, the only one that starts, signals and
//! watches it, so its operations are serialized. Start mounts the rootfs, writes
//! the bundle and launches the shim; a task waits for the shim's exit and the
//! actor records it. Its state lives in the projection (events), not here: the
//! actor keeps only who is waiting.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{oneshot, watch};

use super::event_log::EventLog;
use crate::containers::exec::ExecRegistry;
use crate::containers::restart::{self, Backoff};
use crate::drivers::exec::proto::{Created, ExitStatus, EXIT_FILE};
use crate::drivers::exec::{bundle, client};
use crate::drivers::storage::LayerStore;
use crate::error::Error;
use crate::events::projection::{ContainerStatus, Projection};

mod control;
mod exit;
mod health;
mod io;
mod reconnect;
mod recover;
mod runtimes;
mod start;

use control::thaw;
pub use control::{Commit, Pause, RemoveLink, Update};
pub use exit::{remove_container, Kill, Removed, Stop, Subscribe, Wait};
use io::{join_attach, PendingAttach};
pub use io::{Attach, ClientIo, ClientStream, Resize};
pub use reconnect::Reconnect;
pub use recover::Leftovers;
pub use runtimes::{RuntimeCommand, BUILTIN_RUNTIME};
use start::release_network;
pub use start::{runtime_words, PolicyStart, Start, StartSettled};

/// The shim's pid, in the bundle: a daemon that starts again watches it.
const SHIM_PID: &str = "shim.pid";

/// Paths and handles every container actor shares.
#[derive(Clone)]
pub struct Runtime {
    pub events: Addr<EventLog>,
    pub projection: Projection,
    pub layers: Arc<LayerStore>,
    pub exec_root: PathBuf,
    /// `<data-root>/containers`
    pub containers_dir: PathBuf,
    pub command: RuntimeCommand,
    pub execs: ExecRegistry,
    pub network: Addr<crate::actors::network_controller::NetworkController>,
    /// Where `docker commit` sends the new layer.
    pub images: Addr<super::image_service::ImageService>,
    /// Where a start finds its volumes' data.
    pub volumes: Addr<super::volume_service::VolumeService>,
}

impl Runtime {
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.containers_dir.join(id).join(format!("{id}-json.log"))
    }

    /// `<data-root>/tmp`: spooled archives.
    pub fn tmp_dir(&self) -> PathBuf {
        self.containers_dir.with_file_name("tmp")
    }

    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// What /wait answers.
#[derive(Debug, Clone)]
pub struct WaitOutcome {
    pub status_code: i64,
    pub error: Option<String>,
}

pub struct ContainerActor {
    pub(super) id: String,
    pub(super) rt: Runtime,
    waiters: Vec<(WaitCondition, oneshot::Sender<WaitOutcome>)>,
    /// Bumped at each exit: attach and `logs -f` end when it moves.
    exits: watch::Sender<u64>,
    starting: bool,
    /// Bumped each time a start ends (started or failed): a stop waits on it.
    start_ends: watch::Sender<u64>,
    /// The outcome of the last exit, for waiters answered after removal.
    last: WaitOutcome,
    pending_attaches: Vec<PendingAttach>,
    /// A user stopped or killed this run: its exit is not restarted.
    canceled: bool,
    backoff: Backoff,
    /// The restart policy decided to start it again and has not yet.
    restart_pending: bool,
    restart_timer: Option<SpawnHandle>,
}

impl ContainerActor {
    pub fn new(id: String, rt: Runtime) -> Self {
        ContainerActor {
            id,
            rt,
            waiters: Vec::new(),
            exits: watch::channel(0).0,
            starting: false,
            start_ends: watch::channel(0).0,
            last: WaitOutcome {
                status_code: 0,
                error: None,
            },
            pending_attaches: Vec::new(),
            canceled: false,
            backoff: Backoff::default(),
            restart_pending: false,
            restart_timer: None,
        }
    }

    fn notify(&mut self, removed: bool) {
        let state = self.rt.projection.current();
        // Once removed, the record is gone: answer with the last exit seen.
        if let Some(c) = state.containers.get(&self.id) {
            self.last = WaitOutcome {
                status_code: c.exit_code as i64,
                error: Some(c.error.clone()).filter(|e| !e.is_empty()),
            };
        }
        let outcome = self.last.clone();
        let waiters = std::mem::take(&mut self.waiters);
        for (cond, tx) in waiters {
            if cond == WaitCondition::Removed && removed {
                // As dockerd: a removed container's wait reports only its code.
                let _ = tx.send(WaitOutcome {
                    error: None,
                    ..outcome.clone()
                });
            } else if cond != WaitCondition::Removed {
                let _ = tx.send(outcome.clone());
            } else {
                self.waiters.push((cond, tx));
            }
        }
    }
}

impl ContainerActor {
    /// A start that failed ends no run: as dockerd, only `not-running`
    /// waiters are answered; `next-exit` ones wait for a real exit (the CLI
    /// printed "Error waiting for container" on every failed `docker run`).
    pub(super) fn notify_start_failed(&mut self) {
        let (answered, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(cond, _)| *cond == WaitCondition::NotRunning);
        self.waiters = kept;
        let pending = std::mem::replace(&mut self.waiters, answered);
        self.notify(false);
        self.waiters.extend(pending);
    }
}

impl Actor for ContainerActor {
    type Context = Context<Self>;
}

impl ContainerActor {
    /// `(pid, paused)` while the projection says the container runs.
    pub(super) fn running(&self) -> Option<(u32, bool)> {
        self.rt
            .projection
            .current()
            .containers
            .get(&self.id)
            .filter(|c| c.status == ContainerStatus::Running)
            .map(|c| (c.pid, c.paused))
    }
}

pub(super) fn not_running(id: &str) -> Error {
    Error::conflict(format!("Container {id} is not running"))
}
