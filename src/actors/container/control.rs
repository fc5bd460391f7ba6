//! What changes a running container in place: pause and unpause (through
//! the OCI runtime), new limits (update).

use actix::prelude::*;
use tracing::{info, warn};

use super::*;
use crate::actors::event_log::append;
use crate::error::{Error, Result};
use crate::events::projection::ContainerStatus;
use crate::events::Event;

/// Thaws a paused container (so a signal sent to it is taken) and records it.
pub(super) async fn thaw(rt: &Runtime, id: &str) {
    match runtime_command(rt, &["resume", id]).await {
        Ok(()) => {
            let _ = append(&rt.events, Event::ContainerUnpaused { id: id.to_string() }).await;
        }
        Err(e) => warn!(container = %id, error = %e, "thawing"),
    }
}

impl ContainerActor {
    pub(super) fn thaw(&mut self, ctx: &mut Context<Self>) {
        let (rt, id) = (self.rt.clone(), self.id.clone());
        ctx.spawn(async move { thaw(&rt, &id).await }.into_actor(self));
    }
}

/// Runs one command of the OCI runtime on this container (pause, resume):
/// a short-lived process, so libcontainer never runs in the daemon.
pub(super) async fn runtime_command(rt: &Runtime, args: &[&str]) -> Result<()> {
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
            set_paused(&rt, &id, msg.0).await
        })
    }
}

/// Freezes or thaws the container through its runtime, and records it.
pub(super) async fn set_paused(rt: &Runtime, id: &str, pause: bool) -> Result<()> {
    let (verb, event) = if pause {
        ("pause", Event::ContainerPaused { id: id.to_string() })
    } else {
        ("resume", Event::ContainerUnpaused { id: id.to_string() })
    };
    runtime_command(rt, &[verb, id]).await?;
    append(&rt.events, event).await?;
    info!(container = %id, verb, "done");
    Ok(())
}

/// `docker commit`: the container's changes become a new image on top of its
/// own. A running container is frozen meanwhile (unless the request says not
/// to); the handler is atomic, so no stop or pause comes between the freeze
/// and the thaw. Returns the new image's ID.
#[derive(Message)]
#[rtype(result = "Result<String>")]
pub struct Commit(pub crate::images::commit::CommitRequest);

impl Handler<Commit> for ContainerActor {
    type Result = AtomicResponse<Self, Result<String>>;

    fn handle(&mut self, msg: Commit, _: &mut Context<Self>) -> Self::Result {
        let (rt, id) = (self.rt.clone(), self.id.clone());
        AtomicResponse::new(Box::pin(
            async move { commit(&rt, &id, msg.0).await }.into_actor(self),
        ))
    }
}

