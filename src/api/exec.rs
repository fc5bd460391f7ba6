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
use super::ApiContext;
use crate::actors::container::{Resize, StartExec};
use crate::containers::exec::{self, ExecRecord};
use crate::error::{Error, Result};
use crate::events::projection::ContainerStatus;

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

fn json_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Error::invalid(format!("invalid JSON: {e}")))
}

fn running_or_conflict(ctx: &ApiContext, id: &str) -> Result<()> {
    let state = ctx.projection.current();
    match state.containers.get(id) {
        Some(c) if c.status == ContainerStatus::Running && c.paused => Err(Error::conflict(
            format!("Container {id} is paused, unpause the container before exec"),
        )),
        Some(c) if c.status == ContainerStatus::Running => Ok(()),
        _ => Err(Error::conflict(format!("Container {id} is not running"))),
    }
}

async fn create(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response<Body>> {
    let cfg: ExecConfig = json_body(&body)?;
    let (id, _) = actor(&ctx, &name).await?;
    let cmd = cfg.cmd.unwrap_or_default();
    if cmd.is_empty() {
        return Err(Error::invalid("No exec command specified"));
    }
    running_or_conflict(&ctx, &id)?;
    let console_size = match cfg.console_size.as_deref() {
        Some([h, w]) if *h > 0 || *w > 0 => Some((*h as u16, *w as u16)),
        _ => None,
    };
    let rec = ExecRecord {
        id: exec::new_id()?,
        container_id: id,
        cmd,
        env: cfg.env.unwrap_or_default(),
        user: cfg.user.unwrap_or_default(),
        working_dir: cfg.working_dir.unwrap_or_default(),
        tty: cfg.tty.unwrap_or(false),
        attach_stdin: cfg.attach_stdin.unwrap_or(false),
        attach_stdout: cfg.attach_stdout.unwrap_or(false),
        attach_stderr: cfg.attach_stderr.unwrap_or(false),
        privileged: cfg.privileged.unwrap_or(false),
        detach_keys: cfg.detach_keys.unwrap_or_default(),
        console_size,
        ..Default::default()
    };
    if !rec.working_dir.is_empty() && !rec.working_dir.starts_with('/') {
        return Err(Error::invalid(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            rec.working_dir
        )));
    }
    let reply = serde_json::json!({ "Id": rec.id }).to_string();
    ctx.execs.insert(rec);
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(reply))
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
    let cfg: ExecStartConfig = json_body(&body)?;
    let rec = ctx.execs.get(&exec_id)?;
    running_or_conflict(&ctx, &rec.container_id)?;
    let (_, a) = actor(&ctx, &rec.container_id).await?;
    ctx.execs.begin(&exec_id)?;
    if cfg.detach.unwrap_or(false) {
        send(&a, StartExec { exec_id, io: None }).await??;
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .unwrap_or_default());
    }
    let tty = rec.tty || cfg.tty.unwrap_or(false);
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if req.headers().get(header::UPGRADE).is_none() {
        // Without a hijack there is no way to give stdin; the output comes in the body.
        let (ours, theirs) = tokio::io::duplex(64 << 10);
        send(
            &a,
            StartExec {
                exec_id,
                io: Some(Box::new(ours)),
            },
        )
        .await??;
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from_stream(super::containers::ReaderStream(theirs)))
            .unwrap_or_default());
    }
    let on = hyper::upgrade::on(&mut req);
    let execs = ctx.execs.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on.await else { return };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        // The stream is the client's once hijacked: a failure to start is
        // written into it, as dockerd does, and the exec ends with the code
        // the CLI would compute from the words.
        let (ours, mut theirs) = tokio::io::duplex(64 << 10);
        let started = send(
            &a,
            StartExec {
                exec_id: exec_id.clone(),
                io: Some(Box::new(ours)),
            },
        )
        .await;
        let mut io = io;
        match started {
            Ok(Ok(())) => {
                let _ = tokio::io::copy_bidirectional(&mut io, &mut theirs).await;
            }
            Ok(Err(e)) | Err(e) => {
                // dockerd: the words on stdout (framed without a tty), code 126.
                execs.ended(&exec_id, 126);
                let text = format!("{}\r\n", e.message());
                let mut bytes = Vec::new();
                if tty {
                    bytes.extend_from_slice(text.as_bytes());
                } else {
                    crate::drivers::exec::proto::frame(
                        crate::drivers::exec::proto::STDOUT,
                        text.as_bytes(),
                        &mut bytes,
                    );
                }
                let _ = tokio::io::AsyncWriteExt::write_all(&mut io, &bytes).await;
            }
        }
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
    });
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
