//! A container's files: `docker cp` (archive HEAD, GET, PUT), `docker export`
//! and `docker diff` (changes). The handlers decode and hand the work to
//! `containers::archive` and `containers::diff` on a blocking thread, with the
//! container's root filesystem as a directory fd.

use std::collections::HashMap;
use std::os::fd::AsFd;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::{Json, Router};

use super::containers::flag;
use super::context::ApiContext;
use crate::containers::archive;
use crate::containers::storage::Root;
use crate::error::{Error, Result};

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route(
            "/containers/{id}/archive",
            get(get_archive).head(head_archive).put(put_archive),
        )
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/changes", get(changes))
        .route("/commit", axum::routing::post(commit))
}

fn open_root(ctx: &ApiContext, name: &str) -> Result<Root> {
    ctx.storage.open_root(&ctx.projection.current(), name)
}

fn path_param(q: &HashMap<String, String>) -> Result<String> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| Error::invalid("bad parameter: path cannot be empty"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("a blocking task failed: {e}")))?
}

/// The root `path` lies on (a bind's or volume's data, or the rootfs), the
/// path inside it, and the name of a mount point itself.
fn open_root_at(
    ctx: &ApiContext,
    name: &str,
    path: &str,
) -> Result<(Root, String, Option<String>)> {
    ctx.storage
        .open_root_at(&ctx.projection.current(), name, path)
}

async fn path_stat(
    ctx: &ApiContext,
    name: &str,
    path: String,
) -> Result<(Root, String, Option<String>, HeaderValue)> {
    let (root, inner, top) = open_root_at(ctx, name, &path)?;
    let name = name.to_string();
    blocking(move || {
        let st = archive::stat(root.fd.as_fd(), &inner, &name, top.as_deref())?;
        let value = HeaderValue::from_str(&st.header_value())
            .map_err(|e| Error::internal(format!("stat header: {e}")))?;
        Ok((root, inner, top, value))
    })
    .await
}

