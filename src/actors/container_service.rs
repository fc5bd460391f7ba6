//! The ContainerService actor: the registry of containers. It reserves names,
//! creates (image defaults merged, read-write layer made, `ContainerCreated`
//! appended), renames and removes. Handlers are atomic, so two creates never
//! take one name. What happens to a running container (start, stop, exec) is
//! the business of its own actor.

use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use bollard_stubs::models::{ContainerConfig, ContainerCreateBody};
use tracing::info;

use super::container::{remove_container, ContainerActor, Runtime, RuntimeCommand};
use super::event_log::{append, EventLog};
use super::volume_service::{EnsureVolumes, Release, RemoveUnused, VolumeService, VolumeWant};
use crate::containers::config::{merge, valid_name, validate_host_config};
use crate::containers::mounts::{Kind, Planned};
use crate::containers::names::random_name;
use crate::drivers::storage::LayerStore;
use crate::error::{Context as _, Error, Result};
use crate::events::projection::HEALTH_STARTING;
use crate::events::projection::{ContainerStatus, Projection, State};
use crate::events::Event;
use crate::registry::reference::Reference;
use crate::store::blobs::BlobStore;

pub struct ContainerService {
    /// The actor of each container that has one (made on first use).
    actors: std::collections::HashMap<String, Addr<ContainerActor>>,
    exec_root: PathBuf,
    layers: Arc<LayerStore>,
    blobs: Arc<BlobStore>,
    events: Addr<EventLog>,
    projection: Projection,
    /// `<data-root>/containers`: one directory per container (its log, later
    /// hostname, hosts and resolv.conf).
    containers_dir: PathBuf,
    cpus: usize,
    command: RuntimeCommand,
    execs: crate::containers::exec::ExecRegistry,
    network: Addr<super::network_controller::NetworkController>,
    images: Addr<super::image_service::ImageService>,
    volumes: Addr<super::volume_service::VolumeService>,
}

impl ContainerService {
    pub fn new(
        layers: Arc<LayerStore>,
        blobs: Arc<BlobStore>,
        events: Addr<EventLog>,
        projection: Projection,
        data_root: &std::path::Path,
        exec_root: &std::path::Path,
        command: RuntimeCommand,
        execs: crate::containers::exec::ExecRegistry,
        network: Addr<super::network_controller::NetworkController>,
        images: Addr<super::image_service::ImageService>,
        volumes: Addr<super::volume_service::VolumeService>,
    ) -> Self {
        ContainerService {
            actors: std::collections::HashMap::new(),
            exec_root: exec_root.to_path_buf(),
            layers,
            blobs,
            events,
            projection,
            containers_dir: data_root.join("containers"),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            command,
            execs,
            network,
            images,
            volumes,
        }
    }
}

impl Actor for ContainerService {
    type Context = Context<Self>;
}

fn random_u64() -> Result<u64> {
    crate::random::u64()
}

fn new_id(state: &State) -> Result<String> {
    loop {
        let id = format!(
            "{:016x}{:016x}{:016x}{:016x}",
            random_u64()?,
            random_u64()?,
            random_u64()?,
            random_u64()?
        );
        // dockerd never makes an ID that reads as a number (it would be taken for
        // a truncated decimal somewhere); nor one whose short form is taken.
        let short = &id[..12];
        if short.bytes().all(|b| b.is_ascii_digit())
            || state.containers.keys().any(|k| k.starts_with(short))
        {
            continue;
        }
        return Ok(id);
    }
}

