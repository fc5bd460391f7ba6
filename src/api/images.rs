//! Image routes. Names may contain slashes (`127.0.0.1:5000/x/y:1`), so one
//! wildcard route per method dispatches on the suffix, as dockerd's
//! `/images/{name:.*}/json` routes do.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, Response, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bollard_stubs::models::{
    ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect, ImageInspectRootFs,
    ImageSummary,
};
use futures_util::StreamExt;
use tokio_stream_lite::UnboundedReceiverStream;

use super::context::ApiContext;
use super::version::ApiVersion;
use crate::actors::image_service::{
    Distribution, ImageDetails, ImportImage, LoadImages, PruneImages, PullImage, PullItem,
    PushImages, RemoveImage, Removed, SaveImages, TagImage,
};
use crate::error::{Error, Result};
use crate::events::projection::{ImageRecord, State as EngineState};
use crate::images::query::{self, ImageFilters};
use crate::registry::pull::Progress;
use crate::registry::reference::{valid_digest, Reference};
use crate::registry::AuthConfig;
use crate::spool::Spool;

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/prune", post(prune))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/distribution/{*rest}", get(distribution))
        .route(
            "/images/{*rest}",
            get(get_image).post(post_image).delete(delete_image),
        )
}

async fn ask<M>(ctx: &ApiContext, msg: M) -> Result<<M as actix::Message>::Result>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    crate::actors::image_service::ImageService: actix::Handler<M>,
{
    ctx.images
        .send(msg)
        .await
        .map_err(|e| Error::unavailable(format!("image service: {e}")))
}

fn bool_param(v: Option<&String>) -> bool {
    matches!(
        v.map(|s| s.as_str()),
        Some("1") | Some("true") | Some("True")
    )
}

// ---------- list ----------

/// `filters` as the CLI sends it: {"name": ["v1", ...]} (older clients: {"name": {"v1": true}}).
pub fn parse_filters(raw: Option<&String>) -> Result<HashMap<String, Vec<String>>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(HashMap::new());
    };
    let v: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
    let mut out = HashMap::new();
    let obj = v
        .as_object()
        .ok_or_else(|| Error::invalid("invalid filter: not an object"))?;
    for (k, vals) in obj {
        let list = match vals {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => return Err(Error::invalid(format!("invalid filter: {k}"))),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

fn unix_seconds(created: Option<&str>) -> i64 {
    created.and_then(crate::clock::parse_rfc3339).unwrap_or(0)
}

/// Before API 1.44 images carry VirtualSize, equal to Size (older SDKs read
/// it; the models no longer have it).
fn with_virtual_size(version: ApiVersion, mut v: serde_json::Value) -> serde_json::Value {
    let old = version
        < ApiVersion {
            major: 1,
            minor: 44,
        };
    let add = |o: &mut serde_json::Value| {
        if let Some(size) = o.get("Size").cloned().filter(|_| old) {
            o["VirtualSize"] = size;
        }
    };
    match v.as_array_mut() {
        Some(items) => items.iter_mut().for_each(add),
        None => add(&mut v),
    }
    v
}

async fn list(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>> {
    let state = ctx.projection.current();
    let filters = parse_filters(q.get("filters"))?;
    let first = |k: &str| filters.get(k).and_then(|v| v.first()).cloned();
    if let Some(k) = filters
        .keys()
        .find(|k| !["dangling", "reference", "before", "since", "label"].contains(&k.as_str()))
    {
        return Err(Error::invalid(format!("Invalid filter '{k}'")));
    }
    let query = ImageFilters {
        dangling: first("dangling").map(|v| v == "true" || v == "1"),
        reference: filters.get("reference").cloned(),
        before: first("before"),
        since: first("since"),
        label: filters.get("label").cloned(),
        all: bool_param(q.get("all")),
    };
    let labels_of = |i: &ImageRecord| image_labels(&ctx, i);
    let images = query::list(&state, &query, &labels_of)?;
    let list: Vec<ImageSummary> = images
        .iter()
        .map(|i| summary(&state, i, labels_of(i)))
        .collect();
    Ok(Json(with_virtual_size(
        version,
        serde_json::to_value(list).unwrap_or_default(),
    )))
}

/// The labels in an image's config (`config.Labels`).
pub fn image_labels(ctx: &ApiContext, i: &ImageRecord) -> HashMap<String, String> {
    ctx.image_files.labels(i)
}

pub fn summary(
    state: &EngineState,
    i: &ImageRecord,
    labels: HashMap<String, String>,
) -> ImageSummary {
    ImageSummary {
        id: i.id.clone(),
        parent_id: i.parent.clone(),
        repo_tags: i.repo_tags.clone(),
        repo_digests: i.repo_digests.clone(),
        created: unix_seconds(i.created.as_deref()),
        size: state.image_size(i) as i64,
        shared_size: -1,
        labels,
        containers: -1,
        manifests: None,
        descriptor: None,
    }
}

// ---------- pull ----------

/// POST /images/create's query. `changes` may repeat, so it is read by hand.
#[derive(Default)]
struct CreateQuery {
    from_image: Option<String>,
    from_src: Option<String>,
    repo: Option<String>,
    tag: Option<String>,
    message: String,
    changes: Vec<String>,
}

impl CreateQuery {
    fn parse(raw: Option<&str>) -> CreateQuery {
        let mut q = CreateQuery::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "fromImage" => q.from_image = Some(v),
                "fromSrc" => q.from_src = Some(v),
                "repo" => q.repo = Some(v),
                "tag" => q.tag = Some(v),
                "message" => q.message = v,
                "changes" => q.changes.push(v),
                _ => {}
            }
        }
        q
    }
}

fn progress_line(item: &PullItem) -> String {
    let v = match item {
        Ok(Progress { aux: Some(aux), .. }) => {
            serde_json::json!({ "progressDetail": {}, "aux": aux })
        }
        Ok(Progress {
            id,
            status,
            current,
            aux: None,
        }) => {
            let mut v = serde_json::json!({ "status": status });
            if let Some((cur, total)) = current {
                v["progressDetail"] = serde_json::json!({ "current": cur, "total": total });
            } else if id.is_some() {
                v["progressDetail"] = serde_json::json!({});
            }
            if let Some(id) = id {
                v["id"] = serde_json::json!(id);
            }
            v
        }
        Err(e) => return error_line(e.message()) + "\r\n",
    };
    v.to_string() + "\r\n"
}

/// The line a JSON stream ends with on an error, in dockerd's key order
/// (serde_json's map would sort them).
fn error_line(message: &str) -> String {
    let m = serde_json::Value::from(message).to_string();
    format!("{{\"errorDetail\":{{\"message\":{m}}},\"error\":{m}}}")
}

async fn create(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response<Body>> {
    let q = CreateQuery::parse(raw.as_deref());
    if let Some(src) = q.from_src.clone().filter(|s| !s.is_empty()) {
        return import(&ctx, q, &src, body).await;
    }
    let image = q
        .from_image
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid("fromImage or fromSrc is required"))?;
    let mut reference = Reference::parse(&image)?;
    match q.tag.as_deref().filter(|t| !t.is_empty()) {
        Some(t) if valid_digest(t) => reference.digest = Some(t.to_string()),
        Some(t) if t.starts_with("sha256:") => {
            return Err(Error::invalid(format!("invalid reference format: {t}")))
        }
        Some(t) => {
            let r = Reference::parse(&format!("{image}:{t}"))?;
            reference.tag = r.tag;
        }
        None => {}
    }
    let reference = reference.with_default_tag();
    let auth =
        AuthConfig::from_header(headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()))
            .registry_auth();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    ask(
        &ctx,
        PullImage {
            reference,
            auth,
            progress: tx,
        },
    )
    .await?;
    stream_progress(rx).await
}

