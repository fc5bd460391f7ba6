//! Exec routes: create (POST /containers/{id}/exec), start (hijacked, or
//! detached), resize and inspect. The exec itself is run by the container's
//! actor through its shim; records live in the shared exec registry.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, Response, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard_stubs::models::{ExecConfig, ExecStartConfig};

use super::containers::{actor, send, tty_size, upgraded_response};
use super::context::ApiContext;
use crate::actors::container::{ClientIo, Resize};
use crate::actors::container_exec::{CreateExec, ExecIo, StartExec};
use crate::containers::exec;
use crate::error::{Error, Result};

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

/// An exec body as dockerd decodes it (Go's words for a wrong type, 400).
fn json_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes, root: &str) -> Result<T> {
    crate::go_json::decode_body(body, root, crate::error::ErrorKind::InvalidParameter)
}

async fn create(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response<Body>> {
    let cfg: ExecConfig = json_body(&body, "ExecConfig")?;
    let (_, a) = actor(&ctx, &name).await?;
    let id = send(&a, CreateExec(cfg)).await??;
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::json!({ "Id": id }).to_string()))
        .unwrap_or_default())
}

async fn start(
    State(ctx): State<ApiContext>,
    Path(exec_id): Path<String>,
    mut req: axum::extract::Request,
) -> Result<Response<Body>> {
    let body = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20)
        .await
        .map_err(|e| Error::invalid(format!("reading the body: {e}")))?;
    let cfg: ExecStartConfig = json_body(&body, "ExecStartCheck")?;
    let rec = ctx.execs.get(&exec_id)?;
    let (_, a) = actor(&ctx, &rec.container_id).await?;
    let tty = cfg.tty;
    let content_type = if tty.unwrap_or(rec.tty) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if cfg.detach.unwrap_or(false) {
        send(
            &a,
            StartExec {
                exec_id,
                io: ExecIo::Detached,
                tty,
            },
        )
        .await??;
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .unwrap_or_default());
    }
    if req.headers().get(header::UPGRADE).is_none() {
        // Without a hijack there is no way to give stdin; the output is the body.
        let (ours, theirs) = tokio::io::duplex(64 << 10);
        let io: ClientIo = Box::new(ours);
        let io = ExecIo::Attached(Box::pin(std::future::ready(Some(io))));
        send(&a, StartExec { exec_id, io, tty }).await??;
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from_stream(super::containers::ReaderStream(theirs)))
            .unwrap_or_default());
    }
    let on = hyper::upgrade::on(&mut req);
    let io = ExecIo::Attached(Box::pin(async move {
        let upgraded = on.await.ok()?;
        Some(Box::new(hyper_util::rt::TokioIo::new(upgraded)) as ClientIo)
    }));
    send(&a, StartExec { exec_id, io, tty }).await??;
    Ok(upgraded_response(content_type))
}

async fn resize(
    State(ctx): State<ApiContext>,
    Path(exec_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    let (height, width) = tty_size(&q)?;
    let rec = ctx.execs.get(&exec_id)?;
    let (_, a) = actor(&ctx, &rec.container_id).await?;
    send(
        &a,
        Resize {
            exec_id: Some(exec_id),
            height,
            width,
        },
    )
    .await??;
    Ok(StatusCode::OK)
}

async fn inspect(
    State(ctx): State<ApiContext>,
    Path(exec_id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(exec::inspect(&ctx.execs.get(&exec_id)?)))
}
