//! The ImageService actor: owns the image and layer stores. Pulls run as tasks
//! that report progress on a channel and end by appending their events here;
//! tag and delete are serialized by the actor. Reads (list, counts) come from the
//! projection; inspect and history read the stored config blob.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use oci_client::secrets::RegistryAuth;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::event_log::{append, EventLog};
use crate::drivers::storage::LayerStore;
use crate::error::{Error, ErrorKind, Result};
use crate::events::projection::{ImageRecord, Projection, State};
use crate::events::Event;
use crate::registry::pull::{self, Progress};
use crate::registry::reference::Reference;
use crate::registry::RegistrySettings;
use crate::store::blobs::BlobStore;

/// What a pull's stream carries: progress lines, and at most one error, last.
pub type PullItem = std::result::Result<Progress, Error>;

pub struct ImageService {
    settings: RegistrySettings,
    layers: Arc<LayerStore>,
    blobs: Arc<BlobStore>,
    events: Addr<EventLog>,
    projection: Projection,
    /// Pulls under way, by reference: a second pull of the same image joins the
    /// first (its progress from then on, and its outcome) instead of fetching again.
    inflight: HashMap<String, Subscribers>,
}

type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<PullItem>>>>;

fn broadcast(subscribers: &Subscribers, item: PullItem) {
    if let Ok(mut subs) = subscribers.lock() {
        subs.retain(|s| s.send(item.clone()).is_ok());
    }
}

impl ImageService {
    pub fn new(
        settings: RegistrySettings,
        layers: Arc<LayerStore>,
        blobs: Arc<BlobStore>,
        events: Addr<EventLog>,
        projection: Projection,
    ) -> Self {
        ImageService {
            settings,
            layers,
            blobs,
            events,
            projection,
            inflight: HashMap::new(),
        }
    }
}

/// Clones of the actor's handles, for the futures its handlers return.
struct Handles {
    events: Addr<EventLog>,
    layers: Arc<LayerStore>,
    blobs: Arc<BlobStore>,
    projection: Projection,
}

impl ImageService {
    fn handles(&self) -> Handles {
        Handles {
            events: self.events.clone(),
            layers: Arc::clone(&self.layers),
            blobs: Arc::clone(&self.blobs),
            projection: self.projection.clone(),
        }
    }
}

impl Actor for ImageService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Finish what a crash interrupted: layers no image uses, staging leftovers.
        let state = self.projection.current();
        let layers = Arc::clone(&self.layers);
        // Container layers are named by the container ID (no `sha256:`).
        layers.sweep(&|name| {
            state.layers.contains_key(name)
                || state
                    .containers
                    .contains_key(name.trim_start_matches("sha256:"))
        });
        self.blobs.sweep_incoming();
        let events = self.events.clone();
        let store = Arc::clone(&self.layers);
        let blobs = Arc::clone(&self.blobs);
        ctx.spawn(
            async move {
                remove_unused_layers(&events, &store, &blobs, &state).await;
            }
            .into_actor(self),
        );
    }
}

/// Untags every name of image `id` and deletes it (its config blob too); the
/// layers are left to `remove_unused_layers`. What went is added to `out`.
async fn delete_image(
    events: &Addr<EventLog>,
    blobs: &BlobStore,
    state: &State,
    id: &str,
    out: &mut Vec<Removed>,
) -> Result<()> {
    if let Some(img) = state.images.get(id) {
        for r in img.repo_tags.iter().chain(img.repo_digests.iter()) {
            append(
                events,
                Event::ImageUntagged {
                    id: id.to_string(),
                    reference: r.clone(),
                },
            )
            .await?;
            out.push(Removed::Untagged(r.clone()));
        }
    }
    append(events, Event::ImageDeleted { id: id.to_string() }).await?;
    out.push(Removed::Deleted(id.to_string()));
    let _ = blobs.remove(id);
    Ok(())
}

/// Records the layers an image brought (with their blobs) and the image itself.
async fn record_image(
    events: &Addr<EventLog>,
    projection: &Projection,
    id: &str,
    chain_ids: &[String],
    config: &[u8],
    new_layers: &[pull::NewLayer],
) -> Result<()> {
    for l in new_layers {
        append(
            events,
            Event::LayerCommitted {
                chain_id: l.chain_id.clone(),
                diff_id: l.diff_id.clone(),
                parent: l.parent.clone(),
                size: l.size,
            },
        )
        .await?;
        append(
            events,
            Event::LayerBlobStored {
                chain_id: l.chain_id.clone(),
                digest: l.blob.digest.clone(),
                media_type: l.blob.media_type.clone(),
                size: l.blob.size,
            },
        )
        .await?;
    }
    if !projection.current().images.contains_key(id) {
        let created = serde_json::from_slice::<serde_json::Value>(config)
            .ok()
            .and_then(|v| v.get("created").and_then(|c| c.as_str()).map(String::from));
        append(
            events,
            Event::ImageStored {
                id: id.to_string(),
                chain_ids: chain_ids.to_vec(),
                created,
            },
        )
        .await?;
    }
    Ok(())
}

