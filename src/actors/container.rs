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
use tracing::{info, warn};

use super::event_log::{append, EventLog};
use crate::containers::exec::ExecRegistry;
use crate::containers::restart::{self, Backoff};
use crate::drivers::exec::proto::{Created, ExitStatus, Request, EXIT_FILE};
use crate::drivers::exec::{bundle, client};
use crate::drivers::storage::LayerStore;
use crate::error::{Error, ErrorKind, Result};
use crate::events::projection::{ContainerStatus, Projection};
use crate::events::Event;

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
    pub network: Addr<super::network_controller::NetworkController>,
}

/// How containers are run: the shim binary and the OCI runtimes it can drive.
#[derive(Clone)]
pub struct RuntimeCommand {
    /// The shim binary (`berth-shim`, beside berthd).
    pub shim: PathBuf,
    /// The built-in runtime's command line up to its subcommand.
    pub runtime: Vec<String>,
    /// Other runtimes by name (daemon.json `runtimes`, and runc when it is
    /// installed), each with its own state root under the exec root.
    pub others: std::collections::BTreeMap<String, Vec<String>>,
}

/// The name of the built-in runtime (libcontainer behind runc's CLI).
pub const BUILTIN_RUNTIME: &str = "berth";

impl RuntimeCommand {
    /// berth-shim beside berthd, driving `berthd runtime` (libcontainer) with
    /// its state under `<exec-root>/runtime`, and the configured runtimes.
    pub fn new(
        exec_root: &std::path::Path,
        configured: &std::collections::BTreeMap<String, crate::config::RuntimeConfig>,
    ) -> Result<Self> {
        use crate::error::Context as _;
        let exe = std::env::current_exe().context("finding berthd")?;
        let root = |name: &str| exec_root.join("runtimes").join(name).display().to_string();
        let mut others = std::collections::BTreeMap::new();
        // As dockerd, runc is there without configuration (when installed).
        if let Some(runc) = find_in_path("runc") {
            others.insert(
                "runc".to_string(),
                vec![runc, "--root".into(), root("runc")],
            );
        }
        for (name, r) in configured {
            let mut argv = vec![r.path.clone()];
            argv.extend(r.runtime_args.iter().cloned());
            argv.extend(["--root".to_string(), root(name)]);
            others.insert(name.clone(), argv);
        }
        Ok(RuntimeCommand {
            shim: exe.with_file_name("berth-shim"),
            runtime: vec![
                exe.display().to_string(),
                "runtime".into(),
                "--root".into(),
                exec_root.join("runtime").display().to_string(),
            ],
            others,
        })
    }

    /// The command line of the runtime `name` (empty: the built-in one).
    pub fn argv(&self, name: &str) -> Option<&Vec<String>> {
        if name.is_empty() || name == BUILTIN_RUNTIME {
            return Some(&self.runtime);
        }
        self.others.get(name)
    }

    /// The runtime a container was created with.
    pub fn of(&self, c: &crate::events::projection::ContainerRecord) -> Result<&Vec<String>> {
        let name = crate::containers::render::body(c)
            .host_config
            .and_then(|h| h.runtime)
            .unwrap_or_default();
        self.argv(&name)
            .ok_or_else(|| Error::invalid(format!("unknown or invalid runtime name: {name}")))
    }
}

