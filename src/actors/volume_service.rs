//! The VolumeService: the registry of volumes. It makes them (by name, or
//! anonymous for a container's mount), mounts the ones made with options
//! when a container starts, and removes them. Every change is an event
//! (`VolumeCreated`, `VolumeRemoved`); which containers use a volume is in
//! their `ContainerMountsPlanned`, and, while a container's create is under
//! way, in the lease it took. Handlers are atomic: two creates of one name
//! make one volume, and a remove never races a create.

use std::collections::HashMap;
use std::path::PathBuf;

use actix::prelude::*;
use tracing::{info, warn};

use super::event_log::{append, EventLog};
use crate::drivers::volumes;
use crate::error::{Error, Result};
use crate::events::projection::{Projection, VolumeRecord};
use crate::events::Event;
use crate::volumes::{check_driver, check_name, check_options, LOCAL};

pub struct VolumeService {
    events: Addr<EventLog>,
    projection: Projection,
    /// `<data-root>/volumes`.
    root: PathBuf,
    /// The host owner of a new volume's data: the remapped root under
    /// userns-remap, else root.
    owner: Option<(u32, u32)>,
    /// Volumes a container's create is using before its record is written
    /// (by volume name, the containers): remove and prune leave them.
    leases: HashMap<String, Vec<String>>,
}

impl VolumeService {
    pub fn new(
        events: Addr<EventLog>,
        projection: Projection,
        data_root: &std::path::Path,
        owner: Option<(u32, u32)>,
    ) -> Result<Self> {
        let root = data_root.join("volumes");
        volumes::make_root(&root)?;
        // What a killed daemon left: a volume made but never recorded, or
        // recorded as removed before its data went. Nothing names them.
        let state = projection.current();
        for name in volumes::on_disk(&root) {
            if !state.volumes.contains_key(&name) {
                match volumes::remove(&root, &name) {
                    Ok(()) => {
                        info!(volume = %name, "repaired: removed a volume directory no volume names")
                    }
                    Err(e) => {
                        warn!(volume = %name, error = %e, "removing a volume directory no volume names")
                    }
                }
            }
        }
        Ok(VolumeService {
            events,
            projection,
            root,
            owner,
            leases: HashMap::new(),
        })
    }

    /// The containers using volume `name`: recorded, and being created.
    fn users(&self, state: &crate::events::projection::State, name: &str) -> Vec<String> {
        let mut users: Vec<String> = state
            .volume_users(name)
            .into_iter()
            .map(String::from)
            .collect();
        for c in self.leases.get(name).into_iter().flatten() {
            if !users.contains(c) {
                users.push(c.clone());
            }
        }
        users
    }
}

impl Actor for VolumeService {
    type Context = Context<Self>;
}

/// A volume to make: `name` None for an anonymous one.
#[derive(Debug, Clone, Default)]
pub struct VolumeWant {
    /// `None`: a new one with a random name.
    pub name: Option<String>,
    /// Made for a container's mount that named none (prune takes these;
    /// a nameless `volume create` is not one, as on dockerd 20.10).
    pub anonymous: bool,
    pub driver: String,
    /// `None`: none given (inspect shows `null`).
    pub options: Option<Vec<(String, String)>>,
    pub labels: Option<Vec<(String, String)>>,
}

/// Makes a volume, or finds the one of that name (`POST /volumes/create`,
/// and a named volume a container's create asks for).
#[derive(Message)]
#[rtype(result = "Result<VolumeRecord>")]
pub struct CreateVolume(pub VolumeWant);

/// Makes what container `container`'s create needs: each named volume
/// that is not there yet, and a new anonymous one for each `name: None`;
/// leases them all to it until `Release`. Answers each one's name and
/// mountpoint, in order.
#[derive(Message)]
#[rtype(result = "Result<Vec<(String, String)>>")]
pub struct EnsureVolumes {
    pub container: String,
    pub wants: Vec<VolumeWant>,
}

/// Container `0`'s create is recorded (or failed): its leases end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release(pub String);

impl Handler<Release> for VolumeService {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        self.leases.retain(|_, holders| {
            holders.retain(|c| *c != msg.0);
            !holders.is_empty()
        });
    }
}

/// Removes a volume (`DELETE /volumes/{name}`).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct RemoveVolume {
    pub name: String,
    pub force: bool,
}

/// Removes the volumes no container uses among these (a container's
/// anonymous volumes after `rm -v` or `--rm`, or after its create failed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveUnused(pub Vec<String>);

/// Removes the unused volumes `volumes::prunable` chooses with these
/// filters, answering those removed and the bytes they held
/// (`POST /volumes/prune`). `all_by_default`: a client before API 1.42.
#[derive(Message)]
#[rtype(result = "Result<(Vec<String>, u64)>")]
pub struct PruneVolumes {
    pub all_by_default: bool,
    pub filters: HashMap<String, Vec<String>>,
}

