//! Read side: finding containers by name or ID, `docker ps` (list, filters) and
//! `inspect`, all pure functions of the projection.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHostConfig,
    ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, DriverData, Health,
    HealthcheckResult,
};

use super::config::human_duration;
use crate::drivers::exec::spec::path_and_args;
use crate::error::{Error, Result};
use crate::events::projection::{ContainerRecord, ContainerStatus, State};

/// The create body recorded with the container.
pub fn body(c: &ContainerRecord) -> ContainerCreateBody {
    serde_json::from_str(&c.config).unwrap_or_default()
}

pub fn rfc3339_or_zero(ns: u64) -> String {
    if ns == 0 {
        "0001-01-01T00:00:00Z".into()
    } else {
        crate::clock::rfc3339(ns)
    }
}

fn state_enum(c: &ContainerRecord) -> (ContainerSummaryStateEnum, ContainerStateStatusEnum) {
    if c.restarting {
        return (
            ContainerSummaryStateEnum::RESTARTING,
            ContainerStateStatusEnum::RESTARTING,
        );
    }
    match c.status {
        ContainerStatus::Created => (
            ContainerSummaryStateEnum::CREATED,
            ContainerStateStatusEnum::CREATED,
        ),
        ContainerStatus::Running if c.paused => (
            ContainerSummaryStateEnum::PAUSED,
            ContainerStateStatusEnum::PAUSED,
        ),
        ContainerStatus::Running => (
            ContainerSummaryStateEnum::RUNNING,
            ContainerStateStatusEnum::RUNNING,
        ),
        ContainerStatus::Exited => (
            ContainerSummaryStateEnum::EXITED,
            ContainerStateStatusEnum::EXITED,
        ),
    }
}

/// `docker ps`'s STATUS column.
pub fn status_text(c: &ContainerRecord, now_ns: u64) -> String {
    let ago = |ns: u64| human_duration(now_ns.saturating_sub(ns) / 1_000_000_000);
    if c.restarting {
        return format!("Restarting ({}) {} ago", c.exit_code, ago(c.finished_ns));
    }
    match c.status {
        ContainerStatus::Created => "Created".into(),
        ContainerStatus::Running if c.paused => format!("Up {} (Paused)", ago(c.started_ns)),
        ContainerStatus::Running => format!(
            "Up {}{}",
            ago(c.started_ns),
            super::health::ps_suffix(c.health.as_deref().unwrap_or_default())
        ),
        ContainerStatus::Exited => format!("Exited ({}) {} ago", c.exit_code, ago(c.finished_ns)),
    }
}

/// The rows of `docker ps`: a linked container is listed under its links'
/// names too ("/parent/alias"), after its own.
pub fn summaries(state: &State, found: &[&ContainerRecord], now_ns: u64) -> Vec<ContainerSummary> {
    let linked = crate::networks::links::names_by_linked(state);
    found
        .iter()
        .map(|c| {
            let mut s = summary(state, c, now_ns);
            if let (Some(names), Some(more)) = (s.names.as_mut(), linked.get(&c.name)) {
                names.extend(more.iter().cloned());
            }
            s
        })
        .collect()
}

pub fn summary(state: &State, c: &ContainerRecord, now_ns: u64) -> ContainerSummary {
    let b = body(c);
    let (path, args) = path_and_args(&b);
    // dockerd quotes an argument that holds a space (list.go).
    let command = std::iter::once(path)
        .chain(
            args.into_iter()
                .map(|a| if a.contains(' ') { format!("'{a}'") } else { a }),
        )
        .collect::<Vec<_>>()
        .join(" ");
    let network_mode = b
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_else(|| "default".into());
    ContainerSummary {
        id: Some(c.id.clone()),
        names: Some(vec![format!("/{}", c.name)]),
        image: Some(c.image_name.clone()),
        image_id: Some(c.image.clone()),
        command: Some(command),
        created: Some((c.created_ns / 1_000_000_000) as i64),
        ports: Some(crate::networks::render::port_summaries(state, &b, c)),
        labels: Some(b.labels.clone().unwrap_or_default()),
        state: Some(state_enum(c).0),
        status: Some(status_text(c, now_ns)),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: Some(network_mode),
            annotations: None,
        }),
        network_settings: Some(ContainerSummaryNetworkSettings {
            networks: Some(crate::networks::render::networks_of(state, c)),
        }),
        mounts: Some(super::mounts::inspect(c)),
        ..Default::default()
    }
}

