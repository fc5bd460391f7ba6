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
}

/// The user's config with the changes applied, its gaps filled from the
/// container's (moby's merge): what the new image runs.
pub fn new_config(spec: &CommitSpec) -> Result<ContainerConfig> {
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

/// The new image's config blob, its top layer being `diff_id`.
pub fn image_config(spec: &CommitSpec, diff_id: &str) -> Result<Vec<u8>> {
    let parent: serde_json::Value = serde_json::from_slice(&spec.parent_config)
        .map_err(|e| Error::internal(format!("reading the image config: {e}")))?;
    let config = new_config(spec)?;
    let mut diff_ids: Vec<serde_json::Value> = parent
        .pointer("/rootfs/diff_ids")
        .and_then(|d| d.as_array())
        .cloned()
        .unwrap_or_default();
    diff_ids.push(diff_id.into());
    let mut history: Vec<serde_json::Value> = parent
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    let created_by = spec
        .container_config
        .cmd
        .clone()
        .unwrap_or_default()
        .join(" ");
    let mut entry = serde_json::json!({ "created": spec.created, "created_by": created_by });
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
        "container_config": spec.container_config,
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