fn name_conflict(name: &str, holder: &str) -> Error {
    Error::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

fn check_name_free(state: &State, name: &str) -> Result<()> {
    match state.containers.values().find(|c| c.name == name) {
        Some(c) => Err(name_conflict(name, &c.id)),
        None => Ok(()),
    }
}

/// Create a container from a create body (POST /containers/create).
#[derive(Message)]
#[rtype(result = "Result<String>")]
pub struct CreateContainer {
    pub name: Option<String>,
    pub body: ContainerCreateBody,
}

impl Handler<CreateContainer> for ContainerService {
    type Result = AtomicResponse<Self, Result<String>>;

    fn handle(&mut self, msg: CreateContainer, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let prepared = self.prepare(&state, msg);
        let events = self.events.clone();
        let layers = Arc::clone(&self.layers);
        let containers_dir = self.containers_dir.clone();
        let volumes = self.volumes.clone();
        let projection = self.projection.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let (id, name, image, image_name, body, top, attachments, mut mounts) = prepared?;
                let config = serde_json::to_string(&body)
                    .map_err(|e| Error::internal(format!("recording the config: {e}")))?;
                let anonymous = match name_volumes(&volumes, &id, &mut mounts).await {
                    Ok(a) => a,
                    Err(e) => {
                        volumes.do_send(Release(id.clone()));
                        return Err(e);
                    }
                };
                let copy_ups = copy_ups(&projection.current(), &mounts);
                let remapped = layers.remap().is_some()
                    && crate::drivers::userns::private(body.host_config.as_ref());
                let has_health_check = crate::containers::health::check(&body).is_some();
                let dir = containers_dir.join(&id);
                let made = tokio::task::spawn_blocking({
                    let (layers, id, dir) = (Arc::clone(&layers), id.clone(), dir.clone());
                    move || -> Result<()> {
                        std::fs::create_dir_all(&dir)
                            .context(format_args!("creating {}", dir.display()))?;
                        layers.create_rw(&id, top.as_deref())?;
                        if copy_ups.is_empty() {
                            return Ok(());
                        }
                        // A new (empty) volume gets what the image has at its
                        // path, at create, as dockerd fills it.
                        let root = layers.open_rootfs(&id, false, remapped)?;
                        let rootfs = PathBuf::from(format!(
                            "/proc/self/fd/{}",
                            std::os::fd::AsRawFd::as_raw_fd(&root)
                        ));
                        for (destination, data) in &copy_ups {
                            crate::drivers::volumes::copy_up(&rootfs, destination, data).map_err(
                                |e| {
                                    e.context(format_args!(
                                        "copying the image's {destination} into its volume"
                                    ))
                                },
                            )?;
                        }
                        Ok(())
                    }
                })
                .await
                .unwrap_or_else(|e| {
                    Err(Error::internal(format!(
                        "creating the container layer: {e}"
                    )))
                });
                let recorded = match made {
                    Ok(()) => {
                        let mut list = vec![
                            Event::ContainerCreated {
                                id: id.clone(),
                                name: name.clone(),
                                image,
                                image_name,
                                config,
                            },
                            Event::ContainerMountsPlanned {
                                id: id.clone(),
                                mounts: mounts.iter().map(|m| m.record()).collect(),
                            },
                        ];
                        for (network, settings) in attachments {
                            list.push(Event::ContainerNetworkConnected {
                                container: id.clone(),
                                network,
                                config: serde_json::to_string(&settings).unwrap_or_default(),
                            });
                        }
                        // With a check, its status is "starting" from the first
                        // start on (the projection resets it at each start).
                        if has_health_check {
                            list.push(Event::ContainerHealthStatus {
                                id: id.clone(),
                                status: HEALTH_STARTING.into(),
                            });
                        }
                        super::event_log::append_all(&events, list).await
                    }
                    Err(e) => Err(e),
                };
                // Recorded or not, the create's volume leases end: its record
                // (if any) now says which volumes it uses.
                volumes.do_send(Release(id.clone()));
                if let Err(e) = recorded {
                    // Nothing half-made stays: no layer, no directory.
                    let _ = layers.remove_rw(&id);
                    let _ = std::fs::remove_dir_all(&dir);
                    volumes.do_send(RemoveUnused(anonymous));
                    return Err(e);
                }
                info!(container = %id, name = %name, "created");
                Ok(id)
            }
            .into_actor(self),
        ))
    }
}

type Prepared = (
    String,
    String,
    String,
    String,
    ContainerCreateBody,
    Option<String>,
    Vec<(String, bollard_stubs::models::EndpointSettings)>,
    Vec<Planned>,
);

/// The volumes a create fills from the image: (container path, data), for
/// each volume mount that copies and whose volume is a plain directory
/// (one made with driver options is mounted only when it is used).
fn copy_ups(state: &State, mounts: &[Planned]) -> Vec<(String, PathBuf)> {
    mounts
        .iter()
        .filter(|m| m.kind == Kind::Volume && m.copy_data)
        .filter(|m| {
            state
                .volumes
                .get(&m.name)
                .is_some_and(|v| v.options.as_ref().is_none_or(|o| o.is_empty()))
        })
        .map(|m| (m.destination.clone(), PathBuf::from(&m.source)))
        .collect()
}

