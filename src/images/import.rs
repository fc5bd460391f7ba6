//! `docker import`: a tarball (plain, gzip or zstd) becomes a one-layer image
//! whose config dockerd would write: the changes applied to an empty config,
//! this host's platform, the message as comment and in the history.

use std::fs::File;
use std::path::Path;

use bollard_stubs::models::ContainerConfig;

use crate::drivers::storage::LayerStore;
use crate::error::{Error, Result};
use crate::images::archive::LoadedImage;
use crate::registry::pull::{LayerBlob, NewLayer};
use crate::store::blobs::{sha256_digest, BlobStore, TeeReader};

pub struct ImportSpec<'a> {
    pub changes: &'a [String],
    pub message: &'a str,
    pub os: &'a str,
    pub architecture: &'a str,
    /// RFC 3339, the image's creation time.
    pub created: &'a str,
}

/// The config blob of an imported image whose single layer is `diff_id`.
pub fn image_config(spec: &ImportSpec<'_>, diff_id: &str) -> Result<Vec<u8>> {
    let mut config = ContainerConfig::default();
    crate::images::changes::apply(&mut config, spec.changes)?;
    let mut history = serde_json::json!({ "created": spec.created });
    let mut v = serde_json::json!({
        "architecture": spec.architecture,
        "config": config,
        "container_config": ContainerConfig::default(),
        "created": spec.created,
        "docker_version": format!("berth-{}", crate::buildinfo::VERSION),
        "os": spec.os,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    if !spec.message.is_empty() {
        v["comment"] = spec.message.into();
        history["comment"] = spec.message.into();
    }
    v["history"] = serde_json::json!([history]);
    serde_json::to_vec(&v).map_err(|e| Error::internal(format!("writing the image config: {e}")))
}

/// Extracts the tarball at `path` as a new layer (unless an identical one exists)
/// and returns the image; nothing is recorded here.
pub fn import(
    path: &Path,
    spec: &ImportSpec<'_>,
    layers: &LayerStore,
    blobs: &BlobStore,
) -> Result<LoadedImage> {
    // The changes are checked before any work, so bad input leaves nothing.
    image_config(spec, "sha256:0")?;
    let file =
        File::open(path).map_err(|e| Error::internal(format!("opening the tarball: {e}")))?;
    let (diff_id, chain_id, new_layers) =
        store_layer(file, None, layers, blobs, "importing the tarball")?;
    let config = image_config(spec, &diff_id)?;
    Ok(LoadedImage {
        id: sha256_digest(&config),
        config,
        chain_ids: vec![chain_id],
        repo_tags: Vec::new(),
        new_layers,
    })
}

/// Stores a layer tar (plain, gzip or zstd) above the layer `parent` (a
/// ChainID) unless an identical one is there: its diff_id, its ChainID, and
/// the layer to record when it is new. `doing` says what failed in errors.
pub fn store_layer(
    input: File,
    parent: Option<&str>,
    layers: &LayerStore,
    blobs: &BlobStore,
    doing: &str,
) -> Result<(String, String, Vec<NewLayer>)> {
    let staged = layers.stage()?;
    let mut tee = TeeReader {
        inner: input,
        blob: blobs.writer()?,
    };
    let (diff_id, size) =
        crate::drivers::storage::extract::extract_layer(&staged.diff_dir(), &mut tee)
            .map_err(|e| e.context(doing))?;
    std::io::copy(&mut tee, &mut std::io::sink())
        .map_err(|e| Error::invalid(format!("{doing}: reading: {e}")))?;
    // ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n)); a first layer's is its diff_id.
    let chain_id = match parent {
        Some(p) => sha256_digest(format!("{p} {diff_id}").as_bytes()),
        None => diff_id.clone(),
    };
    let mut new_layers = Vec::new();
    if !layers.exists(&chain_id) {
        let (digest, blob_size) = tee.blob.commit()?;
        let media_type = crate::images::archive::media_type_of(blobs, &digest, &diff_id);
        layers.commit(staged, &chain_id, parent)?;
        new_layers.push(NewLayer {
            chain_id: chain_id.clone(),
            diff_id: diff_id.clone(),
            parent: parent.map(String::from),
            size,
            blob: LayerBlob {
                digest,
                media_type,
                size: blob_size,
            },
        });
    }
    Ok((diff_id, chain_id, new_layers))
}
