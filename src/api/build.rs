//! `POST /build`: the classic builder (what `DOCKER_BUILDKIT=0 docker
//! build`, docker-py and Compose send). The query and the context are read
//! here; a bad one is answered with dockerd's status before any output, and
//! from the first step on the build's output streams as dockerd writes it.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, Response, StatusCode};
use axum::routing::post;
use axum::{Extension, Router};
use futures_util::StreamExt;

use super::context::ApiContext;
use super::version::ApiVersion;
use crate::actors::builder::{BuildEnv, BuildLine, BuildOptions};
use crate::error::{Error, Result};
use crate::registry::reference::Reference;

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
}

/// The query, checked as dockerd's newImageBuildOptions checks it.
fn options(raw: Option<&str>, version: ApiVersion) -> Result<(BuildOptions, String)> {
    let mut o = BuildOptions {
        rm: true,
        aux: version
            >= (ApiVersion {
                major: 1,
                minor: 30,
            }),
        ..Default::default()
    };
    let mut dockerfile = "Dockerfile".to_string();
    let flag = |v: &str| matches!(v, "1" | "true" | "True");
    let int = |k: &str, v: &str| {
        v.parse::<i64>().map_err(|_| {
            Error::invalid(format!(
                "invalid {k}: strconv.ParseInt: parsing {v:?}: invalid syntax"
            ))
        })
    };
    let mut force_rm = false;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "dockerfile" if !v.is_empty() => dockerfile = v,
            "t" if !v.is_empty() => {
                let r = Reference::parse(&v).map_err(|e| Error::invalid(e.to_string()))?;
                if r.digest.is_some() {
                    return Err(Error::invalid("build tag cannot contain a digest"));
                }
                o.tags.push(r);
            }
            "q" => o.quiet = flag(&v),
            "rm" => o.rm = v.is_empty() || flag(&v),
            "forcerm" => force_rm = flag(&v),
            "pull" => o.pull = flag(&v),
            "nocache" => {}
            "target" => o.target = Some(v),
            "networkmode" => o.network_mode = Some(v),
            "extrahosts" if !v.is_empty() => o.extra_hosts.push(v),
            "buildargs" if !v.is_empty() => {
                o.build_args = serde_json::from_str::<BTreeMap<String, Option<String>>>(&v)
                    .map_err(|e| Error::invalid(format!("error reading build args: {e}")))?;
            }
            "labels" if !v.is_empty() => {
                o.labels = serde_json::from_str::<BTreeMap<String, String>>(&v)
                    .map_err(|e| Error::invalid(format!("error reading labels: {e}")))?;
            }
            "squash" if flag(&v) => {
                return Err(Error::invalid(
                    "squash is only supported with experimental mode",
                ))
            }
            "version" if !v.is_empty() && v != "1" => {
                return Err(Error::invalid(format!(
                    "unsupported builder version: {v:?}: berthd has the classic builder (version 1) only"
                )))
            }
            "remote" if !v.is_empty() => {
                return Err(Error::invalid(
                    "remote build contexts are not supported by berthd",
                ))
            }
            "isolation" if !v.is_empty() && v != "default" => {
                return Err(Error::invalid(format!("Unsupported isolation: {v:?}")))
            }
            "memory" if !v.is_empty() => o.resources.memory = Some(int("memory", &v)?),
            "memswap" if !v.is_empty() => o.resources.memory_swap = Some(int("memswap", &v)?),
            "cpushares" if !v.is_empty() => o.resources.cpu_shares = Some(int("cpushares", &v)?),
            "cpuperiod" if !v.is_empty() => o.resources.cpu_period = Some(int("cpuperiod", &v)?),
            "cpuquota" if !v.is_empty() => o.resources.cpu_quota = Some(int("cpuquota", &v)?),
            "shmsize" if !v.is_empty() => o.resources.shm_size = Some(int("shmsize", &v)?),
            "cpusetcpus" if !v.is_empty() => o.resources.cpuset_cpus = Some(v),
            "cpusetmems" if !v.is_empty() => o.resources.cpuset_mems = Some(v),
            "cgroupparent" if !v.is_empty() => o.resources.cgroup_parent = Some(v),
            _ => {}
        }
    }
    if force_rm {
        o.rm = true;
        o.force_rm = true;
    }
    Ok((o, dockerfile))
}

async fn build(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response<Body>> {
    let (opts, dockerfile_name) = options(raw.as_deref(), version)?;
    let tmp = ctx.config.get().data_root.join("tmp");
    let spool =
        crate::spool::Spool::from_stream(&tmp, "build-context", body.into_data_stream()).await?;
    let (context, dockerfile) = {
        let tmp = tmp.clone();
        let name = dockerfile_name.clone();
        tokio::task::spawn_blocking(move || -> Result<_> {
            let dir = crate::images::context::unpack(spool.path(), &tmp)?;
            drop(spool);
            let text = crate::images::context::dockerfile(&dir, &name)?;
            crate::images::context::apply_ignore(&dir, &name)?;
            Ok((dir, text))
        })
        .await
        .map_err(|e| Error::internal(format!("reading the build context: {e}")))??
    };
    let parsed = crate::builder::dockerfile::parse(&dockerfile)
        .map_err(|e| Error::invalid(e.to_string()))?;
    if let Some(t) = opts.target.as_deref().filter(|t| !t.is_empty()) {
        parsed
            .target_stage(t)
            .map_err(|e| Error::invalid(e.to_string()))?;
    }
    let env = BuildEnv {
        containers: ctx.containers.clone(),
        images: ctx.images.clone(),
        projection: ctx.projection.clone(),
        storage: ctx.storage.clone(),
        image_files: ctx.image_files.clone(),
        tmp,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let path = context.path().to_path_buf();
        crate::actors::builder::run(env, opts, parsed, path, tx).await;
        drop(context);
    });
    let stream = crate::chan::ReceiverStream(rx).map(|l| Ok::<_, Infallible>(render(&l)));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// One line of the output, as dockerd's JSON encoder writes it (`<`, `>`
/// and `&` escaped, `\r\n` after each).
fn render(line: &BuildLine) -> String {
    let s = |t: &str| serde_json::Value::from(t).to_string();
    let json = match line {
        BuildLine::Stdout(t) => format!("{{\"stream\":{}}}", s(t)),
        BuildLine::Stderr(t) => format!("{{\"stream\":{}}}", s(&format!("\u{1b}[91m{t}\u{1b}[0m"))),
        BuildLine::Aux(id) => format!("{{\"aux\":{{\"ID\":{}}}}}", s(id)),
        BuildLine::Error { message, code } => {
            let m = s(message);
            match code {
                Some(c) => {
                    format!("{{\"errorDetail\":{{\"code\":{c},\"message\":{m}}},\"error\":{m}}}")
                }
                None => format!("{{\"errorDetail\":{{\"message\":{m}}},\"error\":{m}}}"),
            }
        }
    };
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        + "\r\n"
}

/// `POST /build/prune`: there is no build cache yet, so nothing to free.
async fn prune() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "CachesDeleted": null, "SpaceReclaimed": 0 }))
}
