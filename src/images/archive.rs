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
use crate::registry::pull::{LayerBlob, NewLayer};
use crate::store::blobs::{sha256_digest, BlobStore, TeeReader};

pub const MEDIA_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MEDIA_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MEDIA_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A stored layer blob's media type: a plain tar is its own diff_id; otherwise the
/// magic bytes tell gzip from zstd.
pub fn media_type_of(blobs: &BlobStore, digest: &str, diff_id: &str) -> String {
    if digest == diff_id {
        return MEDIA_TAR.into();
    }
    let mut magic = [0u8; 4];
    let read = blobs
        .path_of(digest)
        .ok()
        .and_then(|p| File::open(p).ok())
        .and_then(|mut f| f.read_exact(&mut magic).ok());
    match (read, magic) {
        (Some(()), [0x28, 0xb5, 0x2f, 0xfd]) => MEDIA_TAR_ZSTD.into(),
        _ => MEDIA_TAR_GZIP.into(),
    }
}

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

/// A tar stream that cannot be read, in the words dockerd's untar gives
/// (Go's archive/tar behind "Error processing tar file").
fn unreadable(e: std::io::Error) -> Error {
    let why = if e.kind() == std::io::ErrorKind::UnexpectedEof
        || e.to_string().contains("failed to read entire block")
    {
        "unexpected EOF"
    } else {
        "archive/tar: invalid tar header"
    };
    Error::invalid(format!("Error processing tar file(exit status 1): {why}"))
}

fn index(path: &Path) -> Result<Index> {
    let file =
        File::open(path).map_err(|e| Error::internal(format!("opening the archive: {e}")))?;
    let length = file
        .metadata()
        .map_err(|e| Error::internal(format!("reading the archive: {e}")))?
        .len();
    let mut archive = tar::Archive::new(file);
    let mut files = HashMap::new();
    let mut small = HashMap::new();
    for entry in archive.entries_with_seek().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        // Entries are sought past, not read: a file cut short shows here.
        if entry.raw_file_position() + entry.size() > length {
            return Err(unreadable(std::io::ErrorKind::UnexpectedEof.into()));
        }
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
pub fn load(path: &Path, layers: &LayerStore, blobs: &BlobStore) -> Result<Vec<LoadedImage>> {
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
            let mut tee = TeeReader {
                inner: file.take(size),
                blob: blobs.writer()?,
            };
            let (diff_id, written) =
                crate::drivers::storage::extract::extract_layer(&staged.diff_dir(), &mut tee)
                    .map_err(|e| e.context(format_args!("layer {layer_path}")))?;
            std::io::copy(&mut tee, &mut std::io::sink()).map_err(bad)?;
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
            let (blob_digest, blob_size) = tee.blob.commit()?;
            let media_type = media_type_of(blobs, &blob_digest, &diff_id);
            layers.commit(staged, &chain_ids[i], parent.as_deref())?;
            new_layers.push(NewLayer {
                chain_id: chain_ids[i].clone(),
                diff_id,
                parent,
                size: written,
                blob: LayerBlob {
                    digest: blob_digest,
                    media_type,
                    size: blob_size,
                },
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

/// One image to write into a `docker save` archive.
pub struct SaveImage {
    pub id: String,
    pub config: Vec<u8>,
    /// (diff_id, stored blob digest, its media type), bottom layer first.
    pub layers: Vec<(String, String, String)>,
    pub repo_tags: Vec<String>,
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

fn add_bytes<W: std::io::Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, path, bytes)
        .map_err(|e| Error::internal(format!("writing {path}: {e}")))
}

/// Writes a `docker save` archive (manifest.json, repositories, and blobs/sha256/
/// with the configs and the layers as uncompressed tars) to `out`. Compressed
/// layer blobs are inflated into `tmp` first (a tar entry needs its size up front).
pub fn save<W: std::io::Write>(
    out: W,
    images: &[SaveImage],
    blobs: &BlobStore,
    tmp: &Path,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut written = std::collections::HashSet::new();
    let mut manifest = Vec::new();
    let mut repositories: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    for image in images {
        let config_path = format!("blobs/sha256/{}", hex(&image.id));
        if written.insert(config_path.clone()) {
            add_bytes(&mut tar, &config_path, &image.config)?;
        }
        let mut layer_paths = Vec::new();
        for (diff_id, blob, media_type) in &image.layers {
            let path = format!("blobs/sha256/{}", hex(diff_id));
            layer_paths.push(path.clone());
            if !written.insert(path.clone()) {
                continue;
            }
            let stored = blobs.path_of(blob)?;
            let plain = media_type == MEDIA_TAR || blob == diff_id;
            let source = if plain {
                stored.clone()
            } else {
                std::fs::create_dir_all(tmp)
                    .map_err(|e| Error::internal(format!("creating {}: {e}", tmp.display())))?;
                let inflated = tmp.join(format!("save-{}", hex(diff_id)));
                let input = File::open(&stored)
                    .map_err(|e| Error::internal(format!("layer blob {blob}: {e}")))?;
                let mut reader: Box<dyn Read> = if media_type.contains("zstd") {
                    Box::new(
                        zstd::stream::read::Decoder::new(input)
                            .map_err(|e| Error::internal(format!("zstd: {e}")))?,
                    )
                } else {
                    Box::new(flate2::read::MultiGzDecoder::new(input))
                };
                let mut f = File::create(&inflated)
                    .map_err(|e| Error::internal(format!("inflating a layer: {e}")))?;
                std::io::copy(&mut reader, &mut f)
                    .map_err(|e| Error::internal(format!("inflating layer {blob}: {e}")))?;
                inflated
            };
            let mut f = File::open(&source)
                .map_err(|e| Error::internal(format!("layer {diff_id}: {e}")))?;
            let len = f
                .metadata()
                .map(|m| m.len())
                .map_err(|e| Error::internal(format!("layer {diff_id}: {e}")))?;
            let mut h = tar::Header::new_ustar();
            h.set_size(len);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            let res = tar
                .append_data(&mut h, &path, &mut f)
                .map_err(|e| Error::internal(format!("writing {path}: {e}")));
            if !plain {
                let _ = std::fs::remove_file(&source);
            }
            res?;
        }
        for t in &image.repo_tags {
            if let Some((repo, tag)) = t.rsplit_once(':') {
                let entry = repositories
                    .entry(repo.to_string())
                    .or_insert_with(|| serde_json::json!({}));
                entry[tag] =
                    serde_json::json!(hex(image.layers.last().map(|l| l.0.as_str()).unwrap_or("")));
            }
        }
        manifest.push(serde_json::json!({
            "Config": config_path,
            "RepoTags": if image.repo_tags.is_empty() { serde_json::Value::Null } else { serde_json::json!(image.repo_tags) },
            "Layers": layer_paths,
        }));
    }
    add_bytes(
        &mut tar,
        "manifest.json",
        serde_json::to_string(&manifest)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    if !repositories.is_empty() {
        add_bytes(
            &mut tar,
            "repositories",
            serde_json::Value::Object(repositories)
                .to_string()
                .as_bytes(),
        )?;
    }
    tar.finish()
        .map_err(|e| Error::internal(format!("finishing the archive: {e}")))
}