fn find_in_path(binary: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// A client's hijacked connection, handed to the container to stream.
pub trait ClientStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ClientStream for T {}
pub type ClientIo = Box<dyn ClientStream>;

/// An attach that came before the start: joined to the shim between the
/// container's creation and its start, so no output is missed.
pub(super) struct PendingAttach {
    io: ClientIo,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    detach_keys: Option<Vec<u8>>,
}

impl Runtime {
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.containers_dir.join(id).join(format!("{id}-json.log"))
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

/// Joins a client to the main process's stream: the attach request waits
/// until the shim has the client registered (so a start after it misses
/// nothing); the splice then runs on its own.
async fn join_attach(dir: &std::path::Path, id: &str, p: PendingAttach) {
    let req = Request::Attach {
        stdin: p.stdin,
        stdout: p.stdout,
        stderr: p.stderr,
    };
    match client::request(dir, &req).await {
        Ok((reply, stream)) if reply.error.is_empty() => {
            tokio::spawn(async move {
                client::splice(p.io, stream, p.detach_keys).await;
            });
        }
        Ok((reply, _)) => warn!(container = %id, error = %reply.error, "attach"),
        Err(e) => warn!(container = %id, error = %e, "attach"),
    }
}

pub(super) fn not_running(id: &str) -> Error {
    Error::conflict(format!("Container {id} is not running"))
}

/// Start the container (POST /containers/{id}/start).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Start;

impl Handler<Start> for ContainerActor {
    type Result = ResponseActFuture<Self, Result<()>>;

    fn handle(&mut self, _: Start, ctx: &mut Context<Self>) -> Self::Result {
        self.start(true, ctx)
    }
}

/// A start by the restart policy, once its delay is over (or at once, when
/// the daemon starts and finds the container was waiting for one).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct PolicyStart;

impl Handler<PolicyStart> for ContainerActor {
    type Result = ResponseActFuture<Self, Result<()>>;

    fn handle(&mut self, _: PolicyStart, ctx: &mut Context<Self>) -> Self::Result {
        self.restart_pending = true;
        self.start(false, ctx)
    }
}

impl ContainerActor {
    fn start(
        &mut self,
        by_user: bool,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<()>> {
        let state = self.rt.projection.current();
        let Some(c) = state.containers.get(&self.id).cloned() else {
            return Box::pin(actix::fut::ready(Err(Error::not_found(format!(
                "No such container: {}",
                self.id
            )))));
        };
        // A restarting container counts as started, as with dockerd.
        if c.status == ContainerStatus::Running
            || self.starting
            || (by_user && (self.restart_pending || c.restarting))
        {
            return Box::pin(actix::fut::ready(Err(Error::new(
                ErrorKind::NotModified,
                "container already started",
            ))));
        }
        if !by_user && !std::mem::take(&mut self.restart_pending) {
            // Stopped or removed while it waited.
            return Box::pin(actix::fut::ready(Ok(())));
        }
        if by_user {
            // A user's start: a fresh restart manager, as dockerd makes one.
            self.canceled = false;
            self.backoff = Backoff::default();
        }
        if let Some(h) = self.restart_timer.take() {
            ctx.cancel_future(h);
        }
        self.starting = true;
        let rt = self.rt.clone();
        let id = self.id.clone();
        let pending = std::mem::take(&mut self.pending_attaches);
        let fut = async move {
            if by_user {
                append(
                    &rt.events,
                    Event::ContainerStartRequested { id: id.clone() },
                )
                .await?;
            }
            let body = crate::containers::render::body(&c);
            let runtime = rt.command.of(&c)?.clone();
            let sandbox_at = std::time::Instant::now();
            let userns = make_userns(&rt, &id, &body).await;
            let sandbox = match userns {
                Ok(userns) => rt
                    .network
                    .send(super::network_controller::PrepareSandbox {
                        id: id.clone(),
                        body: body.clone(),
                        userns,
                    })
                    .await
                    .map_err(|e| Error::internal(format!("network controller: {e}")))
                    .and_then(|r| r),
                Err(e) => Err(e),
            };
            tracing::debug!(container = %id, sandbox_us = sandbox_at.elapsed().as_micros() as u64, "sandbox");
            let prep = match sandbox {
                Ok(sandbox) => {
                    let (rt, id, body) = (rt.clone(), id.clone(), body.clone());
                    tokio::task::spawn_blocking(move || {
                        bundle::prepare(
                            &id,
                            &body,
                            &rt.layers,
                            &rt.exec_root,
                            &rt.containers_dir.join(&id),
                            &runtime,
                            &rt.command.shim,
                            &sandbox,
                        )
                    })
                    .await
                    .map_err(|e| Error::internal(format!("preparing the bundle: {e}")))?
                }
                Err(e) if e.message().starts_with("Bind for") => Err(e.context(format_args!(
                    "driver failed programming external connectivity on endpoint {} ({id})",
                    c.name
                ))),
                Err(e) => Err(e),
            };
            let b = match prep {
                Ok(b) => b,
                Err(e) => {
                    release_network(&rt, &id).await;
                    crate::drivers::userns::release(&rt.exec_root, &id);
                    let _ = append(
                        &rt.events,
                        Event::ContainerExited {
                            id: id.clone(),
                            exit_code: 128,
                            oom_killed: false,
                            error: e.to_string(),
                        },
                    )
                    .await;
                    return Err(e);
                }
            };
            match launch(&rt.command.shim, &b.dir).await {
                Ok((pid, mut child)) => {
                    for p in pending {
                        join_attach(&b.dir, &id, p).await;
                    }
                    if let Err(e) = client::call(&b.dir, &Request::Start).await {
                        // The init never ran: end it, and the shim with it.
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                        return Err(start_failed(&rt, &id, &b.dir, &e.to_string()).await);
                    }
                    append(
                        &rt.events,
                        Event::ContainerStarted {
                            id: id.clone(),
                            pid,
                        },
                    )
                    .await?;
                    info!(container = %id, pid, "started");
                    Ok(Some((child, b.dir)))
                }
                Err(e) => Err(start_failed(&rt, &id, &b.dir, &e).await),
            }
        };
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            act.starting = false;
            match res {
                Ok(Some((child, dir))) => {
                    let ended = async move {
                        let mut child = child;
                        let _ = child.wait().await;
                    };
                    act.watch_exit(Box::pin(ended), dir, ctx);
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => {
                    // Attached clients and waiters learn that it is over; an
                    // --rm container that could not start goes, as with
                    // dockerd. A start that fails is not restarted (dockerd's
                    // monitor leaves it stopped).
                    act.exits.send_modify(|n| *n += 1);
                    act.notify(false);
                    act.auto_remove(ctx);
                    Err(e)
                }
            }
        }))
    }
}

/// A start that failed: nothing stays mounted, the bundle goes, the exit is
/// recorded with the code the docker CLI expects (127 for a missing binary,
/// 126 for one that cannot be run), and the error is in runc's words.
async fn start_failed(rt: &Runtime, id: &str, bundle_dir: &std::path::Path, e: &str) -> Error {
    release_network(rt, id).await;
    rt.layers.unmount_rw(id);
    crate::drivers::userns::release(&rt.exec_root, id);
    let _ = std::fs::remove_dir_all(bundle_dir);
    let msg = runtime_words(e);
    let code =
        if msg.contains("executable file not found") || msg.contains("no such file or directory") {
            127
        } else if msg.contains("permission denied") {
            126
        } else {
            128
        };
    let _ = append(
        &rt.events,
        Event::ContainerExited {
            id: id.to_string(),
            exit_code: code,
            oom_killed: false,
            error: msg.clone(),
        },
    )
    .await;
    Error::invalid(msg)
}

/// A remapped container's own user namespace (userns-remap), made before
/// its network namespace, which is made inside it.
async fn make_userns(
    rt: &Runtime,
    id: &str,
    body: &bollard_stubs::models::ContainerCreateBody,
) -> Result<Option<std::path::PathBuf>> {
    let Some(remap) = rt
        .layers
        .remap()
        .filter(|_| crate::drivers::userns::private(body.host_config.as_ref()))
        .cloned()
    else {
        return Ok(None);
    };
    let (exec_root, cid) = (rt.exec_root.clone(), id.to_string());
    tokio::task::spawn_blocking(move || {
        crate::drivers::userns::make_container_userns(&remap, &exec_root, &cid)
            .map(|()| Some(crate::drivers::userns::userns_path(&exec_root, &cid)))
    })
    .await
    .map_err(|e| Error::internal(format!("making the user namespace: {e}")))?
}

/// Lets the container's network go: its ports and its namespace.
async fn release_network(rt: &Runtime, id: &str) {
    let _ = rt
        .network
        .send(super::network_controller::ReleaseSandbox { id: id.to_string() })
        .await;
}

/// A runtime's error in the words the docker CLI reads (it exits 127 for
/// "executable file not found" and "no such file or directory", 126 for
/// "permission denied"): libcontainer says "executable 'x' not found in
/// $PATH"; runc, and so dockerd, `exec: "x": executable file not found in $PATH`.
pub fn runtime_words(e: &str) -> String {
    format!(
        "failed to create task: OCI runtime create failed: unable to start container process: {}: unknown",
        runc_detail(e)
    )
}

/// An exec that could not start, in runc's words.
pub fn exec_words(e: &str) -> String {
    format!(
        "OCI runtime exec failed: exec failed: unable to start container process: {}: unknown",
        runc_detail(e)
    )
}

fn runc_detail(e: &str) -> String {
    match e
        .split_once("executable '")
        .and_then(|(_, r)| r.split_once("' not found"))
    {
        Some((binary, _)) => format!("exec: \"{binary}\": executable file not found in $PATH"),
        None => e.to_string(),
    }
}

/// Starts the shim on `bundle` and reads its first line: the created
/// container's pid, or why it could not be created.
async fn launch(
    shim: &std::path::Path,
    bundle_dir: &std::path::Path,
) -> std::result::Result<(u32, tokio::process::Child), String> {
    let shim_log =
        std::fs::File::create(bundle_dir.join("shim.log")).map_err(|e| format!("shim log: {e}"))?;
    let mut child = tokio::process::Command::new(shim)
        .arg(bundle_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(shim_log)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| format!("starting the shim {}: {e}", shim.display()))?;
    // For a daemon that starts again and finds the container running.
    if let Some(pid) = child.id() {
        std::fs::write(bundle_dir.join(SHIM_PID), pid.to_string())
            .map_err(|e| format!("writing {SHIM_PID}: {e}"))?;
    }
    let stdout = child.stdout.take().ok_or("the shim has no stdout")?;
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    match read {
        Ok(Ok(n)) if n > 0 => {}
        _ => {
            let _ = child.start_kill();
            let log = std::fs::read_to_string(bundle_dir.join("shim.log")).unwrap_or_default();
            return Err(format!("the shim did not report: {}", log.trim()));
        }
    }
    let created: Created =
        serde_json::from_str(line.trim()).map_err(|e| format!("the shim said {line:?}: {e}"))?;
    if created.error.is_empty() && created.pid > 0 {
        return Ok((created.pid, child));
    }
    let _ = child.wait().await;
    Err(if created.error.is_empty() {
        "the shim failed".to_string()
    } else {
        created.error
    })
}

impl ContainerActor {
    /// Waits for the shim to end (`ended`), then records the exit it wrote
    /// down, and lets the restart policy decide what comes next.
    fn watch_exit(
        &mut self,
        ended: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
        dir: PathBuf,
        ctx: &mut Context<Self>,
    ) {
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
            rt.layers.unmount_rw(&id);
            crate::drivers::userns::release(&rt.exec_root, &id);
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
    fn apply_restart_policy(&mut self, ctx: &mut Context<Self>) {
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
    fn stop_requested(&mut self, ctx: &mut Context<Self>) -> bool {
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
    fn auto_remove(&mut self, ctx: &mut Context<Self>) -> bool {
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
                if let Err(e) = remove_container(&rt, &id).await {
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
pub async fn remove_container(rt: &Runtime, id: &str) -> Result<()> {
    // The record goes first: a crash after it leaves only files, which the
    // start-up sweep removes; never a record without its layer.
    append(&rt.events, Event::ContainerRemoved { id: id.to_string() }).await?;
    rt.execs.forget_container(id);
    rt.layers.unmount_rw(id);
    crate::drivers::userns::release(&rt.exec_root, id);
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
                let _ = nix::sys::signal::kill(pid, sig);
            }
            if paused {
                thaw(&rt, &id).await;
            }
            if tokio::time::timeout(msg.timeout, exits.changed())
                .await
                .is_err()
            {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = tokio::time::timeout(Duration::from_secs(10), exits.changed()).await;
            }
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

/// Stream the main process to a hijacked client: now if it runs, else at its
/// next start (between creation and start, so nothing it writes is missed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub io: ClientIo,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// What ends the attach and leaves the container running (tty only).
    pub detach_keys: Option<Vec<u8>>,
}

impl Handler<Attach> for ContainerActor {
    type Result = ();

    fn handle(&mut self, msg: Attach, _: &mut Context<Self>) {
        let attach = PendingAttach {
            io: msg.io,
            stdin: msg.stdin,
            stdout: msg.stdout,
            stderr: msg.stderr,
            detach_keys: msg.detach_keys,
        };
        if self.running().is_none() || self.starting {
            self.pending_attaches.push(attach);
            return;
        }
        let dir = self.rt.bundle_dir(&self.id);
        let id = self.id.clone();
        tokio::spawn(async move { join_attach(&dir, &id, attach).await });
    }
}

/// Set the tty size of the main process or of an exec.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Resize {
    pub exec_id: Option<String>,
    pub height: u16,
    pub width: u16,
}

impl Handler<Resize> for ContainerActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: Resize, _: &mut Context<Self>) -> Self::Result {
        let dir = self.rt.bundle_dir(&self.id);
        let id = self.id.clone();
        let running = self.running().is_some();
        Box::pin(async move {
            if !running {
                return Err(not_running(&id));
            }
            client::call(
                &dir,
                &Request::Resize {
                    exec_id: msg.exec_id,
                    height: msg.height,
                    width: msg.width,
                },
            )
            .await
            .map(|_| ())
        })
    }
}

/// Thaws a paused container (so a signal sent to it is taken) and records it.
async fn thaw(rt: &Runtime, id: &str) {
    match runtime_command(rt, &["resume", id]).await {
        Ok(()) => {
            let _ = append(&rt.events, Event::ContainerUnpaused { id: id.to_string() }).await;
        }
        Err(e) => warn!(container = %id, error = %e, "thawing"),
    }
}

impl ContainerActor {
    fn thaw(&mut self, ctx: &mut Context<Self>) {
        let (rt, id) = (self.rt.clone(), self.id.clone());
        ctx.spawn(async move { thaw(&rt, &id).await }.into_actor(self));
    }
}

/// Runs one command of the OCI runtime on this container (pause, resume):
/// a short-lived process, so libcontainer never runs in the daemon.
async fn runtime_command(rt: &Runtime, args: &[&str]) -> Result<()> {
    let state = rt.projection.current();
    let c = state
        .containers
        .get(args.last().copied().unwrap_or_default())
        .ok_or_else(|| Error::not_found("No such container"))?;
    let runtime = rt.command.of(c)?;
    let mut cmd = tokio::process::Command::new(&runtime[0]);
    cmd.args(&runtime[1..])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let out = cmd
        .output()
        .await
        .map_err(|e| Error::internal(format!("running the runtime: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "the runtime failed to {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Freeze (docker pause) or thaw (docker unpause) the container's processes.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Pause(pub bool);

impl Handler<Pause> for ContainerActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: Pause, _: &mut Context<Self>) -> Self::Result {
        let rt = self.rt.clone();
        let id = self.id.clone();
        let current = self.running().map(|(_, paused)| paused);
        Box::pin(async move {
            match (current, msg.0) {
                (None, _) => return Err(not_running(&id)),
                (Some(true), true) => {
                    return Err(Error::conflict(format!("Container {id} is already paused")))
                }
                (Some(false), false) => {
                    return Err(Error::conflict(format!("Container {id} is not paused")))
                }
                _ => {}
            }
            let (verb, event) = if msg.0 {
                ("pause", Event::ContainerPaused { id: id.clone() })
            } else {
                ("resume", Event::ContainerUnpaused { id: id.clone() })
            };
            runtime_command(&rt, &[verb, &id]).await?;
            append(&rt.events, event).await?;
            info!(container = %id, verb, "done");
            Ok(())
        })
    }
}

/// The daemon started and found this container running: watch its shim
/// again, or, if it ended while no daemon watched, record how.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconnect;

impl Handler<Reconnect> for ContainerActor {
    type Result = ();

    fn handle(&mut self, _: Reconnect, ctx: &mut Context<Self>) {
        let dir = self.rt.bundle_dir(&self.id);
        let ended: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = match open_shim(&dir)
        {
            Some(fd) => {
                info!(container = %self.id, "watching its shim again");
                Box::pin(shim_ended(fd))
            }
            None => Box::pin(async {}),
        };
        self.watch_exit(ended, dir, ctx);
    }
}

/// A pidfd of the shim that serves `bundle`, if it still runs: the pid in
/// its file is taken for the shim only while that process runs on this
/// bundle (pids are reused).
fn open_shim(bundle: &std::path::Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let pid: i32 = std::fs::read_to_string(bundle.join(SHIM_PID))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this fd; nothing else owns it.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // Read after the pidfd is held: if this is our shim now, the pidfd is its.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == bundle.as_os_str().as_bytes());
    ours.then_some(fd)
}

/// Resolves when the process behind `pidfd` has ended (a pidfd turns
/// readable then).
async fn shim_ended(pidfd: std::os::fd::OwnedFd) {
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same
    // until it is dropped with it.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    };
    match registered {
        Ok(fd) => {
            let _ = fd.readable().await;
        }
        Err(e) => warn!(error = %e, "watching a shim's pidfd"),
    }
}

/// New resource limits or restart policy (POST /containers/{id}/update):
/// written to the running container's cgroup, then recorded.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Update(pub bollard_stubs::models::ContainerUpdateBody);

impl Handler<Update> for ContainerActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: Update, _: &mut Context<Self>) -> Self::Result {
        use crate::containers::update;
        let state = self.rt.projection.current();
        let rt = self.rt.clone();
        let id = self.id.clone();
        let Some(c) = state.containers.get(&self.id).cloned() else {
            return Box::pin(
                async move { Err(Error::not_found(format!("No such container: {id}"))) },
            );
        };
        let running = self.running().is_some();
        Box::pin(async move {
            let mut body = crate::containers::render::body(&c);
            let mut host = body.host_config.take().unwrap_or_default();
            update::merge(&mut host, &msg.0)?;
            let cpus = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            crate::containers::config::validate_host_config(&host, cpus)?;
            if running {
                let mount = std::path::Path::new("/sys/fs/cgroup");
                let writes = update::cgroup_writes(&host, update::unified(mount));
                update::apply(mount, &bundle::cgroup_path(&id), &writes)?;
            }
            body.host_config = Some(host);
            let config = serde_json::to_string(&body)
                .map_err(|e| Error::internal(format!("recording the config: {e}")))?;
            append(
                &rt.events,
                Event::ContainerUpdated {
                    id: id.clone(),
                    config,
                },
            )
            .await?;
            info!(container = %id, "updated");
            Ok(())
        })
    }
}
