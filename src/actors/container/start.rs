//! The start path: the sandbox, the bundle and the shim, then `ContainerStarted`;
//! a failed start gives back all it took.

use actix::prelude::*;
use tracing::info;

use super::*;
use crate::actors::event_log::append;
use crate::drivers::exec::proto::Request;
use crate::error::{Error, ErrorKind, Result};
use crate::events::projection::ContainerStatus;
use crate::events::Event;

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

/// Resolves once no start of this container is under way.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartSettled;

impl Handler<StartSettled> for ContainerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StartSettled, _: &mut Context<Self>) -> Self::Result {
        if !self.starting {
            return Box::pin(async {});
        }
        let mut ended = self.start_ends.subscribe();
        Box::pin(async move {
            let _ = ended.changed().await;
        })
    }
}

impl ContainerActor {
    pub(super) fn start(
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
            let mut body = crate::containers::render::body(&c);
            // The daemon's default-ulimits, as dockerd merges them into the
            // spec at each start (inspect keeps the container's own).
            crate::containers::config::merge_default_ulimits(
                &mut body,
                &rt.command.default_ulimits(),
            );
            let runtime = rt.command.of(&c)?;
            let sandbox_at = std::time::Instant::now();
            let namespaces = crate::containers::namespaces::plan(
                &body,
                &rt.projection.current(),
                &rt.containers_dir,
                &id,
            );
            let userns = match &namespaces {
                Ok(_) => make_userns(&rt, &id, &body).await,
                Err(e) => Err(e.clone()),
            };
            let sandbox = match userns {
                Ok(userns) => rt
                    .network
                    .send(crate::actors::network_controller::PrepareSandbox {
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
            let sandbox = match sandbox {
                Ok(sandbox) => mounts_of(&rt, &c).await.map(|m| (sandbox, m)),
                Err(e) => Err(e),
            };
            let prep = match sandbox.and_then(|(s, m)| namespaces.map(|n| (s, m, n))) {
                Ok((sandbox, mounts, namespaces)) => {
                    let (rt, id, body) = (rt.clone(), id.clone(), body.clone());
                    tokio::task::spawn_blocking(move || {
                        let rotation = crate::containers::config::log_rotation_of(&body)?;
                        bundle::prepare(
                            &id,
                            &body,
                            &rt.layers,
                            &rt.exec_root,
                            &rt.containers_dir.join(&id),
                            &runtime,
                            &rt.command.shim,
                            &sandbox,
                            rotation,
                            crate::containers::health::check(&body),
                            &mounts,
                            &namespaces,
                            &rt.command.cgroup_parent,
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
            act.start_ends.send_modify(|n| *n += 1);
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
                    act.notify_start_failed();
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
pub(super) async fn start_failed(
    rt: &Runtime,
    id: &str,
    bundle_dir: &std::path::Path,
    e: &str,
) -> Error {
    release_network(rt, id).await;
    bundle::release(&rt.layers, &rt.exec_root, &rt.containers_dir.join(id), id);
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
pub(super) async fn make_userns(
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
pub(super) async fn release_network(rt: &Runtime, id: &str) {
    let _ = rt
        .network
        .send(crate::actors::network_controller::ReleaseSandbox { id: id.to_string() })
        .await;
}

/// A runtime's error in the words the docker CLI reads (it exits 127 for
/// "executable file not found" and "no such file or directory", 126 for
/// "permission denied"): libcontainer says "executable 'x' not found in
/// $PATH"; runc, and so dockerd, `exec: "x": executable file not found in $PATH`.
pub fn runtime_words(e: &str) -> String {
    format!(
        "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: {}: unknown",
        crate::drivers::exec::proto::runc_detail(e)
    )
}

/// Starts the shim on `bundle` and reads its first line: the created
/// container's pid, or why it could not be created.
pub(super) async fn launch(
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

/// What a start mounts: the container's recorded mounts, each volume's data
/// found (and mounted, for one made with options) by the VolumeService.
async fn mounts_of(
    rt: &Runtime,
    c: &crate::events::projection::ContainerRecord,
) -> Result<Vec<crate::drivers::exec::spec::Mount>> {
    use crate::containers::mounts::{self, Kind};
    let mut planned = mounts::recorded(c)?;
    mounts::check_on_host(&planned)?;
    let names: Vec<String> = planned
        .iter()
        .filter(|m| m.kind == Kind::Volume)
        .map(|m| m.name.clone())
        .collect();
    if !names.is_empty() {
        let paths = rt
            .volumes
            .send(crate::actors::volume_service::MountVolumes(names))
            .await
            .map_err(|e| Error::unavailable(format!("volume service: {e}")))??;
        for (m, path) in planned
            .iter_mut()
            .filter(|m| m.kind == Kind::Volume)
            .zip(paths)
        {
            m.source = path.display().to_string();
        }
    }
    Ok(planned.iter().map(|m| m.runtime()).collect())
}