/// The Config part of inspect: the create body without HostConfig and
/// NetworkingConfig.
pub fn inspect_config(b: &ContainerCreateBody) -> ContainerConfig {
    let v = serde_json::to_value(b).unwrap_or_default();
    let mut config: ContainerConfig = serde_json::from_value(v).unwrap_or_default();
    if config.labels.is_none() {
        config.labels = Some(HashMap::new());
    }
    config
}

/// What inspect shows that the record does not hold.
pub struct Paths {
    pub log_path: String,
    pub graph_driver: DriverData,
    pub driver: String,
    /// `State.Health`, as the shim keeps it in the container's directory.
    pub health: Option<crate::drivers::exec::proto::HealthState>,
}

/// `State.Health`: the shim's record, with the status the projection holds
/// when the file is older (a start resets it before the first probe).
fn health_of(
    c: &ContainerRecord,
    kept: Option<&crate::drivers::exec::proto::HealthState>,
) -> Option<Health> {
    // As dockerd, a check has no state before the container's first start.
    let status = c.health.as_deref().filter(|_| ever_started(c))?;
    let status = kept
        .filter(|_| c.status == ContainerStatus::Running)
        .map_or(status, |k| k.status.as_str());
    let log = kept.map(|k| {
        k.log
            .iter()
            .map(|r| HealthcheckResult {
                start: Some(r.start.clone()),
                end: Some(r.end.clone()),
                exit_code: Some(r.exit_code),
                output: Some(r.output.clone()),
            })
            .collect()
    });
    Some(Health {
        status: serde_json::from_value(serde_json::json!(status)).ok(),
        failing_streak: Some(kept.map_or(0, |k| k.failing_streak as i64)),
        log: Some(log.unwrap_or_default()),
    })
}

/// The health a container is listed by (`health` filter): "none" without a check.
fn health_word(c: &ContainerRecord) -> &str {
    c.health
        .as_deref()
        .filter(|_| ever_started(c))
        .unwrap_or("none")
}

fn ever_started(c: &ContainerRecord) -> bool {
    c.started_ns != 0
}

