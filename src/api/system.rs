//! System routes: /_ping, /version, /info. Read-only: rendered from the host facts,
//! the configuration and the projection, never waiting on an actor.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use bollard_stubs::models::{
    Commit, IndexInfo, LocalNodeState, PluginsInfo, RegistryServiceConfig, Runtime, SwarmInfo,
    SystemInfo, SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum,
    SystemInfoDefaultAddressPools, SystemVersion, SystemVersionComponents, SystemVersionPlatform,
};

use super::context::ApiContext;
use super::version::{ApiVersion, CURRENT_STR, MIN_STR};
use crate::buildinfo;
use crate::config::BUILTIN_RUNTIME;

pub fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/system/df", get(disk_usage))
}

async fn ping(method: Method) -> Response<Body> {
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from("OK")
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert("OSType", HeaderValue::from_static("linux"));
    if method == Method::HEAD {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}

async fn version(State(ctx): State<ApiContext>) -> Json<SystemVersion> {
    let host = &ctx.host;
    let arch = crate::hostinfo::go_arch(&host.architecture).to_string();
    let details: HashMap<String, String> = [
        ("ApiVersion", CURRENT_STR),
        ("MinAPIVersion", MIN_STR),
        ("GitCommit", buildinfo::GIT_COMMIT),
        ("GoVersion", buildinfo::RUSTC_VERSION),
        ("Os", "linux"),
        ("Arch", arch.as_str()),
        ("KernelVersion", host.kernel_version.as_str()),
        ("BuildTime", buildinfo::BUILD_TIME),
        ("Experimental", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Json(SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "Berth Engine".into(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: buildinfo::VERSION.into(),
            details: Some(details),
        }]),
        version: Some(buildinfo::VERSION.into()),
        api_version: Some(ApiVersion::CURRENT.to_string()),
        min_api_version: Some(MIN_STR.into()),
        git_commit: Some(buildinfo::GIT_COMMIT.into()),
        go_version: Some(buildinfo::RUSTC_VERSION.into()),
        os: Some("linux".into()),
        arch: Some(arch),
        kernel_version: Some(host.kernel_version.clone()),
        experimental: Some(false),
        build_time: Some(buildinfo::BUILD_TIME.into()),
    })
}

/// GET /info: the models' SystemInfo, plus what they lack and dockerd
/// sends: KernelMemoryTCP where the kernel has it, GenericResources and
/// Isolation always, and before API 1.42 (dockerd 20.10's 1.41) the bridge
/// netfilter flags and KernelMemory.
async fn info(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
) -> Json<serde_json::Value> {
    let cg = &ctx.host.cgroups;
    let mut v = serde_json::to_value(system_info(&ctx)).unwrap_or_default();
    if cg.kernel_memory_tcp {
        v["KernelMemoryTCP"] = true.into();
    }
    v["GenericResources"] = serde_json::Value::Null;
    v["Isolation"] = "".into();
    if version
        < (ApiVersion {
            major: 1,
            minor: 42,
        })
    {
        let (v4, v6) = crate::hostinfo::bridge_nf();
        v["BridgeNfIptables"] = v4.into();
        v["BridgeNfIp6tables"] = v6.into();
        v["KernelMemory"] = cg.kernel_memory.into();
    }
    Json(v)
}