/// `docker import`: the tarball comes in the body (fromSrc=-) or from a URL.
async fn import(ctx: &ApiContext, q: CreateQuery, src: &str, body: Body) -> Result<Response<Body>> {
    let tag = match q.repo.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(repo) => {
            let r = match q.tag.as_deref().filter(|t| !t.is_empty()) {
                Some(t) => Reference::parse(&format!("{repo}:{t}"))?,
                None => Reference::parse(repo)?,
            };
            if r.digest.is_some() {
                return Err(Error::invalid("cannot import digest reference"));
            }
            Some(r.with_default_tag())
        }
    };
    let mut lines = Vec::new();
    let spooled = if src == "-" {
        spool(ctx, "import", body.into_data_stream()).await
    } else {
        // As dockerd: a URL without a scheme is fetched over http.
        let url = if src.contains("://") {
            src.to_string()
        } else {
            format!("http://{src}")
        };
        let response = reqwest::get(&url)
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| Error::internal(format!("Get {url:?}: {e}")))?;
        lines.push(serde_json::json!({ "status": format!("Downloading from {url}") }));
        spool(ctx, "import", response.bytes_stream()).await
    };
    let spooled = spooled?;
    let result = ask(
        ctx,
        ImportImage {
            tarball: spooled,
            tag,
            changes: q.changes,
            message: q.message,
        },
    )
    .await;
    let id = result??;
    lines.push(serde_json::json!({ "status": id }));
    let body: String = lines.iter().map(|l| l.to_string() + "\r\n").collect();
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default())
}

/// Writes a request body (or a download) to a file under <data-root>/tmp,
/// owned by the returned Spool (the actor it is sent to removes it).
async fn spool<S, B, E>(ctx: &ApiContext, what: &str, stream: S) -> Result<Spool>
where
    S: futures_util::Stream<Item = std::result::Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    Spool::from_stream(&ctx.config.get().data_root.join("tmp"), what, stream).await
}