/// Stores an image that arrived whole (load, import): its config blob, its new
/// layers and the image, then the docker event of the action.
async fn store_arrived(
    events: &Addr<EventLog>,
    projection: &Projection,
    blobs: &BlobStore,
    image: &crate::images::archive::LoadedImage,
    action: &str,
) -> Result<()> {
    blobs.put(&image.id, &image.config)?;
    record_image(
        events,
        projection,
        &image.id,
        &image.chain_ids,
        &image.config,
        &image.new_layers,
    )
    .await?;
    append(
        events,
        Event::ImageAction {
            action: action.into(),
            id: image.id.clone(),
            name: image.id.clone(),
        },
    )
    .await?;
    Ok(())
}

/// Removes layers that no image uses, top layers first; returns their ChainIDs.
async fn remove_unused_layers(
    events: &Addr<EventLog>,
    layers: &LayerStore,
    blobs: &BlobStore,
    state: &State,
) -> Vec<String> {
    let mut removed = Vec::new();
    let mut unused = state.unused_layers();
    // Children before parents, as dockerd lists them: deeper layers first.
    let depth = |c: &String| {
        let mut d = 0;
        let mut cur = state.layers.get(c).and_then(|l| l.parent.clone());
        while let Some(p) = cur {
            d += 1;
            cur = state.layers.get(&p).and_then(|l| l.parent.clone());
        }
        d
    };
    unused.sort_by_key(|c| std::cmp::Reverse(depth(c)));
    let kept_blobs: std::collections::HashSet<&str> = state
        .layers
        .values()
        .filter(|l| !unused.contains(&l.chain_id))
        .filter_map(|l| l.blob.as_ref().map(|b| b.digest.as_str()))
        .collect();
    for chain_id in &unused {
        if let Some(blob) = state.layers.get(chain_id).and_then(|l| l.blob.as_ref()) {
            if !kept_blobs.contains(blob.digest.as_str()) {
                let _ = blobs.remove(&blob.digest);
            }
        }
    }
    for chain_id in unused {
        if let Err(e) = layers.remove(&chain_id) {
            warn!(layer = %chain_id, error = %e, "could not remove a layer");
            continue;
        }
        if append(
            events,
            Event::LayerRemoved {
                chain_id: chain_id.clone(),
            },
        )
        .await
        .is_ok()
        {
            removed.push(chain_id);
        }
    }
    removed
}

pub use crate::images::query::resolve;

/// Pull `reference`; progress and the outcome go to `progress`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PullImage {
    pub reference: Reference,
    pub auth: RegistryAuth,
    pub progress: mpsc::UnboundedSender<PullItem>,
}

impl Handler<PullImage> for ImageService {
    type Result = ();

    fn handle(&mut self, msg: PullImage, ctx: &mut Context<Self>) {
        let key = msg.reference.to_string();
        if let Some(subs) = self.inflight.get(&key) {
            if let Ok(mut subs) = subs.lock() {
                subs.push(msg.progress);
            }
            return;
        }
        let subscribers: Subscribers = Arc::new(Mutex::new(vec![msg.progress.clone()]));
        self.inflight.insert(key.clone(), Arc::clone(&subscribers));
        let settings = self.settings.clone();
        let Handles {
            events,
            layers,
            blobs,
            projection,
        } = self.handles();
        let task = async move {
            let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
            let out = Arc::clone(&subscribers);
            let forward = tokio::spawn(async move {
                while let Some(p) = prx.recv().await {
                    broadcast(&out, Ok(p));
                }
            });
            let r = &msg.reference;
            let result = async {
                let pulled = pull::pull(&settings, layers, Arc::clone(&blobs), r, &msg.auth, &ptx).await?;
                let before = projection.current();
                let tag = r.familiar_tagged();
                let up_to_date = before.images.get(&pulled.image_id).is_some_and(|i| match &tag {
                    Some(t) => i.repo_tags.contains(t),
                    None => true,
                });
                record_image(&events, &projection, &pulled.image_id, &pulled.chain_ids, &pulled.config, &pulled.new_layers)
                    .await?;
                if let Some(t) = &tag {
                    if !up_to_date {
                        append(&events, Event::ImageTagged { id: pulled.image_id.clone(), tag: t.clone() }).await?;
                    }
                }
                let repo_digest = format!("{}@{}", r.familiar_name(), pulled.manifest_digest);
                append(&events, Event::ImageDigested { id: pulled.image_id.clone(), repo_digest }).await?;
                let _ = ptx.send(Progress::status(None, format!("Digest: {}", pulled.manifest_digest)));
                let shown = tag.unwrap_or_else(|| r.to_string());
                append(&events, Event::ImageAction { action: "pull".into(), id: shown.clone(), name: shown.clone() }).await?;
                let status = if up_to_date {
                    format!("Status: Image is up to date for {shown}")
                } else {
                    format!("Status: Downloaded newer image for {shown}")
                };
                let _ = ptx.send(Progress::status(None, status));
                info!(image = %r, id = %pulled.image_id, layers = pulled.new_layers.len(), "pulled");
                Ok::<_, Error>(())
            }
            .await;
            drop(ptx);
            let _ = forward.await;
            if let Err(e) = result {
                warn!(image = %r, error = %e, "pull failed");
                broadcast(&subscribers, Err(e));
            }
        };
        ctx.spawn(task.into_actor(self).map(move |_, act, _| {
            act.inflight.remove(&key);
        }));
    }
}

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
            let tag = msg.target.familiar_tagged().ok_or_else(|| {
                Error::invalid("refusing to create a tag with a digest reference")
            })?;
            append(&events, Event::ImageTagged { id, tag })
                .await
                .map(|_| ())
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