fn system_info(ctx: &ApiContext) -> SystemInfo {
    let state = ctx.projection.current();
    let host = &ctx.host;
    let cfg = ctx.config.get();
    let cg = &host.cgroups;
    let s = |v: &str| Some(v.to_string());
    let mirrors: Vec<String> = cfg
        .registry_mirrors
        .iter()
        .map(|m| normalize_mirror(m))
        .collect();
    let mut index_configs = HashMap::new();
    index_configs.insert(
        "docker.io".to_string(),
        IndexInfo {
            name: s("docker.io"),
            mirrors: Some(mirrors.clone()),
            secure: Some(true),
            official: Some(true),
        },
    );
    let mut insecure_cidrs = vec!["::1/128".to_string(), "127.0.0.0/8".to_string()];
    for reg in &cfg.insecure_registries {
        if crate::config::parse_cidr(reg).is_ok() {
            insecure_cidrs.push(reg.clone());
        } else {
            index_configs.insert(
                reg.clone(),
                IndexInfo {
                    name: Some(reg.clone()),
                    mirrors: Some(vec![]),
                    secure: Some(false),
                    official: Some(false),
                },
            );
        }
    }
    let mut runtimes: HashMap<String, Runtime> = cfg
        .runtimes
        .iter()
        .map(|(name, r)| {
            (
                name.clone(),
                Runtime {
                    path: Some(r.path.clone()),
                    runtime_args: Some(r.runtime_args.clone()),
                    status: None,
                },
            )
        })
        .collect();
    runtimes.insert(
        BUILTIN_RUNTIME.into(),
        Runtime {
            path: s("berthd"),
            runtime_args: Some(vec!["runtime".into()]),
            status: None,
        },
    );
    let mut security_options = Vec::new();
    if host.seccomp {
        security_options.push("name=seccomp,profile=builtin".to_string());
    }
    if ctx.config.get().userns_remap.is_some() {
        security_options.push("name=userns".to_string());
    }
    if host.cgroup_version == "2" {
        security_options.push("name=cgroupns".to_string());
    }
    let env = |k: &str| {
        std::env::var(k)
            .or_else(|_| std::env::var(k.to_lowercase()))
            .unwrap_or_default()
    };
    let no_commit = || Some(Commit { id: s("") });
    let (running, paused, stopped) = state.container_counts();

    SystemInfo {
        id: state.engine.id.clone(),
        containers: Some(state.containers.len() as i64),
        containers_running: Some(running as i64),
        containers_paused: Some(paused as i64),
        containers_stopped: Some(stopped as i64),
        images: Some(state.images.len() as i64),
        driver: Some(cfg.storage_driver.clone()),
        driver_status: Some(vec![
            vec!["Backing Filesystem".into(), host.backing_filesystem.clone()],
            vec!["Supports d_type".into(), "true".into()],
        ]),
        docker_root_dir: Some(cfg.data_root.display().to_string()),
        plugins: Some(PluginsInfo {
            volume: Some(vec!["local".into()]),
            network: Some(vec!["bridge".into(), "host".into(), "null".into()]),
            authorization: None,
            log: Some(vec!["json-file".into()]),
        }),
        memory_limit: Some(cg.memory),
        swap_limit: Some(cg.swap),
        cpu_cfs_period: Some(cg.cpu_cfs_period),
        cpu_cfs_quota: Some(cg.cpu_cfs_quota),
        cpu_shares: Some(cg.cpu_shares),
        cpu_set: Some(cg.cpuset),
        pids_limit: Some(cg.pids),
        oom_kill_disable: Some(cg.oom_kill_disable),
        ipv4_forwarding: Some(host.ipv4_forwarding),
        debug: Some(cfg.effective_log_level() == "debug"),
        nfd: Some(crate::hostinfo::open_fds()),
        n_goroutines: Some(crate::hostinfo::threads()),
        system_time: Some(crate::clock::rfc3339_now()),
        logging_driver: s("json-file"),
        cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
        cgroup_version: Some(if host.cgroup_version == "2" {
            SystemInfoCgroupVersionEnum::_2
        } else {
            SystemInfoCgroupVersionEnum::_1
        }),
        n_events_listener: Some(0),
        kernel_version: Some(host.kernel_version.clone()),
        operating_system: Some(host.operating_system.clone()),
        os_version: Some(host.os_version.clone()),
        os_type: s("linux"),
        architecture: Some(host.architecture.clone()),
        ncpu: Some(host.ncpu),
        mem_total: Some(host.mem_total),
        index_server_address: s("https://index.docker.io/v1/"),
        registry_config: Some(RegistryServiceConfig {
            insecure_registry_cidrs: Some(insecure_cidrs),
            index_configs: Some(index_configs),
            mirrors: Some(mirrors),
        }),
        generic_resources: None,
        http_proxy: Some(env("HTTP_PROXY")),
        https_proxy: Some(env("HTTPS_PROXY")),
        no_proxy: Some(env("NO_PROXY")),
        name: Some(host.hostname.clone()),
        labels: Some(cfg.labels.clone()),
        experimental_build: Some(false),
        server_version: s(buildinfo::VERSION),
        runtimes: Some(runtimes),
        default_runtime: s(&cfg.default_runtime),
        swarm: Some(SwarmInfo {
            node_id: s(""),
            node_addr: s(""),
            local_node_state: Some(LocalNodeState::INACTIVE),
            control_available: Some(false),
            error: s(""),
            remote_managers: None,
            nodes: None,
            managers: None,
            cluster: None,
        }),
        // Containers always outlive berthd (see README): live restore is always on.
        live_restore_enabled: Some(true),
        isolation: None,
        init_binary: s(""),
        containerd_commit: no_commit(),
        runc_commit: no_commit(),
        init_commit: no_commit(),
        security_options: Some(security_options),
        product_license: None,
        default_address_pools: Some(
            cfg.default_address_pools
                .iter()
                .map(|p| SystemInfoDefaultAddressPools {
                    base: Some(p.base.clone()),
                    size: Some(p.size as i64),
                })
                .collect(),
        ),
        firewall_backend: None,
        discovered_devices: None,
        nri: None,
        warnings: Some(vec![]),
        cdi_spec_dirs: Some(vec![]),
        containerd: None,
    }
}

