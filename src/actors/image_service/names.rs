//! Names and removal: tag, rmi, prune, and the stored config for inspect.

use actix::prelude::*;

use super::*;

/// Tag an existing image.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct TagImage {
    pub source: String,
    pub target: Reference,
}

impl Handler<TagImage> for ImageService {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: TagImage, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let events = self.events.clone();
        Box::pin(async move {
            let id = resolve(&state, &msg.source)?.id.clone();
            // A name without a tag is its :latest (a build's `t=name`).
            let tag = msg
                .target
                .with_default_tag()
                .familiar_tagged()
                .ok_or_else(|| {
                    Error::invalid("refusing to create a tag with a digest reference")
                })?;
            let action = Event::ImageAction {
                action: "tag".into(),
                id: id.clone(),
                name: tag.clone(),
            };
            crate::actors::event_log::append_all(
                &events,
                vec![Event::ImageTagged { id, tag }, action],
            )
            .await
        })
    }
}

/// One line of `docker rmi` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(String),
}

/// Remove an image or one of its references, as `docker rmi` does.
#[derive(Message)]
#[rtype(result = "Result<Vec<Removed>>")]
pub struct RemoveImage {
    pub name: String,
    pub force: bool,
}

pub(super) fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

impl Handler<RemoveImage> for ImageService {
    type Result = AtomicResponse<Self, Result<Vec<Removed>>>;

    fn handle(&mut self, msg: RemoveImage, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let Handles {
            events,
            layers,
            blobs,
            projection,
        } = self.handles();
        AtomicResponse::new(Box::pin(
            async move {
                let image = resolve(&state, &msg.name)?.clone();
                let mut out = Vec::new();
                // A name that is a tag or digest of the image removes that reference;
                // the image goes only when nothing names it any more.
                let by_reference = Reference::parse(&msg.name).ok().and_then(|r| {
                    let r = if r.digest.is_none() { r.with_default_tag() } else { r };
                    let as_tag = r.familiar_tagged();
                    let as_digest = r.digest.as_ref().map(|d| format!("{}@{d}", r.familiar_name()));
                    as_tag.filter(|t| image.repo_tags.contains(t)).or(as_digest.filter(|d| image.repo_digests.contains(d)))
                });
                // A container keeps its image: by reference without force it is a
                // conflict when that is the last tag; by ID one without force (a
                // stopped container) or at all (a running one).
                let user = state.containers.values().find(|c| c.image == image.id);
                if let Some(c) = user {
                    let running = c.status == crate::events::projection::ContainerStatus::Running;
                    let last_name = crate::images::query::single_reference(&image);
                    match &by_reference {
                        Some(_) if !msg.force && last_name => {
                            return Err(Error::conflict(format!(
                                "conflict: unable to remove repository reference \"{}\" (must force) - container {} is using its referenced image {}",
                                msg.name, &c.id[..12], short_id(&image.id)
                            )));
                        }
                        None if running || !msg.force => {
                            return Err(Error::conflict(format!(
                                "conflict: unable to delete {} ({}) - image is being used by {} container {}",
                                short_id(&image.id),
                                if running { "cannot be forced" } else { "must be forced" },
                                if running { "running" } else { "stopped" },
                                &c.id[..12]
                            )));
                        }
                        _ => {}
                    }
                }
                let in_use = user.is_some();
                let remove_image = match &by_reference {
                    Some(reference) => {
                        append(&events, Event::ImageUntagged { id: image.id.clone(), reference: reference.clone() }).await?;
                        out.push(Removed::Untagged(reference.clone()));
                        let left = projection.current();
                        let img = left.images.get(&image.id);
                        // What is left: other tags keep it; only digests of this repo don't.
                        // An image with children stays, untagged (dockerd's
                        // imageDeleteHelper: only untag a parent).
                        img.is_some_and(|i| i.repo_tags.is_empty())
                            && !left.images.values().any(|i| i.parent == image.id)
                    }
                    None => {
                        if state.images.values().any(|i| i.parent == image.id) {
                            return Err(Error::conflict(format!(
                                "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                                short_id(&image.id)
                            )));
                        }
                        if image.repo_tags.len() > 1 && !msg.force {
                            return Err(Error::new(
                                ErrorKind::Conflict,
                                format!(
                                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                                    short_id(&image.id)
                                ),
                            ));
                        }
                        true
                    }
                };
                if remove_image && in_use {
                    // Forced: the names go, the image stays for its containers
                    // (dangling) until they are removed.
                    for r in image.repo_tags.iter().chain(image.repo_digests.iter()) {
                        if by_reference.as_ref() != Some(r) {
                            append(&events, Event::ImageUntagged { id: image.id.clone(), reference: r.clone() }).await?;
                            out.push(Removed::Untagged(r.clone()));
                        }
                    }
                } else if remove_image {
                    delete_image(&events, &blobs, &projection.current(), &image.id, &mut out).await?;
                    // The build's intermediate images it was made from go with
                    // it, as on dockerd: each untagged, unused and without
                    // another child.
                    let mut parent = image.parent.clone();
                    loop {
                        let now = projection.current();
                        let Some(p) = now.images.get(&parent) else { break };
                        let kept = !p.repo_tags.is_empty()
                            || !p.repo_digests.is_empty()
                            || now.images.values().any(|i| i.parent == p.id)
                            || now.containers.values().any(|c| c.image == p.id);
                        if kept {
                            break;
                        }
                        let (id, next) = (p.id.clone(), p.parent.clone());
                        delete_image(&events, &blobs, &now, &id, &mut out).await?;
                        parent = next;
                    }
                    let after = projection.current();
                    let gone = remove_unused_layers(&events, &layers, &blobs, &after).await;
                    out.extend(gone.into_iter().map(Removed::Deleted));
                }
                Ok(out)
            }
            .into_actor(self),
        ))
    }
}

