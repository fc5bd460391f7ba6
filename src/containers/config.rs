//! A container's configuration at create time: dockerd's checks on the request,
//! and the image's config merged in where the request leaves things unset
//! (moby daemon/commit.go `merge` and the create defaults).

use bollard_stubs::models::{
    ContainerConfig, ContainerCreateBody, HostConfig, HostConfigCgroupnsModeEnum,
    HostConfigLogConfig, RestartPolicy, RestartPolicyNameEnum,
};

use crate::config::BUILTIN_RUNTIME;
use crate::drivers::exec::spec::{MASKED_PATHS, READONLY_PATHS};
use crate::error::{Error, Result};

const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// dockerd's words for a restart policy it does not know (bollard-stubs'
/// enum would give serde's).
fn check_restart_policy_name(policy: &serde_json::Value) -> Result<()> {
    if let Some(name) = policy["Name"].as_str() {
        if !["", "no", "always", "unless-stopped", "on-failure"].contains(&name) {
            return Err(Error::invalid(format!("invalid restart policy '{name}'")));
        }
    }
    Ok(())
}

/// An update body (`docker update`) as dockerd decodes it: its restart
/// policy checked in dockerd's words, a wrong type in Go's (a 500 there).
pub fn parse_update_body(bytes: &[u8]) -> Result<bollard_stubs::models::ContainerUpdateBody> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        check_restart_policy_name(&v["RestartPolicy"])?;
    }
    crate::go_json::decode_body(bytes, "UpdateConfig", crate::error::ErrorKind::Internal)
}

/// A create body from its JSON. bollard-stubs' enums are strict: a value
/// they do not know is refused here first, in dockerd's words rather than
/// serde's ("invalid restart policy 'x'").
pub fn parse_create_body(bytes: &[u8]) -> Result<ContainerCreateBody> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        // Go's words for a body cut short (dockerd 20.10 answers 500).
        serde_json::error::Category::Eof => Error::internal("unexpected EOF"),
        _ => Error::invalid(format!("invalid JSON: {e}")),
    })?;
    let h = &v["HostConfig"];
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    check_restart_policy_name(&h["RestartPolicy"])?;
    if let Some(mode) = text(&h["CgroupnsMode"]) {
        if !["", "private", "host"].contains(&mode.as_str()) {
            return Err(Error::invalid(format!(
                "invalid cgroup namespace mode: {mode}"
            )));
        }
    }
    if let Some(iso) = text(&h["Isolation"]) {
        if !["", "default"].contains(&iso.as_str()) {
            return Err(Error::internal(format!(
                "Invalid isolation: \"{iso}\" - linux only supports 'default'"
            )));
        }
    }
    for m in h["Mounts"].as_array().into_iter().flatten() {
        let typ = text(&m["Type"]).unwrap_or_default();
        if !["bind", "volume", "tmpfs", "npipe", "cluster", "image"].contains(&typ.as_str()) {
            return Err(Error::invalid(format!(
                "invalid mount config for type \"{typ}\": mount type unknown"
            )));
        }
        if let Some(p) = text(&m["BindOptions"]["Propagation"]) {
            if ![
                "", "private", "rprivate", "shared", "rshared", "slave", "rslave",
            ]
            .contains(&p.as_str())
            {
                return Err(Error::invalid(format!(
                    "invalid mount config for type \"{typ}\": invalid propagation mode: {p}"
                )));
            }
        }
    }
    let mut v = v;
    move_mac_address(&mut v);
    crate::go_json::decode(v, "ContainerConfigWrapper")
}

