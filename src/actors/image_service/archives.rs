//! Images as files: docker load, import, commit and save.

use actix::prelude::*;
use tracing::{info, warn};

use super::*;

/// Load the images of a `docker save` archive or an OCI layout tar (a file the
/// API has spooled to disk). Returns one line per image, as `docker load` prints.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>>")]
pub struct LoadImages {
    /// Removed when the load is done.
    pub archive: crate::spool::Spool,
}

impl Handler<LoadImages> for ImageService {
    type Result = AtomicResponse<Self, Result<Vec<String>>>;

    fn handle(&mut self, msg: LoadImages, _: &mut Context<Self>) -> Self::Result {
        let Handles {
            events,
            layers,
            blobs,
            projection,
        } = self.handles();
        AtomicResponse::new(Box::pin(
            async move {
                let archive = msg.archive;
                let load_blobs = Arc::clone(&blobs);
                let loaded = tokio::task::spawn_blocking(move || {
                    crate::images::archive::load(archive.path(), &layers, &load_blobs)
                })
                .await
                .map_err(|e| Error::internal(format!("loading: {e}")))??;
                let mut lines = Vec::new();
                for image in loaded {
                    store_arrived(&events, &projection, &blobs, &image, "load").await?;
                    if image.repo_tags.is_empty() {
                        lines.push(format!("Loaded image ID: {}", image.id));
                    }
                    for tag in &image.repo_tags {
                        let r = Reference::parse(tag)?.with_default_tag();
                        let tag = r.familiar_tagged().unwrap_or_else(|| tag.clone());
                        append(
                            &events,
                            Event::ImageTagged {
                                id: image.id.clone(),
                                tag: tag.clone(),
                            },
                        )
                        .await?;
                        lines.push(format!("Loaded image: {tag}"));
                    }
                }
                Ok(lines)
            }
            .into_actor(self),
        ))
    }
}

/// Import a tarball (spooled to disk by the API) as a one-layer image, tagged
/// `tag` when given. Returns the new image's ID.
#[derive(Message)]
#[rtype(result = "Result<String>")]
pub struct ImportImage {
    /// Removed when the import is done.
    pub tarball: crate::spool::Spool,
    pub tag: Option<Reference>,
    pub changes: Vec<String>,
    pub message: String,
}

impl Handler<ImportImage> for ImageService {
    type Result = AtomicResponse<Self, Result<String>>;

    fn handle(&mut self, msg: ImportImage, _: &mut Context<Self>) -> Self::Result {
        let Handles {
            events,
            layers,
            blobs,
            projection,
        } = self.handles();
        AtomicResponse::new(Box::pin(
            async move {
                let created = crate::clock::rfc3339_now();
                let import_blobs = Arc::clone(&blobs);
                let ImportImage {
                    tarball,
                    tag,
                    changes,
                    message,
                } = msg;
                let image = tokio::task::spawn_blocking(move || {
                    let spec = crate::images::import::ImportSpec {
                        changes: &changes,
                        message: &message,
                        os: "linux",
                        architecture: crate::hostinfo::go_arch(std::env::consts::ARCH),
                        created: &created,
                    };
                    crate::images::import::import(tarball.path(), &spec, &layers, &import_blobs)
                })
                .await
                .map_err(|e| Error::internal(format!("importing: {e}")))??;
                store_arrived(&events, &projection, &blobs, &image, "import").await?;
                tag_new(&events, &image.id, tag).await?;
                info!(id = %image.id, "imported");
                Ok(image.id)
            }
            .into_actor(self),
        ))
    }
}

/// Tags a new image (import, commit) with the reference the user gave.
pub(super) async fn tag_new(
    events: &Addr<EventLog>,
    id: &str,
    tag: Option<Reference>,
) -> Result<()> {
    if let Some(tag) = tag.and_then(|t| t.familiar_tagged()) {
        append(
            events,
            Event::ImageTagged {
                id: id.to_string(),
                tag,
            },
        )
        .await?;
    }
    Ok(())
}

/// Store a container's layer tar (spooled by the API) as a new image on its
/// image (docker commit), tagged `tag` when given. Returns the image's ID.
#[derive(Message)]
#[rtype(result = "Result<String>")]
pub struct CommitImage {
    /// Removed when the commit is done.
    pub layer_tar: crate::spool::Spool,
    pub spec: crate::images::commit::CommitSpec,
    pub tag: Option<Reference>,
}