/// The stored config of an image, for inspect and history.
#[derive(Message)]
#[rtype(result = "Result<(ImageRecord, serde_json::Value)>")]
pub struct ImageDetails {
    pub name: String,
}

impl Handler<ImageDetails> for ImageService {
    type Result = Result<(ImageRecord, serde_json::Value)>;

    fn handle(&mut self, msg: ImageDetails, _: &mut Context<Self>) -> Self::Result {
        let state = self.projection.current();
        let image = resolve(&state, &msg.name)?.clone();
        let config = self.blobs.get(&image.id)?;
        let value = serde_json::from_slice(&config)
            .map_err(|e| Error::internal(format!("stored config of {}: {e}", image.id)))?;
        Ok((image, value))
    }
}

/// Remove dangling images (no tag), or with `all` every image (no container uses
/// images yet). Returns what went and the bytes freed.
#[derive(Message)]
#[rtype(result = "Result<(Vec<Removed>, u64)>")]
pub struct PruneImages {
    pub all: bool,
}

impl Handler<PruneImages> for ImageService {
    type Result = AtomicResponse<Self, Result<(Vec<Removed>, u64)>>;

    fn handle(&mut self, msg: PruneImages, _: &mut Context<Self>) -> Self::Result {
        let Handles {
            events,
            layers,
            blobs,
            projection,
        } = self.handles();
        AtomicResponse::new(Box::pin(
            async move {
                let before = projection.current();
                let victims: Vec<ImageRecord> = before
                    .images
                    .values()
                    .filter(|i| msg.all || i.repo_tags.is_empty())
                    .filter(|i| !before.containers.values().any(|c| c.image == i.id))
                    .cloned()
                    .collect();
                let mut out = Vec::new();
                for image in victims {
                    delete_image(&events, &blobs, &before, &image.id, &mut out).await?;
                }
                let after = projection.current();
                let gone = remove_unused_layers(&events, &layers, &blobs, &after).await;
                let reclaimed = gone
                    .iter()
                    .filter_map(|c| before.layers.get(c))
                    .map(|l| l.size)
                    .sum();
                out.extend(gone.into_iter().map(Removed::Deleted));
                Ok((out, reclaimed))
            }
            .into_actor(self),
        ))
    }
}
