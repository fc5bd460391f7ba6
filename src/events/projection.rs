//! The projection: the state obtained by folding every event in order.
//!
//! Readers take an `Arc<State>` and never wait on a writer; the EventLog actor is
//! the only writer and swaps a new state in after each committed batch.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::Event;

/// Everything replay knows. Serialized into snapshots (see `store::eventlog`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Sequence number of the last event folded in (0: none).
    pub last_seq: u64,
    pub engine: EngineState,
    /// Images by ID (`sha256:` of the config).
    pub images: BTreeMap<String, ImageRecord>,
    /// Layers by ChainID.
    pub layers: BTreeMap<String, LayerRecord>,
    /// Containers by ID (64 hex digits).
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Networks by ID (64 hex digits).
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkRecord>,
    /// Containers and networks that are gone, by ID, with the names their
    /// docker events still carry (a `destroy` read after the removal).
    #[serde(default)]
    pub departed: BTreeMap<String, Departed>,
    /// Volumes by name.
    #[serde(default)]
    pub volumes: BTreeMap<String, VolumeRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    /// Where its data is on the host.
    pub mountpoint: String,
    /// The driver's options and the user's labels; `None`: none given.
    pub options: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
    /// Made for a container's mount that named none (prune takes these).
    pub anonymous: bool,
    pub created_ns: u64,
}

/// What `docker events` still shows of a removed container or network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departed {
    pub name: String,
    /// A container's image as the user named it; a network's driver.
    pub image_or_driver: String,
    /// A container's labels (kept alone: its whole create body is far larger).
    pub labels: BTreeMap<String, String>,
    /// The networks a container was attached to.
    pub networks: Vec<String>,
    /// When it was removed: retention forgets it with the events before.
    #[serde(default)]
    pub removed_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    /// Its `networks::NetworkSpec` as JSON (see `Event::NetworkCreated`).
    pub config: String,
    pub created_ns: u64,
}

/// A container's attachment to one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// EndpointSettings as the user gave them (JSON): aliases, IPAMConfig.
    pub config: String,
    /// Set while the container runs on this network.
    pub endpoint_id: String,
    pub ip: String,
    pub mac: String,
    #[serde(default)]
    pub ifname: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerStatus {
    #[default]
    Created,
    Running,
    Exited,
}

/// The status of a health check before its first result.
pub const HEALTH_STARTING: &str = "starting";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_name: String,
    /// The create body as JSON (see `Event::ContainerCreated`).
    pub config: String,
    pub created_ns: u64,
    pub status: ContainerStatus,
    pub pid: u32,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: String,
    pub started_ns: u64,
    pub finished_ns: u64,
    /// Running, with its processes frozen.
    #[serde(default)]
    pub paused: bool,
    /// Exited, waiting for its restart policy's delay (dockerd's "restarting").
    #[serde(default)]
    pub restarting: bool,
    /// Restarts by the policy since the last start by a user.
    #[serde(default)]
    pub restart_count: u64,
    /// A user stopped it: `unless-stopped` does not bring it back.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Networks it is attached to, by network ID.
    #[serde(default)]
    pub networks: BTreeMap<String, EndpointRecord>,
    /// Ports it publishes while it runs.
    #[serde(default)]
    pub ports: Vec<super::v1::PublishedPort>,
    /// Its name before the last rename (a `rename` event's oldName).
    #[serde(default)]
    pub previous_name: String,
    /// Its health check's status, once its shim has told one; each start
    /// makes it "starting" again (the probe results live in its directory).
    #[serde(default)]
    pub health: Option<String>,
    /// Its mounts as planned at create; `None` for a container created
    /// before they were recorded (its create body says them).
    #[serde(default)]
    pub mounts: Option<Vec<super::v1::MountRecord>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    pub chain_ids: Vec<String>,
    pub created: Option<String>,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// When the image was stored (event time, ns): orders `docker images`.
    pub stored_ns: u64,
    /// The image it was made from by a commit or a build step ("" if none).
    #[serde(default)]
    pub parent: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub chain_id: String,
    pub diff_id: String,
    pub parent: Option<String>,
    pub size: u64,
    /// The layer as distributed, when its bytes were kept.
    pub blob: Option<LayerBlobRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlobRecord {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// What a lookup by exact ID, name, or unique ID prefix found.
enum Found<'a, T> {
    One(&'a T),
    /// This many IDs start with the prefix.
    Ambiguous(usize),
    Nothing,
}

/// dockerd's order for finding a container or a network: the exact ID first,
/// then the name, then a unique ID prefix. An empty name finds nothing.
fn find<'a, T>(
    by_id: &'a BTreeMap<String, T>,
    name: &str,
    is_named: impl Fn(&T) -> bool,
) -> Found<'a, T> {
    if name.is_empty() {
        return Found::Nothing;
    }
    if let Some(x) = by_id.get(name) {
        return Found::One(x);
    }
    if let Some(x) = by_id.values().find(|x| is_named(x)) {
        return Found::One(x);
    }
    let mut by_prefix = by_id
        .range(name.to_string()..)
        .take_while(|(id, _)| id.starts_with(name));
    match (by_prefix.next(), by_prefix.next()) {
        (Some((_, x)), None) => Found::One(x),
        (Some(_), Some(_)) => Found::Ambiguous(2 + by_prefix.count()),
        _ => Found::Nothing,
    }
}

