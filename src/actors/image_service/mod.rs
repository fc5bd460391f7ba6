//! The ImageService actor: owns the image and layer stores. Pulls run as tasks
//! that report progress on a channel and end by appending their events here;
//! tag and delete are serialized by the actor. Reads (list, counts) come from the
//! projection; inspect and history read the stored config blob.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tokio::sync::mpsc;

use super::event_log::{append, EventLog};
use crate::drivers::storage::LayerStore;
use crate::error::{Error, ErrorKind, Result};
use crate::events::projection::{ImageRecord, Projection, State};
use crate::events::Event;
use crate::images::query::resolve;
use crate::registry::pull::{self, Progress};
use crate::registry::reference::Reference;
use crate::registry::{RegistryAuth, RegistrySettings};
use crate::store::blobs::BlobStore;

mod archives;
mod names;
mod records;
mod registry;

pub use archives::{CommitImage, ImportImage, LoadImages, SaveImages};
pub use names::{ImageDetails, PruneImages, RemoveImage, Removed, TagImage};
use records::{delete_image, record_image, remove_unused_layers, store_arrived};
pub use registry::{Distribution, PullImage, PushImages};

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

/// Mirrors, insecure registries and download concurrency from now on (a
/// reload of daemon.json): pulls and pushes that start after it use them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateRegistrySettings(pub RegistrySettings);

impl Handler<UpdateRegistrySettings> for ImageService {
    type Result = ();

    fn handle(&mut self, msg: UpdateRegistrySettings, _: &mut Self::Context) {
        self.settings = msg.0;
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
