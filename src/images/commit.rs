//! `docker commit`: a container's read-write layer becomes the top layer of
//! a new image whose config is the container's, overridden by what the user
//! sent (and `--change`), as moby's daemon/commit.go builds it.

use std::fs::File;
use std::path::Path;

use bollard_stubs::models::ContainerConfig;

use crate::drivers::storage::LayerStore;
use crate::error::{Error, Result};
use crate::images::archive::LoadedImage;
use crate::store::blobs::{sha256_digest, BlobStore};

pub struct CommitSpec {
    pub container_id: String,
    /// The container's config, as inspect shows it.
    pub container_config: ContainerConfig,
    /// What the user sent in the body (may be all empty).
    pub user_config: ContainerConfig,
    pub changes: Vec<String>,
    pub author: String,
    pub comment: String,
    /// The image the container runs: its config blob and layers.
    pub parent_id: String,
    /// Filled from the blob store by the ImageService.
    pub parent_config: Vec<u8>,
    pub parent_chain: Vec<String>,
    pub created: String,
    /// A build step: `user_config` is then the new image's config as it is
    /// (no merge with the container's), as dockerd's CommitBuildStep takes it.
    pub build_step: Option<BuildStep>,
}

/// What a build step's commit records besides the new config.
#[derive(Debug, Clone, Default)]
pub struct BuildStep {
    /// The history line (`/bin/sh -c #(nop)  ENV a=b`).
    pub created_by: String,
    /// The step's run config, stored as the image's `container_config`:
    /// the key the build cache finds the step by, as dockerd keeps it.
    pub container_config: ContainerConfig,
}

/// What the user asked of `docker commit`, parsed.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub tag: Option<crate::registry::reference::Reference>,
    pub user_config: ContainerConfig,
    pub changes: Vec<String>,
    pub author: String,
    pub comment: String,
    /// Freeze a running container while its layer is read (dockerd's default).
    pub pause: bool,
    /// A build step (see `CommitSpec::build_step`).
    pub build_step: Option<BuildStep>,
}

/// The user's config with the changes applied, its gaps filled from the
/// container's (moby's merge): what the new image runs.
pub fn new_config(spec: &CommitSpec) -> Result<ContainerConfig> {
    if spec.build_step.is_some() {
        return Ok(spec.user_config.clone());
    }
    let mut c = spec.user_config.clone();
    crate::images::changes::apply(&mut c, &spec.changes)?;
    let from = &spec.container_config;
    let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    if empty(&c.user) {
        c.user = from.user.clone();
    }
    let mut env = c.env.take().unwrap_or_default();
    for e in from.env.iter().flatten() {
        let key = e.split('=').next().unwrap_or_default();
        if !env.iter().any(|u| u.split('=').next() == Some(key)) {
            env.push(e.clone());
        }
    }
    c.env = (!env.is_empty()).then_some(env);
    let mut ports = c.exposed_ports.take().unwrap_or_default();
    for p in from.exposed_ports.iter().flatten() {
        if !ports.contains(p) {
            ports.push(p.clone());
        }
    }
    c.exposed_ports = (!ports.is_empty()).then_some(ports);
    let mut labels = c.labels.take().unwrap_or_default();
    for (k, v) in from.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    c.labels = Some(labels);
    if c.entrypoint.as_ref().is_none_or(|e| e.is_empty()) {
        if c.cmd.as_ref().is_none_or(|e| e.is_empty()) {
            c.cmd = from.cmd.clone();
        }
        c.entrypoint = from.entrypoint.clone();
    }
    if empty(&c.working_dir) {
        c.working_dir = from.working_dir.clone();
    }
    if c.volumes.is_none() {
        c.volumes = from.volumes.clone();
    }
    if empty(&c.stop_signal) {
        c.stop_signal = from.stop_signal.clone();
    }
    if c.on_build.is_none() {
        c.on_build = from.on_build.clone();
    }
    if c.healthcheck.is_none() {
        c.healthcheck = from.healthcheck.clone();
    }
    for (field, value) in [
        (&mut c.hostname, &from.hostname),
        (&mut c.domainname, &from.domainname),
        (&mut c.image, &from.image),
    ] {
        if empty(field) {
            *field = value.clone();
        }
    }
    c.tty = c.tty.or(from.tty);
    c.open_stdin = c.open_stdin.or(from.open_stdin);
    c.stdin_once = c.stdin_once.or(from.stdin_once);
    c.attach_stdin = c.attach_stdin.or(from.attach_stdin);
    c.attach_stdout = c.attach_stdout.or(from.attach_stdout);
    c.attach_stderr = c.attach_stderr.or(from.attach_stderr);
    Ok(c)
}