/// The container-wide MacAddress older clients send (API < 1.44) is its
/// primary network's, as dockerd 25+ moves it: the endpoint of the network
/// mode gets it unless it names one itself.
fn move_mac_address(v: &mut serde_json::Value) {
    let Some(mac) = v["MacAddress"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(String::from)
    else {
        return;
    };
    let mode = v["HostConfig"]["NetworkMode"]
        .as_str()
        .filter(|m| !m.is_empty())
        .unwrap_or("default")
        .to_string();
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return;
    }
    if !v["NetworkingConfig"].is_object() {
        v["NetworkingConfig"] = serde_json::json!({});
    }
    let endpoints = &mut v["NetworkingConfig"]["EndpointsConfig"];
    if !endpoints.is_object() {
        *endpoints = serde_json::json!({});
    }
    // The CLI names the default mode's network "default" or "bridge".
    let key = ["bridge", "default"]
        .into_iter()
        .filter(|_| mode == "default" || mode == "bridge")
        .find(|k| endpoints.get(k).is_some())
        .map(String::from)
        .unwrap_or(mode);
    let ep = &mut endpoints[key.as_str()];
    if !ep.is_object() {
        *ep = serde_json::json!({});
    }
    if ep["MacAddress"].as_str().is_none_or(str::is_empty) {
        ep["MacAddress"] = serde_json::Value::String(mac);
    }
}

/// dockerd's checks of a create body's own fields (the host config's are
/// `validate_host_config`), in its words.
pub fn check_create_body(body: &ContainerCreateBody) -> Result<()> {
    crate::containers::health::validate(body.healthcheck.as_ref())?;
    if let Some(sig) = body.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        crate::images::changes::signal_number(sig)?;
    }
    let uts_host = body
        .host_config
        .as_ref()
        .and_then(|h| h.uts_mode.as_deref())
        == Some("host");
    if uts_host && body.hostname.as_deref().is_some_and(|n| !n.is_empty()) {
        return Err(Error::invalid(
            "conflicting options: hostname and the UTS mode",
        ));
    }
    let joins_a_network = body
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        .is_some_and(|m| m.starts_with("container:"));
    if joins_a_network && body.hostname.as_deref().is_some_and(|n| !n.is_empty()) {
        return Err(Error::invalid(
            "conflicting options: hostname and the network mode",
        ));
    }
    check_network_mode_conflicts(body)?;
    if let Some(wd) = body
        .working_dir
        .as_deref()
        .filter(|w| !w.is_empty() && !w.starts_with('/'))
    {
        return Err(Error::invalid(format!(
            "the working directory '{wd}' is invalid, it needs to be an absolute path"
        )));
    }
    Ok(())
}

/// What a container that shares another's network (or the host's) cannot
/// have of its own, in dockerd's order and words (runconfig's
/// validateNetContainerMode).
fn check_network_mode_conflicts(body: &ContainerCreateBody) -> Result<()> {
    let Some(h) = body.host_config.as_ref() else {
        return Ok(());
    };
    let mode = h.network_mode.as_deref().unwrap_or_default();
    let container = mode.starts_with("container:");
    let some = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let conflict = if container && some(&h.links) {
        Some("container type network can't be used with links. This would result in undefined behavior")
    } else if container && some(&h.dns) {
        Some("dns and the network mode")
    } else if container && some(&h.extra_hosts) {
        Some("custom host-to-IP mapping and the network mode")
    } else if container
        && (h.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || h.publish_all_ports == Some(true))
    {
        Some("port publishing and the container type network mode")
    } else if container && body.exposed_ports.as_ref().is_some_and(|p| !p.is_empty()) {
        Some("port exposing and the container type network mode")
    } else {
        None
    };
    match conflict {
        Some(words) => Err(Error::invalid(format!("conflicting options: {words}"))),
        None => Ok(()),
    }
}

