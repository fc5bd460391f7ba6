//! Container routes. Writes go to the ContainerService; reads (ps, inspect) are
//! rendered from the projection and never wait on an actor.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, Response, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bollard_stubs::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, DriverData,
};

use super::ApiContext;
use crate::actors::container_service::{CreateContainer, RemoveContainer, RenameContainer};
use crate::containers::render::{self, ListOptions};
use crate::error::{Error, Result};

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}", delete(remove))
}

async fn ask<M>(ctx: &ApiContext, msg: M) -> Result<M::Result>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    crate::actors::container_service::ContainerService: actix::Handler<M>,
{
    ctx.containers
        .send(msg)
        .await
        .map_err(|e| Error::unavailable(format!("container service: {e}")))
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

async fn create(
    State(ctx): State<ApiContext>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Result<Response<Body>> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::invalid(
            "Config cannot be empty in order to create a container",
        ));
    }
    // bollard-stubs' enums are strict: a value they do not know is a bad request.
    let body: ContainerCreateBody =
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("invalid JSON: {e}")))?;
    let id = ask(
        &ctx,
        CreateContainer {
            name: q.get("name").cloned(),
            body,
        },
    )
    .await??;
    let reply = serde_json::json!({ "Id": id, "Warnings": [] }).to_string();
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(reply))
        .unwrap_or_default())
}

async fn list(
    State(ctx): State<ApiContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ContainerSummary>>> {
    let state = ctx.projection.current();
    let filters = super::images::parse_filters(q.get("filters"))?;
    let opts = ListOptions {
        all: flag(&q, "all"),
        limit: q
            .get("limit")
            .and_then(|l| l.parse::<i64>().ok())
            .filter(|l| *l > 0)
            .map(|l| l as usize),
        filters,
    };
    let image_matches = |c: &crate::events::projection::ContainerRecord, name: &str| {
        c.image_name == name
            || crate::images::query::resolve(&state, name).is_ok_and(|i| i.id == c.image)
    };
    let now = crate::store::eventlog::now_ns();
    let found = render::list(&state, &opts, &image_matches)?;
    Ok(Json(
        found.into_iter().map(|c| render::summary(c, now)).collect(),
    ))
}

async fn inspect(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<ContainerInspectResponse>> {
    let state = ctx.projection.current();
    let c = render::resolve(&state, &id)?;
    let paths = render::Paths {
        log_path: String::new(),
        graph_driver: DriverData {
            name: ctx.config.storage_driver.clone(),
            data: ctx.layers.rw_data(&c.id),
        },
        driver: ctx.config.storage_driver.clone(),
    };
    Ok(Json(render::inspect(c, paths)))
}

async fn rename(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    let new_name = q.get("name").cloned().unwrap_or_default();
    ask(&ctx, RenameContainer { name: id, new_name }).await??;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    ask(
        &ctx,
        RemoveContainer {
            name: id,
            force: flag(&q, "force"),
        },
    )
    .await??;
    Ok(StatusCode::NO_CONTENT)
}