/// Whether the image's names amount to one (moby's isSingleReference): at most
/// one tag, and digests only of that tag's repository.
fn single_reference(image: &ImageRecord) -> bool {
    let repo_of = |r: &str| -> String {
        match r.split_once('@') {
            Some((repo, _)) => repo.to_string(),
            None => r
                .rsplit_once(':')
                .filter(|(_, t)| !t.contains('/'))
                .map(|(repo, _)| repo.to_string())
                .unwrap_or_else(|| r.to_string()),
        }
    };
    let digest_repos: std::collections::HashSet<String> =
        image.repo_digests.iter().map(|d| repo_of(d)).collect();
    match image.repo_tags.as_slice() {
        [] => digest_repos.len() <= 1,
        [tag] => {
            digest_repos.is_empty()
                || (digest_repos.len() == 1 && digest_repos.contains(&repo_of(tag)))
        }
        _ => false,
    }
}

fn short_id(id: &str) -> String {
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
                    let last_name = single_reference(&image);
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
                        img.is_some_and(|i| i.repo_tags.is_empty())
                    }
                    None => {
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

/// What the registry has for a reference: the manifest's descriptor and platforms.
#[derive(Message)]
#[rtype(
    result = "Result<(crate::registry::manifest::Descriptor, Vec<crate::registry::manifest::Platform>)>"
)]
pub struct Distribution {
    pub reference: Reference,
    pub auth: RegistryAuth,
}

impl Handler<Distribution> for ImageService {
    type Result = ResponseFuture<
        Result<(
            crate::registry::manifest::Descriptor,
            Vec<crate::registry::manifest::Platform>,
        )>,
    >;

    fn handle(&mut self, msg: Distribution, _: &mut Context<Self>) -> Self::Result {
        use crate::registry::manifest::{Descriptor, Manifest, Platform};
        let settings = self.settings.clone();
        Box::pin(async move {
            let r = msg.reference;
            let (ep, client, bytes, digest) = pull::resolve(&settings, &r, &msg.auth).await?;
            let parsed = Manifest::parse(&bytes)?;
            let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str())
                        .map(String::from)
                })
                .unwrap_or_default();
            let descriptor = Descriptor {
                media_type,
                digest,
                size: bytes.len() as i64,
                platform: None,
            };
            let platforms = match parsed {
                Manifest::Index(index) => index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.clone())
                    .collect(),
                Manifest::Image(m) => {
                    // A single manifest names no platform: its config does.
                    let mut config = Vec::new();
                    client
                        .pull_blob(&ep.oci_reference(&r), m.config.digest.as_str(), &mut config)
                        .await
                        .map_err(|e| Error::internal(format!("fetching the image config: {e}")))?;
                    let c: crate::registry::manifest::ImageConfig = serde_json::from_slice(&config)
                        .map_err(|e| {
                            Error::invalid(format!("the image config is not valid JSON: {e}"))
                        })?;
                    vec![Platform {
                        architecture: c.architecture,
                        os: c.os,
                        variant: None,
                    }]
                }
            };
            Ok((descriptor, platforms))
        })
    }
}