/// The host paths of these volumes, mounted (a container is starting).
#[derive(Message)]
#[rtype(result = "Result<Vec<PathBuf>>")]
pub struct MountVolumes(pub Vec<String>);

impl VolumeService {
    /// Checks `want` and makes it on disk; the event that records it is the
    /// caller's to append. `Err(mountpoint)` when a volume of that name is there.
    fn make(&self, want: &VolumeWant) -> Result<std::result::Result<Event, String>> {
        let state = self.projection.current();
        let anonymous = want.anonymous;
        let name = match &want.name {
            Some(n) => n.clone(),
            None => loop {
                let n = crate::random::hex64()?;
                if !state.volumes.contains_key(&n) {
                    break n;
                }
            },
        };
        check_name(&name)?;
        let driver = if want.driver.is_empty() {
            LOCAL
        } else {
            &want.driver
        };
        // dockerd looks the driver up before it finds the name taken.
        check_driver(&name, driver)?;
        if let Some(v) = state.volumes.get(&name) {
            // An existing volume answers as it is: new labels and options
            // are ignored, as dockerd does.
            if v.driver != driver {
                return Err(Error::conflict(format!(
                    "create {name}: driver '{}' already has volume '{name}': volume name must be unique",
                    v.driver
                )));
            }
            return Ok(Err(v.mountpoint.clone()));
        }
        check_options(&name, want.options.as_deref().unwrap_or_default())?;
        let data = volumes::create(&self.root, &name, self.owner)?;
        Ok(Ok(Event::VolumeCreated {
            name,
            driver: driver.to_string(),
            mountpoint: data.display().to_string(),
            options: want.options.clone(),
            labels: want.labels.clone(),
            anonymous,
        }))
    }
}

/// dockerd tells a `create` each time a named volume is asked for.
fn used_again(name: &str) -> Event {
    Event::VolumeAction {
        name: name.to_string(),
        action: "create".into(),
        attributes: vec![("driver".into(), LOCAL.into())],
    }
}

fn created_name(event: &Event) -> String {
    match event {
        Event::VolumeCreated { name, .. } => name.clone(),
        _ => String::new(),
    }
}

impl Handler<CreateVolume> for VolumeService {
    type Result = AtomicResponse<Self, Result<VolumeRecord>>;

    fn handle(&mut self, msg: CreateVolume, _: &mut Context<Self>) -> Self::Result {
        let made = self.make(&msg.0);
        let (events, projection, root) = (
            self.events.clone(),
            self.projection.clone(),
            self.root.clone(),
        );
        AtomicResponse::new(Box::pin(
            async move {
                let name = match made? {
                    Ok(event) => {
                        let name = created_name(&event);
                        if let Err(e) = append(&events, event).await {
                            let _ = volumes::remove(&root, &name);
                            return Err(e);
                        }
                        info!(volume = %name, "created");
                        name
                    }
                    Err(_) => {
                        let name = msg.0.name.unwrap_or_default();
                        append(&events, used_again(&name)).await?;
                        name
                    }
                };
                Ok(projection.current().volume(&name)?.clone())
            }
            .into_actor(self),
        ))
    }
}

impl Handler<EnsureVolumes> for VolumeService {
    type Result = AtomicResponse<Self, Result<Vec<(String, String)>>>;

