//! Where an image's parts are on the host, for the reads that need no actor:
//! its stored config (the labels `docker images` shows and filters on) and
//! the directories of its layers (GraphDriver data in inspect). The facade
//! holds one of these instead of the blob and layer stores.

use std::collections::HashMap;
use std::sync::Arc;

use bollard_stubs::models::{ContainerConfig, DriverData};

use crate::drivers::storage::{overlay2, Driver, LayerStore};
use crate::error::{Error, Result};
use crate::events::projection::ImageRecord;
use crate::store::blobs::BlobStore;

pub struct ImageFiles {
    blobs: Arc<BlobStore>,
    layers: Arc<LayerStore>,
}

impl ImageFiles {
    pub fn new(blobs: Arc<BlobStore>, layers: Arc<LayerStore>) -> ImageFiles {
        ImageFiles { blobs, layers }
    }

    /// The labels in an image's config (`config.Labels`); none when unreadable.
    pub fn labels(&self, i: &ImageRecord) -> HashMap<String, String> {
        self.blobs
            .get(&i.id)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| serde_json::from_value(v.get("config")?.get("Labels")?.clone()).ok())
            .unwrap_or_default()
    }

    /// The config an image's containers start from (`config` in its blob).
    pub fn container_config(&self, id: &str) -> Result<ContainerConfig> {
        self.config_field(id, "config")
    }

    /// The config of the container the image was committed from
    /// (`container_config`): for a build step, the step's run config.
    pub fn step_config(&self, id: &str) -> Result<ContainerConfig> {
        self.config_field(id, "container_config")
    }

    fn config_field(&self, id: &str, field: &str) -> Result<ContainerConfig> {
        let blob = self.blobs.get(id)?;
        let v: serde_json::Value = serde_json::from_slice(&blob)
            .map_err(|e| Error::internal(format!("reading the config of image {id}: {e}")))?;
        match v.get(field) {
            Some(c) if !c.is_null() => serde_json::from_value(c.clone())
                .map_err(|e| Error::internal(format!("reading the {field} of image {id}: {e}"))),
            _ => Ok(ContainerConfig::default()),
        }
    }

    /// GraphDriver in image inspect: the top layer's diff as UpperDir, the
    /// others as LowerDir, as dockerd's overlay2 reports them (vfs: no data).
    pub fn graph_driver(&self, image: &ImageRecord) -> DriverData {
        let driver = self.layers.driver();
        let dirs: Vec<String> = image
            .chain_ids
            .iter()
            .rev()
            .map(|c| {
                self.layers
                    .root()
                    .join(overlay2::cache_id(c))
                    .join("diff")
                    .display()
                    .to_string()
            })
            .collect();
        let mut data = HashMap::new();
        if let Some((top, lower)) = dirs.split_first().filter(|_| driver != Driver::Vfs) {
            data.insert("UpperDir".to_string(), top.clone());
            if !lower.is_empty() {
                data.insert("LowerDir".to_string(), lower.join(":"));
            }
        }
        DriverData {
            name: driver.name().to_string(),
            data,
        }
    }
}
