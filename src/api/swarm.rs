//! Swarm and plugin routes of a daemon that is in no swarm and has no
//! plugins, answered as dockerd answers them then: tools probe these (docker-py
//! cleans up services and secrets) and read a 503 or an empty list, not a 404.

use axum::extract::Path;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::context::ApiContext;
use crate::error::{Error, Result};

pub fn routes() -> Router<ApiContext> {
    let mut r = Router::new()
        .route("/swarm", get(not_a_manager))
        .route("/swarm/unlockkey", get(not_a_manager))
        .route("/swarm/leave", post(not_in_a_swarm))
        .route("/swarm/init", post(no_swarm_mode))
        .route("/swarm/join", post(no_swarm_mode))
        .route("/swarm/update", post(not_a_manager))
        .route("/swarm/unlock", post(not_a_manager))
        .route("/plugins", get(no_plugins))
        .route("/plugins/{name}/json", get(no_such_plugin));
    for kind in ["nodes", "services", "tasks", "secrets", "configs"] {
        r = r
            .route(&format!("/{kind}"), any(not_a_manager))
            .route(&format!("/{kind}/{{*rest}}"), any(not_a_manager));
    }
    r
}

async fn not_a_manager() -> Error {
    Error::unavailable(
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
    )
}

async fn not_in_a_swarm() -> Error {
    Error::unavailable("This node is not part of a swarm")
}

async fn no_swarm_mode() -> Error {
    Error::not_implemented("swarm mode is not supported by berthd")
}

async fn no_plugins() -> Json<Value> {
    Json(Value::Array(Vec::new()))
}

async fn no_such_plugin(Path(name): Path<String>) -> Result<Json<Value>> {
    Err(Error::not_found(format!("plugin \"{name}\" not found")))
}
