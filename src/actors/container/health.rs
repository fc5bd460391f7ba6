//! The daemon's side of a health check: the shim probes; this task holds a
//! `watch_health` connection to it and records each status it tells that the
//! projection does not already hold (the first line is the status now, so a
//! daemon that starts again learns what changed while it was down).
//! Idle, it is one parked task on a socket: no timer, no probe in the daemon.

use tokio::io::AsyncBufReadExt;
use tracing::{debug, warn};

use super::Runtime;
use crate::actors::event_log::append;
use crate::drivers::exec::client;
use crate::drivers::exec::proto::{HealthLine, Request};
use crate::events::Event;

/// Watches the health of container `id` (whose bundle is `dir`) if it has a
/// check, until its shim closes the connection.
pub(super) fn watch_health(rt: &Runtime, id: &str, dir: std::path::PathBuf) {
    let has_check = rt
        .projection
        .current()
        .containers
        .get(id)
        .is_some_and(|c| crate::containers::health::has_check(&c.config));
    if !has_check {
        return;
    }
    let (rt, id) = (rt.clone(), id.to_string());
    tokio::spawn(async move {
        let stream = match client::request(&dir, &Request::WatchHealth).await {
            Ok((reply, _)) if !reply.error.is_empty() => {
                debug!(container = %id, error = %reply.error, "no health to watch");
                return;
            }
            Ok((_, stream)) => stream,
            Err(e) => {
                debug!(container = %id, error = %e, "watching its health");
                return;
            }
        };
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(HealthLine { status }) = serde_json::from_str(&line) else {
                warn!(container = %id, line = %line, "a health line the daemon does not read");
                continue;
            };
            let known = rt
                .projection
                .current()
                .containers
                .get(&id)
                .and_then(|c| c.health.clone());
            if known.as_deref() == Some(status.as_str()) {
                continue;
            }
            let event = Event::ContainerHealthStatus {
                id: id.clone(),
                status,
            };
            if let Err(e) = append(&rt.events, event).await {
                warn!(container = %id, error = %e, "recording a health status");
            }
        }
    });
}