    fn handle(&mut self, msg: EnsureVolumes, _: &mut Context<Self>) -> Self::Result {
        let mut names: Vec<(String, String)> = Vec::new();
        // In dockerd's order: a new volume's `create`, then one per use.
        let mut list = Vec::new();
        let mut new = Vec::new();
        let mut failed = None;
        for want in &msg.wants {
            // One volume mounted twice by one create is made once.
            let again = names
                .iter()
                .find(|(n, _)| want.name.as_ref() == Some(n))
                .cloned();
            if let Some(found) = again {
                list.push(used_again(&found.0));
                names.push(found);
                continue;
            }
            match self.make(want) {
                Ok(Ok(event)) => {
                    if let Event::VolumeCreated {
                        name,
                        mountpoint,
                        anonymous,
                        ..
                    } = &event
                    {
                        names.push((name.clone(), mountpoint.clone()));
                        new.push(name.clone());
                        let named = !anonymous;
                        let use_event = used_again(name);
                        list.push(event);
                        if named {
                            list.push(use_event);
                        }
                    }
                }
                Ok(Err(mountpoint)) => {
                    let name = want.name.clone().unwrap_or_default();
                    list.push(used_again(&name));
                    names.push((name, mountpoint))
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() {
            for (name, _) in &names {
                let holders = self.leases.entry(name.clone()).or_default();
                if !holders.contains(&msg.container) {
                    holders.push(msg.container.clone());
                }
            }
        }
        let (events, root) = (self.events.clone(), self.root.clone());
        AtomicResponse::new(Box::pin(
            async move {
                let recorded = match failed {
                    Some(e) => Err(e),
                    None if list.is_empty() => Ok(()),
                    None => super::event_log::append_all(&events, list).await,
                };
                if let Err(e) = recorded {
                    for n in &new {
                        let _ = volumes::remove(&root, n);
                    }
                    return Err(e);
                }
                Ok(names)
            }
            .into_actor(self),
        ))
    }
}

/// dockerd's refusal to remove a volume containers use.
fn in_use(name: &str, users: &[String]) -> Error {
    Error::conflict(format!(
        "remove {name}: volume is in use - [{}]",
        users.join(", ")
    ))
}

impl Handler<RemoveVolume> for VolumeService {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, msg: RemoveVolume, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let checked = match state.volume(&msg.name) {
            Ok(_) => {
                let users = self.users(&state, &msg.name);
                if users.is_empty() {
                    Ok(Some(msg.name.clone()))
                } else {
                    Err(in_use(&msg.name, &users))
                }
            }
            // dockerd's force: a missing volume is not an error.
            Err(_) if msg.force => Ok(None),
            Err(e) => Err(e),
        };
        let (events, root) = (self.events.clone(), self.root.clone());
        AtomicResponse::new(Box::pin(
            async move {
                if let Some(name) = checked? {
                    remove(&events, &root, name, false).await?;
                }
                Ok(())
            }
            .into_actor(self),
        ))
    }
}

/// The record goes first: a crash after it leaves a directory that nothing
/// names, never a volume whose data is half gone.
async fn remove(
    events: &Addr<EventLog>,
    root: &std::path::Path,
    name: String,
    pruned: bool,
) -> Result<()> {
    append(
        events,
        Event::VolumeRemoved {
            name: name.clone(),
            pruned,
        },
    )
    .await?;
    let (root, n) = (root.to_path_buf(), name.clone());
    let removed = tokio::task::spawn_blocking(move || volumes::remove(&root, &n)).await;
    match removed {
        Ok(Ok(())) => info!(volume = %name, "removed"),
        Ok(Err(e)) => warn!(volume = %name, error = %e, "removing its data"),
        Err(e) => warn!(volume = %name, error = %e, "removing its data"),
    }
    Ok(())
}

impl Handler<RemoveUnused> for VolumeService {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: RemoveUnused, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let names: Vec<String> = msg
            .0
            .into_iter()
            .filter(|n| state.volumes.contains_key(n) && self.users(&state, n).is_empty())
            .collect();
        let (events, root) = (self.events.clone(), self.root.clone());
        AtomicResponse::new(Box::pin(
            async move {
                for name in names {
                    if let Err(e) = remove(&events, &root, name.clone(), false).await {
                        warn!(volume = %name, error = %e, "removing an unused volume");
                    }
                }
            }
            .into_actor(self),
        ))
    }
}

impl Handler<PruneVolumes> for VolumeService {
    type Result = AtomicResponse<Self, Result<(Vec<String>, u64)>>;

    fn handle(&mut self, msg: PruneVolumes, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let chosen: Result<Vec<(String, PathBuf)>> =
            crate::volumes::prunable(&state, msg.all_by_default, &msg.filters).map(|names| {
                names
                    .into_iter()
                    .filter(|n| !self.leases.contains_key(n))
                    .filter_map(|n| {
                        let v = state.volumes.get(&n)?;
                        Some((n.clone(), PathBuf::from(&v.mountpoint)))
                    })
                    .collect()
            });
        let (events, root) = (self.events.clone(), self.root.clone());
        AtomicResponse::new(Box::pin(
            async move {
                let mut removed = Vec::new();
                let mut space = 0;
                for (name, data) in chosen? {
                    let size = tokio::task::spawn_blocking(move || volumes::size(&data))
                        .await
                        .unwrap_or(0);
                    remove(&events, &root, name.clone(), true).await?;
                    space += size;
                    removed.push(name);
                }
                append(
                    &events,
                    Event::VolumeAction {
                        name: String::new(),
                        action: "prune".into(),
                        attributes: vec![("reclaimed".into(), space.to_string())],
                    },
                )
                .await?;
                Ok((removed, space))
            }
            .into_actor(self),
        ))
    }
}

impl Handler<MountVolumes> for VolumeService {
    type Result = ResponseFuture<Result<Vec<PathBuf>>>;

    fn handle(&mut self, msg: MountVolumes, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let (root, owner) = (self.root.clone(), self.owner);
        // mount(2) of a network filesystem can take long: off the runtime.
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                msg.0
                    .iter()
                    .map(|name| {
                        let v = state.volume(name)?;
                        // Its directory comes back if someone removed it.
                        volumes::create(&root, name, owner)?;
                        let options: Vec<(String, String)> = v
                            .options
                            .iter()
                            .flatten()
                            .map(|(k, x)| (k.clone(), x.clone()))
                            .collect();
                        volumes::mount(&root, name, &options)
                    })
                    .collect()
            })
            .await
            .map_err(|e| Error::internal(format!("mounting volumes: {e}")))?
        })
    }
}
