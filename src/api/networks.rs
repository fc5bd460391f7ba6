//! Network routes: decode, ask the NetworkController (writes) or read the
//! projection (list, inspect), render.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, Response, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard_stubs::models::{
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use serde_json::Value;

use super::context::ApiContext;
use crate::actors::network_controller::{
    Connect, CreateNetwork, Disconnect, NetworkController, PruneNetworks, RemoveNetwork,
};
use crate::error::{Error, Result};
use crate::networks::render;

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        // Names may hold slashes, and the CLI sends them as they are
        // (dockerd's routes match `{id:.+}`).
        .route(
            "/networks/{*id}",
            get(inspect).delete(remove).post(connect_or_disconnect),
        )
}

/// POST /networks/{id}/connect and /networks/{id}/disconnect.
async fn connect_or_disconnect(
    ctx: State<ApiContext>,
    Path(rest): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode> {
    if let Some(id) = rest.strip_suffix("/connect") {
        return connect(ctx, Path(id.to_string()), body).await;
    }
    if let Some(id) = rest.strip_suffix("/disconnect") {
        return disconnect(ctx, Path(id.to_string()), body).await;
    }
    Err(Error::not_found("page not found"))
}

async fn ask<M>(ctx: &ApiContext, msg: M) -> Result<M::Result>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    NetworkController: actix::Handler<M>,
{
    ctx.network
        .send(msg)
        .await
        .map_err(|e| Error::unavailable(format!("network controller: {e}")))
}

/// A JSON body of Go type `root`; an empty one is the type's default, a
/// wrong type is Go's words (a 400), as dockerd takes them.
pub(super) fn json_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
    root: &str,
) -> Result<T> {
    crate::go_json::decode_body(body, root, crate::error::ErrorKind::InvalidParameter)
}

async fn list(
    State(ctx): State<ApiContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Value>>> {
    let filters = super::images::parse_filters(q.get("filters"))?;
    Ok(Json(render::list(&ctx.projection.current(), &filters)?))
}

async fn inspect(State(ctx): State<ApiContext>, Path(id): Path<String>) -> Result<Json<Value>> {
    let state = ctx.projection.current();
    let n = state.network(&id)?;
    Ok(Json(render::network(&state, n, true)))
}

async fn create(State(ctx): State<ApiContext>, body: axum::body::Bytes) -> Result<Response<Body>> {
    let req: NetworkCreateRequest = json_body(&body, "NetworkCreateRequest")?;
    let id = ask(&ctx, CreateNetwork(req)).await??;
    let reply = serde_json::json!({ "Id": id, "Warning": "" }).to_string();
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(reply))
        .unwrap_or_default())
}

async fn remove(State(ctx): State<ApiContext>, Path(id): Path<String>) -> Result<StatusCode> {
    ask(&ctx, RemoveNetwork(id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

async fn connect(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode> {
    let req: NetworkConnectRequest = json_body(&body, "NetworkConnect")?;
    ask(
        &ctx,
        Connect {
            network: id,
            container: req.container,
            config: req.endpoint_config.unwrap_or_default(),
        },
    )
    .await??;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode> {
    let req: NetworkDisconnectRequest = json_body(&body, "NetworkDisconnect")?;
    ask(
        &ctx,
        Disconnect {
            network: id,
            container: req.container,
            force: req.force.unwrap_or(false),
        },
    )
    .await??;
    Ok(StatusCode::OK)
}

async fn prune(
    State(ctx): State<ApiContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let filters = super::images::parse_filters(q.get("filters"))?;
    if let Some(k) = filters
        .keys()
        .find(|k| !["until", "label"].contains(&k.as_str()))
    {
        return Err(Error::invalid(format!("invalid filter '{k}'")));
    }
    let until_ns = filters
        .get("until")
        .and_then(|v| v.first())
        .map(|v| crate::clock::until_ns(v, crate::clock::now_ns()))
        .transpose()?;
    let removed = ask(
        &ctx,
        PruneNetworks {
            labels: filters.get("label").cloned().unwrap_or_default(),
            until_ns,
        },
    )
    .await??;
    Ok(Json(serde_json::json!({
        "NetworksDeleted": if removed.is_empty() { Value::Null } else { removed.into() },
    })))
}