/// HEAD /containers/{id}/archive?path=: the path's stat, in a header.
async fn head_archive(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response<Body>> {
    let (_, _, _, stat) = path_stat(&ctx, &name, path_param(&q)?).await?;
    Ok(Response::builder()
        .header(STAT_HEADER, stat)
        .body(Body::empty())
        .unwrap_or_default())
}

/// GET /containers/{id}/archive?path=: the path as a tar, its stat in a header.
async fn get_archive(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response<Body>> {
    let path = path_param(&q)?;
    let (root, inner, top, stat) = path_stat(&ctx, &name, path).await?;
    note_of(&ctx, &name, "archive-path");
    let stream = crate::chan::blocking_body(move |w| {
        archive::write_tar(
            root.fd.as_fd(),
            &inner,
            &name,
            top.as_deref(),
            root.ids.clone(),
            w,
        )
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(STAT_HEADER, stat)
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=: a tar
/// extracted into the directory `path`.
async fn put_archive(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> Result<StatusCode> {
    let mut input = crate::chan::ChannelReader::new(crate::chan::forward_body(body));
    let (ctx2, name2) = (ctx.clone(), name.clone());
    blocking(move || {
        let extracted = extract_body(&ctx, &name, &q, &mut input);
        // The tar reader stops at the first end-of-archive block while the
        // client is still sending the second (and any padding); an error may
        // come before a byte is read. Answering with the body unread makes
        // hyper close the connection under a client that is still writing,
        // and `docker cp` then reports "broken pipe" instead of the answer.
        // As dockerd's server does, read the rest: all of it after success,
        // up to 256 KiB after an error.
        let limit = if extracted.is_ok() {
            u64::MAX
        } else {
            256 << 10
        };
        let _ = std::io::copy(
            &mut std::io::Read::take(&mut input, limit),
            &mut std::io::sink(),
        );
        extracted
    })
    .await?;
    note_of(&ctx2, &name2, "extract-to-dir");
    Ok(StatusCode::OK)
}

fn extract_body(
    ctx: &ApiContext,
    name: &str,
    q: &HashMap<String, String>,
    input: &mut crate::chan::ChannelReader,
) -> Result<()> {
    let path = path_param(q)?;
    let (root, path, _) = open_root_at(ctx, name, &path)?;
    if root.readonly_mount {
        return Err(Error::forbidden("mounted volume is marked read-only"));
    }
    if root.readonly {
        return Err(Error::forbidden("container rootfs is marked read-only"));
    }
    let owner = if flag(q, "copyUIDGID") {
        Some(root.user_ids()?)
    } else {
        None
    };
    archive::extract_to(
        root.fd.as_fd(),
        &path,
        name,
        input,
        owner,
        root.ids.clone(),
        flag(q, "noOverwriteDirNonDir"),
    )
}

/// GET /containers/{id}/export: the root filesystem as a tar.
async fn export(State(ctx): State<ApiContext>, Path(name): Path<String>) -> Result<Response<Body>> {
    let root = open_root(&ctx, &name)?;
    note_of(&ctx, &name, "export");
    let stream =
        crate::chan::blocking_body(move |w| archive::export(root.fd.as_fd(), root.ids.clone(), w));
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// Records `action` on the container `name` names (still there: it was
/// just opened).
fn note_of(ctx: &ApiContext, name: &str, action: &str) {
    if let Ok(c) = ctx.projection.current().container(name) {
        super::containers::note(ctx, &c.id, action);
    }
}

/// GET /containers/{id}/changes: what the container changed over its image.
async fn changes(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let state = ctx.projection.current();
    let id = state.container(&name)?.id.clone();
    let storage = std::sync::Arc::clone(&ctx.storage);
    let changes = blocking(move || storage.changes(&id)).await?;
    let list: Vec<serde_json::Value> = changes
        .into_iter()
        .map(|c| serde_json::json!({ "Path": c.path, "Kind": c.kind as u8 }))
        .collect();
    // dockerd answers null, not [], when nothing changed.
    Ok(Json(if list.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Array(list)
    }))
}

/// POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=: the
/// container's changes become a new image on top of its own (its actor
/// freezes it meanwhile unless pause=false).
async fn commit(
    State(ctx): State<ApiContext>,
    Query(q): Query<Vec<(String, String)>>,
    body: bytes::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    use crate::images::commit::CommitRequest;
    use crate::registry::reference::Reference;
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let name = get("container");
    ctx.projection.current().container(&name)?;
    ctx.storage.require_diff("commit")?;
    let tag = match get("repo") {
        r if r.is_empty() => None,
        repo => {
            let t = get("tag");
            let r = Reference::parse(&if t.is_empty() {
                repo
            } else {
                format!("{repo}:{t}")
            })?;
            if r.digest.is_some() {
                return Err(Error::invalid("cannot commit to digest reference"));
            }
            Some(r.with_default_tag())
        }
    };
    let user_config: bollard_stubs::models::ContainerConfig =
        if body.iter().all(u8::is_ascii_whitespace) {
            Default::default()
        } else {
            serde_json::from_slice::<Option<_>>(&body)
                .map_err(|e| Error::invalid(format!("invalid commit config: {e}")))?
                .unwrap_or_default()
        };
    let request = CommitRequest {
        tag,
        user_config,
        changes: q
            .iter()
            .filter(|(k, _)| k == "changes")
            .map(|(_, v)| v.clone())
            .collect(),
        author: get("author"),
        comment: get("comment"),
        pause: !matches!(get("pause").as_str(), "0" | "false" | "False"),
        build_step: None,
    };
    let id = ctx
        .containers
        .send(crate::actors::container_service::CommitContainer { name, request })
        .await
        .map_err(|e| Error::unavailable(format!("container service: {e}")))??;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))))
}