/// Streams pull/push progress as dockerd does. An error before any progress
/// (unknown image, bad registry) gets its own status, as dockerd answers it before
/// it starts streaming; a later one is the stream's last line.
async fn stream_progress(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<PullItem>,
) -> Result<Response<Body>> {
    let first = match rx.recv().await {
        Some(Err(e)) => return Err(e),
        other => other,
    };
    let stream = futures_util::stream::iter(first)
        .chain(UnboundedReceiverStream(rx))
        .map(|item| Ok::<_, std::convert::Infallible>(progress_line(&item)));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

// ---------- per-image routes ----------

/// Splits `name/suffix` where suffix is one of the known operations.
fn split_op<'a>(rest: &'a str, ops: &[&'static str]) -> Option<(&'a str, &'static str)> {
    ops.iter().find_map(|op| {
        rest.strip_suffix(op)
            .and_then(|n| n.strip_suffix('/'))
            .map(|n| (n, *op))
    })
}

async fn get_image(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
    Path(rest): Path<String>,
) -> Result<Response<Body>> {
    let Some((name, op)) = split_op(&rest, &["json", "history", "get"]) else {
        return Err(Error::not_found("page not found"));
    };
    if op == "get" {
        return save(&ctx, vec![name.to_string()]).await;
    }
    let (image, config) = ask(
        &ctx,
        ImageDetails {
            name: name.to_string(),
        },
    )
    .await??;
    let state = ctx.projection.current();
    let body = match op {
        "json" => serde_json::to_value(inspect(&ctx, &state, &image, &config)).and_then(|mut v| {
            crate::images::inspect::complete(&mut v, &config, &image.parent, version.minor);
            serde_json::to_vec(&with_virtual_size(version, v))
        }),
        _ => serde_json::to_vec(&history(&state, &image, &config)),
    }
    .map_err(|e| Error::internal(format!("rendering: {e}")))?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default())
}

fn inspect(
    ctx: &ApiContext,
    state: &EngineState,
    image: &ImageRecord,
    config: &serde_json::Value,
) -> ImageInspect {
    let s = |k: &str| config.get(k).and_then(|v| v.as_str()).map(String::from);
    ImageInspect {
        id: Some(image.id.clone()),
        descriptor: None,
        manifests: None,
        identity: None,
        repo_tags: Some(image.repo_tags.clone()),
        repo_digests: Some(image.repo_digests.clone()),
        comment: Some(s("comment").unwrap_or_default()),
        created: s("created"),
        author: Some(s("author").unwrap_or_default()),
        config: config
            .get("config")
            .and_then(|c| serde_json::from_value(c.clone()).ok()),
        architecture: s("architecture"),
        variant: s("variant"),
        os: s("os"),
        os_version: s("os.version"),
        size: Some(state.image_size(image) as i64),
        graph_driver: Some(ctx.image_files.graph_driver(image)),
        root_fs: Some(ImageInspectRootFs {
            typ: "layers".into(),
            layers: Some(
                image
                    .chain_ids
                    .iter()
                    .filter_map(|c| state.layers.get(c))
                    .map(|l| l.diff_id.clone())
                    .collect(),
            ),
        }),
        metadata: None,
    }
}

fn history(
    state: &EngineState,
    image: &ImageRecord,
    config: &serde_json::Value,
) -> Vec<ImageHistoryResponseItem> {
    let entries: Vec<crate::registry::manifest::History> = config
        .get("history")
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default();
    let mut layer_sizes = image
        .chain_ids
        .iter()
        .map(|c| state.layers.get(c).map(|l| l.size as i64).unwrap_or(0));
    let mut items: Vec<ImageHistoryResponseItem> = entries
        .iter()
        .map(|h| ImageHistoryResponseItem {
            id: "<missing>".into(),
            created: unix_seconds(h.created.as_deref()),
            created_by: h.created_by.clone().unwrap_or_default(),
            tags: vec![],
            size: if h.empty_layer {
                0
            } else {
                layer_sizes.next().unwrap_or(0)
            },
            comment: h.comment.clone().unwrap_or_default(),
        })
        .collect();
    items.reverse();
    // The images of the parent chain name the lines they made, newest
    // first, as dockerd fills them in (intermediate images of a build, the
    // image a commit was made from); the rest stay <missing>.
    let mut current = Some(image);
    for item in items.iter_mut() {
        let Some(i) = current else { break };
        item.id = i.id.clone();
        item.tags = i.repo_tags.clone();
        current = (!i.parent.is_empty())
            .then(|| state.images.get(&i.parent))
            .flatten();
    }
    items
}