/// Makes the volumes `mounts` name that are not there yet, and a new one
/// for each anonymous mount, filling in names and mountpoints. Answers the
/// anonymous ones made (a failed create removes them).
async fn name_volumes(
    volumes: &Addr<VolumeService>,
    container: &str,
    mounts: &mut [Planned],
) -> Result<Vec<String>> {
    let wants: Vec<VolumeWant> = mounts
        .iter()
        .filter(|m| m.kind == Kind::Volume && m.source.is_empty())
        .map(|m| VolumeWant {
            name: Some(m.name.clone()).filter(|n| !n.is_empty()),
            anonymous: m.name.is_empty(),
            driver: m.driver.clone(),
            options: Some(m.volume_options.clone()).filter(|o| !o.is_empty()),
            labels: Some(m.volume_labels.clone()).filter(|l| !l.is_empty()),
        })
        .collect();
    if wants.is_empty() {
        return Ok(Vec::new());
    }
    let named = volumes
        .send(EnsureVolumes {
            container: container.to_string(),
            wants,
        })
        .await
        .map_err(|e| Error::unavailable(format!("volume service: {e}")))??;
    let mut anonymous = Vec::new();
    let mut named = named.into_iter();
    for m in mounts
        .iter_mut()
        .filter(|m| m.kind == Kind::Volume && m.source.is_empty())
    {
        let (name, mountpoint) = named
            .next()
            .ok_or_else(|| Error::internal("the volume service answered too few volumes"))?;
        if m.name.is_empty() {
            anonymous.push(name.clone());
            m.anonymous = true;
        }
        m.name = name;
        m.source = mountpoint;
    }
    Ok(anonymous)
}

impl ContainerService {
    /// Everything a create decides before touching the disk: checks, the name,
    /// the image, the merged config.
    fn prepare(&self, state: &State, msg: CreateContainer) -> Result<Prepared> {
        let mut body = msg.body;
        // daemon.json's default-runtime for a container that names none.
        let default_runtime = self.command.default_runtime();
        if default_runtime != super::container::BUILTIN_RUNTIME {
            let h = body.host_config.get_or_insert_with(Default::default);
            if h.runtime.as_deref().is_none_or(str::is_empty) {
                h.runtime = Some(default_runtime);
            }
        }
        let image_name = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                Error::invalid("Config cannot be empty in order to create a container")
            })?;
        crate::containers::config::check_create_body(&body)?;
        if let Some(h) = &body.host_config {
            validate_host_config(h, self.cpus)?;
            crate::drivers::userns::validate(h, self.layers.remap().is_some())?;
            if let Some(r) = h.runtime.as_deref().filter(|r| !r.is_empty()) {
                if self.command.argv(r).is_none() {
                    return Err(crate::error::Error::invalid(format!(
                        "Unknown runtime specified {r}"
                    )));
                }
            }
        }
        let name = match msg.name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = valid_name(&n)?;
                check_name_free(state, &n)?;
                n
            }
            None => {
                let mut attempt = 0;
                loop {
                    let n = random_name(random_u64()?, attempt);
                    if check_name_free(state, &n).is_ok() {
                        break n;
                    }
                    attempt += 1;
                }
            }
        };
        let image = crate::images::query::resolve(state, &image_name).map_err(|e| {
            if e.kind() != crate::error::ErrorKind::NotFound {
                return e;
            }
            // dockerd names the image with its default tag ("busybox:latest").
            let shown = Reference::parse(&image_name)
                .ok()
                .filter(|r| r.digest.is_none())
                .and_then(|r| r.with_default_tag().familiar_tagged())
                .unwrap_or_else(|| image_name.clone());
            Error::not_found(format!("No such image: {shown}"))
        })?;
        let image_config: ContainerConfig = self
            .blobs
            .get(&image.id)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| serde_json::from_value(v.get("config")?.clone()).ok())
            .unwrap_or_default();
        let id = new_id(state)?;
        let mut merged = merge(body, &image_config, &id);
        if crate::drivers::exec::spec::path_and_args(&merged)
            .0
            .is_empty()
        {
            return Err(Error::invalid("No command specified"));
        }
        crate::containers::namespaces::name_donors(&mut merged, state)?;
        crate::networks::links::check_create(&mut merged, state)?;
        let mounts = crate::containers::mounts::plan_create(&merged, state)?;
        let attachments = crate::networks::spec::create_attachments(state, &merged)?;
        crate::networks::ports::requests(&merged)?;
        let top = image.chain_ids.last().cloned();
        Ok((
            id,
            name,
            image.id.clone(),
            image_name,
            merged,
            top,
            attachments,
            mounts,
        ))
    }
}

/// Rename a container (POST /containers/{id}/rename).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct RenameContainer {
    pub name: String,
    pub new_name: String,
}

impl Handler<RenameContainer> for ContainerService {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, msg: RenameContainer, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let events = self.events.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let c = state.container(&msg.name)?;
                let new = valid_name(&msg.new_name)?;
                if new == c.name {
                    return Err(Error::invalid(format!(
                        "Renaming a container with the same name as its current name"
                    )));
                }
                check_name_free(&state, &new)?;
                append(
                    &events,
                    Event::ContainerRenamed {
                        id: c.id.clone(),
                        name: new,
                    },
                )
                .await?;
                Ok(())
            }
            .into_actor(self),
        ))
    }
}

/// Remove a container (DELETE /containers/{id}).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct RemoveContainer {
    pub name: String,
    pub force: bool,
    /// `rm -v`: its anonymous volumes go too.
    pub volumes: bool,
}