impl State {
    /// A container by full ID, name ("x" or "/x"), or unique ID prefix, with
    /// dockerd's words when there is none or more than one.
    pub fn container(&self, name: &str) -> crate::error::Result<&ContainerRecord> {
        use crate::error::Error;
        let bare = name.strip_prefix('/').unwrap_or(name);
        match find(&self.containers, name, |c| c.name == bare) {
            Found::One(c) => Ok(c),
            Found::Ambiguous(_) => Err(Error::invalid(format!(
                "multiple IDs found with provided prefix: {name}"
            ))),
            Found::Nothing => Err(Error::not_found(format!("No such container: {name}"))),
        }
    }

    /// A network by full ID, name, or unique ID prefix, with dockerd's words.
    pub fn network(&self, name: &str) -> crate::error::Result<&NetworkRecord> {
        use crate::error::Error;
        match find(&self.networks, name, |n| n.name == name) {
            Found::One(n) => Ok(n),
            Found::Ambiguous(count) => Err(Error::invalid(format!(
                "network {name} is ambiguous ({count} matches found based on ID prefix)"
            ))),
            Found::Nothing => Err(Error::not_found(format!("network {name} not found"))),
        }
    }

    /// Containers (running, paused, stopped) as `docker info` counts them:
    /// a created container is a stopped one.
    pub fn container_counts(&self) -> (usize, usize, usize) {
        let (mut running, mut paused) = (0, 0);
        for c in self.containers.values() {
            if c.status == ContainerStatus::Running {
                if c.paused {
                    paused += 1;
                } else {
                    running += 1;
                }
            }
        }
        (running, paused, self.containers.len() - running - paused)
    }

    /// A volume by name, with dockerd's words when there is none.
    pub fn volume(&self, name: &str) -> crate::error::Result<&VolumeRecord> {
        self.volumes
            .get(name)
            .ok_or_else(|| crate::error::Error::not_found(format!("get {name}: no such volume")))
    }

    /// The containers that mount volume `name`, by ID.
    pub fn volume_users(&self, name: &str) -> Vec<&str> {
        self.containers
            .values()
            .filter(|c| {
                c.mounts
                    .iter()
                    .flatten()
                    .any(|m| m.kind == "volume" && m.name == name)
            })
            .map(|c| c.id.as_str())
            .collect()
    }

    /// The sum of the image's layer sizes, as `docker images` shows it.
    pub fn image_size(&self, image: &ImageRecord) -> u64 {
        image
            .chain_ids
            .iter()
            .filter_map(|c| self.layers.get(c))
            .map(|l| l.size)
            .sum()
    }

