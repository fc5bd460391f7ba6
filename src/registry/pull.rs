//! Pulling an image: resolve the manifest (mirrors first), fetch and verify the
//! config, then fetch every missing layer in parallel (max-concurrent-downloads),
//! each streamed through decompression and sha256 straight into tar extraction on
//! a blocking thread. A layer is committed only once its compressed digest (checked
//! by the client's verifying stream) and its diff_id both match; layers are
//! committed in order, parents first. Progress goes out as dockerd words it.

use std::io::Read;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info};

use super::client::Client;
use super::errors::RegistryError;
use super::manifest::{self, ImageConfig, Manifest};
use super::reference::Reference;
use super::{Endpoint, RegistryAuth, RegistrySettings};
use crate::drivers::storage::overlay2::{LayerStore, Staged};
use crate::error::{Error, Result};
use crate::store::blobs::{sha256_digest, BlobStore, BlobWriter, TeeReader};

/// One line of pull progress (dockerd's JSON message fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub id: Option<String>,
    pub status: String,
    pub current: Option<(u64, u64)>,
    /// Machine-readable result (push: Tag, Digest, Size), sent alone.
    pub aux: Option<serde_json::Value>,
}

impl Progress {
    pub fn status(id: Option<&str>, status: impl Into<String>) -> Progress {
        Progress {
            aux: None,
            id: id.map(String::from),
            status: status.into(),
            current: None,
        }
    }
}

pub type ProgressTx = mpsc::UnboundedSender<Progress>;

pub struct NewLayer {
    pub chain_id: String,
    pub diff_id: String,
    pub parent: Option<String>,
    pub size: u64,
    /// The layer's bytes as distributed (kept for save and push).
    pub blob: LayerBlob,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

pub struct Pulled {
    pub image_id: String,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub chain_ids: Vec<String>,
    pub new_layers: Vec<NewLayer>,
}

/// The 12-character id the CLI shows for a layer.
fn short(digest: &str) -> String {
    digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .chars()
        .take(12)
        .collect()
}

/// dockerd's wording for registry failures; the kind sets the HTTP status.
fn registry_error(r: &Reference, e: &RegistryError) -> Error {
    let name = r.to_string();
    let manifest_unknown = || {
        Error::not_found(format!(
            "manifest for {name} not found: manifest unknown: manifest unknown"
        ))
    };
    let first = e.first_detail();
    let message = first.map(|x| x.message.as_str()).unwrap_or("");
    match (e, first.map(|x| x.code.as_str())) {
        // dockerd: `Head "<url>": unauthorized: ...` with status 500, on purpose:
        // on a 401 the docker CLI stops to prompt for a login instead.
        (RegistryError::Unauthorized { url, .. }, _) => Error::internal(format!(
            "Head {url:?}: unauthorized: authentication required"
        )),
        (_, Some("MANIFEST_UNKNOWN")) => manifest_unknown(),
        (_, Some("NAME_UNKNOWN")) => Error::not_found(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': name unknown: {message}",
            r.familiar_name(),
        )),
        (_, Some("UNAUTHORIZED" | "DENIED")) => Error::new(
            crate::error::ErrorKind::Forbidden,
            format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': denied: {message}",
                r.familiar_name(),
            ),
        ),
        (RegistryError::Token { .. }, _) => Error::new(
            crate::error::ErrorKind::Forbidden,
            format!("pull access denied for {}: {e}", r.familiar_name()),
        ),
        (RegistryError::Status { status, .. }, None) if status.as_u16() == 404 => manifest_unknown(),
        (RegistryError::Transport(re), _) => match super::transport::words(re) {
            Some(words) => Error::internal(words),
            None => Error::internal(format!("error pulling {name}: {e}")),
        },
        _ => Error::internal(format!("error pulling {name}: {e}")),
    }
}