/// `name` as dockerd accepts it ("/x" or "x"), without the slash.
pub fn valid_name(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if !crate::volumes::restricted_name(bare) {
        return Err(Error::invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(bare.to_string())
}

/// `--cap-add`/`--cap-drop`: names the kernel's headers know, with or
/// without CAP_, any case, or ALL; refused in dockerd's words otherwise.
fn check_capabilities(field: &str, names: Option<&[String]>) -> Result<()> {
    use crate::drivers::exec::spec::{capability_name, known_capability};
    for name in names.unwrap_or_default() {
        let full = capability_name(name);
        if full != "CAP_ALL" && !known_capability(&full) {
            return Err(Error::invalid(format!(
                "invalid {field}: unknown capability: \"{full}\""
            )));
        }
    }
    Ok(())
}

/// `--security-opt` entries as dockerd parses them (label, apparmor,
/// seccomp, no-new-privileges, systempaths), in its words.
fn check_security_opt(opts: &[String]) -> Result<()> {
    for opt in opts {
        if opt == "no-new-privileges" || opt == "disable" {
            continue;
        }
        let Some((key, value)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
            return Err(Error::invalid(format!("invalid --security-opt 1: {opt:?}")));
        };
        let fine = match key {
            "label" | "apparmor" | "seccomp" => true,
            "no-new-privileges" => [
                "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
            ]
            .contains(&value),
            "systempaths" => value == "unconfined",
            _ => false,
        };
        if !fine {
            return Err(Error::invalid(format!("invalid --security-opt 2: {opt:?}")));
        }
    }
    Ok(())
}

/// dockerd's checks on HostConfig resources and policies.
pub fn validate_host_config(h: &HostConfig, cpus: usize) -> Result<()> {
    let memory = h.memory.unwrap_or(0);
    if memory != 0 && memory < MIN_MEMORY {
        return Err(Error::invalid("Minimum memory limit allowed is 6MB"));
    }
    let swap = h.memory_swap.unwrap_or(0);
    if memory > 0 && swap > 0 && swap < memory {
        return Err(Error::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if swap > 0 && memory == 0 {
        return Err(Error::invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if h.memory_reservation.unwrap_or(0) != 0 && h.memory_reservation.unwrap_or(0) < MIN_MEMORY {
        return Err(Error::invalid("Minimum memory reservation allowed is 6MB"));
    }
    let nano = h.nano_cpus.unwrap_or(0);
    if nano < 0 || nano > cpus as i64 * 1_000_000_000 {
        return Err(Error::invalid(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )));
    }
    if nano > 0 && h.cpu_period.unwrap_or(0) > 0 {
        return Err(Error::invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if nano > 0 && h.cpu_quota.unwrap_or(0) > 0 {
        return Err(Error::invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if let Some(adj) = h.oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
        return Err(Error::invalid(format!(
            "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
        )));
    }
    if h.storage_opt.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(Error::internal(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option",
        ));
    }
    if let Some(mems) = h.cpuset_mems.as_deref().filter(|s| !s.is_empty()) {
        check_cpuset_mems(mems)?;
    }
    for t in h.tmpfs.iter().flatten().map(|(t, _)| t) {
        if !t.starts_with('/') {
            return Err(Error::invalid(format!(
                "invalid mount path: '{t}' mount path must be absolute"
            )));
        }
    }
    check_capabilities("CapAdd", h.cap_add.as_deref())?;
    check_capabilities("CapDrop", h.cap_drop.as_deref())?;
    if h.cpu_shares.unwrap_or(0) < 0 {
        return Err(Error::invalid("invalid CPU shares: must be positive"));
    }
    let period = h.cpu_period.unwrap_or(0);
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return Err(Error::invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    let quota = h.cpu_quota.unwrap_or(0);
    if quota > 0 && quota < 1000 {
        return Err(Error::invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    // (A negative PidsLimit is no limit, as dockerd takes it.)
    let reservation = h.memory_reservation.unwrap_or(0);
    if memory > 0 && reservation > 0 && memory < reservation {
        return Err(Error::invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    check_security_opt(h.security_opt.as_deref().unwrap_or_default())?;
    if let Some(cpuset) = h.cpuset_cpus.as_deref().filter(|s| !s.is_empty()) {
        parse_cpuset(cpuset, cpus)?;
    }
    if let Some(lc) = &h.log_config {
        log_rotation(lc)?;
    }
    if let Some(p) = &h.restart_policy {
        let name = p.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
        let max = p.maximum_retry_count.unwrap_or(0);
        if max < 0 {
            return Err(Error::invalid("maximum retry count cannot be negative"));
        }
        if max > 0 && name != RestartPolicyNameEnum::ON_FAILURE {
            return Err(Error::invalid(format!(
                "maximum retry count cannot be used with restart policy '{name}'"
            )));
        }
        if h.auto_remove.unwrap_or(false)
            && !matches!(
                name,
                RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO
            )
        {
            return Err(Error::invalid(
                "can't create 'AutoRemove' container with restart policy",
            ));
        }
    }
    Ok(())
}

/// `--cpuset-mems`: each memory node must be online on this host
/// (/sys/devices/system/node/online, "0" on a machine without NUMA).
fn check_cpuset_mems(s: &str) -> Result<()> {
    let online = std::fs::read_to_string("/sys/devices/system/node/online")
        .map(|o| o.trim().to_string())
        .unwrap_or_else(|_| "0".into());
    let list = |x: &str| -> Option<Vec<usize>> {
        let mut out = Vec::new();
        for part in x.split(',') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi): (usize, usize) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
            if hi < lo {
                return None;
            }
            out.extend(lo..=hi);
        }
        Some(out)
    };
    let wanted =
        list(s).ok_or_else(|| Error::invalid(format!("Invalid value {s} for cpuset mems")))?;
    let have = list(&online).unwrap_or_else(|| vec![0]);
    if wanted.iter().any(|n| !have.contains(n)) {
        return Err(Error::invalid(format!(
            "Requested memory nodes are not available - requested {s}, available: {online}"
        )));
    }
    Ok(())
}

/// "0-2,4" -> the CPUs listed; each must exist on this host.
pub fn parse_cpuset(s: &str, cpus: usize) -> Result<Vec<usize>> {
    let bad = || Error::invalid(format!("Invalid value {s} for cpuset cpus"));
    let mut out = Vec::new();
    for part in s.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: usize = lo.trim().parse().map_err(|_| bad())?;
        let hi: usize = hi.trim().parse().map_err(|_| bad())?;
        if hi < lo {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    if out.iter().any(|c| *c >= cpus) {
        return Err(Error::invalid(format!(
            "Requested CPUs are not available - requested {s}, available: 0-{}",
            cpus.saturating_sub(1)
        )));
    }
    Ok(out)
}

/// The request with the image's config merged in and dockerd's defaults filled,
/// as inspect shows it. `image_config` is the image's `config` object.
pub fn merge(
    mut body: ContainerCreateBody,
    image_config: &ContainerConfig,
    id: &str,
) -> ContainerCreateBody {
    let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    if empty(&body.user) {
        body.user = image_config.user.clone();
    }
    let mut env = body.env.take().unwrap_or_default();
    for e in image_config.env.iter().flatten() {
        let key = e.split('=').next().unwrap_or_default();
        if !env.iter().any(|u| u.split('=').next() == Some(key)) {
            env.push(e.clone());
        }
    }
    body.env = Some(env);
    let mut ports = body.exposed_ports.take().unwrap_or_default();
    for p in image_config.exposed_ports.iter().flatten() {
        if !ports.contains(p) {
            ports.push(p.clone());
        }
    }
    body.exposed_ports = (!ports.is_empty()).then_some(ports);
    let mut labels = body.labels.take().unwrap_or_default();
    for (k, v) in image_config.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    body.labels = Some(labels);
    if body.entrypoint.as_deref() == Some(&[String::new()]) {
        // `--entrypoint ""`: none at all, and not the image's Cmd either.
        body.entrypoint = None;
    } else if body.entrypoint.as_ref().is_none_or(|e| e.is_empty()) {
        if body.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            body.cmd = image_config.cmd.clone();
        }
        body.entrypoint = image_config.entrypoint.clone().filter(|e| !e.is_empty());
    }
    if let Some(wd) = body.working_dir.as_mut().filter(|w| w.starts_with('/')) {
        // Stored clean, as dockerd does ("/x/" is "/x").
        *wd = crate::paths::clean_absolute(wd);
    }
    if empty(&body.working_dir) {
        body.working_dir = image_config.working_dir.clone();
    }
    // The image's VOLUMEs join the user's (`-v /path`), as dockerd merges them.
    if let Some(image_volumes) = &image_config.volumes {
        let volumes = body.volumes.get_or_insert_with(Default::default);
        for v in image_volumes {
            if !volumes.contains(v) {
                volumes.push(v.clone());
            }
        }
    }
    if empty(&body.stop_signal) {
        body.stop_signal = image_config.stop_signal.clone();
    }
    if body.on_build.is_none() {
        body.on_build = image_config.on_build.clone();
    }
    body.healthcheck =
        super::health::merge(body.healthcheck.take(), image_config.healthcheck.as_ref());
    if empty(&body.hostname) {
        let host_network = body
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.as_deref())
            == Some("host");
        // On the host's network, the host's name, as dockerd gives it.
        body.hostname = Some(match host_network {
            true => nix::unistd::gethostname()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            false => id.chars().take(12).collect(),
        });
    }
    let mut h = body.host_config.take().unwrap_or_default();
    if h.network_mode.as_deref().is_none_or(str::is_empty) {
        h.network_mode = Some("default".into());
    }
    if h.runtime.as_deref().is_none_or(str::is_empty) {
        h.runtime = Some(BUILTIN_RUNTIME.into());
    }
    // The CLI sends an empty Type when no --log-driver is given.
    let log_config = h.log_config.get_or_insert_with(Default::default);
    if log_config.typ.as_deref().is_none_or(str::is_empty) {
        log_config.typ = Some("json-file".into());
    }
    if log_config.config.is_none() {
        log_config.config = Some(Default::default());
    }
    if h.restart_policy.is_none() {
        h.restart_policy = Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::EMPTY),
            maximum_retry_count: Some(0),
        });
    }
    if h.shm_size.unwrap_or(0) == 0 {
        h.shm_size = Some(64 << 20);
    }
    if h.cgroupns_mode
        .is_none_or(|m| m == HostConfigCgroupnsModeEnum::EMPTY)
    {
        // dockerd's default: the host's on cgroup v1, a private one on v2.
        h.cgroupns_mode = Some(if crate::hostinfo::cgroup_v2() {
            HostConfigCgroupnsModeEnum::PRIVATE
        } else {
            HostConfigCgroupnsModeEnum::HOST
        });
    }
    if h.ipc_mode.as_deref().is_none_or(str::is_empty) {
        h.ipc_mode = Some("private".into());
    }
    if h.masked_paths.is_none() && !h.privileged.unwrap_or(false) {
        h.masked_paths = Some(MASKED_PATHS.iter().map(|s| s.to_string()).collect());
    }
    if h.readonly_paths.is_none() && !h.privileged.unwrap_or(false) {
        h.readonly_paths = Some(READONLY_PATHS.iter().map(|s| s.to_string()).collect());
    }
    body.host_config = Some(h);
    body
}

/// The daemon's `default-ulimits` added to a container's own, as dockerd's
/// mergeUlimits does at each start: a ulimit the container sets stays its own.
pub fn merge_default_ulimits(body: &mut ContainerCreateBody, defaults: &[crate::config::Ulimit]) {
    if defaults.is_empty() {
        return;
    }
    let h = body.host_config.get_or_insert_with(Default::default);
    let ulimits = h.ulimits.get_or_insert_with(Vec::new);
    for d in defaults {
        if ulimits
            .iter()
            .any(|u| u.name.as_deref() == Some(d.name.as_str()))
        {
            continue;
        }
        ulimits.push(bollard_stubs::models::ResourcesUlimits {
            name: Some(d.name.clone()),
            soft: Some(d.soft),
            hard: Some(d.hard),
        });
    }
}

/// Go's units.HumanDuration, which `docker ps` shows ("Up 5 seconds").
pub fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if d < 14 => format!("{d} days"),
        _ if d < 7 * 8 => format!("{} weeks", d / 7),
        _ if d < 365 * 2 => format!("{} months", d / 30),
        _ => format!("{} years", d / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(valid_name("/web-1").unwrap(), "web-1");
        assert_eq!(valid_name("a.b_c").unwrap(), "a.b_c");
        for bad in ["bad name", "-x", "x", "", "/", "é1"] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resource_checks_use_dockerds_words() {
        let h = |f: fn(&mut HostConfig)| {
            let mut h = HostConfig::default();
            f(&mut h);
            validate_host_config(&h, 2).err().map(|e| e.to_string())
        };
        assert_eq!(
            h(|h| h.memory = Some(1024)).as_deref(),
            Some("Minimum memory limit allowed is 6MB")
        );
        assert!(h(|h| h.memory = Some(32 << 20)).is_none());
        assert!(h(|h| {
            h.memory = Some(64 << 20);
            h.memory_swap = Some(32 << 20)
        })
        .is_some());
        assert_eq!(
            h(|h| h.nano_cpus = Some(3_000_000_000)).as_deref(),
            Some("Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available")
        );
        assert!(h(|h| h.cpu_quota = Some(10)).is_some());
        assert!(h(|h| h.cpuset_cpus = Some("0-7".into())).is_some());
        assert!(h(|h| h.cpuset_cpus = Some("0,1".into())).is_none());
    }

    #[test]
    fn image_defaults_fill_what_the_request_leaves_unset() {
        let image = ContainerConfig {
            env: Some(vec!["PATH=/bin".into(), "A=image".into()]),
            cmd: Some(vec!["sh".into()]),
            working_dir: Some("/srv".into()),
            labels: Some([("l".to_string(), "image".to_string())].into()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            env: Some(vec!["A=user".into()]),
            ..Default::default()
        };
        let m = merge(body, &image, "0123456789abcdef");
        assert_eq!(m.env.unwrap(), ["A=user", "PATH=/bin"]);
        assert_eq!(m.cmd.unwrap(), ["sh"]);
        assert_eq!(m.working_dir.as_deref(), Some("/srv"));
        assert_eq!(m.hostname.as_deref(), Some("0123456789ab"));
        assert_eq!(m.labels.unwrap()["l"], "image");
        // An entrypoint of the user's drops the image's Cmd.
        let image = ContainerConfig {
            entrypoint: Some(vec!["/e".into()]),
            cmd: Some(vec!["x".into()]),
            ..Default::default()
        };
        let m = merge(
            ContainerCreateBody {
                entrypoint: Some(vec!["/mine".into()]),
                ..Default::default()
            },
            &image,
            "id",
        );
        assert_eq!(
            crate::drivers::exec::spec::path_and_args(&m),
            ("/mine".to_string(), vec![])
        );
    }

    #[test]
    fn durations_read_as_docker_ps_prints_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3 * 3600), "3 hours");
    }
}

/// A size as go-units' FromHumanSize reads it (decimal: `1k` is 1000).
pub fn human_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let scale = match unit {
        "" => 1e0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        _ => return None,
    };
    Some((n * scale) as u64)
}

/// The json-file rotation of a container's LogConfig; (0, 1) when it has none.
/// Checked at start: a driver whose service the host lacks fails it as
/// dockerd's logger does when it cannot reach it.
pub fn log_rotation_of(body: &ContainerCreateBody) -> Result<(u64, u32)> {
    match body
        .host_config
        .as_ref()
        .and_then(|h| h.log_config.as_ref())
    {
        Some(lc) => {
            log_driver_reachable(lc)?;
            log_rotation(lc)
        }
        None => Ok((0, 1)),
    }
}

/// syslog without an address needs the host's syslog socket (Go's
/// log/syslog tries these, datagram then stream); journald needs journald.
fn log_driver_reachable(lc: &HostConfigLogConfig) -> Result<()> {
    let opts = lc.config.clone().unwrap_or_default();
    match lc.typ.as_deref() {
        Some("syslog") if opts.get("syslog-address").is_none_or(|a| a.is_empty()) => {
            let reachable = ["/dev/log", "/var/run/syslog", "/var/run/log"]
                .iter()
                .any(|p| {
                    std::os::unix::net::UnixDatagram::unbound().is_ok_and(|s| s.connect(p).is_ok())
                        || std::os::unix::net::UnixStream::connect(p).is_ok()
                });
            if !reachable {
                return Err(Error::internal(
                    "failed to initialize logging driver: Unix syslog delivery error",
                ));
            }
        }
        Some("journald") if !std::path::Path::new("/run/systemd/journal/socket").exists() => {
            return Err(Error::internal(
                "failed to initialize logging driver: journald is not enabled on this host",
            ));
        }
        _ => {}
    }
    Ok(())
}

/// The json-file driver's rotation: `(max_size, max_files)`, 0 for no limit;
/// refuses options it does not know, with dockerd's words.
pub fn log_rotation(lc: &HostConfigLogConfig) -> Result<(u64, u32)> {
    let typ = lc.typ.as_deref().unwrap_or("json-file");
    // The drivers dockerd registers on Linux; any other name is a plugin
    // it looks for, and does not find.
    const DRIVERS: &[&str] = &[
        "",
        "json-file",
        "none",
        "local",
        "journald",
        "syslog",
        "gelf",
        "fluentd",
        "awslogs",
        "splunk",
        "etwlogs",
        "gcplogs",
        "logentries",
    ];
    if !DRIVERS.contains(&typ) {
        return Err(Error::invalid(format!(
            "error looking up logging plugin {typ}: plugin \"{typ}\" not found"
        )));
    }
    let opts = lc.config.clone().unwrap_or_default();
    // Every driver's delivery mode, checked as dockerd's logger does.
    match opts.get("mode").map(String::as_str) {
        None | Some("") | Some("blocking") if opts.contains_key("max-buffer-size") => {
            return Err(Error::invalid(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
            ))
        }
        None | Some("") | Some("blocking") | Some("non-blocking") => {}
        Some(m) => {
            return Err(Error::invalid(format!(
                "logger: logging mode not supported: {m}"
            )))
        }
    }
    if !matches!(typ, "" | "json-file") {
        return Ok((0, 1));
    }
    const KNOWN: &[&str] = &[
        "mode",
        "max-buffer-size",
        "max-size",
        "max-file",
        "compress",
        "labels",
        "labels-regex",
        "env",
        "env-regex",
        "tag",
    ];
    if let Some(k) = opts.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(Error::invalid(format!(
            "unknown log opt '{k}' for json-file log driver"
        )));
    }
    let max_size = match opts.get("max-size") {
        None => 0,
        Some(v) => match human_size(v) {
            Some(n) if n > 0 => n,
            Some(_) => {
                return Err(Error::invalid(
                    "failed to initialize logging driver: max-size must be a positive number",
                ))
            }
            None => {
                return Err(Error::invalid(format!(
                    "failed to initialize logging driver: invalid size: '{v}'"
                )))
            }
        },
    };
    let max_files = match opts.get("max-file") {
        None => 1,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 1 => n.min(u32::MAX as i64) as u32,
            Ok(_) => {
                return Err(Error::invalid(
                    "failed to initialize logging driver: max-file cannot be less than 1",
                ))
            }
            Err(_) => {
                return Err(Error::invalid(format!(
                    "failed to initialize logging driver: strconv.Atoi: parsing \"{v}\": invalid syntax"
                )))
            }
        },
    };
    Ok((max_size, max_files))
}

#[cfg(test)]
mod log_tests {
    use super::*;

    fn lc(pairs: &[(&str, &str)]) -> HostConfigLogConfig {
        HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn human_sizes_are_decimal() {
        assert_eq!(human_size("1k"), Some(1000));
        assert_eq!(human_size("10m"), Some(10_000_000));
        assert_eq!(human_size("1.5KB"), Some(1500));
        assert_eq!(human_size("100"), Some(100));
        assert_eq!(human_size("abc"), None);
    }

    #[test]
    fn rotation_options_as_dockerd_checks_them() {
        assert_eq!(log_rotation(&lc(&[])).unwrap(), (0, 1));
        assert_eq!(
            log_rotation(&lc(&[("max-size", "1k"), ("max-file", "3")])).unwrap(),
            (1000, 3)
        );
        let e = log_rotation(&lc(&[("max-size", "abc")])).unwrap_err();
        assert!(e.message().contains("invalid size: 'abc'"), "{e:?}");
        let e = log_rotation(&lc(&[("max-file", "0")])).unwrap_err();
        assert!(e.message().contains("max-file cannot be less than 1"));
        let e = log_rotation(&lc(&[("foo", "1")])).unwrap_err();
        assert_eq!(
            e.message(),
            "unknown log opt 'foo' for json-file log driver"
        );
        let bogus = HostConfigLogConfig {
            typ: Some("bogus".into()),
            config: None,
        };
        assert_eq!(
            log_rotation(&bogus).unwrap_err().message(),
            "error looking up logging plugin bogus: plugin \"bogus\" not found"
        );
    }
}