async fn post_image(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response<Body>> {
    let Some((name, op)) = split_op(&rest, &["tag", "push"]) else {
        return Err(Error::not_found("page not found"));
    };
    if op == "push" {
        let repository = Reference::parse(name)?;
        let tag = q
            .get("tag")
            .filter(|t| !t.is_empty())
            .cloned()
            .or(repository.tag.clone());
        let auth =
            AuthConfig::from_header(headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()))
                .registry_auth();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        ask(
            &ctx,
            PushImages {
                repository,
                tag,
                auth,
                progress: tx,
            },
        )
        .await?;
        return stream_progress(rx).await;
    }
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::invalid("repository name is required"))?;
    let mut target = Reference::parse(repo)?;
    if target.digest.is_some() {
        return Err(Error::invalid(
            "refusing to create a tag with a digest reference",
        ));
    }
    if let Some(t) = q.get("tag").filter(|t| !t.is_empty()) {
        target = Reference::parse(&format!("{repo}:{t}"))?;
    }
    let target = target.with_default_tag();
    ask(
        &ctx,
        TagImage {
            source: name.to_string(),
            target,
        },
    )
    .await??;
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .body(Body::empty())
        .unwrap_or_default())
}

async fn delete_image(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ImageDeleteResponseItem>>> {
    let removed = ask(
        &ctx,
        RemoveImage {
            name,
            force: bool_param(q.get("force")),
        },
    )
    .await??;
    Ok(Json(render_removed(removed)))
}

fn render_removed(removed: Vec<Removed>) -> Vec<ImageDeleteResponseItem> {
    removed
        .into_iter()
        .map(|r| match r {
            Removed::Untagged(t) => ImageDeleteResponseItem {
                untagged: Some(t),
                deleted: None,
            },
            Removed::Deleted(d) => ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(d),
            },
        })
        .collect()
}

async fn prune(
    State(ctx): State<ApiContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>> {
    let filters = parse_filters(q.get("filters"))?;
    for key in filters.keys() {
        if key != "dangling" {
            return Err(Error::invalid(format!("invalid filter '{key}'")));
        }
    }
    let all = filters
        .get("dangling")
        .and_then(|v| v.first())
        .is_some_and(|v| v == "false" || v == "0");
    let (removed, reclaimed) = ask(&ctx, PruneImages { all }).await??;
    let deleted = render_removed(removed);
    Ok(Json(serde_json::json!({
        "ImagesDeleted": if deleted.is_empty() { serde_json::Value::Null } else { serde_json::to_value(deleted).unwrap_or_default() },
        "SpaceReclaimed": reclaimed,
    })))
}

async fn distribution(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    Path(rest): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let name = rest
        .strip_suffix("/json")
        .ok_or_else(|| Error::not_found("page not found"))?;
    let reference = Reference::parse(name)?.with_default_tag();
    let auth =
        AuthConfig::from_header(headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()))
            .registry_auth();
    let (d, platforms) = ask(&ctx, Distribution { reference, auth }).await??;
    Ok(Json(serde_json::json!({
        "Descriptor": { "mediaType": d.media_type, "digest": d.digest, "size": d.size },
        "Platforms": platforms,
    })))
}

/// `docker save NAME...` (GET /images/get?names=a&names=b).
async fn save_many(
    State(ctx): State<ApiContext>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response<Body>> {
    let names: Vec<String> = q
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    if names.is_empty() {
        return Err(Error::invalid("no image names given"));
    }
    save(&ctx, names).await
}

async fn save(ctx: &ApiContext, names: Vec<String>) -> Result<Response<Body>> {
    let rx = ask(
        ctx,
        SaveImages {
            names,
            tmp: ctx.config.get().data_root.join("tmp"),
        },
    )
    .await??;
    let stream = crate::chan::ReceiverStream(rx);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// `docker load` (with or without `quiet`: there are no progress bars to drop).
/// The archive is spooled to a file under the data root (an image
/// can be larger than memory), then loaded by the ImageService.
async fn load(State(ctx): State<ApiContext>, body: Body) -> Result<Response<Body>> {
    let spooled = spool(&ctx, "load", body.into_data_stream()).await?;
    let result = ask(&ctx, LoadImages { archive: spooled }).await;
    // dockerd streams from the start: an archive it cannot load is a 200
    // whose last line is the error (docker-py raises ImageLoadError on it).
    let body: String = match result? {
        Ok(lines) => lines
            .iter()
            .map(|l| serde_json::json!({ "stream": format!("{l}\n") }).to_string() + "\n")
            .collect(),
        Err(e) => error_line(e.message()) + "\n",
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default())
}

/// An mpsc receiver as a Stream (tokio-stream's wrapper, without the dependency).
mod tokio_stream_lite {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct UnboundedReceiverStream<T>(pub tokio::sync::mpsc::UnboundedReceiver<T>);

    impl<T> futures_util::Stream for UnboundedReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
