//! Loading `docker save` archives (manifest.json) and OCI image-layout tars
//! (index.json). The archive is indexed in one pass; each layer is then read in
//! place, decompressed if it is compressed, hashed and extracted through the same
//! safe path as a pull, and committed only when its diff_id matches the config.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

use crate::drivers::storage::LayerStore;
use crate::error::{Error, Result};
use crate::registry::manifest::{self, ImageConfig};
use crate::registry::pull::NewLayer;
use crate::store::blobs::sha256_digest;

/// Small files are read into memory while indexing; layers are read in place.
const SMALL: u64 = 4 << 20;

pub struct LoadedImage {
    pub id: String,
    pub config: Vec<u8>,
    pub chain_ids: Vec<String>,
    pub repo_tags: Vec<String>,
    pub new_layers: Vec<NewLayer>,
}

#[derive(Deserialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

struct Index {
    /// path -> (offset of its data in the archive, size)
    files: HashMap<String, (u64, u64)>,
    small: HashMap<String, Vec<u8>>,
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("invalid image archive: {why}"))
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./").to_string()
}

fn index(path: &Path) -> Result<Index> {
    let file =
        File::open(path).map_err(|e| Error::internal(format!("opening the archive: {e}")))?;
    let mut archive = tar::Archive::new(file);
    let mut files = HashMap::new();
    let mut small = HashMap::new();
    for entry in archive.entries_with_seek().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = clean(&entry.path().map_err(bad)?.to_string_lossy());
        let size = entry.size();
        files.insert(name.clone(), (entry.raw_file_position(), size));
        if size <= SMALL
            && (name.ends_with(".json") || !name.contains('/') || name.starts_with("blobs/"))
        {
            let mut buf = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut buf).map_err(bad)?;
            small.insert(name, buf);
        }
    }
    Ok(Index { files, small })
}

impl Index {
    fn small(&self, name: &str) -> Result<&[u8]> {
        self.small
            .get(&clean(name))
            .map(|v| v.as_slice())
            .ok_or_else(|| bad(format!("{name} is missing")))
    }

    fn blob_path(digest: &str) -> String {
        format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
    }
}

/// Reads an archive at `path` and extracts the layers it brings; nothing is
/// recorded here (the caller appends the events).
pub fn load(path: &Path, layers: &LayerStore) -> Result<Vec<LoadedImage>> {
    let idx = index(path)?;
    // (config bytes, layer paths, tags)
    let mut images: Vec<(Vec<u8>, Vec<String>, Vec<String>)> = Vec::new();
    if let Ok(m) = idx.small("manifest.json") {
        let entries: Vec<ArchiveManifest> =
            serde_json::from_slice(m).map_err(|e| bad(format!("manifest.json: {e}")))?;
        for e in entries {
            images.push((
                idx.small(&e.config)?.to_vec(),
                e.layers,
                e.repo_tags.unwrap_or_default(),
            ));
        }
    } else if let Ok(i) = idx.small("index.json") {
        let index: manifest::ImageIndex =
            serde_json::from_slice(i).map_err(|e| bad(format!("index.json: {e}")))?;
        for d in index.manifests {
            let m: manifest::ImageManifest =
                serde_json::from_slice(idx.small(&Index::blob_path(&d.digest))?)
                    .map_err(|e| bad(format!("manifest {}: {e}", d.digest)))?;
            let config = idx.small(&Index::blob_path(&m.config.digest))?.to_vec();
            let layer_paths = m
                .layers
                .iter()
                .map(|l| Index::blob_path(&l.digest))
                .collect();
            images.push((config, layer_paths, Vec::new()));
        }
    } else {
        return Err(bad("neither manifest.json nor index.json found"));
    }
    if images.is_empty() {
        return Err(bad("no images in the archive"));
    }

    let mut loaded = Vec::new();
    for (config, layer_paths, repo_tags) in images {
        let parsed: ImageConfig =
            serde_json::from_slice(&config).map_err(|e| bad(format!("image config: {e}")))?;
        let diff_ids = parsed.rootfs.diff_ids;
        if diff_ids.len() != layer_paths.len() {
            return Err(bad(format!(
                "{} layers for {} diff_ids",
                layer_paths.len(),
                diff_ids.len()
            )));
        }
        let chain_ids = manifest::chain_ids(&diff_ids);
        let mut new_layers = Vec::new();
        for (i, layer_path) in layer_paths.iter().enumerate() {
            if layers.exists(&chain_ids[i]) {
                continue;
            }
            let &(offset, size) = idx
                .files
                .get(&clean(layer_path))
                .ok_or_else(|| bad(format!("{layer_path} is missing")))?;
            let mut file = File::open(path)
                .map_err(|e| Error::internal(format!("opening the archive: {e}")))?;
            file.seek(SeekFrom::Start(offset)).map_err(bad)?;
            let staged = layers.stage()?;
            let (diff_id, written) = crate::drivers::storage::extract::extract_layer(
                &staged.diff_dir(),
                file.take(size),
            )
            .map_err(|e| e.context(format_args!("layer {layer_path}")))?;
            if diff_id != diff_ids[i] {
                return Err(bad(format!(
                    "layer {layer_path} is {diff_id}, but the config names {}",
                    diff_ids[i]
                )));
            }
            let parent = if i == 0 {
                None
            } else {
                Some(chain_ids[i - 1].clone())
            };
            layers.commit(staged, &chain_ids[i], parent.as_deref())?;
            new_layers.push(NewLayer {
                chain_id: chain_ids[i].clone(),
                diff_id,
                parent,
                size: written,
            });
        }
        loaded.push(LoadedImage {
            id: sha256_digest(&config),
            config,
            chain_ids,
            repo_tags,
            new_layers,
        });
    }
    Ok(loaded)
}