impl Handler<RemoveContainer> for ContainerService {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, msg: RemoveContainer, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let rt = self.runtime();
        let found = state.container(&msg.name).map(|c| c.clone());
        let actor = found.as_ref().ok().map(|c| self.actor(&c.id));
        let projection = self.projection.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let id = found?.id;
                let actor = actor.ok_or_else(|| Error::internal("no container actor"))?;
                // A start under way finishes first (dockerd's container lock
                // does the same): removed under it, the container it launches
                // would run on untracked.
                let _ = actor.send(super::container::StartSettled).await;
                let c = projection.current().container(&id)?.clone();
                if c.status == ContainerStatus::Running || c.restarting {
                    if !msg.force {
                        let (state, procedure) = if c.restarting {
                            ("restarting", "Stop the container")
                        } else if c.paused {
                            ("paused", "Unpause and then stop the container")
                        } else {
                            ("running", "Stop the container")
                        };
                        return Err(Error::conflict(format!(
                            "You cannot remove a {state} container {}. {procedure} before attempting removal or force remove",
                            c.id
                        )));
                    }
                    let stop = super::container::Stop { signal: libc::SIGKILL, timeout: std::time::Duration::from_secs(0) };
                    let _ = actor.send(stop).await;
                }
                remove_container(&rt, &c.id, msg.volumes).await?;
                let _ = actor.send(super::container::Removed).await;
                Ok(())
            }
            .into_actor(self)
            .map(|res, act, _| {
                act.actors.retain(|_, a| a.connected());
                res
            }),
        ))
    }
}

impl ContainerService {
    fn runtime(&self) -> Runtime {
        Runtime {
            events: self.events.clone(),
            projection: self.projection.clone(),
            layers: Arc::clone(&self.layers),
            exec_root: self.exec_root.clone(),
            containers_dir: self.containers_dir.clone(),
            command: self.command.clone(),
            execs: self.execs.clone(),
            network: self.network.clone(),
            images: self.images.clone(),
            volumes: self.volumes.clone(),
        }
    }

    fn actor(&mut self, id: &str) -> Addr<ContainerActor> {
        if let Some(a) = self.actors.get(id).filter(|a| a.connected()) {
            return a.clone();
        }
        let a = ContainerActor::new(id.to_string(), self.runtime()).start();
        self.actors.insert(id.to_string(), a.clone());
        a
    }
}

/// The actor of the container `name` names (made if it has none yet).
#[derive(Message)]
#[rtype(result = "Result<(String, Addr<ContainerActor>)>")]
pub struct GetActor {
    pub name: String,
}

impl Handler<GetActor> for ContainerService {
    type Result = Result<(String, Addr<ContainerActor>)>;

    fn handle(&mut self, msg: GetActor, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let id = state.container(&msg.name)?.id.clone();
        let actor = self.actor(&id);
        Ok((id, actor))
    }
}

/// `docker commit` of the container `name` names: done by its own actor.
#[derive(Message)]
#[rtype(result = "Result<String>")]
pub struct CommitContainer {
    pub name: String,
    pub request: crate::images::commit::CommitRequest,
}

impl Handler<CommitContainer> for ContainerService {
    type Result = ResponseFuture<Result<String>>;

    fn handle(&mut self, msg: CommitContainer, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let actor = state
            .container(&msg.name)
            .map(|c| c.id.clone())
            .map(|id| self.actor(&id));
        Box::pin(async move {
            actor?
                .send(super::container::Commit(msg.request))
                .await
                .map_err(|e| Error::unavailable(format!("container actor: {e}")))?
        })
    }
}

/// The daemon started: watch the containers that still run, and start the
/// ones their restart policy brings back (those waiting for a restart, and
/// stopped ones as dockerd's restore picks them).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore;

impl Handler<Restore> for ContainerService {
    type Result = ();

    fn handle(&mut self, _: Restore, _: &mut Context<Self>) {
        use crate::containers::restart;
        let state = self.projection.current();
        for c in state.containers.values() {
            if c.status == ContainerStatus::Running {
                self.actor(&c.id).do_send(super::container::Reconnect);
            } else if c.restarting {
                self.actor(&c.id).do_send(super::container::PolicyStart);
            } else if c.started_ns > 0 {
                let policy = restart::policy_of(c);
                // The delay is not the daemon's business at its start.
                let exit = restart::Exit {
                    ran_for: std::time::Duration::ZERO,
                    ..restart::Exit::of(c)
                };
                if restart::at_daemon_start(policy.as_ref(), exit) {
                    info!(container = %c.id, "starting it again, as its restart policy says");
                    self.actor(&c.id).do_send(super::container::Start);
                }
            }
        }
    }
}
