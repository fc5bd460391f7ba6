//! `docker update`: new resource limits (and restart policy) for a container.
//! The new values go into its config (what inspect shows and the next start
//! uses) and, while it runs, straight into its cgroup's files, as runc's
//! update writes them: v1 per-controller directories, or the v2 unified one.

use std::path::{Path, PathBuf};

use bollard_stubs::models::{ContainerUpdateBody, HostConfig};

use crate::error::{Error, Result};

/// Merges the fields the update sets (non-zero, as dockerd reads them).
pub fn merge(h: &mut HostConfig, u: &ContainerUpdateBody) -> Result<()> {
    fn set<T: Copy + PartialEq + Default>(to: &mut Option<T>, from: Option<T>) {
        if let Some(v) = from.filter(|v| *v != T::default()) {
            *to = Some(v);
        }
    }
    set(&mut h.memory, u.memory);
    set(&mut h.memory_swap, u.memory_swap);
    set(&mut h.memory_reservation, u.memory_reservation);
    set(&mut h.cpu_shares, u.cpu_shares);
    set(&mut h.cpu_period, u.cpu_period);
    set(&mut h.cpu_quota, u.cpu_quota);
    set(&mut h.blkio_weight, u.blkio_weight);
    set(&mut h.pids_limit, u.pids_limit);
    if let Some(n) = u.nano_cpus.filter(|n| *n != 0) {
        if h.cpu_quota.unwrap_or(0) > 0 && u.cpu_quota.unwrap_or(0) == 0 {
            return Err(Error::invalid(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
            ));
        }
        h.nano_cpus = Some(n);
    }
    if let Some(c) = u.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        h.cpuset_cpus = Some(c);
    }
    if let Some(m) = u.cpuset_mems.clone().filter(|c| !c.is_empty()) {
        h.cpuset_mems = Some(m);
    }
    if let Some(p) = u.restart_policy.clone().filter(|p| p.name.is_some()) {
        if h.auto_remove.unwrap_or(false) {
            return Err(Error::invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        h.restart_policy = Some(p);
    }
    Ok(())
}

/// One file to write in the container's cgroup: the v1 controller it is
/// under (empty for v2) and the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

fn w(controller: &'static str, file: &'static str, value: impl ToString) -> Write {
    Write {
        controller,
        file,
        value: value.to_string(),
    }
}

/// What the limits of `h` write into a cgroup, in an order the kernel takes
/// (v1 refuses a memory limit above memory+swap, so swap goes first when
/// it grows: callers retry the other order on EINVAL).
pub fn cgroup_writes(h: &HostConfig, v2: bool) -> Vec<Write> {
    let mut out = Vec::new();
    let memory = h.memory.unwrap_or(0);
    let swap = match h.memory_swap.unwrap_or(0) {
        0 if memory > 0 => memory * 2,
        s => s,
    };
    let quota = match h.nano_cpus.unwrap_or(0) {
        0 => h.cpu_quota.unwrap_or(0),
        n => n * 100_000 / 1_000_000_000,
    };
    let period = match h.nano_cpus.unwrap_or(0) {
        0 => h.cpu_period.unwrap_or(0),
        _ => 100_000,
    };
    if v2 {
        if memory > 0 {
            out.push(w("", "memory.max", memory));
            // v2's swap limit is swap alone; -1 (unlimited) is "max".
            let swap_only = if swap < 0 {
                "max".to_string()
            } else {
                (swap - memory).max(0).to_string()
            };
            out.push(w("", "memory.swap.max", swap_only));
        }
        if let Some(r) = h.memory_reservation.filter(|r| *r > 0) {
            out.push(w("", "memory.low", r));
        }
        if let Some(s) = h.cpu_shares.filter(|s| *s > 0) {
            out.push(w("", "cpu.weight", shares_to_weight(s as u64)));
        }
        if quota > 0 || period > 0 {
            let q = if quota > 0 {
                quota.to_string()
            } else {
                "max".into()
            };
            out.push(w(
                "",
                "cpu.max",
                format!("{q} {}", if period > 0 { period } else { 100_000 }),
            ));
        }
        if let Some(c) = h.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
            out.push(w("", "cpuset.cpus", c));
        }
        if let Some(p) = h.pids_limit.filter(|p| *p != 0) {
            out.push(w(
                "",
                "pids.max",
                if p < 0 { "max".into() } else { p.to_string() },
            ));
        }
    } else {
        if memory > 0 {
            out.push(w("memory", "memory.limit_in_bytes", memory));
            out.push(w("memory", "memory.memsw.limit_in_bytes", swap));
        }
        if let Some(r) = h.memory_reservation.filter(|r| *r > 0) {
            out.push(w("memory", "memory.soft_limit_in_bytes", r));
        }
        if let Some(s) = h.cpu_shares.filter(|s| *s > 0) {
            out.push(w("cpu", "cpu.shares", s));
        }
        if period > 0 {
            out.push(w("cpu", "cpu.cfs_period_us", period));
        }
        if quota > 0 {
            out.push(w("cpu", "cpu.cfs_quota_us", quota));
        }
        if let Some(c) = h.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
            out.push(w("cpuset", "cpuset.cpus", c));
        }
        if let Some(p) = h.pids_limit.filter(|p| *p != 0) {
            out.push(w(
                "pids",
                "pids.max",
                if p < 0 { "max".into() } else { p.to_string() },
            ));
        }
    }
    out
}

