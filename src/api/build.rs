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
    // dockerd's httputils.BoolValue: anything but these is true.
    let flag = |v: &str| {
        !matches!(
            v.trim().to_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        )
    };
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
            "nocache" => o.no_cache = flag(&v),
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
            "platform" if !v.is_empty() => check_platform(&v).map_err(Error::invalid)?,
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

/// A `platform` as containerd's platforms.Parse reads it (the build runs
/// on this host's platform whatever a valid one says, as dockerd's classic
/// builder with a local base image).
fn check_platform(spec: &str) -> std::result::Result<(), String> {
    const KNOWN: &[&str] = &[
        "linux",
        "windows",
        "darwin",
        "freebsd",
        "netbsd",
        "openbsd",
        "solaris",
        "illumos",
        "aix",
        "android",
        "ios",
        "js",
        "plan9",
        "dragonfly",
        "amd64",
        "x86_64",
        "x86-64",
        "arm64",
        "aarch64",
        "arm",
        "armhf",
        "armel",
        "386",
        "i386",
        "ppc64le",
        "ppc64",
        "s390x",
        "riscv64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "loong64",
        "wasm",
    ];
    let parts: Vec<&str> = spec.split('/').collect();
    for p in &parts {
        if p.is_empty()
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "\"{p}\" is an invalid component of \"{spec}\": platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid argument"
            ));
        }
    }
    match parts.len() {
        1 if !KNOWN.contains(&spec.to_lowercase().as_str()) => Err(format!(
            "\"{spec}\": unknown operating system or architecture: invalid argument"
        )),
        1..=3 => Ok(()),
        _ => Err(format!(
            "\"{spec}\": cannot parse platform specifier: invalid argument"
        )),
    }
}

/// `POST /build/prune`: the classic builder's cache is its step images
/// (images/build_cache.rs); what no tagged image or container needs goes,
/// oldest first, down to `keep-storage` bytes, stored before `until`.
/// `all` changes nothing here: what is still needed cannot go.
async fn prune(
    State(ctx): State<ApiContext>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<serde_json::Value>> {
    use crate::actors::image_service::{RemoveImage, Removed};
    let mut keep_storage = 0u64;
    let mut until = None;
    let now = crate::clock::now_ns();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "keep-storage" => {
                keep_storage = v.parse().map_err(|_| {
                    Error::invalid(format!(
                        "keep-storage is in bytes and expects an integer, got {v}"
                    ))
                })?
            }
            "filters" => {
                let filters = super::images::parse_filters(Some(&v.into_owned()))?;
                if let Some(k) = filters.keys().find(|k| k.as_str() != "until") {
                    return Err(Error::invalid(format!("invalid filter '{k}'")));
                }
                until = filters
                    .get("until")
                    .and_then(|v| v.first())
                    .map(|v| crate::clock::until_ns(v, now))
                    .transpose()?;
            }
            _ => {}
        }
    }
    let state = ctx.projection.current();
    let entries = crate::images::build_cache::entries(&state);
    let sizes: BTreeMap<String, u64> = entries.iter().map(|e| (e.id.clone(), e.size)).collect();
    let chosen = crate::images::build_cache::prunable(&entries, until, keep_storage);
    let mut deleted: Vec<String> = Vec::new();
    // Newest first: a step's image goes before the one it was made on.
    for e in chosen.iter().rev() {
        if deleted.contains(&e.id) {
            continue;
        }
        let removed = ctx
            .images
            .send(RemoveImage {
                name: e.id.clone(),
                force: false,
            })
            .await
            .map_err(|e| Error::unavailable(format!("image service: {e}")))?;
        match removed {
            // Images only (an rmi also names the layers it removed).
            Ok(items) => deleted.extend(items.into_iter().filter_map(|r| match r {
                Removed::Deleted(id) if sizes.contains_key(&id) => Some(id),
                _ => None,
            })),
            // Gone with a child's removal, or still needed after all.
            Err(e) => tracing::debug!(image = %e.message(), "build cache prune skipped one"),
        }
    }
    let reclaimed: u64 = deleted.iter().filter_map(|id| sizes.get(id)).sum();
    Ok(axum::Json(serde_json::json!({
        "CachesDeleted": deleted,
        "SpaceReclaimed": reclaimed,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_as_containerd_parses_them() {
        assert!(check_platform("linux/amd64").is_ok());
        assert!(check_platform("linux/arm/v7").is_ok());
        assert!(check_platform("windows").is_ok());
        assert_eq!(
            check_platform("foo").unwrap_err(),
            "\"foo\": unknown operating system or architecture: invalid argument"
        );
        assert_eq!(
            check_platform("bogus//x").unwrap_err(),
            "\"\" is an invalid component of \"bogus//x\": platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid argument"
        );
    }
}
