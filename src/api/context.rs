//! What every handler can reach: the engine's actors, the read-side
//! projection, and the domain's views of files on the host.

use std::sync::Arc;

use actix::Addr;

use crate::actors::event_log::EventLog;
use crate::actors::image_service::ImageService;
use crate::config::SharedConfig;
use crate::events::projection::Projection;
use crate::hostinfo::HostInfo;

/// What handlers can reach: the engine's actors and the read-side projection.
#[derive(Clone)]
pub struct ApiContext {
    pub projection: Projection,
    pub events: Addr<EventLog>,
    pub images: Addr<ImageService>,
    pub containers: Addr<crate::actors::container_service::ContainerService>,
    pub network: Addr<crate::actors::network_controller::NetworkController>,
    pub volumes: Addr<crate::actors::volume_service::VolumeService>,
    /// A container's files on the host (cp, export, diff, inspect's paths).
    pub storage: Arc<crate::containers::storage::ContainerStorage>,
    /// An image's config and layer directories (labels, GraphDriver).
    pub image_files: Arc<crate::images::files::ImageFiles>,
    pub host: Arc<HostInfo>,
    /// The running configuration (a reload replaces it).
    pub config: SharedConfig,
    /// Exec instances (read by `GET /exec/{id}/json`).
    pub execs: crate::containers::exec::ExecRegistry,
}
