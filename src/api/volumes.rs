//! Volume routes: decode, ask the VolumeService (writes) or read the
//! projection (list, inspect), render.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, Response, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::context::ApiContext;
use super::version::ApiVersion;
use crate::actors::volume_service::{
    CreateVolume, PruneVolumes, RemoveVolume, VolumeService, VolumeWant,
};
use crate::error::{Error, Result};
use crate::volumes;

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect))
        .route("/volumes/{name}", delete(remove))
}

async fn ask<M>(ctx: &ApiContext, msg: M) -> Result<M::Result>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    VolumeService: actix::Handler<M>,
{
    ctx.volumes
        .send(msg)
        .await
        .map_err(|e| Error::unavailable(format!("volume service: {e}")))
}

async fn list(
    State(ctx): State<ApiContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let filters = super::images::parse_filters(q.get("filters"))?;
    Ok(Json(volumes::list(&ctx.projection.current(), &filters)?))
}

async fn inspect(State(ctx): State<ApiContext>, Path(name): Path<String>) -> Result<Json<Value>> {
    let state = ctx.projection.current();
    Ok(Json(volumes::inspect(state.volume(&name)?)))
}

/// The body of `POST /volumes/create` (VolumeCreateOptions).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    driver_opts: Option<HashMap<String, String>>,
    #[serde(default)]
    labels: Option<HashMap<String, String>>,
}

async fn create(State(ctx): State<ApiContext>, body: axum::body::Bytes) -> Result<Response<Body>> {
    let req: CreateBody = super::networks::json_body(&body, "VolumeCreateBody")?;
    let want = VolumeWant {
        name: req.name.filter(|n| !n.is_empty()),
        anonymous: false,
        driver: req
            .driver
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| volumes::LOCAL.into()),
        options: req.driver_opts.map(volumes::sorted_pairs),
        labels: req.labels.map(volumes::sorted_pairs),
    };
    let v = ask(&ctx, CreateVolume(want)).await??;
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(volumes::inspect(&v).to_string()))
        .unwrap_or_default())
}

async fn remove(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    ask(
        &ctx,
        RemoveVolume {
            name,
            force: super::containers::flag(&q, "force"),
        },
    )
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`: from API 1.42 on, anonymous volumes only unless
/// the `all` filter says otherwise; before, every unused volume.
async fn prune(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let filters = super::images::parse_filters(q.get("filters"))?;
    let all_by_default = version
        < ApiVersion {
            major: 1,
            minor: 42,
        };
    let (removed, space) = ask(
        &ctx,
        PruneVolumes {
            all_by_default,
            filters,
        },
    )
    .await??;
    Ok(Json(serde_json::json!({
        "VolumesDeleted": removed,
        "SpaceReclaimed": space,
    })))
}
