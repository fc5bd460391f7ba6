//! Schema version 1. Frozen once released: add variants only at the end.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Written once, when a data root is first used: the engine's identity
    /// (`ID` in `GET /info`), persisted across restarts by replay.
    EngineInitialized { id: String },
    /// A berthd process took over the data root.
    DaemonStarted { version: String, pid: u32 },
    /// A berthd process stopped cleanly (SIGTERM/SIGINT). A start without a stop
    /// before it means the previous daemon died.
    DaemonStopped { pid: u32 },
    /// A layer is in the layer store, complete and verified, under its ChainID.
    LayerCommitted {
        chain_id: String,
        diff_id: String,
        parent: Option<String>,
        size: u64,
    },
    /// An image (its config blob is stored under `id`) made of these layers.
    ImageStored {
        id: String,
        chain_ids: Vec<String>,
        created: Option<String>,
    },
    /// `tag` ("busybox:latest") now names image `id` (and no other image).
    ImageTagged { id: String, tag: String },
    /// `repo_digest` ("busybox@sha256:...") names image `id`.
    ImageDigested { id: String, repo_digest: String },
    /// `reference` (a tag or a repo digest) no longer names image `id`.
    ImageUntagged { id: String, reference: String },
    /// Image `id` is gone (its layers go with it when no other image uses them).
    ImageDeleted { id: String },
    /// Layer `chain_id` was removed from the layer store.
    LayerRemoved { chain_id: String },
    /// The bytes layer `chain_id` was distributed as (compressed as pulled, or as
    /// loaded) are in the blob store: `docker save` and `push` send them again.
    LayerBlobStored {
        chain_id: String,
        digest: String,
        media_type: String,
        size: u64,
    },
    /// A docker event for an image action that changes no state of its own
    /// (pull, push, save, load, import): `id` is the event's actor ID as dockerd
    /// gives it (a reference for pull and push, an image ID otherwise).
    ImageAction {
        action: String,
        id: String,
        name: String,
    },
    /// Container `id` exists, named `name` (without the leading `/`), running
    /// image `image` (an ID) that the user named `image_name`. `config` is the
    /// create body (Config with HostConfig and NetworkingConfig) as JSON, with the
    /// image's defaults already applied: what inspect shows and start runs.
    ContainerCreated {
        id: String,
        name: String,
        image: String,
        image_name: String,
        config: String,
    },
    /// Container `id` is now called `name`.
    ContainerRenamed { id: String, name: String },
    /// Container `id`'s process started with host pid `pid`.
    ContainerStarted { id: String, pid: u32 },
    /// Container `id`'s process ended (or could not start: `error` says why).
    ContainerExited {
        id: String,
        exit_code: i32,
        oom_killed: bool,
        error: String,
    },
    /// Container `id` is gone, with its layer, bundle and log.
    ContainerRemoved { id: String },
    /// Container `id`'s processes are frozen (docker pause).
    ContainerPaused { id: String },
    /// Container `id`'s processes are thawed (docker unpause).
    ContainerUnpaused { id: String },
    /// A user stopped or killed container `id`: its restart policy stands down
    /// (an `unless-stopped` one stays down across daemon restarts too).
    ContainerStopRequested { id: String },
    /// Container `id` exited and its restart policy starts it again after a delay.
    ContainerRestartScheduled { id: String },
    /// A user started container `id`: its restart count and manual stop are reset.
    ContainerStartRequested { id: String },
    /// Container `id`'s config is now `config` (docker update: resources,
    /// restart policy), in the shape of `ContainerCreated`'s.
    ContainerUpdated { id: String, config: String },
    /// Network `id` exists, named `name`; `config` is its `NetworkSpec` as JSON
    /// (driver, subnet, gateway, bridge device, options, labels).
    NetworkCreated {
        id: String,
        name: String,
        config: String,
    },
    /// Network `id` is gone, with its bridge and rules.
    NetworkRemoved { id: String },
    /// Container `container` is attached to network `network`; `config` is its
    /// EndpointSettings as the user gave them (aliases, static address), JSON.
    ContainerNetworkConnected {
        container: String,
        network: String,
        config: String,
    },
    /// Container `container` is no longer attached to network `network`.
    ContainerNetworkDisconnected { container: String, network: String },
    /// Container `container` is up on network `network` with this address and
    /// MAC (an interface in its namespace); its exit takes them back.
    EndpointUp {
        container: String,
        network: String,
        endpoint_id: String,
        ip: String,
        mac: String,
        /// The interface's name in the container ("eth0").
        ifname: String,
    },
    /// The ports container `id` publishes while it runs (host ports chosen).
    ContainerPortsPublished {
        id: String,
        ports: Vec<PublishedPort>,
    },
    /// A docker event for a container action that changes no state of its own
    /// (kill, stop, restart, attach, top, exec_create/start/die, commit, ...),
    /// with the attributes it adds to the container's (signal, execID, exitCode).
    ContainerAction {
        id: String,
        action: String,
        attributes: Vec<(String, String)>,
    },
    /// Container `id`'s health check says `status` ("starting", "healthy",
    /// "unhealthy"): its shim probes it, the daemon records each change.
    ContainerHealthStatus { id: String, status: String },
    /// Retention dropped the log's events before `before_seq` (all older than
    /// `before_ns`); the state they made lives on in a snapshot. What only
    /// they needed (the names of objects removed before) goes too.
    EventsCompacted { before_seq: u64, before_ns: u64 },
    /// Volume `name` exists: made by `driver` ("local"), its data at
    /// `mountpoint` on the host, with the driver's options and the user's
    /// labels (`None` when the request gave none: inspect shows `null`).
    /// `anonymous`: made for a container's mount that named none.
    VolumeCreated {
        name: String,
        driver: String,
        mountpoint: String,
        options: Option<Vec<(String, String)>>,
        labels: Option<Vec<(String, String)>>,
        anonymous: bool,
    },
    /// Volume `name` is gone, with its data. `pruned`: by `volume prune`,
    /// which dockerd tells as one `prune` event, not a `destroy` each.
    VolumeRemoved { name: String, pruned: bool },
    /// Container `id`'s mounts as its create planned them (volumes named,
    /// `--volumes-from` followed, the image's VOLUMEs added): what start
    /// mounts and inspect shows. Written with `ContainerCreated`.
    ContainerMountsPlanned {
        id: String,
        mounts: Vec<MountRecord>,
    },
    /// A docker event for a volume action that changes no state of its own:
    /// `create` again for each use of a named volume (as dockerd tells it),
    /// `prune` (with an empty name). Its attributes are given whole.
    VolumeAction {
        name: String,
        action: String,
        attributes: Vec<(String, String)>,
    },
    /// Image `id` was made from image `parent` (a commit or a build step):
    /// inspect's Parent, and what hides a build's intermediate images from
    /// `docker images`.
    ImageParentRecorded { id: String, parent: String },
    /// berthd read its configuration again (SIGHUP) and applied it: dockerd's
    /// `daemon reload` event, with the attributes dockerd gives it (the
    /// settings in force after the reload, the host's name).
    DaemonReloaded { attributes: Vec<(String, String)> },
}

/// One mount of a container, as recorded at its create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// "bind", "volume" or "tmpfs".
    pub kind: String,
    /// A volume's name; empty otherwise.
    pub name: String,
    /// A bind's host path; a volume's mountpoint; empty for tmpfs.
    pub source: String,
    pub destination: String,
    /// The mode string as `-v` gave it ("ro", "z"); empty for `--mount`.
    pub mode: String,
    pub read_only: bool,
    /// A bind's propagation ("rprivate"); empty otherwise.
    pub propagation: String,
    /// `bind-nonrecursive`.
    pub non_recursive: bool,
    /// `-v` makes a missing bind source.
    pub create_source: bool,
    /// A volume is filled from the image's content at its destination
    /// while it is empty (not with `nocopy`).
    pub copy_data: bool,
    /// A volume's driver ("local").
    pub driver: String,
    /// tmpfs options ("size=1024k", "mode=1770").
    pub options: Vec<String>,
    /// A volume the mount did not name (`-v /path`, the image's VOLUME):
    /// `rm -v` and `--rm` take it.
    pub anonymous: bool,
}

/// One published port: `host_ip:host_port` on the host to `container_port/proto`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub proto: String,
    pub container_port: u16,
    pub host_ip: String,
    pub host_port: u16,
}