pub(super) async fn commit(
    rt: &Runtime,
    id: &str,
    req: crate::images::commit::CommitRequest,
) -> Result<String> {
    use crate::containers::render;
    use crate::images::commit::{new_config, CommitSpec};
    let state = rt.projection.current();
    let c = state
        .containers
        .get(id)
        .cloned()
        .ok_or_else(|| Error::not_found(format!("No such container: {id}")))?;
    let parent = state
        .images
        .get(&c.image)
        .ok_or_else(|| Error::not_found(format!("No such image: {}", c.image)))?;
    let body = render::body(&c);
    let spec = CommitSpec {
        container_id: c.id.clone(),
        container_config: render::inspect_config(&body),
        user_config: req.user_config,
        changes: req.changes,
        author: req.author,
        comment: req.comment,
        parent_id: c.image.clone(),
        parent_config: Vec::new(),
        parent_chain: parent.chain_ids.clone(),
        created: crate::clock::rfc3339_now(),
        build_step: req.build_step.clone(),
    };
    // Bad changes are refused before anything is frozen or written.
    new_config(&spec)?;
    let mut freeze = req.pause && c.status == ContainerStatus::Running && !c.paused;
    if freeze {
        if let Err(e) = set_paused(rt, id, true).await {
            // Exiting, its exit not recorded yet: dockerd commits such a
            // container as it is (docker-py pauses by default, often right
            // after a short command).
            if alive(c.pid) {
                return Err(e);
            }
            tracing::debug!(container = %id, error = %e, "committing an exiting container without a pause");
            freeze = false;
        }
    }
    let written = {
        let (dir, upper) = (rt.tmp_dir(), rt.layers.rw_diff_dir(id));
        let ids = rt
            .layers
            .remap()
            .filter(|_| crate::drivers::userns::private(body.host_config.as_ref()))
            .map(|r| r.shift());
        let short = id[..12.min(id.len())].to_string();
        tokio::task::spawn_blocking(move || {
            let (spool, file) = crate::spool::Spool::create(&dir, &format!("commit-{short}"))?;
            crate::containers::archive::layer_tar(&upper, ids, std::io::BufWriter::new(file))?;
            Ok::<_, Error>(spool)
        })
        .await
        .map_err(|e| Error::internal(format!("spooling the layer: {e}")))
        .and_then(|r| r)
    };
    if freeze {
        set_paused(rt, id, false).await?;
    }
    let comment = spec.comment.clone();
    let image_ref = req
        .tag
        .as_ref()
        .and_then(|t| t.clone().with_default_tag().familiar_tagged())
        .unwrap_or_default();
    let image_id = rt
        .images
        .send(crate::actors::image_service::CommitImage {
            layer_tar: written?,
            spec,
            tag: req.tag,
        })
        .await
        .map_err(|e| Error::unavailable(format!("image service: {e}")))??;
    crate::actors::event_log::note_container(
        &rt.events,
        id,
        "commit".into(),
        vec![
            ("comment".into(), comment),
            ("imageID".into(), image_id.clone()),
            ("imageRef".into(), image_ref),
        ],
    );
    Ok(image_id)
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
                update::apply(mount, &bundle::running_cgroup(&rt.exec_root, &id), &writes)?;
            }
            body.host_config = Some(host);
            record_config(&rt, &id, &body).await?;
            info!(container = %id, "updated");
            Ok(())
        })
    }
}

/// `docker rm --link parent/alias`: the link goes from the container's
/// config, and from its /etc/hosts while it runs (its environment keeps the
/// link's variables until it starts again, as with dockerd).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct RemoveLink(pub String);

impl Handler<RemoveLink> for ContainerActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: RemoveLink, _: &mut Context<Self>) -> Self::Result {
        use crate::networks::links;
        let state = self.rt.projection.current();
        let rt = self.rt.clone();
        let id = self.id.clone();
        let running = self.running().is_some();
        let c = state.containers.get(&self.id).cloned();
        Box::pin(async move {
            let c = c.ok_or_else(|| Error::not_found(format!("No such container: {id}")))?;
            let mut body = crate::containers::render::body(&c);
            let mut host = body.host_config.take().unwrap_or_default();
            let mut kept = host.links.take().unwrap_or_default();
            let before = kept.len();
            kept.retain(|l| links::parse(l).1 != msg.0);
            if kept.len() == before {
                return Err(Error::not_found(format!("No such link: {}", msg.0)));
            }
            host.links = (!kept.is_empty()).then_some(kept);
            body.host_config = Some(host);
            record_config(&rt, &id, &body).await?;
            if running {
                let path = rt.containers_dir.join(&id).join("hosts");
                if let Ok(hosts) = std::fs::read_to_string(&path) {
                    let _ = std::fs::write(&path, links::without_hosts_line(&hosts, &msg.0));
                }
            }
            info!(container = %id, link = %msg.0, "link removed");
            Ok(())
        })
    }
}

/// Records container `id`'s changed config (docker update, rm --link).
async fn record_config(
    rt: &super::Runtime,
    id: &str,
    body: &bollard_stubs::models::ContainerCreateBody,
) -> Result<()> {
    let config = serde_json::to_string(body)
        .map_err(|e| Error::internal(format!("recording the config: {e}")))?;
    append(
        &rt.events,
        Event::ContainerUpdated {
            id: id.to_string(),
            config,
        },
    )
    .await?;
    Ok(())
}

/// Whether process `pid` runs (a zombie does not: its exit is on its way).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the command's closing parenthesis.
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|s| s != "Z" && s != "X")
        })
        .unwrap_or(false)
}
