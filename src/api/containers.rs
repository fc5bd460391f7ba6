//! Container routes. Writes go to the ContainerService; reads (ps, inspect) are
//! rendered from the projection and never wait on an actor.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, Response, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bollard_stubs::models::ContainerSummary;

use super::context::ApiContext;
use crate::actors::container::{
    Attach, ContainerActor, Kill, Pause, Resize, Start, Stop, Subscribe, Wait, WaitCondition,
};
use crate::actors::container_service::{
    CreateContainer, GetActor, RemoveContainer, RenameContainer,
};
use crate::containers::logs;
use crate::containers::render::{self, ListOptions};
use crate::error::{Error, Result};

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}", delete(remove))
        .route("/containers/{parent}/{alias}", delete(remove_link))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/update", post(update))
}

pub(super) async fn actor(
    ctx: &ApiContext,
    name: &str,
) -> Result<(String, actix::Addr<ContainerActor>)> {
    ask(
        ctx,
        GetActor {
            name: name.to_string(),
        },
    )
    .await?
}

pub(super) async fn send<M>(a: &actix::Addr<ContainerActor>, msg: M) -> Result<M::Result>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    ContainerActor: actix::Handler<M>,
{
    a.send(msg)
        .await
        .map_err(|e| Error::unavailable(format!("container actor: {e}")))
}