pub fn inspect(c: &ContainerRecord, paths: Paths) -> ContainerInspectResponse {
    let b = body(c);
    let (path, args) = path_and_args(&b);
    let (_, status) = state_enum(c);
    ContainerInspectResponse {
        id: Some(c.id.clone()),
        created: Some(crate::clock::rfc3339(c.created_ns)),
        path: Some(path),
        args: Some(args),
        state: Some(ContainerState {
            status: Some(status),
            // As dockerd: a restarting container counts as running.
            running: Some(c.status == ContainerStatus::Running || c.restarting),
            paused: Some(c.paused),
            restarting: Some(c.restarting),
            oom_killed: Some(c.oom_killed),
            dead: Some(false),
            pid: Some(c.pid as i64),
            exit_code: Some(c.exit_code as i64),
            error: Some(c.error.clone()),
            started_at: Some(rfc3339_or_zero(c.started_ns)),
            finished_at: Some(rfc3339_or_zero(c.finished_ns)),
            health: health_of(c, paths.health.as_ref()),
        }),
        image: Some(c.image.clone()),
        resolv_conf_path: Some(String::new()),
        hostname_path: Some(String::new()),
        hosts_path: Some(String::new()),
        log_path: Some(paths.log_path),
        name: Some(format!("/{}", c.name)),
        restart_count: Some(c.restart_count as i64),
        driver: Some(paths.driver),
        platform: Some("linux".into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        exec_ids: None,
        host_config: b.host_config.clone().map(|mut h| {
            // Links as dockerd shows them: "/child:/parent/alias".
            h.links = h.links.map(|l| crate::networks::links::shown(&l, &c.name));
            h
        }),
        graph_driver: Some(paths.graph_driver),
        mounts: Some(super::mounts::inspect(c)),
        config: Some(inspect_config(&b)),
        network_settings: Some(Default::default()),
        ..Default::default()
    }
}

/// inspect as dockerd 20.10 renders it: with the paths of the container's
/// /etc files (in `etc_dir`, once written) and NetworkSettings with its
/// top-level fields (`netns`: its namespace's bind mount, once made).
pub fn inspect_json(
    state: &State,
    c: &ContainerRecord,
    paths: Paths,
    etc_dir: &std::path::Path,
    netns: &std::path::Path,
) -> serde_json::Value {
    let mut v = serde_json::to_value(inspect(c, paths)).unwrap_or_default();
    for (key, file) in [
        ("HostsPath", "hosts"),
        ("ResolvConfPath", "resolv.conf"),
        ("HostnamePath", "hostname"),
    ] {
        let p = etc_dir.join(file);
        v[key] = if p.exists() {
            p.display().to_string()
        } else {
            String::new()
        }
        .into();
    }
    let sandbox_key = if netns.exists() {
        netns.display().to_string()
    } else {
        String::new()
    };
    v["NetworkSettings"] =
        crate::networks::render::network_settings(state, c, &body(c), &sandbox_key);
    zero_values_as_dockerd(&mut v);
    v
}

/// dockerd's inspect has every key of Config and HostConfig, null or zero
/// when unset; clients index them (`attrs["Config"]["User"]`), where the
/// models leave unset fields out. Empty Volumes is null, as are unset
/// MemorySwappiness and PidsLimit.
fn zero_values_as_dockerd(v: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let fill = |obj: &mut Value, keys: &[(&str, Value)]| {
        if let Some(o) = obj.as_object_mut() {
            for (k, zero) in keys {
                o.entry(k.to_string()).or_insert_with(|| zero.clone());
            }
        }
    };
    let config = &mut v["Config"];
    if config
        .get("Volumes")
        .is_some_and(|x| x.as_object().is_some_and(|m| m.is_empty()))
    {
        config["Volumes"] = Value::Null;
    }
    fill(
        config,
        &[
            ("Hostname", json!("")),
            ("Domainname", json!("")),
            ("User", json!("")),
            ("AttachStdin", json!(false)),
            ("AttachStdout", json!(false)),
            ("AttachStderr", json!(false)),
            ("Tty", json!(false)),
            ("OpenStdin", json!(false)),
            ("StdinOnce", json!(false)),
            ("Env", Value::Null),
            ("Cmd", Value::Null),
            ("Image", json!("")),
            ("Volumes", Value::Null),
            ("WorkingDir", json!("")),
            ("Entrypoint", Value::Null),
            ("OnBuild", Value::Null),
            ("Labels", json!({})),
        ],
    );
    let host = &mut v["HostConfig"];
    if host.get("MemorySwappiness").and_then(Value::as_i64) == Some(-1) {
        host["MemorySwappiness"] = Value::Null;
    }
    if host.get("PidsLimit").and_then(Value::as_i64) == Some(0) {
        host["PidsLimit"] = Value::Null;
    }
    fill(
        host,
        &[
            ("Binds", Value::Null),
            ("CapAdd", Value::Null),
            ("CapDrop", Value::Null),
            ("DeviceCgroupRules", Value::Null),
            ("DeviceRequests", Value::Null),
            ("ExtraHosts", Value::Null),
            ("GroupAdd", Value::Null),
            ("Links", Value::Null),
            ("SecurityOpt", Value::Null),
            ("VolumesFrom", Value::Null),
            ("KernelMemory", json!(0)),
            ("KernelMemoryTCP", json!(0)),
            ("MemorySwappiness", Value::Null),
            ("PidsLimit", Value::Null),
        ],
    );
    if v.get("ExecIDs").is_none() {
        v["ExecIDs"] = Value::Null;
    }
}

/// The `name` filter: a regular expression, as dockerd's, matched against
/// the name with and without its leading "/" (`^web$` and `^/web$` both
/// find "web"); one that does not compile matches nothing.
fn name_patterns(patterns: &[String]) -> Vec<regex::Regex> {
    patterns
        .iter()
        .filter_map(|p| regex::Regex::new(p).ok())
        .collect()
}

fn name_matches(re: &regex::Regex, name: &str) -> bool {
    re.is_match(name) || re.is_match(&format!("/{name}"))
}

/// `docker ps` filters and options.
#[derive(Debug, Default)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<usize>,
    pub filters: HashMap<String, Vec<String>>,
}

const FILTERS: &[&str] = &[
    "id", "name", "label", "status", "ancestor", "exited", "before", "since", "network", "health",
    "volume",
];

