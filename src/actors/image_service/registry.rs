//! Images to and from registries: pull, push, and what a registry has for a
//! reference (`/distribution`).

use actix::prelude::*;
use tracing::{info, warn};

use super::*;

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

    fn handle(&mut self, mut msg: PullImage, ctx: &mut Context<Self>) {
        // A reference without tag or digest is its :latest, whoever asks:
        // the builder's pull of a missing FROM image sends it bare, and the
        // image was recorded untagged ("No such image: busybox:latest").
        msg.reference = msg.reference.with_default_tag();
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
            let (_, client, bytes, digest) = pull::resolve(&settings, &r, &msg.auth).await?;
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
                    let config = client
                        .blob(&m.config.digest)
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
                    crate::registry::push::plan(&state, &self.blobs, image)
                        .map(|plan| (image.id.clone(), plan))
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