/// cgroup v1 cpu.shares (2..262144) as v2 cpu.weight (1..10000), with the
/// conversion runc 1.3 and libcontainer use (so a create and an update agree):
/// 1024 shares, v1's default, is weight 100, v2's.
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
        }
    }
}

/// Whether this host's cgroups are v2 only (unified at the mount point).
pub fn unified(mount: &Path) -> bool {
    mount.join("cgroup.controllers").exists() && !mount.join("memory").is_dir()
}

/// Where a write goes: `<mount>/<controller>/<cgroup>/<file>` on v1,
/// `<mount>/<cgroup>/<file>` on v2.
pub fn target(mount: &Path, cgroup: &str, w: &Write) -> PathBuf {
    let rel = cgroup.trim_start_matches('/');
    if w.controller.is_empty() {
        mount.join(rel).join(w.file)
    } else {
        mount.join(w.controller).join(rel).join(w.file)
    }
}

/// Writes the limits into a running container's cgroup. A memory write the
/// kernel refuses (v1: the limit would pass memory+swap, or the other way)
/// is tried again after the rest.
pub fn apply(mount: &Path, cgroup: &str, writes: &[Write]) -> Result<()> {
    let mut retry = Vec::new();
    for w in writes {
        if std::fs::write(target(mount, cgroup, w), &w.value).is_err() {
            retry.push(w);
        }
    }
    for w in retry {
        let path = target(mount, cgroup, w);
        let swap = matches!(w.file, "memory.memsw.limit_in_bytes" | "memory.swap.max");
        if swap && !path.exists() {
            continue; // swap accounting is off: runc skips it too
        }
        std::fs::write(&path, &w.value).map_err(|e| {
            Error::invalid(format!(
                "Cannot update container: writing {} to {}: {e}",
                w.value,
                path.display()
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HostConfig {
        HostConfig {
            memory: Some(64 << 20),
            memory_reservation: Some(32 << 20),
            cpu_shares: Some(512),
            nano_cpus: Some(500_000_000),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(50),
            ..Default::default()
        }
    }

    fn files(writes: &[Write]) -> Vec<(String, String)> {
        writes
            .iter()
            .map(|w| {
                let p = target(Path::new("/cg"), "/berth/x", w);
                (p.display().to_string(), w.value.clone())
            })
            .collect()
    }

    #[test]
    fn v1_writes_each_controllers_files() {
        let got = files(&cgroup_writes(&limits(), false));
        let want: Vec<(String, String)> = [
            ("/cg/memory/berth/x/memory.limit_in_bytes", "67108864"),
            (
                "/cg/memory/berth/x/memory.memsw.limit_in_bytes",
                "134217728",
            ),
            ("/cg/memory/berth/x/memory.soft_limit_in_bytes", "33554432"),
            ("/cg/cpu/berth/x/cpu.shares", "512"),
            ("/cg/cpu/berth/x/cpu.cfs_period_us", "100000"),
            ("/cg/cpu/berth/x/cpu.cfs_quota_us", "50000"),
            ("/cg/cpuset/berth/x/cpuset.cpus", "0"),
            ("/cg/pids/berth/x/pids.max", "50"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn v2_writes_the_unified_files() {
        let got = files(&cgroup_writes(&limits(), true));
        let want: Vec<(String, String)> = [
            ("/cg/berth/x/memory.max", "67108864"),
            ("/cg/berth/x/memory.swap.max", "67108864"),
            ("/cg/berth/x/memory.low", "33554432"),
            ("/cg/berth/x/cpu.weight", "59"),
            ("/cg/berth/x/cpu.max", "50000 100000"),
            ("/cg/berth/x/cpuset.cpus", "0"),
            ("/cg/berth/x/pids.max", "50"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
        let unlimited = HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            pids_limit: Some(-1),
            ..Default::default()
        };
        let got = files(&cgroup_writes(&unlimited, true));
        assert!(got.contains(&("/cg/berth/x/memory.swap.max".into(), "max".into())));
        assert!(got.contains(&("/cg/berth/x/pids.max".into(), "max".into())));
    }

    #[test]
    fn writes_land_in_real_files_and_a_refused_one_is_retried() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("pids/berth/x");
        std::fs::create_dir_all(&dir).expect("mkdir");
        apply(t.path(), "/berth/x", &[w("pids", "pids.max", 7)]).expect("apply");
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).unwrap(), "7");
        let missing = apply(
            t.path(),
            "/berth/x",
            &[w("memory", "memory.limit_in_bytes", 1)],
        );
        assert!(missing.is_err());
    }

    #[test]
    fn merge_takes_only_what_the_update_sets() {
        let mut h = limits();
        let u = ContainerUpdateBody {
            memory: Some(128 << 20),
            pids_limit: Some(0),
            ..Default::default()
        };
        merge(&mut h, &u).expect("merge");
        assert_eq!(h.memory, Some(128 << 20));
        assert_eq!(h.pids_limit, Some(50));
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(2), 1);
    }
}
