//! Pushing an image: every layer blob the registry lacks (as kept when the image
//! was pulled or loaded), the config, then the manifest. The manifest the image
//! was pulled with is pushed as it was when it still describes exactly these blobs,
//! so a pushed-back image keeps its digest.

use super::client::Access;
use super::pull::{Progress, ProgressTx};
use super::reference::{Reference, DOCKER_HUB, DOCKER_HUB_ENDPOINT};
use super::{Endpoint, RegistryAuth, RegistrySettings};
use crate::error::{Error, Result};
use crate::events::projection::{ImageRecord, State};
use crate::store::blobs::{sha256_digest, BlobStore};

pub struct PushLayer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

pub struct PushImage {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layers: Vec<PushLayer>,
    /// (bytes, media type) of a stored manifest that describes exactly these blobs.
    pub manifest: Option<(Vec<u8>, String)>,
}

fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

fn push_error(r: &Reference, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("error pushing {r}: {e}"))
}

/// A manifest for blobs that were not pulled with one: Docker schema 2 when every
/// layer is a Docker media type, OCI otherwise.
fn build_manifest(image: &PushImage) -> (Vec<u8>, String) {
    let docker = image
        .layers
        .iter()
        .all(|l| l.media_type.starts_with("application/vnd.docker."));
    let (manifest_type, config_type) = if docker {
        (
            super::manifest::DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
        )
    } else {
        (
            super::manifest::OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
        )
    };
    let layers: Vec<serde_json::Value> = image
        .layers
        .iter()
        .map(|l| serde_json::json!({ "mediaType": l.media_type, "digest": l.digest, "size": l.size }))
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": { "mediaType": config_type, "digest": image.config_digest, "size": image.config.len() },
        "layers": layers,
    });
    (
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
        manifest_type.to_string(),
    )
}

/// Pushes `image` as `r` (which has a tag); returns (manifest digest, its size).
pub async fn push(
    settings: &RegistrySettings,
    blobs: &BlobStore,
    r: &Reference,
    image: &PushImage,
    auth: &RegistryAuth,
    progress: &ProgressTx,
) -> Result<(String, usize)> {
    let host = if r.domain == DOCKER_HUB {
        DOCKER_HUB_ENDPOINT.to_string()
    } else {
        r.domain.clone()
    };
    let ep = Endpoint {
        plain_http: settings.is_insecure(&host),
        host,
        skip_verify: false,
        mirror: false,
    };
    let client = ep.client(settings, r, auth)?;
    let _ = progress.send(Progress::status(
        None,
        format!("The push refers to repository [{}]", r.full_name()),
    ));
    client
        .authorize(Access::Push)
        .await
        .map_err(|e| push_error(r, e))?;
    for l in image.layers.iter().rev() {
        let _ = progress.send(Progress::status(Some(&short(&l.digest)), "Preparing"));
    }
    for l in image.layers.iter().rev() {
        let id = short(&l.digest);
        if client
            .blob_exists(&l.digest)
            .await
            .map_err(|e| push_error(r, e))?
        {
            let _ = progress.send(Progress::status(Some(&id), "Layer already exists"));
            continue;
        }
        let data = tokio::fs::read(blobs.path_of(&l.digest)?)
            .await
            .map_err(|e| Error::internal(format!("layer blob {}: {e}", l.digest)))?;
        let _ = progress.send(Progress {
            id: Some(id.clone()),
            status: "Pushing".into(),
            current: Some((0, data.len() as u64)),
            aux: None,
        });
        client
            .push_blob(&l.digest, data.into())
            .await
            .map_err(|e| push_error(r, e))?;
        let _ = progress.send(Progress::status(Some(&id), "Pushed"));
    }
    if !client
        .blob_exists(&image.config_digest)
        .await
        .map_err(|e| push_error(r, e))?
    {
        client
            .push_blob(&image.config_digest, image.config.clone().into())
            .await
            .map_err(|e| push_error(r, e))?;
    }
    let (body, media_type) = image
        .manifest
        .clone()
        .unwrap_or_else(|| build_manifest(image));
    let digest = sha256_digest(&body);
    let size = body.len();
    client
        .push_manifest(r.manifest_ref(), body.into(), &media_type)
        .await
        .map_err(|e| push_error(r, e))?;
    Ok((digest, size))
}

/// What a push sends for one image, from the projection and the blob store.
pub fn plan(state: &State, blobs: &BlobStore, image: &ImageRecord) -> Result<PushImage> {
    use crate::registry::manifest::{Manifest, DOCKER_MANIFEST};
    let mut layers = Vec::new();
    for c in &image.chain_ids {
        let layer = state
            .layers
            .get(c)
            .ok_or_else(|| Error::internal(format!("layer {c} of {} is missing", image.id)))?;
        let blob = layer.blob.as_ref().ok_or_else(|| {
            Error::internal(format!(
                "layer {} of {} has no stored blob to push; pull it again",
                layer.diff_id, image.id
            ))
        })?;
        layers.push(PushLayer {
            digest: blob.digest.clone(),
            media_type: blob.media_type.clone(),
            size: blob.size,
        });
    }
    // The manifest it was pulled with, if it describes exactly these blobs.
    let manifest = image
        .repo_digests
        .iter()
        .filter_map(|d| d.rsplit_once('@').map(|(_, dg)| dg))
        .find_map(|digest| {
            let bytes = blobs.get(digest).ok()?;
            let Ok(Manifest::Image(m)) = Manifest::parse(&bytes) else {
                return None;
            };
            let same = m.config.digest == image.id
                && m.layers.len() == layers.len()
                && m.layers
                    .iter()
                    .zip(&layers)
                    .all(|(a, b)| a.digest == b.digest);
            same.then(|| {
                (
                    bytes,
                    m.media_type.unwrap_or_else(|| DOCKER_MANIFEST.to_string()),
                )
            })
        });
    Ok(PushImage {
        config: blobs.get(&image.id)?,
        config_digest: image.id.clone(),
        layers,
        manifest,
    })
}