async fn start(State(ctx): State<ApiContext>, Path(id): Path<String>) -> Result<StatusCode> {
    let (_, a) = actor(&ctx, &id).await?;
    send(&a, Start).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// The stop signal and timeout: the request's, else the container's, else
/// SIGTERM and 10 s.
fn stop_params(ctx: &ApiContext, id: &str, q: &HashMap<String, String>) -> Result<Stop> {
    let state = ctx.projection.current();
    let body = state
        .containers
        .get(id)
        .map(render::body)
        .unwrap_or_default();
    let signal = match q
        .get("signal")
        .filter(|s| !s.is_empty())
        .or(body.stop_signal.as_ref())
    {
        Some(s) => crate::images::changes::signal_number(s)?,
        None => libc::SIGTERM,
    };
    let timeout = match q.get("t").or(q.get("timeout")) {
        Some(t) => t
            .parse::<i64>()
            .map_err(|_| Error::invalid(format!("invalid timeout: {t}")))?,
        None => body.stop_timeout.unwrap_or(10),
    };
    Ok(Stop {
        signal,
        timeout: std::time::Duration::from_secs(timeout.max(0) as u64),
    })
}

async fn stop(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    let (id, a) = actor(&ctx, &id).await?;
    let params = stop_params(&ctx, &id, &q)?;
    send(&a, params).await??;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    let (id, a) = actor(&ctx, &id).await?;
    let params = stop_params(&ctx, &id, &q)?;
    match send(&a, params).await? {
        Err(e) if e.kind() != crate::error::ErrorKind::NotModified => return Err(e),
        _ => {}
    }
    send(&a, Start).await??;
    note(&ctx, &id, "restart");
    Ok(StatusCode::NO_CONTENT)
}

/// Records a container action that changes no state (dockerd's event for
/// it: restart, top, export, cp).
pub(super) fn note(ctx: &ApiContext, id: &str, action: &str) {
    crate::actors::event_log::note_container(&ctx.events, id, action.into(), Vec::new());
}

async fn kill(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    let (_, a) = actor(&ctx, &id).await?;
    let signal = match q.get("signal").filter(|s| !s.is_empty()) {
        Some(s) => crate::images::changes::signal_number(s)?,
        None => libc::SIGKILL,
    };
    send(&a, Kill(signal)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Answers with headers at once (the CLI waits for them before it starts the
/// container) and with the body when the condition is met.
async fn wait(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response<Body>> {
    let condition = match q.get("condition").map(String::as_str).unwrap_or("") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => return Err(Error::invalid(format!("invalid condition: \"{other}\""))),
    };
    let (_, a) = actor(&ctx, &id).await?;
    let rx = send(&a, Wait(condition)).await?;
    let body = futures_util::stream::once(async move {
        let v = match rx.await {
            Ok(o) => serde_json::json!({
                "StatusCode": o.status_code,
                "Error": o.error.map(|m| serde_json::json!({ "Message": m })),
            }),
            Err(_) => {
                serde_json::json!({ "StatusCode": -1, "Error": { "Message": "the container's actor went away" } })
            }
        };
        Ok::<_, std::convert::Infallible>(v.to_string() + "\n")
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_default())
}

/// Writes the log from `offset` to `out` until the container's next exit (and
/// what it wrote before exiting).
async fn follow<W: tokio::io::AsyncWrite + Unpin>(
    out: &mut W,
    path: std::path::PathBuf,
    mut offset: u64,
    mut exits: tokio::sync::watch::Receiver<u64>,
    opts: (bool, bool, bool, bool),
) {
    use tokio::io::AsyncWriteExt;
    let (tty, timestamps, stdout, stderr) = opts;
    // `changed()` marks the new value seen, so the exit is remembered here.
    let mut ended = false;
    loop {
        let done = ended || exits.has_changed().unwrap_or(true);
        let (entries, next) = logs::follow_from(&path, offset);
        offset = next;
        if !entries.is_empty() {
            let bytes = logs::render(&entries, tty, timestamps, stdout, stderr);
            if out.write_all(&bytes).await.is_err() || out.flush().await.is_err() {
                return;
            }
        }
        if done {
            return;
        }
        tokio::select! {
            _ = exits.changed() => ended = true,
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
        }
    }
}

fn tty_of(ctx: &ApiContext, id: &str) -> bool {
    ctx.projection
        .current()
        .containers
        .get(id)
        .map(|c| render::body(c).tty.unwrap_or(false))
        .unwrap_or(false)
}

async fn attach(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    mut req: axum::extract::Request,
) -> Result<Response<Body>> {
    let (id, a) = actor(&ctx, &id).await?;
    let exits = send(&a, Subscribe).await?;
    let tty = tty_of(&ctx, &id);
    let path = ctx.storage.log_path(&id);
    let offset = if flag(&q, "logs") {
        0
    } else {
        logs::size_of(&path)
    };
    let opts = (tty, false, flag(&q, "stdout"), flag(&q, "stderr"));
    let stream = flag(&q, "stream");
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    // As dockerd: the keys are looked for only in a tty's input.
    let detach_keys = if tty && flag(&q, "stdin") {
        Some(crate::containers::exec::parse_detach_keys(
            q.get("detachKeys").map(String::as_str).unwrap_or(""),
        )?)
    } else {
        None
    };
    let upgrade = req.headers().get(header::UPGRADE).is_some();
    if upgrade {
        let on = hyper::upgrade::on(&mut req);
        let (stdin, logs_too) = (flag(&q, "stdin"), flag(&q, "logs"));
        tokio::spawn(async move {
            let Ok(upgraded) = on.await else { return };
            let mut io = hyper_util::rt::TokioIo::new(upgraded);
            if logs_too {
                let (entries, _) = logs::read_all(&path);
                let bytes = logs::render(&entries, opts.0, false, opts.2, opts.3);
                if tokio::io::AsyncWriteExt::write_all(&mut io, &bytes)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if !stream {
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
                return;
            }
            // The live stream comes from the shim, joined by the container's actor.
            let _ = a
                .send(Attach {
                    io: Box::new(io),
                    stdin,
                    stdout: opts.2,
                    stderr: opts.3,
                    detach_keys,
                })
                .await;
        });
        return Ok(upgraded_response(content_type));
    }
    let (tx, rx) = tokio::io::duplex(64 << 10);
    tokio::spawn(async move {
        let mut tx = tx;
        follow(&mut tx, path, offset, exits, opts).await;
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(ReaderStream(rx)))
        .unwrap_or_default())
}

/// The ID of the container `name` names, if it runs (else dockerd's 409).
fn running_id(ctx: &ApiContext, name: &str) -> Result<String> {
    let state = ctx.projection.current();
    let c = state.container(name)?;
    if c.status != crate::events::projection::ContainerStatus::Running {
        return Err(Error::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    Ok(c.id.clone())
}

/// GET /containers/{id}/top?ps_args=
async fn top(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>> {
    let id = running_id(&ctx, &id)?;
    let ps_args = q.get("ps_args").cloned().unwrap_or_default();
    let (of, exec_root) = (id.clone(), ctx.config.get().exec_root.clone());
    let v = tokio::task::spawn_blocking(move || {
        crate::containers::top::of_container(&exec_root, &of, &ps_args)
    })
    .await
    .map_err(|e| Error::internal(format!("top: {e}")))??;
    note(&ctx, &id, "top");
    Ok(Json(v))
}

/// GET /containers/{id}/stats?stream=&one-shot=
async fn stats(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response<Body>> {
    let c = ctx.projection.current().container(&id)?.clone();
    let streaming = q
        .get("stream")
        .is_none_or(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let body = if streaming {
        let lines = crate::containers::stats::stream(
            c,
            ctx.projection.clone(),
            &ctx.config.get().exec_root,
        );
        Body::from_stream(futures_util::StreamExt::map(
            lines,
            Ok::<_, std::convert::Infallible>,
        ))
    } else {
        let v =
            crate::containers::stats::once(&c, &ctx.config.get().exec_root, flag(&q, "one-shot"))
                .await;
        Body::from(v.to_string() + "\n")
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_default())
}

async fn pause(State(ctx): State<ApiContext>, Path(id): Path<String>) -> Result<StatusCode> {
    let (_, a) = actor(&ctx, &id).await?;
    send(&a, Pause(true)).await??;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(ctx): State<ApiContext>, Path(id): Path<String>) -> Result<StatusCode> {
    let (_, a) = actor(&ctx, &id).await?;
    send(&a, Pause(false)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `101 UPGRADED`: what follows on the connection is the container's stream.
pub(super) fn upgraded_response(content_type: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_default()
}

/// POST /containers/{id}/resize?h=&w=
async fn resize(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    let (height, width) = tty_size(&q)?;
    let (_, a) = actor(&ctx, &id).await?;
    send(
        &a,
        Resize {
            exec_id: None,
            height,
            width,
        },
    )
    .await??;
    Ok(StatusCode::OK)
}

/// `h` and `w` of a resize, refused as dockerd refuses them.
pub(super) fn tty_size(q: &HashMap<String, String>) -> Result<(u16, u16)> {
    let get = |k: &str| -> Result<u16> {
        let v = q.get(k).map(String::as_str).unwrap_or("");
        v.parse::<u16>()
            .map_err(|_| Error::invalid(format!("strconv.Atoi: parsing \"{v}\": invalid syntax")))
    };
    Ok((get("h")?, get("w")?))
}

async fn logs(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response<Body>> {
    let (id, a) = actor(&ctx, &id).await?;
    let (stdout, stderr) = (flag(&q, "stdout"), flag(&q, "stderr"));
    if !stdout && !stderr {
        return Err(Error::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    if let Ok(c) = ctx.projection.current().container(&id) {
        crate::containers::logs::check_readable(&render::body(c))?;
    }
    let tty = tty_of(&ctx, &id);
    let timestamps = flag(&q, "timestamps");
    let path = ctx.storage.log_path(&id);
    let bound = |k: &str| -> Result<Option<i64>> {
        match q.get(k).filter(|v| !v.is_empty() && v.as_str() != "0") {
            None => Ok(None),
            Some(v) => crate::clock::parse_timestamp_ns(v)
                .map(Some)
                .ok_or_else(|| Error::invalid(format!("invalid value for \"{k}\": {v}"))),
        }
    };
    let (since, until) = (bound("since")?, bound("until")?);
    let tail = q.get("tail").and_then(|t| t.parse::<usize>().ok());
    let running = ctx
        .projection
        .current()
        .containers
        .get(&id)
        .is_some_and(|c| c.status == crate::events::projection::ContainerStatus::Running);
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if !(flag(&q, "follow") && running && until.is_none()) {
        // Streamed from a blocking thread as it is parsed.
        let query = logs::Query {
            tty,
            timestamps,
            stdout,
            stderr,
            since,
            until,
            tail,
        };
        let stream = crate::chan::blocking_body(move |w| {
            logs::write_log(&path, &query, w)
                .map_err(|e| Error::internal(format!("reading the log: {e}")))
        });
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from_stream(stream))
            .unwrap_or_default());
    }
    let (mut entries, offset) = logs::read_all(&path);
    logs::select(&mut entries, since, until, tail);
    let head = logs::render(&entries, tty, timestamps, stdout, stderr);
    let exits = send(&a, Subscribe).await?;
    let (tx, rx) = tokio::io::duplex(64 << 10);
    tokio::spawn(async move {
        let mut tx = tx;
        if tokio::io::AsyncWriteExt::write_all(&mut tx, &head)
            .await
            .is_ok()
        {
            follow(
                &mut tx,
                path,
                offset,
                exits,
                (tty, timestamps, stdout, stderr),
            )
            .await;
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(ReaderStream(rx)))
        .unwrap_or_default())
}

pub(super) use reader_stream::ReaderStream;

/// AsyncRead as a body stream.
mod reader_stream {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReaderStream<R>(pub R);

    impl<R: tokio::io::AsyncRead + Unpin> futures_util::Stream for ReaderStream<R> {
        type Item = std::io::Result<bytes::Bytes>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let mut buf = [0u8; 16 << 10];
            let mut rb = tokio::io::ReadBuf::new(&mut buf);
            match Pin::new(&mut self.0).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
                Poll::Ready(Ok(())) => {
                    Poll::Ready(Some(Ok(bytes::Bytes::copy_from_slice(rb.filled()))))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                Poll::Pending => Poll::Pending,
            }
        }
    }
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

pub(super) fn flag(q: &HashMap<String, String>, k: &str) -> bool {
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
    let body = crate::containers::config::parse_create_body(&body)?;
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
    let now = crate::clock::now_ns();
    let found = render::list(&state, &opts, &image_matches)?;
    Ok(Json(render::summaries(&state, &found, now)))
}

async fn inspect(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let state = ctx.projection.current();
    let c = state.container(&id)?;
    Ok(Json(ctx.storage.inspect_json(&state, c)))
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
    // `docker rm --link` names a link, never a container: a bare name is
    // refused (it used to remove the container).
    if flag(&q, "link") {
        return Err(Error::internal(
            "Conflict, cannot remove the default link name of the container",
        ));
    }
    ask(
        &ctx,
        RemoveContainer {
            name: id,
            force: flag(&q, "force"),
            volumes: flag(&q, "v"),
        },
    )
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// DELETE /containers/{parent}/{alias}?link=1 (`docker rm --link`): the
/// link goes from the parent; both containers stay. An unknown parent or
/// link is dockerd's "No such container: parent/alias".
async fn remove_link(
    State(ctx): State<ApiContext>,
    Path((parent, alias)): Path<(String, String)>,
) -> Result<StatusCode> {
    let unknown = || Error::not_found(format!("No such container: {parent}/{alias}"));
    let (_, a) = actor(&ctx, &parent).await.map_err(|_| unknown())?;
    send(&a, crate::actors::container::RemoveLink(alias.clone()))
        .await?
        .map_err(|e| match e.kind() {
            crate::error::ErrorKind::NotFound => unknown(),
            _ => e,
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /containers/prune: removes every container that does not run
/// (filters `until`, `label`, `label!`).
async fn prune(
    State(ctx): State<ApiContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>> {
    let filters = super::images::parse_filters(q.get("filters"))?;
    if let Some(k) = filters
        .keys()
        .find(|k| !["until", "label", "label!"].contains(&k.as_str()))
    {
        return Err(Error::invalid(format!("invalid filter '{k}'")));
    }
    let now = crate::clock::now_ns();
    let until = filters
        .get("until")
        .and_then(|v| v.first())
        .map(|v| crate::clock::until_ns(v, now))
        .transpose()?;
    let state = ctx.projection.current();
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for c in state.containers.values() {
        let labels = render::body(c).labels.unwrap_or_default();
        let running =
            c.status == crate::events::projection::ContainerStatus::Running || c.restarting;
        if running
            || until.is_some_and(|u| c.created_ns >= u)
            || !filters
                .get("label")
                .is_none_or(|ls| crate::images::query::labels_match(&labels, ls))
            || filters.get("label!").is_some_and(|ls| {
                ls.iter()
                    .any(|l| crate::images::query::labels_match(&labels, std::slice::from_ref(l)))
            })
        {
            continue;
        }
        let size = ctx.storage.rw_size(&c.id);
        let removed = ask(
            &ctx,
            RemoveContainer {
                name: c.id.clone(),
                force: false,
                volumes: false,
            },
        )
        .await?;
        match removed {
            Ok(()) => {
                deleted.push(c.id.clone());
                reclaimed += size;
            }
            // Started meanwhile, or gone: not ours to prune.
            Err(e) => tracing::debug!(container = %c.id, error = %e, "not pruned"),
        }
    }
    Ok(Json(serde_json::json!({
        "ContainersDeleted": if deleted.is_empty() { serde_json::Value::Null } else { deleted.into() },
        "SpaceReclaimed": reclaimed,
    })))
}

/// POST /containers/{id}/update: new limits or restart policy.
async fn update(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>> {
    let body = crate::containers::config::parse_update_body(&body)?;
    let (_, a) = actor(&ctx, &id).await?;
    send(&a, crate::actors::container::Update(body)).await??;
    Ok(Json(serde_json::json!({ "Warnings": [] })))
}