/// Containers to list, newest first, as dockerd filters them.
pub fn list<'a>(
    state: &'a State,
    opts: &ListOptions,
    image_matches: &dyn Fn(&ContainerRecord, &str) -> bool,
) -> Result<Vec<&'a ContainerRecord>> {
    if let Some(k) = opts.filters.keys().find(|k| !FILTERS.contains(&k.as_str())) {
        return Err(Error::invalid(format!("Invalid filter '{k}'")));
    }
    let f = |k: &str| opts.filters.get(k).filter(|v| !v.is_empty());
    for s in f("status").into_iter().flatten() {
        if ![
            "created",
            "restarting",
            "running",
            "removing",
            "paused",
            "exited",
            "dead",
        ]
        .contains(&s.as_str())
        {
            return Err(Error::invalid(format!("Invalid filter 'status={s}'")));
        }
    }
    for h in f("health").into_iter().flatten() {
        if !["starting", "healthy", "unhealthy", "none"].contains(&h.as_str()) {
            return Err(Error::invalid(format!(
                "Unrecognised filter value for health: {h}"
            )));
        }
    }
    let exited: Vec<i32> = f("exited")
        .into_iter()
        .flatten()
        .map(|e| {
            e.parse()
                .map_err(|_| Error::invalid(format!("invalid filter 'exited={e}'")))
        })
        .collect::<Result<_>>()?;
    let created_of = |name: &str| state.container(name).map(|c| c.created_ns);
    let before = f("before")
        .and_then(|v| v.first())
        .map(|n| created_of(n))
        .transpose()?;
    let since = f("since")
        .and_then(|v| v.first())
        .map(|n| created_of(n))
        .transpose()?;
    // Status and exited filters look at stopped containers too, as dockerd.
    let all = opts.all
        || f("status").is_some()
        || !exited.is_empty()
        || opts.limit.is_some_and(|l| l > 0)
        || before.is_some()
        || since.is_some();
    // Compiled once per listing, not once per container.
    let names = f("name").map(|ns| name_patterns(ns));
    let names = names.as_deref();
    let mut out: Vec<&ContainerRecord> = state
        .containers
        .values()
        .filter(|c| all || c.status == ContainerStatus::Running || c.restarting)
        .filter(|c| f("id").is_none_or(|ids| ids.iter().any(|i| c.id.starts_with(i.as_str()))))
        .filter(|c| names.is_none_or(|ns| ns.iter().any(|re| name_matches(re, &c.name))))
        .filter(|c| {
            f("status").is_none_or(|ss| {
                let s = state_enum(c).1.to_string();
                ss.iter().any(|x| *x == s)
            })
        })
        .filter(|c| {
            exited.is_empty()
                || (c.status == ContainerStatus::Exited && exited.contains(&c.exit_code))
        })
        .filter(|c| f("health").is_none_or(|hs| hs.iter().any(|h| h == health_word(c))))
        .filter(|c| f("ancestor").is_none_or(|a| a.iter().any(|i| image_matches(c, i))))
        .filter(|c| {
            f("label").is_none_or(|ls| {
                crate::images::query::labels_match(&body(c).labels.unwrap_or_default(), ls)
            })
        })
        .filter(|c| {
            f("network").is_none_or(|ns| {
                ns.iter().any(|n| {
                    c.networks.keys().any(|id| {
                        id.starts_with(n.as_str())
                            || state.networks.get(id).is_some_and(|r| r.name == *n)
                    })
                })
            })
        })
        .filter(|c| {
            // dockerd matches a volume's name, a mount's destination, or a
            // bind's host path.
            f("volume").is_none_or(|vs| {
                let mounts = super::mounts::recorded(c).unwrap_or_default();
                vs.iter().any(|v| {
                    mounts.iter().any(|m| {
                        let named = if m.kind == super::mounts::Kind::Volume {
                            &m.name
                        } else {
                            &m.source
                        };
                        (!named.is_empty() && named == v) || m.destination == *v
                    })
                })
            })
        })
        .filter(|c| before.is_none_or(|b| c.created_ns < b))
        .filter(|c| since.is_none_or(|s| c.created_ns > s))
        .collect();
    out.sort_by(|a, b| b.created_ns.cmp(&a.created_ns));
    if let Some(l) = opts.limit.filter(|l| *l > 0) {
        out.truncate(l);
    }
    Ok(out)
}

#[cfg(test)]
mod name_filter_tests {
    use super::{name_matches, name_patterns};

    #[test]
    fn names_are_matched_as_dockerd_does_regexps() {
        let matches = |p: &str| {
            name_patterns(&[p.to_string()])
                .iter()
                .any(|re| name_matches(re, "flt-abc"))
        };
        for p in ["flt", "^flt", "^/flt", "abc$", "flt-a.c", "^flt-abc$"] {
            assert!(matches(p), "{p}");
        }
        for p in ["xflt", "^abc", "(unclosed"] {
            assert!(!matches(p), "{p}");
        }
    }
}
