//! A container's files: `docker cp` (archive HEAD, GET, PUT), `docker export`
//! and `docker diff` (changes). The handlers decode and hand the work to
//! `containers::archive` and `containers::diff` on a blocking thread, with the
//! container's root filesystem as a directory fd.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::{Json, Router};

use super::containers::flag;
use super::ApiContext;
use crate::containers::{archive, diff, render};
use crate::error::{Error, Result};
use crate::events::projection::ContainerStatus;

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

/// The container and its root filesystem: the mounted one while it runs,
/// else a private mount of its layers.
struct Root {
    fd: OwnedFd,
    readonly: bool,
    user: String,
    /// A remapped container's ids (userns-remap).
    ids: Option<crate::drivers::userns::IdShift>,
}

fn open_root(ctx: &ApiContext, name: &str) -> Result<Root> {
    let state = ctx.projection.current();
    let c = render::resolve(&state, name)?;
    let running = c.status == ContainerStatus::Running;
    let body = render::body(c);
    let remapped = remap_of(ctx, &body).is_some();
    let fd = ctx.layers.open_rootfs(&c.id, running, remapped)?;
    Ok(Root {
        fd,
        readonly: body
            .host_config
            .as_ref()
            .and_then(|h| h.readonly_rootfs)
            .unwrap_or(false),
        user: body.user.clone().unwrap_or_default(),
        ids: remap_of(&ctx, &body),
    })
}

/// How a container's file owners map to the host's, when it is remapped.
fn remap_of(
    ctx: &ApiContext,
    body: &bollard_stubs::models::ContainerCreateBody,
) -> Option<crate::drivers::userns::IdShift> {
    ctx.layers
        .remap()
        .filter(|_| crate::drivers::userns::private(body.host_config.as_ref()))
        .map(|r| r.shift())
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

async fn path_stat(ctx: &ApiContext, name: &str, path: String) -> Result<(Root, HeaderValue)> {
    let root = open_root(ctx, name)?;
    let name = name.to_string();
    blocking(move || {
        let st = archive::stat(root.fd.as_fd(), &path, &name)?;
        let value = HeaderValue::from_str(&st.header_value())
            .map_err(|e| Error::internal(format!("stat header: {e}")))?;
        Ok((root, value))
    })
    .await
}

/// HEAD /containers/{id}/archive?path=: the path's stat, in a header.
async fn head_archive(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response<Body>> {
    let (_, stat) = path_stat(&ctx, &name, path_param(&q)?).await?;
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
    let (root, stat) = path_stat(&ctx, &name, path.clone()).await?;
    let stream = crate::chan::blocking_body(move |w| {
        archive::write_tar(root.fd.as_fd(), &path, &name, root.ids.clone(), w)
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
    let path = path_param(&q)?;
    let root = open_root(&ctx, &name)?;
    if root.readonly {
        return Err(Error::forbidden("container rootfs is marked read-only"));
    }
    let no_overwrite = flag(&q, "noOverwriteDirNonDir");
    let copy_owner = flag(&q, "copyUIDGID");
    let input = crate::chan::ChannelReader::new(crate::chan::forward_body(body));
    blocking(move || {
        let owner = if copy_owner {
            let fd = root.fd.as_fd();
            let passwd = crate::drivers::exec::bundle::read_in_root_fd(fd, "etc/passwd");
            let group = crate::drivers::exec::bundle::read_in_root_fd(fd, "etc/group");
            let u = crate::drivers::exec::spec::resolve_user(&root.user, &passwd, &group)?;
            Some((u.uid, u.gid))
        } else {
            None
        };
        archive::extract_to(
            root.fd.as_fd(),
            &path,
            &name,
            input,
            owner,
            root.ids.clone(),
            no_overwrite,
        )
    })
    .await?;
    Ok(StatusCode::OK)
}

/// GET /containers/{id}/export: the root filesystem as a tar.
async fn export(State(ctx): State<ApiContext>, Path(name): Path<String>) -> Result<Response<Body>> {
    let root = open_root(&ctx, &name)?;
    let stream =
        crate::chan::blocking_body(move |w| archive::export(root.fd.as_fd(), root.ids.clone(), w));
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// GET /containers/{id}/changes: what the container changed over its image.
async fn changes(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let state = ctx.projection.current();
    let id = render::resolve(&state, &name)?.id.clone();
    if ctx.layers.driver() == crate::drivers::storage::Driver::Vfs {
        return Err(Error::not_implemented(
            "docker diff is not supported with the vfs storage driver yet",
        ));
    }
    let (upper, lowers) = (ctx.layers.rw_diff_dir(&id), ctx.layers.rw_lower_dirs(&id));
    let changes = blocking(move || diff::changes(&upper, &lowers)).await?;
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
/// container's changes become a new image on top of its own. A running
/// container is frozen meanwhile (pause=false: not), as dockerd does it.
async fn commit(
    State(ctx): State<ApiContext>,
    Query(q): Query<Vec<(String, String)>>,
    body: bytes::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    use crate::actors::container::Pause;
    use crate::registry::reference::Reference;
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let name = get("container");
    let state = ctx.projection.current();
    let c = render::resolve(&state, &name)?.clone();
    if ctx.layers.driver() == crate::drivers::storage::Driver::Vfs {
        return Err(Error::not_implemented(
            "docker commit is not supported with the vfs storage driver yet",
        ));
    }
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
    let parent = state
        .images
        .get(&c.image)
        .ok_or_else(|| Error::not_found(format!("No such image: {}", c.image)))?;
    let spec = crate::images::commit::CommitSpec {
        container_id: c.id.clone(),
        container_config: render::inspect_config(&render::body(&c)),
        user_config,
        changes: q
            .iter()
            .filter(|(k, _)| k == "changes")
            .map(|(_, v)| v.clone())
            .collect(),
        author: get("author"),
        comment: get("comment"),
        parent_id: c.image.clone(),
        parent_config: ctx.blobs.get(&c.image)?,
        parent_chain: parent.chain_ids.clone(),
        created: crate::api::system::rfc3339_now(),
    };
    // Bad changes are refused before anything is frozen or written.
    crate::images::commit::new_config(&spec)?;

    let pause = !matches!(get("pause").as_str(), "0" | "false" | "False");
    let freeze = pause && c.status == ContainerStatus::Running && !c.paused;
    let actor = if freeze {
        let (_, a) = super::containers::actor(&ctx, &c.id).await?;
        super::containers::send(&a, Pause(true)).await??;
        Some(a)
    } else {
        None
    };
    let dir = ctx.config.data_root.join("tmp");
    let spool = dir.join(format!(
        "commit-{}-{}",
        &c.id[..12],
        crate::store::eventlog::now_ns()
    ));
    let upper = ctx.layers.rw_diff_dir(&c.id);
    let ids = remap_of(&ctx, &render::body(&c));
    let written = {
        let spool = spool.clone();
        blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
            let file = std::fs::File::create(&spool)
                .map_err(|e| Error::internal(format!("spooling the layer: {e}")))?;
            archive::layer_tar(&upper, ids, std::io::BufWriter::new(file))
        })
        .await
    };
    if let Some(a) = actor {
        super::containers::send(&a, Pause(false)).await??;
    }
    let result = match written {
        Ok(()) => ctx
            .images
            .send(crate::actors::image_service::CommitImage {
                layer_tar: spool.clone(),
                spec,
                tag,
            })
            .await
            .map_err(|e| Error::unavailable(format!("image service: {e}")))
            .and_then(|r| r),
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_file(&spool).await;
    let id = result?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))))
}