    /// Layers that no image uses any more.
    pub fn unused_layers(&self) -> Vec<String> {
        let used: std::collections::HashSet<&String> = self
            .images
            .values()
            .flat_map(|i| i.chain_ids.iter())
            .collect();
        self.layers
            .keys()
            .filter(|c| !used.contains(c))
            .cloned()
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineState {
    pub id: Option<String>,
    /// How many times a daemon took over this data root.
    pub starts: u64,
    /// Starts that found the previous daemon had not stopped cleanly.
    pub unclean_restarts: u64,
    /// Whether a daemon is running (its start was recorded and its stop was not).
    pub running: bool,
    pub last_start_version: Option<String>,
    pub last_start_time_ns: u64,
}

impl State {
    /// Folds one committed event into the state.
    pub fn apply(&mut self, seq: u64, time_ns: u64, event: &Event) {
        self.last_seq = seq;
        let engine = &mut self.engine;
        match event {
            Event::EngineInitialized { id } => {
                // The first identity wins: a second one can only come from a bug, and
                // changing the ID under running clients would be worse than ignoring it.
                if engine.id.is_none() {
                    engine.id = Some(id.clone());
                }
            }
            Event::DaemonStarted { version, .. } => {
                if engine.running {
                    engine.unclean_restarts += 1;
                }
                engine.starts += 1;
                engine.running = true;
                engine.last_start_version = Some(version.clone());
                engine.last_start_time_ns = time_ns;
            }
            Event::DaemonStopped { .. } => engine.running = false,
            Event::LayerCommitted {
                chain_id,
                diff_id,
                parent,
                size,
            } => {
                self.layers.insert(
                    chain_id.clone(),
                    LayerRecord {
                        chain_id: chain_id.clone(),
                        diff_id: diff_id.clone(),
                        parent: parent.clone(),
                        size: *size,
                        blob: None,
                    },
                );
            }
            Event::ImageStored {
                id,
                chain_ids,
                created,
            } => {
                let image = self
                    .images
                    .entry(id.clone())
                    .or_insert_with(|| ImageRecord {
                        id: id.clone(),
                        ..Default::default()
                    });
                image.chain_ids = chain_ids.clone();
                image.created = created.clone();
                image.stored_ns = time_ns;
            }
            Event::ImageTagged { id, tag } => {
                // A tag names one image: it moves.
                for other in self.images.values_mut() {
                    other.repo_tags.retain(|t| t != tag);
                }
                if let Some(image) = self.images.get_mut(id) {
                    image.repo_tags.push(tag.clone());
                }
            }
            Event::ImageDigested { id, repo_digest } => {
                if let Some(image) = self.images.get_mut(id) {
                    if !image.repo_digests.contains(repo_digest) {
                        image.repo_digests.push(repo_digest.clone());
                    }
                }
            }
            Event::ImageUntagged { id, reference } => {
                if let Some(image) = self.images.get_mut(id) {
                    image.repo_tags.retain(|t| t != reference);
                    image.repo_digests.retain(|d| d != reference);
                }
            }
            Event::ImageDeleted { id } => {
                self.images.remove(id);
            }
            Event::ImageParentRecorded { id, parent } => {
                if let Some(image) = self.images.get_mut(id) {
                    image.parent = parent.clone();
                }
            }
            Event::LayerRemoved { chain_id } => {
                self.layers.remove(chain_id);
            }
            // A docker event only: the state changes came as their own events.
            Event::ImageAction { .. }
            | Event::ContainerAction { .. }
            | Event::VolumeAction { .. }
            | Event::DaemonReloaded { .. } => {}
            Event::EventsCompacted { before_ns, .. } => {
                // Every event of these was before the cut: no event left needs them.
                self.departed.retain(|_, d| d.removed_ns >= *before_ns);
            }
            Event::ContainerCreated {
                id,
                name,
                image,
                image_name,
                config,
            } => {
                self.containers.insert(
                    id.clone(),
                    ContainerRecord {
                        id: id.clone(),
                        name: name.clone(),
                        image: image.clone(),
                        image_name: image_name.clone(),
                        config: config.clone(),
                        created_ns: time_ns,
                        ..Default::default()
                    },
                );
            }
            Event::ContainerRenamed { id, name } => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.previous_name = std::mem::replace(&mut c.name, name.clone());
                }
            }
            Event::ContainerStarted { id, pid } => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.status = ContainerStatus::Running;
                    c.paused = false;
                    c.restarting = false;
                    c.pid = *pid;
                    c.started_ns = time_ns;
                    c.exit_code = 0;
                    c.oom_killed = false;
                    c.error.clear();
                    if c.health.is_some() {
                        c.health = Some(HEALTH_STARTING.into());
                    }
                }
            }
            Event::ContainerHealthStatus { id, status } => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.health = Some(status.clone());
                }
            }
            Event::ContainerExited {
                id,
                exit_code,
                oom_killed,
                error,
            } => {
                if let Some(c) = self.containers.get_mut(id) {
                    // A container that never ran (its start failed) stays created,
                    // with the error and code, as dockerd keeps it.
                    if c.status == ContainerStatus::Running {
                        c.status = ContainerStatus::Exited;
                    }
                    c.paused = false;
                    c.restarting = false;
                    c.pid = 0;
                    // Its addresses and ports go back with its namespace.
                    for ep in c.networks.values_mut() {
                        ep.endpoint_id.clear();
                        ep.ip.clear();
                        ep.mac.clear();
                        ep.ifname.clear();
                    }
                    c.ports.clear();
                    c.exit_code = *exit_code;
                    c.oom_killed = *oom_killed;
                    c.error = error.clone();
                    c.finished_ns = time_ns;
                }
            }
            Event::ContainerRemoved { id } => {
                if let Some(c) = self.containers.remove(id) {
                    self.departed.insert(
                        id.clone(),
                        Departed {
                            name: c.name,
                            image_or_driver: c.image_name,
                            labels: labels_of(&c.config),
                            networks: c.networks.into_keys().collect(),
                            removed_ns: time_ns,
                        },
                    );
                }
            }
            Event::ContainerPaused { id } | Event::ContainerUnpaused { id } => {
                let paused = matches!(event, Event::ContainerPaused { .. });
                if let Some(c) = self.containers.get_mut(id) {
                    if c.status == ContainerStatus::Running {
                        c.paused = paused;
                    }
                }
            }
            Event::ContainerStopRequested { id } => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.manually_stopped = true;
                    c.restarting = false;
                }
            }
            Event::ContainerRestartScheduled { id } => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.restarting = true;
                    c.restart_count += 1;
                }
            }
            Event::ContainerUpdated { id, config } => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.config = config.clone();
                }
            }
            Event::ContainerStartRequested { id } => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.manually_stopped = false;
                    c.restart_count = 0;
                }
            }
            Event::NetworkCreated { id, name, config } => {
                self.networks.insert(
                    id.clone(),
                    NetworkRecord {
                        id: id.clone(),
                        name: name.clone(),
                        config: config.clone(),
                        created_ns: time_ns,
                    },
                );
            }
            Event::NetworkRemoved { id } => {
                if let Some(n) = self.networks.remove(id) {
                    let driver = network_driver(&n.config);
                    self.departed.insert(
                        id.clone(),
                        Departed {
                            name: n.name,
                            image_or_driver: driver,
                            removed_ns: time_ns,
                            ..Default::default()
                        },
                    );
                }
            }
            Event::ContainerNetworkConnected {
                container,
                network,
                config,
            } => {
                if let Some(c) = self.containers.get_mut(container) {
                    c.networks.entry(network.clone()).or_default().config = config.clone();
                }
            }
            Event::ContainerNetworkDisconnected { container, network } => {
                if let Some(c) = self.containers.get_mut(container) {
                    c.networks.remove(network);
                }
            }
            Event::EndpointUp {
                container,
                network,
                endpoint_id,
                ip,
                mac,
                ifname,
            } => {
                if let Some(ep) = self
                    .containers
                    .get_mut(container)
                    .and_then(|c| c.networks.get_mut(network))
                {
                    ep.endpoint_id = endpoint_id.clone();
                    ep.ip = ip.clone();
                    ep.mac = mac.clone();
                    ep.ifname = ifname.clone();
                }
            }
            Event::ContainerPortsPublished { id, ports } => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.ports = ports.clone();
                }
            }
            Event::VolumeCreated {
                name,
                driver,
                mountpoint,
                options,
                labels,
                anonymous,
            } => {
                self.volumes.insert(
                    name.clone(),
                    VolumeRecord {
                        name: name.clone(),
                        driver: driver.clone(),
                        mountpoint: mountpoint.clone(),
                        options: options.as_ref().map(|o| o.iter().cloned().collect()),
                        labels: labels.as_ref().map(|l| l.iter().cloned().collect()),
                        anonymous: *anonymous,
                        created_ns: time_ns,
                    },
                );
            }
            Event::VolumeRemoved { name, .. } => {
                if let Some(v) = self.volumes.remove(name) {
                    self.departed.insert(
                        format!("volume:{name}"),
                        Departed {
                            name: v.name,
                            image_or_driver: v.driver,
                            removed_ns: time_ns,
                            ..Default::default()
                        },
                    );
                }
            }
            Event::ContainerMountsPlanned { id, mounts } => {
                if let Some(c) = self.containers.get_mut(id) {
                    c.mounts = Some(mounts.clone());
                }
            }
            Event::LayerBlobStored {
                chain_id,
                digest,
                media_type,
                size,
            } => {
                if let Some(layer) = self.layers.get_mut(chain_id) {
                    layer.blob = Some(LayerBlobRecord {
                        digest: digest.clone(),
                        media_type: media_type.clone(),
                        size: *size,
                    });
                }
            }
        }
    }
}

/// A shared, swappable view of the current state.
#[derive(Clone, Default)]
pub struct Projection(Arc<RwLock<Arc<State>>>);

impl Projection {
    pub fn new(state: State) -> Self {
        Projection(Arc::new(RwLock::new(Arc::new(state))))
    }

    /// The state as of the last committed event; never blocks on a writer for long.
    pub fn current(&self) -> Arc<State> {
        match self.0.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) fn replace(&self, state: Arc<State>) {
        match self.0.write() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }
}

#[derive(Deserialize)]
struct LabelsOnly {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// A container's labels from its create body (`ContainerRecord::config`).
pub fn labels_of(config: &str) -> BTreeMap<String, String> {
    serde_json::from_str::<LabelsOnly>(config)
        .ok()
        .and_then(|l| l.labels)
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct DriverOnly {
    #[serde(default)]
    driver: String,
}

/// A network's driver from its `NetworkSpec` JSON ("bridge" when unsaid).
pub fn network_driver(config: &str) -> String {
    serde_json::from_str::<DriverOnly>(config)
        .ok()
        .map(|d| d.driver)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "bridge".into())
}