/// dockerd shows mirrors as URLs with a trailing slash.
fn normalize_mirror(m: &str) -> String {
    if m.ends_with('/') {
        m.to_string()
    } else {
        format!("{m}/")
    }
}

/// `docker system df`, in the shape API 1.50 clients read (LayersSize, Images,
/// Containers, Volumes, BuildCache). Containers are not counted yet.
async fn disk_usage(State(ctx): State<ApiContext>) -> Json<serde_json::Value> {
    let state = ctx.projection.current();
    let layers_size: u64 = state.layers.values().map(|l| l.size).sum();
    // The build's intermediate images are its cache (BuildCache below),
    // not images, as dockerd lists them apart.
    let parents: std::collections::HashSet<&str> =
        state.images.values().map(|i| i.parent.as_str()).collect();
    let images: Vec<serde_json::Value> = state
        .images
        .values()
        .filter(|i| !(i.repo_tags.is_empty() && parents.contains(i.id.as_str())))
        .map(|i| {
            let mut summary =
                super::images::summary(&state, i, super::images::image_labels(&ctx, i));
            let shared = crate::images::query::shared_size(&state, i);
            summary.shared_size = shared as i64;
            summary.containers = 0;
            serde_json::to_value(summary).unwrap_or_default()
        })
        .collect();
    let volumes = {
        let state = std::sync::Arc::clone(&state);
        tokio::task::spawn_blocking(move || crate::volumes::disk_usage(&state))
            .await
            .unwrap_or_default()
    };
    let build_cache: Vec<serde_json::Value> = crate::images::build_cache::entries(&state)
        .into_iter()
        .map(|e| {
            let description = ctx
                .image_files
                .step_config(&e.id)
                .ok()
                .and_then(|c| c.cmd)
                .map(|c| c.join(" "))
                .unwrap_or_default();
            serde_json::json!({
                "ID": e.id,
                "Parent": e.parent,
                "Type": "regular",
                "Description": description,
                "InUse": e.in_use,
                "Shared": false,
                "Size": e.size,
                "CreatedAt": crate::clock::rfc3339(e.stored_ns),
                "LastUsedAt": null,
                "UsageCount": 0,
            })
        })
        .collect();
    Json(serde_json::json!({
        "LayersSize": layers_size,
        "Images": images,
        "Containers": [],
        "Volumes": volumes,
        "BuildCache": build_cache,
    }))
}