impl Handler<CommitImage> for ImageService {
    type Result = AtomicResponse<Self, Result<String>>;

    fn handle(&mut self, msg: CommitImage, _: &mut Context<Self>) -> Self::Result {
        let Handles {
            events,
            layers,
            blobs,
            projection,
        } = self.handles();
        AtomicResponse::new(Box::pin(
            async move {
                let commit_blobs = Arc::clone(&blobs);
                let CommitImage {
                    layer_tar,
                    spec,
                    tag,
                } = msg;
                let parent = spec.parent_id.clone();
                let image = tokio::task::spawn_blocking(move || {
                    let mut spec = spec;
                    if !spec.parent_id.is_empty() {
                        spec.parent_config = commit_blobs.get(&spec.parent_id)?;
                    }
                    crate::images::commit::commit(layer_tar.path(), &spec, &layers, &commit_blobs)
                })
                .await
                .map_err(|e| Error::internal(format!("committing: {e}")))??;
                blobs.put(&image.id, &image.config)?;
                record_image(
                    &events,
                    &projection,
                    &image.id,
                    &image.chain_ids,
                    &image.config,
                    &image.new_layers,
                )
                .await?;
                if !parent.is_empty() {
                    crate::actors::event_log::append(
                        &events,
                        Event::ImageParentRecorded {
                            id: image.id.clone(),
                            parent,
                        },
                    )
                    .await?;
                }
                tag_new(&events, &image.id, tag).await?;
                info!(id = %image.id, "committed");
                Ok(image.id)
            }
            .into_actor(self),
        ))
    }
}

/// Write `docker save` of these names; the archive arrives in chunks.
#[derive(Message)]
#[rtype(result = "Result<mpsc::Receiver<std::result::Result<bytes::Bytes, std::io::Error>>>")]
pub struct SaveImages {
    pub names: Vec<String>,
    pub tmp: std::path::PathBuf,
}

use crate::chan::ChannelWriter;

impl Handler<SaveImages> for ImageService {
    type Result = Result<mpsc::Receiver<std::result::Result<bytes::Bytes, std::io::Error>>>;

    fn handle(&mut self, msg: SaveImages, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let mut images: Vec<crate::images::archive::SaveImage> = Vec::new();
        for name in &msg.names {
            let image = resolve(&state, name)?;
            // A name that is a tag carries that tag into the archive; an ID carries none.
            let tag = Reference::parse(name)
                .ok()
                .filter(|r| r.digest.is_none())
                .and_then(|r| r.with_default_tag().familiar_tagged())
                .filter(|t| image.repo_tags.contains(t));
            if let Some(existing) = images.iter_mut().find(|i| i.id == image.id) {
                existing.repo_tags.extend(tag);
                continue;
            }
            let mut layers = Vec::new();
            for c in &image.chain_ids {
                let layer = state.layers.get(c).ok_or_else(|| {
                    Error::internal(format!("layer {c} of {} is missing", image.id))
                })?;
                let blob = layer.blob.as_ref().ok_or_else(|| {
                    Error::internal(format!(
                        "layer {} of {} was stored before berthd kept layer blobs; pull it again",
                        layer.diff_id, image.id
                    ))
                })?;
                layers.push((
                    layer.diff_id.clone(),
                    blob.digest.clone(),
                    blob.media_type.clone(),
                ));
            }
            images.push(crate::images::archive::SaveImage {
                id: image.id.clone(),
                config: self.blobs.get(&image.id)?,
                layers,
                repo_tags: tag.into_iter().collect(),
            });
        }
        let (tx, rx) = mpsc::channel(16);
        let blobs = Arc::clone(&self.blobs);
        let tmp = msg.tmp;
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let err_tx = tx.clone();
            match crate::images::archive::save(ChannelWriter(tx), &images, &blobs, &tmp) {
                Ok(()) => {
                    for i in &images {
                        events.do_send(crate::actors::event_log::Append(Event::ImageAction {
                            action: "save".into(),
                            id: i.id.clone(),
                            name: i.id.clone(),
                        }));
                    }
                }
                Err(e) => {
                    warn!(error = %e, "save failed");
                    let _ = err_tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                }
            }
        });
        Ok(rx)
    }
}
