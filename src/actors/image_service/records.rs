//! What the log and the stores record as images come and go: an image and its
//! layers recorded, an image deleted, the layers no image uses removed.

use actix::prelude::*;
use tracing::warn;

use super::*;

/// Untags every name of image `id` and deletes it (its config blob too); the
/// layers are left to `remove_unused_layers`. What went is added to `out`.
pub(super) async fn delete_image(
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
pub(super) async fn record_image(
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
pub(super) async fn store_arrived(
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
pub(super) async fn remove_unused_layers(
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