/// The diff ID of a layer that changes nothing (an empty tar: two zero
/// blocks). dockerd adds no layer for it and marks the history entry
/// `empty_layer`.
pub const EMPTY_LAYER: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// The new image's config blob, its top layer being `diff_id`.
pub fn image_config(spec: &CommitSpec, diff_id: &str) -> Result<Vec<u8>> {
    let parent: serde_json::Value = if spec.parent_id.is_empty() {
        // FROM scratch.
        serde_json::json!({ "rootfs": { "type": "layers" } })
    } else {
        serde_json::from_slice(&spec.parent_config)
            .map_err(|e| Error::internal(format!("reading the image config: {e}")))?
    };
    let config = new_config(spec)?;
    let mut diff_ids: Vec<serde_json::Value> = parent
        .pointer("/rootfs/diff_ids")
        .and_then(|d| d.as_array())
        .cloned()
        .unwrap_or_default();
    let empty_layer = diff_id == EMPTY_LAYER;
    if !empty_layer {
        diff_ids.push(diff_id.into());
    }
    let mut history: Vec<serde_json::Value> = parent
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    let created_by = match &spec.build_step {
        Some(step) => step.created_by.clone(),
        None => spec
            .container_config
            .cmd
            .clone()
            .unwrap_or_default()
            .join(" "),
    };
    let container_config = match &spec.build_step {
        Some(step) => &step.container_config,
        None => &spec.container_config,
    };
    let mut entry = serde_json::json!({ "created": spec.created, "created_by": created_by });
    if empty_layer {
        entry["empty_layer"] = true.into();
    }
    if !spec.author.is_empty() {
        entry["author"] = spec.author.clone().into();
    }
    if !spec.comment.is_empty() {
        entry["comment"] = spec.comment.clone().into();
    }
    history.push(entry);
    let mut v = serde_json::json!({
        "architecture": parent.get("architecture").cloned().unwrap_or("amd64".into()),
        "os": parent.get("os").cloned().unwrap_or("linux".into()),
        "config": config,
        "container": spec.container_id,
        "container_config": container_config,
        "created": spec.created,
        "docker_version": format!("berth-{}", crate::buildinfo::VERSION),
        "history": history,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    if !spec.author.is_empty() {
        v["author"] = spec.author.clone().into();
    }
    if !spec.comment.is_empty() {
        v["comment"] = spec.comment.clone().into();
    }
    if let Some(variant) = parent.get("variant") {
        v["variant"] = variant.clone();
    }
    serde_json::to_vec(&v).map_err(|e| Error::internal(format!("writing the image config: {e}")))
}

/// Stores the layer tar at `layer_tar` above the parent's layers and returns
/// the new image; nothing is recorded here.
pub fn commit(
    layer_tar: &Path,
    spec: &CommitSpec,
    layers: &LayerStore,
    blobs: &BlobStore,
) -> Result<LoadedImage> {
    // Bad changes fail before any work.
    image_config(spec, "sha256:0")?;
    if is_empty_tar(layer_tar)? {
        let config = image_config(spec, EMPTY_LAYER)?;
        return Ok(LoadedImage {
            id: sha256_digest(&config),
            config,
            chain_ids: spec.parent_chain.clone(),
            repo_tags: Vec::new(),
            new_layers: Vec::new(),
        });
    }
    let file = File::open(layer_tar)
        .map_err(|e| Error::internal(format!("opening the container's layer: {e}")))?;
    let parent = spec.parent_chain.last().map(String::as_str);
    let (diff_id, chain_id, new_layers) = crate::images::import::store_layer(
        file,
        parent,
        layers,
        blobs,
        "storing the container's layer",
    )?;
    let config = image_config(spec, &diff_id)?;
    let mut chain_ids = spec.parent_chain.clone();
    chain_ids.push(chain_id);
    Ok(LoadedImage {
        id: sha256_digest(&config),
        config,
        chain_ids,
        repo_tags: Vec::new(),
        new_layers,
    })
}

/// Whether the layer tar holds nothing but its end: the container changed
/// nothing, and the image gets no layer (as dockerd's NewChildImage).
fn is_empty_tar(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut file = File::open(path)
        .map_err(|e| Error::internal(format!("opening the container's layer: {e}")))?;
    let mut head = [0u8; 512];
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => {
                return Err(Error::internal(format!(
                    "reading the container's layer: {e}"
                )))
            }
        }
    }
    // The first header block is all zeros only at the end of the archive.
    Ok(head[..read].iter().all(|b| *b == 0))
}