/// Finds the image's manifest, trying each endpoint in turn.
pub async fn resolve(
    settings: &RegistrySettings,
    r: &Reference,
    auth: &RegistryAuth,
) -> Result<(Endpoint, Client, bytes::Bytes, String)> {
    let mut last: Option<Error> = None;
    for ep in settings.endpoints(r) {
        // A certs.d directory that is wrong fails the pull, as dockerd's lookup.
        let client = ep.client(settings, r, auth)?;
        match client.manifest(r.manifest_ref()).await {
            Ok((bytes, digest)) => return Ok((ep, client, bytes, digest)),
            Err(e) => {
                debug!(endpoint = %ep.host, error = %e, "manifest lookup failed");
                let err = registry_error(r, &e);
                // An insecure registry that does not speak TLS: plain HTTP next.
                if ep.skip_verify && matches!(e, RegistryError::Transport(_)) {
                    last = Some(err);
                    continue;
                }
                if ep.mirror {
                    info!(mirror = %ep.host, image = %r, "mirror does not serve the image; trying the next endpoint");
                    last = Some(err);
                    continue;
                }
                return Err(err);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::not_found(format!("no registry endpoint for {r}"))))
}

pub async fn pull(
    settings: &RegistrySettings,
    layers: Arc<LayerStore>,
    blobs: Arc<BlobStore>,
    r: &Reference,
    auth: &RegistryAuth,
    progress: &ProgressTx,
) -> Result<Pulled> {
    let (_, client, bytes, digest) = resolve(settings, r, auth).await?;
    let _ = progress.send(Progress::status(
        Some(r.tag.as_deref().or(r.digest.as_deref()).unwrap_or("latest")),
        format!("Pulling from {}", r.path),
    ));
    if let Some(want) = &r.digest {
        if &sha256_digest(&bytes) != want {
            return Err(Error::invalid(format!(
                "manifest verification failed for digest {want}"
            )));
        }
    }
    let manifest_digest = sha256_digest(&bytes);
    if manifest_digest != digest {
        debug!(%digest, computed = %manifest_digest, "registry reported another manifest digest");
    }
    // Blobs are stored only once the whole pull succeeded: a failed pull leaves nothing.
    let mut to_store: Vec<(String, Vec<u8>)> = vec![(manifest_digest.clone(), bytes.to_vec())];
    let image_manifest = match Manifest::parse(&bytes)? {
        Manifest::Image(m) => m,
        Manifest::Index(index) => {
            let want = manifest::host_platform();
            let entry = manifest::select_platform(&index, &want).ok_or_else(|| {
                Error::not_found(format!(
                    "no matching manifest for {}/{} in the manifest list entries",
                    want.os, want.architecture
                ))
            })?;
            let (inner, _) = client
                .manifest(&entry.digest)
                .await
                .map_err(|e| registry_error(r, &e))?;
            if sha256_digest(&inner) != entry.digest {
                return Err(Error::invalid(format!(
                    "manifest {} does not match its digest",
                    entry.digest
                )));
            }
            to_store.push((entry.digest.clone(), inner.to_vec()));
            match Manifest::parse(&inner)? {
                Manifest::Image(m) => m,
                Manifest::Index(_) => {
                    return Err(Error::invalid("an index inside an index is not supported"))
                }
            }
        }
    };

    let config = client
        .blob(&image_manifest.config.digest)
        .await
        .map_err(|e| Error::internal(format!("fetching the image config: {e}")))?
        .to_vec();
    if sha256_digest(&config) != image_manifest.config.digest {
        return Err(Error::invalid(format!(
            "the image config does not match its digest {}",
            image_manifest.config.digest
        )));
    }
    to_store.push((image_manifest.config.digest.clone(), config.clone()));
    let parsed: ImageConfig = serde_json::from_slice(&config)
        .map_err(|e| Error::invalid(format!("the image config is not valid JSON: {e}")))?;
    let diff_ids = parsed.rootfs.diff_ids.clone();
    if diff_ids.len() != image_manifest.layers.len() {
        return Err(Error::invalid(format!(
            "the manifest has {} layers but the config lists {} diff_ids",
            image_manifest.layers.len(),
            diff_ids.len()
        )));
    }
    let chain_ids = manifest::chain_ids(&diff_ids);

    // Announce every layer, then fetch the missing ones in parallel.
    let permits = Arc::new(Semaphore::new(settings.max_concurrent_downloads.max(1)));
    let mut tasks = Vec::new();
    for (i, layer) in image_manifest.layers.iter().enumerate() {
        let id = short(&layer.digest);
        if layers.exists(&chain_ids[i]) {
            let _ = progress.send(Progress::status(Some(&id), "Already exists"));
            continue;
        }
        let _ = progress.send(Progress::status(Some(&id), "Pulling fs layer"));
        if i >= settings.max_concurrent_downloads.max(1) {
            let _ = progress.send(Progress::status(Some(&id), "Waiting"));
        }
        let (client, layer, layers, progress, permits) = (
            client.clone(),
            layer.clone(),
            Arc::clone(&layers),
            progress.clone(),
            Arc::clone(&permits),
        );
        let blobs = Arc::clone(&blobs);
        let diff_id = diff_ids[i].clone();
        tasks.push((
            i,
            tokio::spawn(async move {
                let _permit = permits
                    .acquire()
                    .await
                    .map_err(|_| Error::internal("download slots closed"))?;
                fetch_layer(&client, &layer, &diff_id, layers, blobs, &progress).await
            }),
        ));
    }
    let mut staged: Vec<(usize, Staged, u64, BlobWriter)> = Vec::new();
    let mut failure = None;
    for (i, task) in tasks {
        match task.await {
            Ok(Ok((s, size, blob))) => staged.push((i, s, size, blob)),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => {
                failure = failure.or(Some(Error::internal(format!("layer download task: {e}"))))
            }
        }
    }
    if let Some(e) = failure {
        // Dropping the staged layers removes them: nothing from this pull is kept.
        return Err(e);
    }
    for (digest, bytes) in &to_store {
        blobs.put(digest, bytes)?;
    }
    let mut new_layers = Vec::new();
    for (i, s, size, blob) in staged {
        let parent = if i == 0 {
            None
        } else {
            Some(chain_ids[i - 1].clone())
        };
        let descriptor = &image_manifest.layers[i];
        let (blob_digest, blob_size) = blob.commit()?;
        if blob_digest != descriptor.digest {
            return Err(Error::invalid(format!(
                "layer {} arrived as {blob_digest}",
                descriptor.digest
            )));
        }
        layers.commit(s, &chain_ids[i], parent.as_deref())?;
        let _ = progress.send(Progress::status(
            Some(&short(&descriptor.digest)),
            "Pull complete",
        ));
        new_layers.push(NewLayer {
            chain_id: chain_ids[i].clone(),
            diff_id: diff_ids[i].clone(),
            parent,
            size,
            blob: LayerBlob {
                digest: blob_digest,
                media_type: descriptor.media_type.clone(),
                size: blob_size,
            },
        });
    }
    Ok(Pulled {
        image_id: image_manifest.config.digest.clone(),
        manifest_digest,
        config,
        chain_ids,
        new_layers,
    })
}

/// Downloads one layer into a staged directory, extracting while it arrives.
async fn fetch_layer(
    client: &Client,
    layer: &manifest::Descriptor,
    diff_id: &str,
    layers: Arc<LayerStore>,
    blobs: Arc<BlobStore>,
    progress: &ProgressTx,
) -> Result<(Staged, u64, BlobWriter)> {
    let id = short(&layer.digest);
    let mut stream = client
        .blob_stream(&layer.digest)
        .await
        .map_err(|e| Error::internal(format!("fetching layer {}: {e}", layer.digest)))?;
    let total = stream.content_length.unwrap_or(layer.size.max(0) as u64);
    let staged = layers.stage()?;
    let diff_dir = staged.diff_dir();
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::result::Result<bytes::Bytes, String>>(32);
    let blob = blobs.writer()?;
    let extractor = tokio::task::spawn_blocking(move || -> Result<(String, u64, BlobWriter)> {
        let mut tee = TeeReader {
            inner: ChannelReader {
                rx,
                buf: bytes::Bytes::new(),
            },
            blob,
        };
        let (diff_id, size) = crate::drivers::storage::extract::extract_layer(&diff_dir, &mut tee)?;
        // Whatever follows the compressed stream still belongs to the blob.
        std::io::copy(&mut tee, &mut std::io::sink())
            .map_err(|e| Error::invalid(format!("reading layer: {e}")))?;
        Ok((diff_id, size, tee.blob))
    });

    let mut received = 0u64;
    let mut reported = 0u64;
    let mut stream_error = None;
    while let Some(chunk) = stream.stream.next().await {
        match chunk {
            Ok(bytes) => {
                received += bytes.len() as u64;
                if received - reported >= 512 << 10 || received == total {
                    reported = received;
                    let _ = progress.send(Progress {
                        id: Some(id.clone()),
                        status: "Downloading".into(),
                        current: Some((received, total)),
                        aux: None,
                    });
                }
                if tx.send(Ok(bytes)).is_err() {
                    break; // the extractor failed; its error says why
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                stream_error = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    let extracted = extractor
        .await
        .map_err(|e| Error::internal(format!("layer extraction task: {e}")))?;
    // A connection that ends early is an error even when the transport says
    // nothing: the length the registry announced decides.
    let short_read = stream.content_length.is_some_and(|n| received < n);
    if stream_error.is_some() || short_read {
        return Err(Error::internal(format!(
            "layer {}: unexpected EOF: the download stopped after {received} of {total} bytes{}",
            layer.digest,
            stream_error.map(|e| format!(" ({e})")).unwrap_or_default()
        )));
    }
    let _ = progress.send(Progress::status(Some(&id), "Verifying Checksum"));
    let _ = progress.send(Progress::status(Some(&id), "Download complete"));
    let (actual_diff_id, size, blob) =
        extracted.map_err(|e| e.context(format_args!("layer {}", layer.digest)))?;
    if actual_diff_id != diff_id {
        return Err(Error::invalid(format!(
            "layer {}: its content ({actual_diff_id}) is not the layer the image config names ({diff_id})",
            layer.digest
        )));
    }
    let _ = progress.send(Progress {
        id: Some(id),
        status: "Extracting".into(),
        current: Some((total, total)),
        aux: None,
    });
    Ok((staged, size, blob))
}

struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::result::Result<bytes::Bytes, String>>,
    buf: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.buf = b,
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}