/// Load the images of a `docker save` archive or an OCI layout tar (a file the
/// API has spooled to disk). Returns one line per image, as `docker load` prints.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>>")]
pub struct LoadImages {
    pub archive: std::path::PathBuf,
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
                let path = msg.archive.clone();
                let load_blobs = Arc::clone(&blobs);
                let loaded = tokio::task::spawn_blocking(move || {
                    crate::images::archive::load(&path, &layers, &load_blobs)
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
    pub tarball: std::path::PathBuf,
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
                let created = crate::api::system::rfc3339_now();
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
                        architecture: crate::api::system::go_arch(std::env::consts::ARCH),
                        created: &created,
                    };
                    crate::images::import::import(&tarball, &spec, &layers, &import_blobs)
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
async fn tag_new(events: &Addr<EventLog>, id: &str, tag: Option<Reference>) -> Result<()> {
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
    pub layer_tar: std::path::PathBuf,
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
                let image = tokio::task::spawn_blocking(move || {
                    crate::images::commit::commit(&layer_tar, &spec, &layers, &commit_blobs)
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

/// Push the image named `repository[:tag]` (every tag of the repository when
/// `tag` is empty); progress and the outcome go to `progress`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PushImages {
    pub repository: Reference,
    pub tag: Option<String>,
    pub auth: RegistryAuth,
    pub progress: mpsc::UnboundedSender<PullItem>,
}

/// What a push sends for one image, from the stores.
fn push_plan(
    state: &State,
    blobs: &BlobStore,
    image: &ImageRecord,
) -> Result<crate::registry::push::PushImage> {
    use crate::registry::manifest::{Manifest, DOCKER_MANIFEST};
    use crate::registry::push::{PushImage, PushLayer};
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

impl Handler<PushImages> for ImageService {
    type Result = ();

    fn handle(&mut self, msg: PushImages, ctx: &mut Context<Self>) {
        let state = self.projection.current();
        let repo = msg.repository.familiar_name();
        let tags: Vec<String> = match &msg.tag {
            Some(t) => vec![t.clone()],
            None => {
                let prefix = format!("{repo}:");
                let mut all: Vec<String> = state
                    .images
                    .values()
                    .flat_map(|i| i.repo_tags.iter())
                    .filter_map(|t| t.strip_prefix(&prefix).map(String::from))
                    .collect();
                all.sort();
                all
            }
        };
        let mut jobs = Vec::new();
        for tag in &tags {
            let target = Reference {
                tag: Some(tag.clone()),
                digest: None,
                ..msg.repository.clone()
            };
            let planned = resolve(&state, &target.to_string())
                .map_err(|e| match e.kind() {
                    // dockerd's words for a push with nothing local to send.
                    ErrorKind::NotFound => Error::not_found(format!(
                        "An image does not exist locally with the tag: {}",
                        target.familiar_name()
                    )),
                    _ => e,
                })
                .and_then(|image| {
                    push_plan(&state, &self.blobs, image).map(|plan| (image.id.clone(), plan))
                });
            match planned {
                Ok((id, plan)) => jobs.push((target, id, plan)),
                Err(e) => {
                    let _ = msg.progress.send(Err(e));
                    return;
                }
            }
        }
        if jobs.is_empty() {
            let _ = msg.progress.send(Err(Error::not_found(format!(
                "An image does not exist locally with the tag: {repo}"
            ))));
            return;
        }
        let settings = self.settings.clone();
        let Handles { events, blobs, .. } = self.handles();
        let task = async move {
            let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
            let out = msg.progress.clone();
            let forward = tokio::spawn(async move {
                while let Some(p) = prx.recv().await {
                    let _ = out.send(Ok(p));
                }
            });
            let mut failure = None;
            for (target, id, plan) in &jobs {
                match crate::registry::push::push(&settings, &blobs, target, plan, &msg.auth, &ptx)
                    .await
                {
                    Ok((digest, size)) => {
                        let tag = target.tag.clone().unwrap_or_default();
                        let repo_digest = format!("{}@{digest}", target.familiar_name());
                        if let Err(e) = append(
                            &events,
                            Event::ImageDigested {
                                id: id.clone(),
                                repo_digest,
                            },
                        )
                        .await
                        {
                            failure = Some(e);
                            break;
                        }
                        let _ = ptx.send(Progress::status(
                            None,
                            format!("{tag}: digest: {digest} size: {size}"),
                        ));
                        let _ = ptx.send(Progress {
                            id: None,
                            status: String::new(),
                            current: None,
                            aux: Some(
                                serde_json::json!({ "Tag": tag, "Digest": digest, "Size": size }),
                            ),
                        });
                        let name = target
                            .familiar_tagged()
                            .unwrap_or_else(|| target.to_string());
                        let _ = append(
                            &events,
                            Event::ImageAction {
                                action: "push".into(),
                                id: name.clone(),
                                name,
                            },
                        )
                        .await;
                        info!(image = %target, %digest, "pushed");
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            drop(ptx);
            let _ = forward.await;
            if let Some(e) = failure {
                warn!(error = %e, "push failed");
                let _ = msg.progress.send(Err(e));
            }
        };
        ctx.spawn(task.into_actor(self));
    }
}
